// Separable filtering of images with a window outer(g, g), hand-written for the CPU: the local means,
// variances and covariances under a Gaussian or box window that most lineage metrics take (SSIM and
// MEF-SSIM, VIF, Q_P, Q_W, Q_CB, ...; metrics/filters.py, separable_matmul).
//
// Why hand-written: as banded matrix products (BLAS, in blocks of ~12 outputs) an 11-tap filter over a
// 240x240 map ran at ~3 GFLOP/s here, a quarter of tang's and mefb's scoring time: each block is a
// small product whose fixed costs outweigh its arithmetic, and it does (12 + k - 1) / k times the
// multiply-adds of a tap loop. Here each output row is a sum of k rows (the vertical pass) and each
// output pixel a sum of k neighbours in its row, padded (the horizontal pass), eight SIMD registers of
// outputs at a time, so that every tap is one broadcast and eight multiply-adds (below).
//
// The padding (zeros, replicated, reflected, symmetric edges) comes as tables: for each padded
// position of a side, the source pixel it repeats, or -1 for a zero (metrics/filters.py, _sources).
// Each output is the sum over the taps in their order, in the images' own precision, as the matrix
// products' are (with fused multiply-adds; their summation order differs, so values differ by float
// rounding only). Each map is filtered alone: a batch gives what single calls give, bit for bit. Outputs whose
// taps fall on zeros only (a medical image's background) are written +0 without their sums: the values the
// sums give, bit for bit (row_support, below).
#include <cstdint>

#include "simd.h"  // VBYTES, vf32 / vf64, Vec<T>

// The tap loops' shapes. Each output's sum is a chain of dependent multiply-adds (4 cycles each on the
// Intel Xeon); with four chains in flight the loops waited on them. COMBINE_REGS registers of outputs
// in combine(), a strip STRIP_REGS registers wide in vertical() (two rows of it: twice as many sums, and
// as many samples, live in registers: AVX-512 has 32, AVX2 16); the vertical pass run BAND rows at a time
// in filter_map(), so that the horizontal pass finds them in L1. Every output still sums its taps in
// their order: the same values bit for bit. On the Xeon, one thread, against four and two registers and
// the whole map's vertical pass first, alternating builds (docs/speed.md): eight 11-tap 'same' float32
// maps of 240 x 240 0.63-0.70 -> 0.43-0.56 ms, eight 17-tap 'valid' float64 maps 1.48-1.52 -> 1.16-1.24 ms.
constexpr int64_t COMBINE_REGS = 8;
constexpr int STRIP_REGS = VBYTES == 64 ? 8 : 4;
constexpr int64_t BAND = 16;

// body(c) for blocks [c, c + width) that cover [0, full), where full is at least one block: where full is no
// multiple of width, the last block ends at full, overlapping the one before (its outputs computed twice, the
// same values). Returns where the blocks end: full, or 0 where full is under one block.
template <typename Body> static inline int64_t overlapping_blocks(int64_t full, int64_t width, Body body)
{
    int64_t c = 0;
    for (; c < full && full >= width; c += width) {
        if (c + width > full)
            c = full - width;
        body(c);
    }
    return c;
}

// NB registers of outputs at out + b: each the sum over i < nt of w[i] * p[i][b ..], in the order of i.
template <int NB, typename T>
static inline void combine_block(const T *const *p, const T *w, int64_t nt, int64_t b, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    V a[NB] = {};
    for (int64_t i = 0; i < nt; i++) {
        const T *s = p[i] + b;
        const V wi = splat<V>(w[i]);
        for (int j = 0; j < NB; j++)
            a[j] += wi * loadu<V>(s + j * L);
    }
    for (int j = 0; j < NB; j++)
        storeu(out + b + j * L, a[j]);
}

// out[0, len) = sum over i < nt of w[i] * p[i][0, len), in the order of i. Blocks of COMBINE_REGS
// registers of outputs (as many independent sums); where the outputs that fill whole registers are no
// multiple of a block, the last block ends at the last of them, overlapping the one before (its outputs
// computed twice, the same values, as a register's multiply-adds in any block). Fewer registers than a block
// (a row's nonzero part, filter_map) go in blocks of 4 or 2, overlapping likewise, so that their sums too run
// side by side rather than one register's chain of multiply-adds at a time. The rest that fill no register,
// one by one.
template <typename T> static void combine(const T *const *p, const T *w, int64_t nt, int64_t len, T *out)
{
    constexpr int64_t L = VBYTES / sizeof(T);
    constexpr int NB = COMBINE_REGS;
    const int64_t regs = len / L, vec = regs * L;
    if (regs >= NB)
        overlapping_blocks(vec, NB * L, [&](int64_t b) { combine_block<NB>(p, w, nt, b, out); });
    else if (regs >= 4)
        overlapping_blocks(vec, 4 * L, [&](int64_t b) { combine_block<4>(p, w, nt, b, out); });
    else if (regs >= 2)
        overlapping_blocks(vec, 2 * L, [&](int64_t b) { combine_block<2>(p, w, nt, b, out); });
    else if (regs == 1)
        combine_block<1>(p, w, nt, 0, out);
    for (int64_t c = vec; c < len; c++) {
        T a = 0;
        for (int64_t i = 0; i < nt; i++)
            a += w[i] * p[i][c];
        out[c] = a;
    }
}

#if VBYTES == 64
// The horizontal pass along one padded row: out[c] = sum over t < k of w[t] row[c + t], c < len, in blocks of
// HROW_REGS registers of outputs. Each tap's samples row[c + t ..] are one register taken from two aligned
// neighbours by a two-register permute (AVX-512's vpermt2ps / vpermt2pd: the shift's lane indices from a table)
// instead of an unaligned load: those loads cross a cache line at every shift but the zeroth, and the pass
// waited on them (on the Intel Xeon, one 240-wide row of a 240 x 240 map, one thread: 11-tap float32 24.6 ->
// 17.4 us a map, float64 45.2 -> 32.5, 31-tap float32 56.8 -> 42.8; docs/speed.md). Where the outputs that fill
// whole registers are no multiple of a block, the last block ends at the last of them, overlapping the one
// before; the rest go through combine() as before. Each output sums its taps in their order with the same
// multiply-adds as combine()'s: the same values bit for bit. row must be readable up to a register past its
// len + k - 1 values (Scratch's slack, HROW_SLACK): a block's last loads are whole registers.
template <typename T> struct Shifts {  // v[s]: lanes s, s + 1, ... of two registers side by side
    static constexpr int L = VBYTES / sizeof(T);
    typename Vec<T>::index v[L];
    Shifts()
    {
        for (int s = 0; s < L; s++)
            for (int l = 0; l < L; l++)
                v[s][l] = s + l;
    }
};
template <typename T> static const Shifts<T> SHIFTS;
template <typename T> constexpr int HROW_REGS = sizeof(T) == 4 ? 5 : 6;  // measured best of 4, 5, 6 at 240 wide
constexpr int64_t HROW_SLACK = 16;  // elements a row may be read past its end: at most a register less one
// Taken on Intel processors only: on the AMD EPYC this project has also run on, the same permutes (from five
// loads a block) had measured slower than the unaligned loads, 22.7 -> 28.4 us an 11-tap float32 map in a
// harness (docs/speed.md, "Separable filters' last block"); elsewhere combine() as before. The same values
// either way. (Read as the library loads; filter_permutes_* sets it, for the tests that hold both paths equal.)
static bool HROW_HERE = (__builtin_cpu_init(), __builtin_cpu_is("intel"));

template <typename T> static void hrow(const T *row, const T *w, int64_t k, int64_t len, T *out, const T **p)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    constexpr int NR = HROW_REGS<T>;
    const auto &idx = SHIFTS<T>.v;
    const int64_t c = overlapping_blocks(len / L * L, NR * L, [&](int64_t b) {
        V a[NR] = {};
        V r[NR + 1];
        for (int64_t q = 0; q * L < k; q++) {  // taps q L .. q L + L - 1: registers j + q and j + q + 1
            for (int j = 0; j <= NR; j++)
                r[j] = loadu<V>(row + b + (q + j) * L);
            const int64_t shifts = k - q * L < L ? k - q * L : L;
            for (int64_t s = 0; s < shifts; s++) {
                const V wt = splat<V>(w[q * L + s]);
                for (int j = 0; j < NR; j++)
                    a[j] += wt * (s ? __builtin_shuffle(r[j], r[j + 1], idx[s]) : r[j]);
            }
        }
        for (int j = 0; j < NR; j++)
            storeu(out + b + j * L, a[j]);
    });
    if (c >= len)
        return;
    for (int64_t t = 0; t < k; t++)
        p[t] = row + c + t;
    combine(p, w, k, len - c, out + c);
}
#else
constexpr int64_t HROW_SLACK = 0;
#endif

// Sums of taps over W registers of outputs, for R output rows whose taps start `shift` samples apart
// and NF filters w[0..NF): acc[W (NF r + f) ..] = row r's sums with filter f, each register L further
// along the row. Sample u's registers are loaded once, from at(u) (nullptr: a zero, left out), for every row
// it reaches; each output sums its taps in their order. Two rows or two filters a load keep the
// loads at half the multiply-adds, and the strip's rows in L1.
template <int R, int NF, int W = 2, typename T, typename V, typename At>
static inline void strip_taps(At at, const T *const *w, int64_t k, int64_t shift, V *acc)
{
    constexpr int64_t L = sizeof(V) / sizeof(T);
    V a[W * NF * R] = {};
    for (int64_t u = 0; u < k + (R - 1) * shift; u++) {
        const T *s = at(u);
        if (!s)
            continue;
        V x[W];
        for (int j = 0; j < W; j++)
            x[j] = loadu<V>(s + j * L);
        for (int r = 0; r < R; r++) {
            const int64_t t = u - r * shift;
            if (t < 0 || t >= k)
                continue;
            for (int f = 0; f < NF; f++) {
                const V wt = splat<V>(w[f][t]);
                for (int j = 0; j < W; j++)
                    a[W * (NF * r + f) + j] += wt * x[j];
            }
        }
    }
    for (int i = 0; i < W * NF * R; i++)
        acc[i] = a[i];
}

// strip_taps<1, 2> for the wavelet's two filters when they are mirror-symmetric as MATLAB's dmey pair is
// (k = 2h + 2 taps: the low-pass w[0][t] = w[0][2h - t] with w[0][k - 1] = 0, the high-pass w[1][t] =
// w[1][2h + 2 - t] with w[1][0] = 0; sym_pair() checks): each pair of mirrored samples is added first and
// multiplied once (the low-pass pairs samples t and 2h - t, the high-pass t + 1 and 2h + 1 - t, so the
// four samples of a step are loaded once each: two new a step). Half the multiply-adds, an add each
// instead, on this CPU's separate adders: Tang's dwt2 3.05-3.15 -> 2.65-2.85 ms a triple (the loads now
// bound it); the sums run in another order, so values move by float rounding (1.2e-15 of the largest
// coefficient in float64, 6e-7 in float32, against the dense matrix products).
template <typename T, typename V, typename At>
static inline void strip_taps_sym(At at, const T *const *w, int64_t k, V *acc)
{
    constexpr int64_t L = sizeof(V) / sizeof(T);
    const int64_t h = (k - 2) / 2;
    const auto load2 = [&](int64_t u, V &x0, V &x1) {
        const T *s = at(u);
        if (s) {
            __builtin_memcpy(&x0, s, sizeof(V));
            __builtin_memcpy(&x1, s + L, sizeof(V));
        } else
            x0 = x1 = V{};
    };
    V lo0 = {}, lo1 = {}, hi0 = {}, hi1 = {};
    V a0, a1, b0, b1, c0, c1, d0, d1;  // samples t, t + 1, 2h - t, 2h + 1 - t
    load2(0, a0, a1);
    load2(2 * h + 1, d0, d1);
    for (int64_t t = 0; t < h; t++) {
        load2(t + 1, b0, b1);
        load2(2 * h - t, c0, c1);
        const V wl = splat<V>(w[0][t]), wh = splat<V>(w[1][t + 1]);
        lo0 += wl * (a0 + c0);
        lo1 += wl * (a1 + c1);
        hi0 += wh * (b0 + d0);
        hi1 += wh * (b1 + d1);
        a0 = b0, a1 = b1, d0 = c0, d1 = c1;
    }
    // the centres: sample h for the low-pass (a, loaded as the last step's t + 1), h + 1 for the high-pass
    // (d, the last step's 2h - t)
    const V wl = splat<V>(w[0][h]), wh = splat<V>(w[1][h + 1]);
    acc[0] = lo0 + wl * a0;
    acc[1] = lo1 + wl * a1;
    acc[2] = hi0 + wh * d0;
    acc[3] = hi1 + wh * d1;
}

// Whether the filters w[0], w[1] (k taps) have strip_taps_sym's symmetry, exactly.
template <typename T> static bool sym_pair(const T *const *w, int64_t k)
{
    if (k < 4 || k % 2 || w[0][k - 1] != 0 || w[1][0] != 0)
        return false;
    const int64_t h = (k - 2) / 2;
    for (int64_t t = 0; t <= 2 * h; t++)
        if (w[0][t] != w[0][2 * h - t] || w[1][t + 1] != w[1][2 * h + 1 - t])
            return false;
    return true;
}

template <typename T, typename V> static inline void put2(T *dst, const V *two)  // two registers side by side
{
    __builtin_memcpy(dst, two, 2 * sizeof(V));
}

// Zeros skipped (2026-12-07): medical images are mostly background, exactly zero (BraTS slices 65-89%
// zero, the speed table's phantom 70%), and so are the maps made from them (products, masked maps, edges).
// An output whose taps all fall on zeros is +0 in the tap loops (every sum starts from +0; a finite tap times
// +-0 is +-0, and +0 + -0 is +0), so the filters compute only the columns a row's nonzero samples reach
// and write +0 elsewhere: the same values bit for bit (each computed output sums the same taps in the same
// order, whichever block computes it). Each source row's nonzero columns come from one scan of its ends (a NaN
// counts as nonzero). (filter_skip_zeros_* turns it off, for the tests that hold both paths equal.)
static bool SKIP_ZEROS = true;

// Bit l set where lane l of the register at q is not zero (+0 and -0 are zeros; a NaN is not).
template <typename T> static inline unsigned nonzero_lanes(const T *q)
{
    typedef typename Vec<T>::type V;
    return lanes_set(loadu<V>(q) != V{});
}

// Row r's nonzero columns of the (n_r, n_c) map img: [lo[r], hi[r]], lo[r] > hi[r] where the row is all zero
// (without skip, every column). From each end a register at a time to the first register with a nonzero lane.
template <typename T>
static void row_support(const T *img, int64_t n_r, int64_t n_c, bool skip, int32_t *lo, int32_t *hi)
{
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t vec = n_c / L * L;
    for (int64_t r = 0; r < n_r; r++) {
        const T *row = img + r * n_c;
        if (!skip) {
            lo[r] = 0, hi[r] = int32_t(n_c - 1);
            continue;
        }
        int64_t a = -1, b = -1;
        for (int64_t j = 0; a < 0 && j < vec; j += L)
            if (const unsigned m = nonzero_lanes(row + j))
                a = j + __builtin_ctz(m);
        for (int64_t j = vec; a < 0 && j < n_c; j++)
            if (row[j] != 0)
                a = j;
        if (a < 0) {
            lo[r] = int32_t(n_c), hi[r] = -1;
            continue;
        }
        for (int64_t j = n_c - 1; b < 0 && j >= vec; j--)
            if (row[j] != 0)
                b = j;
        for (int64_t j = vec - L; b < 0 && j >= 0; j -= L)
            if (const unsigned m = nonzero_lanes(row + j))
                b = j + 31 - __builtin_clz(m);
        lo[r] = int32_t(a), hi[r] = int32_t(b);
    }
}

// The union of the nonzero columns of source rows src[0 .. n) (-1: a zero row, left out): [*lo, *hi].
static inline void rows_union(const int64_t *src, int64_t n, const int32_t *lo, const int32_t *hi, int32_t *ulo,
                              int32_t *uhi, int64_t n_c)
{
    int32_t a = int32_t(n_c), b = -1;
    for (int64_t t = 0; t < n; t++) {
        const int64_t s = src[t];
        if (s < 0)
            continue;
        a = lo[s] < a ? lo[s] : a;
        b = hi[s] > b ? hi[s] : b;
    }
    *ulo = a, *uhi = b;
}

template <int N> struct Regs {  // a count of registers as a type, for a generic lambda's template argument
    static constexpr int value = N;
};

template <typename T> static inline void zeros(T *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = T(0);
}

// The vertical pass: out[r ld ..] (n_c wide) = sum over t < k of taps[t] * img[src[r * stride + t]] for
// r < rows, the rows whose table entry is -1 (zeros) left out, each output the sum over its taps in their
// order. Two output rows at a time, in strips STRIP_REGS registers wide: each source row of the strip is
// loaded once for both (the strip's k + 1 rows stay in L1: 9 KB for 17 taps), 2 STRIP_REGS independent
// sums; where a whole row a tap ran at the speed of L2 (1.6x slower for 101 taps here). lo, hi: each source
// row's nonzero columns (row_support); ulo, uhi (rows each): each output row's, the union of its taps' rows'.
template <typename T>
static void vertical(const T *img, int64_t n_c, const T *taps, int64_t k, const int64_t *src, int64_t stride,
                     int64_t rows, T *out, int64_t ld, const int32_t *lo, const int32_t *hi, int32_t *ulo,
                     int32_t *uhi)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    constexpr int SW = STRIP_REGS, HW = STRIP_REGS / 2;
    const T *const one[1] = {taps};
    V acc[2 * SW];
    // Each output row's nonzero columns (row_support), and the band's: columns outside both are +0.
    int32_t blo = int32_t(n_c), bhi = -1;
    for (int64_t r = 0; r < rows; r++) {
        rows_union(src + r * stride, k, lo, hi, ulo + r, uhi + r, n_c);
        blo = ulo[r] < blo ? ulo[r] : blo;
        bhi = uhi[r] > bhi ? uhi[r] : bhi;
    }
    // Each strip walked down the rows two at a time, each new row coming as contiguous lines. (Walking one
    // register pair down all 240 rows instead, rows 1.9 KB apart, made the float64 pass wait on memory:
    // 204 against 170 us for a 17-tap 240x240 map among 16, 180 against 140 for 11 taps.)
    // The strips cover the band's nonzero columns among those that fill whole registers, from the register
    // its first one is in; a strip that would pass the last whole register ends at it, overlapping the one
    // before (those columns computed twice, the same values: a register's multiply-adds either way), where
    // they were a row at a time in combine(): the 240-wide float32 pass 23.8 -> 21.4 us a map. Where at most
    // half a strip is left, a strip half as wide. A row pair whose nonzero columns miss a strip gets its zeros.
    // The columns that fill no register, below.
    const int64_t vec = n_c / L * L;
    int64_t done0 = 0, done1 = 0;  // the strips' columns [done0, done1)
    if (vec >= SW * L && bhi >= 0 && blo < vec) {
        const int64_t first = blo / L * L, last = (bhi / L + 1) * L < vec ? (bhi / L + 1) * L : vec;
        done0 = vec, done1 = 0;
        for (int64_t c = first; c < last;) {
            const bool half = last - c <= HW * L;
            const int64_t width = half ? HW * L : SW * L;
            const int64_t at = c + width <= vec ? c : vec - width;
            done0 = at < done0 ? at : done0;
            done1 = at + width > done1 ? at + width : done1;
            const auto row = [&](const int64_t *q) {  // padded position u's source row in the strip, or nullptr
                return [=](int64_t u) { return q[u] < 0 ? nullptr : img + q[u] * n_c + at; };
            };
            const auto reached = [&](int64_t r, int64_t n) {  // rows r .. r + n - 1 reach the strip
                for (int64_t i = r; i < r + n; i++)
                    if (uhi[i] >= at && ulo[i] < at + width)
                        return true;
                return false;
            };
            const auto sums = [&](auto regs, int64_t r, int64_t n) {  // rows r .. r + n - 1, regs registers wide
                constexpr int W = decltype(regs)::value;
                if (n == 2)  // rows r and r + 1, whose taps start stride later
                    strip_taps<2, 1, W>(row(src + r * stride), one, k, stride, acc);
                else
                    strip_taps<1, 1, W>(row(src + r * stride), one, k, 0, acc);
                for (int64_t i = 0; i < n; i++)
                    __builtin_memcpy(out + (r + i) * ld + at, acc + i * W, W * sizeof(V));
            };
            for (int64_t r = 0; r < rows; r += 2) {
                const int64_t n = rows - r < 2 ? 1 : 2;
                if (!reached(r, n))
                    for (int64_t i = 0; i < n; i++)
                        zeros(out + (r + i) * ld + at, width);
                else if (half)
                    sums(Regs<HW>{}, r, n);
                else
                    sums(Regs<SW>{}, r, n);
            }
            c += width;
        }
        if (done1 <= done0)
            done0 = done1 = 0;
    }
    // The columns no strip computed: +0 where no row reaches them, else as combine does them, a row at a time
    // (all of them where the rows are narrower than a strip; the columns that fill no register otherwise).
    Buf<const T *> p(k);
    Buf<T> w(k);
    for (int64_t r = 0; r < rows; r++) {
        T *o = out + r * ld;
        const int64_t c0 = vec >= SW * L ? vec : 0;  // combine's columns [c0, n_c), where the row reaches them
        zeros(o, done0);
        zeros(o + done1, c0 > done1 ? c0 - done1 : 0);
        if (c0 == n_c)
            continue;
        if (uhi[r] < c0) {
            zeros(o + c0, n_c - c0);
            continue;
        }
        int64_t nt = 0;
        for (int64_t t = 0; t < k; t++) {
            const int64_t s = src[r * stride + t];
            if (s >= 0) {
                p[nt] = img + s * n_c + c0;
                w[nt++] = taps[t];
            }
        }
        combine(p.data(), w.data(), nt, n_c - c0, o + c0);
    }
}

// One (n_r, n_c) map img filtered into o (ceil(m_r / stride), ceil(m_c / stride)), where m_r = n_r + 2 p - k
// + 1 outputs of the padded rows (src_r: the source row of each of the n_r + 2 p padded positions, -1 for
// zeros; likewise src_c), every stride-th kept. taps: the k taps of g. The scratch: separable's buffers
// (vert: BAND padded rows of the vertical pass; buf: box_valid's column sums; full: a row before its stride).
template <typename T> struct Scratch {
    Buf<T> vert, buf, full;
    Buf<const T *> p;
    Buf<int32_t> lo, hi;  // each source row's nonzero columns (row_support)
    int32_t ulo[BAND], uhi[BAND];  // each of the band's rows' (vertical)
    Scratch(int64_t n_r, int64_t padded, int64_t m_c, int64_t k)
        : vert(BAND * padded + HROW_SLACK), buf(padded + 4 * (VBYTES / sizeof(T))), full(m_c), p(k), lo(n_r), hi(n_r)
    {
    }
};

template <typename T>
static void filter_map(const T *img, int64_t n_r, int64_t n_c, const T *taps, int64_t k, const int64_t *src_r,
                       const int64_t *src_c, int64_t m_c, int64_t stride, int64_t rows, int64_t cols, Scratch<T> &s,
                       T *o)
{
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t padded = m_c + k - 1, pad = (padded - n_c) / 2;  // every table maps [pad, pad + n_c) to 0..n_c-1
    bool skip = SKIP_ZEROS;  // not where a tap is infinite or NaN: its product with a zero is NaN
    for (int64_t t = 0; t < k; t++)
        skip &= sabs(taps[t]) < __builtin_huge_val();
    row_support(img, n_r, n_c, skip, s.lo.data(), s.hi.data());
    for (int64_t r = 0; r < rows; r++) {  // horizontal: the row's edges from the table, then each output its taps' sum
        const int64_t rb = r % BAND;
        if (rb == 0)  // the next BAND kept rows, each written into a padded row (padded wide, itself from pad on)
            vertical(img, n_c, taps, k, src_r + r * stride, stride, rows - r < BAND ? rows - r : BAND,
                     s.vert.data() + pad, padded, s.lo.data(), s.hi.data(), s.ulo, s.uhi);
        T *row = s.vert.data() + rb * padded;
        const T *v = row + pad;
        // The padded row's nonzero positions [a, b]: the row's nonzero columns, and the edges that repeat them
        const int32_t ulo = s.ulo[rb], uhi = s.uhi[rb];
        int64_t a = pad + ulo, b = pad + uhi;
        for (int64_t j = 0; j < pad; j++) {
            row[j] = src_c[j] >= 0 ? v[src_c[j]] : T(0);
            if (j < a && src_c[j] >= ulo && src_c[j] <= uhi)
                a = j;
        }
        for (int64_t j = pad + n_c; j < padded; j++) {
            row[j] = src_c[j] >= 0 ? v[src_c[j]] : T(0);
            if (src_c[j] >= ulo && src_c[j] <= uhi)
                b = j;
        }
        T *dst = stride == 1 ? o + r * cols : s.full.data();
        // The outputs whose taps reach [a, b], [c0, c1), widened to whole registers from the row's start and to
        // the row's end where they reach the outputs that fill no register: each output computed by the code
        // that computes it in the whole row (combine's last outputs, one at a time, round differently from its
        // registers' multiply-adds). The others +0.
        const int64_t vec = m_c / L * L;
        int64_t c0 = uhi < ulo ? 0 : (a - k + 1 > 0 ? (a - k + 1) / L * L : 0);
        int64_t c1 = uhi < ulo ? 0 : (b + 1 < m_c ? b + 1 : m_c);
        c1 = c1 > vec ? m_c : (c1 + L - 1) / L * L;
        zeros(dst, c0);
        zeros(dst + c1, c1 < m_c ? m_c - c1 : 0);
        if (c1 > c0) {
#if VBYTES == 64
            if (HROW_HERE) {
                hrow(row + c0, taps, k, c1 - c0, dst + c0, s.p.data());
            } else
#endif
            {
                for (int64_t t = 0; t < k; t++)
                    s.p[t] = row + c0 + t;
                combine(s.p.data(), taps, k, c1 - c0, dst + c0);
            }
        }
        if (stride == 1)
            continue;
        for (int64_t c = 0; c < cols; c++)
            o[r * cols + c] = s.full[c * stride];
    }
}

// Maps [m0, m1) of x (maps, n_r, n_c): out (maps, ceil(m_r / stride), ceil(m_c / stride)), each map as
// filter_map filters it.
template <typename T>
static void separable(const T *x, int64_t n_r, int64_t n_c, const T *taps, int64_t k, const int64_t *src_r,
                      const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t m0, int64_t m1, T *out)
{
    const int64_t rows = (m_r + stride - 1) / stride, cols = (m_c + stride - 1) / stride;
    Scratch<T> s(n_r, m_c + k - 1, m_c, k);
    for (int64_t m = m0; m < m1; m++)
        filter_map(x + m * n_r * n_c, n_r, n_c, taps, k, src_r, src_c, m_c, stride, rows, cols, s,
                   out + m * rows * cols);
}

// Box sums (every tap 1, 'valid', stride 1) where every sum is exact: then any order of the additions gives
// the same value, so sliding sums do (two additions an output down the columns, k along the rows) what the
// tap loops do (2k multiply-adds), bit for bit. Exact: each value a multiple of 2^-8 (integers, and the
// means of 2x2 blocks of them twice over, and their products, as MEF-SSIM's scales hold) and so small that
// every partial sum, at most k (k + 1) of them, fits the type's significand. MEF-SSIM's 11x11 box sums of
// the sources and their products (Tang's MS_SSIM, MEFB's MEF_SSIM, metrics/lineage/tang.py, _desired),
// float64, the three scales of a pair of 240x240 sources, batches of four: 0.76 -> 0.46 ms (Intel Xeon, one
// thread, alternating with the tap loops). Any other map (a NaN, an infinity, a finer fraction, a
// larger value: most float32 products) goes through the tap loops.
template <typename T> static bool box_exact(const T *img, int64_t n, int64_t k)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    constexpr int digits = sizeof(T) == 8 ? 53 : 24;
    const T limit = T(1.0 / 256 / double(k * (k + 1))) * T(int64_t(1) << digits);
    // t is an integer where it equals itself rounded to one: (t + 1.5 2^(digits - 1)) - 1.5 2^(digits - 1)
    // for |t| < 2^(digits - 2), which the limit keeps (a NaN fails both tests)
    const T magic = T(1.5) * T(int64_t(1) << (digits - 1));
    const V vl = V{} + limit, vm = V{} + magic;
    auto ok = V{} == V{};
    int64_t i = 0;
    for (; i + L <= n; i += L) {
        const V v = loadu<V>(img + i), t = v * T(256);
        ok &= (t == (t + vm) - vm) & ((v < 0 ? -v : v) <= vl);
    }
    bool all = true;
    for (int k2 = 0; k2 < L; k2++)
        all &= ok[k2] != 0;
    for (; i < n; i++) {
        const T t = img[i] * T(256);
        all &= (t == (t + magic) - magic) & (sabs(img[i]) <= limit);
    }
    return all;
}

// The k x k box sums of the (n_r, n_c) map img, 'valid': o (n_r - k + 1, n_c - k + 1); col: n_c scratch.
// Every sum starts from +0, as the tap loops' do (a sum of zeros of either sign is +0 in both).
template <typename T> static void box_valid(const T *img, int64_t n_r, int64_t n_c, int64_t k, T *col, T *o)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t m_r = n_r - k + 1, m_c = n_c - k + 1;
    for (int64_t c = 0; c < n_c; c++)
        col[c] = 0;
    for (int64_t r = 0; r < k; r++)
        for (int64_t c = 0; c < n_c; c++)
            col[c] += img[r * n_c + c];
    for (int64_t r = 0; r < m_r; r++) {
        if (r)
            for (int64_t c = 0; c < n_c; c++)
                col[c] += img[(r + k - 1) * n_c + c] - img[(r - 1) * n_c + c];
        T *out = o + r * m_c;
        int64_t j = 0;
        for (; j + 4 * L <= m_c; j += 4 * L) {  // four registers of outputs, each the sum of k loads
            V s0 = {}, s1 = {}, s2 = {}, s3 = {};
            for (int64_t t = 0; t < k; t++) {
                const T *q = col + j + t;
                s0 += loadu<V>(q), s1 += loadu<V>(q + L), s2 += loadu<V>(q + 2 * L), s3 += loadu<V>(q + 3 * L);
            }
            __builtin_memcpy(out + j, &s0, sizeof(V));
            __builtin_memcpy(out + j + L, &s1, sizeof(V));
            __builtin_memcpy(out + j + 2 * L, &s2, sizeof(V));
            __builtin_memcpy(out + j + 3 * L, &s3, sizeof(V));
        }
        for (; j < m_c; j++) {
            T sum = 0;
            for (int64_t t = 0; t < k; t++)
                sum += col[j + t];
            out[j] = sum;
        }
    }
}

// Whether separable_products' filter is a 'valid' box of stride 1: every tap 1, no padding.
template <typename T>
static bool is_box(const T *taps, int64_t k, const int64_t *src_r, const int64_t *src_c, int64_t n_r, int64_t n_c,
                   int64_t m_r, int64_t m_c, int64_t stride)
{
    bool box = stride == 1 && m_r == n_r - k + 1 && m_c == n_c - k + 1;
    for (int64_t t = 0; box && t < k; t++)
        box = taps[t] == 1;
    for (int64_t i = 0; box && i < n_r; i++)
        box = src_r[i] == i;
    for (int64_t i = 0; box && i < n_c; i++)
        box = src_c[i] == i;
    return box;
}

// The local moments of images without their maps in memory: for images b in [b0, b1) and maps m < nm,
// map m is image a[m] (its image b at a[m] + b * sa[m] elements), or its product with image c[m] where
// c[m] is not null (pixel by pixel, each product rounded once, as PyTorch's multiplication), made in a
// scratch map that stays in cache; out (b1 - b0 ... , nm, rows, cols) as separable writes map b * nm + m.
// What metrics/lineage/kernels.py's moment_maps filtered after copying the images and writing the
// products into one tensor in memory: the same values bit for bit, without those passes.
template <typename T>
static int64_t separable_products(const T *const *a, const int64_t *sa, const T *const *c, const int64_t *sc,
                                  int64_t nm, int64_t n_r, int64_t n_c, const T *taps, int64_t k, const int64_t *src_r,
                                  const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t b0,
                                  int64_t b1, T *out)
{
    const int64_t rows = (m_r + stride - 1) / stride, cols = (m_c + stride - 1) / stride, n = n_r * n_c;
    Scratch<T> s(n_r, m_c + k - 1, m_c, k);
    Buf<T> product(n);
    const bool box = is_box(taps, k, src_r, src_c, n_r, n_c, m_r, m_c, stride);
    int64_t exact = 0;  // maps summed by box_valid
    for (int64_t b = b0; b < b1; b++)
        for (int64_t m = 0; m < nm; m++) {
            const T *img = a[m] + b * sa[m];
            if (c[m]) {
                const T *other = c[m] + b * sc[m];
                for (int64_t i = 0; i < n; i++)
                    product[i] = img[i] * other[i];
                img = product.data();
            }
            T *o = out + (b * nm + m) * rows * cols;
            if (box && box_exact(img, n, k)) {
                box_valid(img, n_r, n_c, k, s.buf.data(), o);  // buf: m_c + k - 1 = n_c and more
                exact++;
            } else
                filter_map(img, n_r, n_c, taps, k, src_r, src_c, m_c, stride, rows, cols, s, o);
        }
    return exact;
}

// MATLAB's single-level dwt2 as Tang's FMI_w takes it (metrics/lineage/wavelet.py, dwt2_mosaic): each
// side extended by k - 1 samples ('sym': src_r / src_c give each extended position's source), a 'valid'
// correlation with the weights lo and hi (the decomposition filters reversed), every second output from
// the second kept; out (2 m_r, 2 m_c) = [cA, cH; cV, cD], m_r = (n_r + k - 1) / 2. Down the columns
// first, lo and hi from the same loads; then along each row, lo and hi together again, from the row's
// even and odd samples apart so that a kept output's taps are contiguous. 2.4x fewer multiply-adds than
// the two dense matrix products (the band's zeros skipped), each output the sum over its taps in order.
template <typename T>
static void dwt2(const T *x, int64_t n_r, int64_t n_c, const T *lo, const T *hi, int64_t k, const int64_t *src_r,
                 const int64_t *src_c, int64_t m0, int64_t m1, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t m_r = (n_r + k - 1) / 2, m_c = (n_c + k - 1) / 2, ext = n_c + 2 * (k - 1);
    const int64_t half = (ext + 1) / 2, width = 2 * m_c;
    Buf<T> vlo(m_r * n_c), vhi(m_r * n_c), even(half + 4 * L), odd(half + 4 * L), tmp(4 * L);
    Buf<const T *> p(k);
    for (int64_t q = 0; q < k; q++)  // kept output c, tap q: extended sample 1 + 2c + q
        p[q] = q % 2 ? even.data() + (q + 1) / 2 : odd.data() + q / 2;
    const T *const w[2] = {lo, hi};
    const bool sym = sym_pair(w, k);  // MATLAB's dmey: mirrored samples added first (strip_taps_sym)
    V acc[8];
    for (int64_t m = m0; m < m1; m++) {
        const T *img = x + m * n_r * n_c;
        int64_t c = 0;
        for (; c + 2 * L <= n_c; c += 2 * L) {  // strips of the columns (their rows stay in L1)
            int64_t r = 0;
            for (; sym && r < m_r; r++) {
                const int64_t *q = src_r + 1 + 2 * r;
                strip_taps_sym([&](int64_t u) { return img + q[u] * n_c + c; }, w, k, acc);
                put2(&vlo[r * n_c + c], acc);
                put2(&vhi[r * n_c + c], acc + 2);
            }
            for (; r + 2 <= m_r; r += 2) {  // two kept rows a pass: row r + 1's taps start two samples later
                const int64_t *q = src_r + 1 + 2 * r;
                strip_taps<2, 2>([&](int64_t u) { return img + q[u] * n_c + c; }, w, k, 2, acc);
                for (int i = 0; i < 2; i++) {
                    put2(&vlo[(r + i) * n_c + c], acc + 4 * i);
                    put2(&vhi[(r + i) * n_c + c], acc + 4 * i + 2);
                }
            }
            for (; r < m_r; r++) {
                const int64_t *q = src_r + 1 + 2 * r;
                strip_taps<1, 2>([&](int64_t u) { return img + q[u] * n_c + c; }, w, k, 0, acc);
                put2(&vlo[r * n_c + c], acc);
                put2(&vhi[r * n_c + c], acc + 2);
            }
        }
        for (; c < n_c; c++)
            for (int64_t r = 0; r < m_r; r++) {
                T a = 0, b = 0;
                const int64_t *q = src_r + 1 + 2 * r;
                for (int64_t u = 0; u < k; u++) {
                    a += lo[u] * img[q[u] * n_c + c];
                    b += hi[u] * img[q[u] * n_c + c];
                }
                vlo[r * n_c + c] = a;
                vhi[r * n_c + c] = b;
            }
        T *o = out + m * 4 * m_r * m_c;
        for (int side = 0; side < 2; side++)  // cA, cV from the low-pass columns; cH, cD from the high
            for (int64_t r = 0; r < m_r; r++) {
                const T *v = (side ? vhi.data() : vlo.data()) + r * n_c;
                for (int64_t j = 0; 2 * j < ext; j++)
                    even[j] = v[src_c[2 * j]];
                for (int64_t j = 0; 2 * j + 1 < ext; j++)
                    odd[j] = v[src_c[2 * j + 1]];
                T *top = o + r * width + side * m_c, *bottom = top + m_r * width;
                for (int64_t j = 0; j < m_c; j += 2 * L) {  // the last strip through tmp (the buffers' slack)
                    if (sym)
                        strip_taps_sym([&](int64_t q) { return p[q] + j; }, w, k, acc);
                    else
                        strip_taps<1, 2>([&](int64_t q) { return p[q] + j; }, w, k, 0, acc);
                    const bool whole = j + 2 * L <= m_c;
                    put2(whole ? top + j : tmp.data(), acc);
                    put2(whole ? bottom + j : tmp.data() + 2 * L, acc + 2);
                    if (!whole)
                        for (int64_t i = 0; i < m_c - j; i++)
                            top[j + i] = tmp[i], bottom[j + i] = tmp[2 * L + i];
                }
            }
    }
}

// 'valid' correlation of maps [m0, m1) of x (maps, n_r, n_c) with the 3x3 window outer(u, v), as
// metrics/filters.py's filter_rank_one_3 computes it with PyTorch (the Sobel and Prewitt filters of the
// lineage metrics and Liu's Q_G): the vertical pass, then the horizontal one, each the sum of its non-zero
// taps in their order (the first term alone), fp contraction off: every
// step rounds as PyTorch's, so the values are the same bit for bit. One row of the vertical pass at a time
// (it stays in L1); out (maps, n_r - 2, n_c - 2). Eager, the passes' slices, products and sums took 0.9 ms
// of MEFB's ~45 a triple here. With pad, the 'same' correlation: that of x padded by one zero on every side,
// as PyTorch's F.pad makes it, without the padded copy (its fill and copy took 0.43 ms of Liu's five's ~4.7
// a triple): each row padded into one of three buffers as the window reaches it, the rows above and below
// the image a row of zeros; out (maps, n_r, n_c). The same operands, so the same values bit for bit.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void taps_3(const double *w, const T *const *src, int64_t len,
                                                                 T *__restrict dst)
{
    const T *s[3];
    T t[3];
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (w[i] != 0) {  // the taps as Python numbers: tested before their conversion, as PyTorch's caller does
            s[n] = src[i];
            t[n++] = T(w[i]);  // a tap of 1: x * 1 is x, bit for bit (NaN, infinities and -0 included)
        }
    if (n == 3)
        for (int64_t c = 0; c < len; c++)
            dst[c] = s[0][c] * t[0] + s[1][c] * t[1] + s[2][c] * t[2];  // left to right, each step rounded
    else if (n == 2)
        for (int64_t c = 0; c < len; c++)
            dst[c] = s[0][c] * t[0] + s[1][c] * t[1];
    else if (n == 1)
        for (int64_t c = 0; c < len; c++)
            dst[c] = s[0][c] * t[0];
    else
        for (int64_t c = 0; c < len; c++)
            dst[c] = 0;
}

template <typename T>
static void rank_one_3(const T *x, int64_t n_r, int64_t n_c, const double *u, const double *v, int64_t m0, int64_t m1,
                       bool pad, T *out)
{
    const int64_t p = pad ? 1 : 0, w_c = n_c + 2 * p, o_r = n_r + 2 * p - 2, o_c = w_c - 2;
    Buf<T> row(w_c), ring(pad ? 4 * w_c : 0);  // ring: three padded rows, then a row of zeros (calloc's)
    for (int64_t m = m0; m < m1; m++) {
        const T *img = x + m * n_r * n_c;
        T *dst = out + m * o_r * o_c;
        // image row r (-1 .. n_r) as the window reads it: padded into ring slot r % 3 (its ends stay 0), or zeros
        const auto padded = [&](int64_t r) -> const T * {
            if (r < 0 || r >= n_r)
                return ring.p + 3 * w_c;
            T *slot = ring.p + (r % 3) * w_c;
            __builtin_memcpy(slot + 1, img + r * n_c, n_c * sizeof(T));
            return slot;
        };
        const T *rows[3] = {nullptr, nullptr, pad ? padded(0) : nullptr};
        for (int64_t y = 0; y < o_r; y++) {
            if (pad) {  // rows y - 1 .. y + 1 of the image; each copied once, when it enters the window
                rows[0] = y == 0 ? padded(-1) : rows[1];
                rows[1] = rows[2];
                rows[2] = padded(y + 1);
            } else
                rows[0] = img + y * n_c, rows[1] = rows[0] + n_c, rows[2] = rows[1] + n_c;
            taps_3(u, rows, w_c, row.p);  // the vertical pass of the window's rows
            const T *cols[3] = {row.p, row.p + 1, row.p + 2};
            taps_3(v, cols, o_c, dst + y * o_c);  // columns c .. c + 2
        }
    }
}

// MEF-SSIM's step between scales (metrics/lineage/tang.py, _halve): imfilter(x, ones(2) / 4, 'symmetric',
// 'same') kept at every other pixel from the first, of maps [m0, m1) of (n_r, n_c) each; out: ((n_r + 1) / 2,
// (n_c + 1) / 2) each. An output is ((x[2i][2j] + x[2i+1][2j]) + x[2i][2j+1]) + x[2i+1][2j+1], divided by 4:
// PyTorch's steps in their order, so the same bits; the last row (column) of an odd side stands in for the
// one past it. One pass instead of PyTorch's four over strided views: 0.44-0.52 -> 0.17-0.21 ms a triple of
// mefb and of tang (docs/speed.md, "A fresh machine's build, and what is left outside the kernels").
#if FUSIONBENCH_PART == 0
template <typename T> static void halve(const T *x, int64_t n_r, int64_t n_c, int64_t m0, int64_t m1, T *out)
{
    const int64_t o_r = (n_r + 1) / 2, o_c = (n_c + 1) / 2, full = n_c / 2;
    for (int64_t m = m0; m < m1; m++) {
        const T *img = x + m * n_r * n_c;
        T *o = out + m * o_r * o_c;
        for (int64_t i = 0; i < o_r; i++, o += o_c) {
            const T *r0 = img + 2 * i * n_c, *r1 = img + (2 * i + 1 < n_r ? 2 * i + 1 : n_r - 1) * n_c;
            for (int64_t j = 0; j < full; j++)
                o[j] = (((r0[2 * j] + r1[2 * j]) + r0[2 * j + 1]) + r1[2 * j + 1]) / T(4);
            if (full < o_c)  // an odd side's last column, repeated
                o[full] = (((r0[n_c - 1] + r1[n_c - 1]) + r0[n_c - 1]) + r1[n_c - 1]) / T(4);
        }
    }
}
#endif

// Whether the horizontal pass takes hrow()'s permutes (1) or combine()'s loads (0), set where on is 0 or 1; the
// setting before; -1 where the build has no hrow() (AVX2).
#if FUSIONBENCH_PART == 0
static int64_t set_skip_zeros(int64_t on)
{
    const int64_t was = SKIP_ZEROS;
    if (on == 0 || on == 1)
        SKIP_ZEROS = on;
    return was;
}

static int64_t set_permutes(int64_t on)
{
#if VBYTES == 64
    const int64_t was = HROW_HERE;
    if (on == 0 || on == 1)
        HROW_HERE = on;
    return was;
#else
    (void)on;
    return -1;
#endif
}
#endif

// The entry points of one type (T, SUFFIX: float, f32 or double, f64); a unit built for one type has only its own.
#define FUSIONBENCH_FILTERS(T, SUFFIX)                                                                                \
    void separable_##SUFFIX(const T *x, int64_t n_r, int64_t n_c, const T *taps, int64_t k, const int64_t *src_r,     \
                            const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t m0, int64_t m1,   \
                            T *out)                                                                                   \
    {                                                                                                                 \
        separable(x, n_r, n_c, taps, k, src_r, src_c, m_r, m_c, stride, m0, m1, out);                                 \
    }                                                                                                                 \
    int64_t separable_products_##SUFFIX(const T *const *a, const int64_t *sa, const T *const *c, const int64_t *sc,   \
                                        int64_t nm, int64_t n_r, int64_t n_c, const T *taps, int64_t k,               \
                                        const int64_t *src_r, const int64_t *src_c, int64_t m_r, int64_t m_c,         \
                                        int64_t stride, int64_t b0, int64_t b1, T *out)                               \
    {                                                                                                                 \
        return separable_products(a, sa, c, sc, nm, n_r, n_c, taps, k, src_r, src_c, m_r, m_c, stride, b0, b1, out);  \
    }                                                                                                                 \
    void rank_one_3_##SUFFIX(const T *x, int64_t n_r, int64_t n_c, const double *u, const double *v, int64_t m0,      \
                             int64_t m1, int64_t pad, T *out)                                                         \
    {                                                                                                                 \
        rank_one_3(x, n_r, n_c, u, v, m0, m1, pad != 0, out);                                                         \
    }                                                                                                                 \
    int64_t filter_permutes_##SUFFIX(int64_t on) { return set_permutes(on); }                                         \
    int64_t filter_skip_zeros_##SUFFIX(int64_t on) { return set_skip_zeros(on); }                                     \
    void halve_##SUFFIX(const T *x, int64_t n_r, int64_t n_c, int64_t m0, int64_t m1, T *out)                         \
    {                                                                                                                 \
        halve(x, n_r, n_c, m0, m1, out);                                                                              \
    }
// The wavelet transform's entry point, part 1 of this source (simd.h's FUSIONBENCH_PART): Tang's FMI_w alone
// calls it, and it was a third of each type's build (0.25 of 0.66 s for float32 on the Intel Xeon), which
// every other metric set paid for nothing.
#define FUSIONBENCH_DWT(T, SUFFIX)                                                                                    \
    void dwt2_##SUFFIX(const T *x, int64_t n_r, int64_t n_c, const T *lo, const T *hi, int64_t k,                     \
                       const int64_t *src_r, const int64_t *src_c, int64_t m0, int64_t m1, T *out)                    \
    {                                                                                                                 \
        dwt2(x, n_r, n_c, lo, hi, k, src_r, src_c, m0, m1, out);                                                      \
    }
#if FUSIONBENCH_PART == 0
#define FUSIONBENCH_ENTRIES FUSIONBENCH_FILTERS
#else
#define FUSIONBENCH_ENTRIES FUSIONBENCH_DWT
#endif
extern "C" {
#if FUSIONBENCH_F32
FUSIONBENCH_ENTRIES(float, f32)
#endif
#if FUSIONBENCH_F64
FUSIONBENCH_ENTRIES(double, f64)
#endif
}
