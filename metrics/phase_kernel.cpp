// Phase congruency's sums over the scales of one orientation (metrics/lineage/phase.py, _orientation),
// hand-written for the CPU: MEFB's Qp; and, for the sides most images have, the inverse FFTs of the
// responses with them (orientation_fft, below).
//
// Why hand-written: these ~20 elementwise passes over the four scales' responses are the part of
// phase congruency that eager PyTorch runs slowest, and inductor's compiled form cost every process
// of a fresh machine its compilation (MEFB's only compiled kernel once the FMI windows had their own,
// fmi_kernel.cpp). One pass over each pixel's four responses here, built with fmi_kernel.cpp into the
// same library by metrics/_native.py, in about a second.
//
// The arithmetic of orientation() is _orientation's, in its order (sums over the scales from the
// smallest), with no fused multiply-adds: each operation rounded once, as IEEE arithmetic of the formula
// (NumPy's values). Eager PyTorch's differ from those by rounding (up to 4e-6 in float32 and 7e-15 in
// float64 on random responses of unit scale), as inductor's compiled form does.
#include <algorithm>  // std::nth_element
#include <cstdint>

#include "simd.h"  // vf32 / vf64, vexp, Vec<T>

constexpr int64_t NS = 4;

// One pixel's sums over the NS = 4 scales (phase.py's NSCALE) from its responses, get(s, e, o) giving
// scale s's even (real) and odd (imaginary) part: the sum of the amplitudes, their maximum, the raw
// energy and the squared amplitude at the smallest scale. X: a value (orientation(), below) or a
// register of pixels (orientation_fft()), both callers without fused multiply-adds, so that the two
// paths sum a pixel's responses alike.
static inline float root(float x) { return ssqrt(x); }
static inline double root(double x) { return ssqrt(x); }
template <typename V> static inline V root(V x) { return vsqrt(x); }
static inline float magnitude(float x) { return sabs(x); }
static inline double magnitude(double x) { return sabs(x); }
template <typename V> static inline V magnitude(V x) { return x < 0 ? -x : x; }

template <typename X, typename Get>
__attribute__((always_inline, optimize("fp-contract=off"))) static inline void scale_sums(Get get, X eps, X &sa,
                                                                                        X &ma, X &en, X &a0sq)
{
    X se, so;
    get(0, se, so);
    const X a0 = root(se * se + so * so);
    sa = a0;
    ma = a0;
    for (int64_t s = 1; s < NS; s++) {
        X e, o;
        get(s, e, o);
        const X a = root(e * e + o * o);
        se = se + e;
        so = so + o;
        sa = sa + a;
        ma = a > ma ? a : ma;
    }
    const X x = root(se * se + so * so) + eps;
    const X me = se / x, mo = so / x;
    en = eps - eps;  // zero, in X
    for (int64_t s = 0; s < NS; s++) {
        X e, o;
        get(s, e, o);
        en = en + (e * me + o * mo - magnitude(e * mo - o * me));
    }
    a0sq = a0 * a0;
}

// Pixels [i0, i1) of the responses parts (NS, n, 2): even (real) and odd (imaginary) parts of the
// NS scales; out (4, n): scale_sums() of each pixel.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void orientation(const T *parts, int64_t n, int64_t i0,
                                                                      int64_t i1, T eps, T *out)
{
    T *sum_an = out, *max_an = out + n, *energy = out + 2 * n, *an0_sq = out + 3 * n;
    const int64_t step = 2 * n;
#pragma GCC ivdep
    for (int64_t i = i0; i < i1; i++) {
        const T *p = parts + 2 * i;
        scale_sums<T>([&](int64_t s, T &e, T &o) { e = p[s * step], o = p[s * step + 1]; }, eps, sum_an[i],
                      max_an[i], energy[i], an0_sq[i]);
    }
}

// MATLAB's median of rows [r0, r1) of x (rows, n), as phase.py's _median: the middle value, or the
// mean of the two middle values. A radix selection: one pass counts the values by their leading bits
// (13 of a float: 16 buckets an octave; 16 of a double), then only the bucket holding the middle is
// copied and std::nth_element finds the middle in it (0.29 -> 0.08 ms for 57,600 floats here, the
// values phase congruency's 18 noise medians a triple take); the upper middle value of an even row is
// the smallest value past the lower one, in its bucket or the next non-empty one. The noise estimate's
// rows hold no NaN (phase congruency's inputs are checked). The counts are 32-bit (rows of fewer than
// 2^32 values: metrics/_native.py's median checks), in two tables that take the even and the odd values,
// so that two values in one bucket in a row do not wait on each other's count; the copy tests a run of 64
// values for the bucket in SIMD registers before it copies any (its values a few in a thousand here):
// 0.074 -> 0.042 ms a row of 57,600 floats on the Intel Xeon, the same medians.
template <typename T> struct Bits;
template <> struct Bits<float> {
    typedef uint32_t U;
    typedef int32_t S;
    static constexpr int lead = 13;
};
template <> struct Bits<double> {
    typedef uint64_t U;
    typedef int64_t S;
    static constexpr int lead = 16;
};

template <typename T> static inline uint32_t bucket(T v)  // the leading bits of an order-keeping key
{
    typedef typename Bits<T>::U U;
    typedef typename Bits<T>::S S;
    constexpr int top = 8 * sizeof(U) - 1;
    U u;
    __builtin_memcpy(&u, &v, sizeof(U));
    // negative values reversed below the positive ones: all bits flipped where the sign is set, else the sign
    u ^= U(S(u) >> top) | (U(1) << top);
    return uint32_t(u >> (8 * sizeof(U) - Bits<T>::lead));
}

template <typename T>
static void median(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)
{
    constexpr int64_t NB = int64_t(1) << Bits<T>::lead, RUN = 64;
    Buf<uint32_t> counts(2 * NB);
    uint32_t *even = counts.data(), *odd = even + NB;
    for (int64_t r = r0; r < r1; r++) {
        const T *row = x + r * n;
        const int64_t k = n % 2 ? n / 2 : n / 2 - 1;  // the (lower) middle value's place
        for (int64_t b = 0; b < 2 * NB; b++)
            even[b] = 0;
        int64_t i = 0;
        for (; i + 1 < n; i += 2) {
            even[bucket(row[i])]++;
            odd[bucket(row[i + 1])]++;
        }
        if (i < n)
            even[bucket(row[i])]++;
        auto count = [&](int64_t b) { return int64_t(even[b]) + int64_t(odd[b]); };
        int64_t b = 0, before = 0;
        while (before + count(b) <= k)
            before += count(b++);
        // The bucket's values, in a buffer of their number (of the row's length, it was an mmap of the
        // kernel's own a call: glibc then raises its mmap threshold, and the process keeps more memory).
        const uint32_t want = uint32_t(b);
        Buf<T> buf(count(b));
        int64_t m = 0;
        for (i = 0; i < n; i += RUN) {
            const int64_t end = n - i < RUN ? n : i + RUN;
            uint32_t hit = 0;
            for (int64_t j = i; j < end; j++)  // compiled to SIMD compares
                hit |= bucket(row[j]) == want;
            if (hit)
                for (int64_t j = i; j < end; j++)
                    if (bucket(row[j]) == want)
                        buf[m++] = row[j];
        }
        const int64_t at = k - before;
        std::nth_element(buf.p, buf.p + at, buf.p + m);
        const T lower = buf[at];
        if (n % 2) {
            out[r] = lower;
            continue;
        }
        T upper;
        if (at + 1 < m) {
            upper = buf[at + 1];  // the smallest after the middle (all >= lower)
            for (int64_t j = at + 2; j < m; j++)
                upper = buf[j] < upper ? buf[j] : upper;
        } else {
            int64_t next = b + 1;
            while (count(next) == 0)
                next++;
            bool first = true;
            upper = lower;
            for (int64_t j = 0; j < n; j++)
                if (bucket(row[j]) == uint32_t(next) && (first || row[j] < upper)) {
                    upper = row[j];
                    first = false;
                }
        }
        out[r] = (lower + upper) / 2;
    }
}

// The inverse FFTs of one orientation's responses, ifft2(filter[s] * spectrum[b]), with orientation()'s
// sums after them (orientation_fft, at the end of this part).
//
// Why hand-written: these inverse FFTs (24 an image) and the responses' way through memory (the filter
// products, the FFTs' output, the sums' input: 7 MB an orientation for four 240 x 240 images) were two
// thirds of phase congruency's time, and PyTorch's CPU FFT (MKL) runs its generic code on this
// project's AMD processor (MKL_VERBOSE names "Intel(R) Architecture processors"; it runs as fast with
// MKL_ENABLE_INSTRUCTIONS=SSE4_2): 1.8x faster here, MEFB's Qp 38.6 -> 24.2 ms a triple
// (docs/speed.md). A mixed-radix FFT of radices 4, 2, 3 and 5 in place (a Stockham stage's operations, so
// the same values as the self-sorting form it replaced, which kept two buffers; the output digit-reversed,
// read back in order where it is transposed and summed: float32 phase congruency ~5%, float64 ~12% faster on
// the Intel Xeon), vectorized across L transforms at once, a register's lanes (8 floats, in registers of 32
// bytes on AVX2 and AVX-512 alike: 16 floats in 64 ran 5.7 -> 6.8 ms an image with two buffers and 6.0 ->
// 6.8 in place, so not only for the L1 cache: the transform moves as many bytes a pixel either way, and
// float64 takes twice float32's time, as a kernel bound by its memory traffic would; doubles 4 in 32 bytes
// on AVX2, 8 in 64 on AVX-512, whose 32 registers hold the butterflies: float64 18.6-19.1 -> 14.3-14.6 ms
// an image there, the same values, as each lane is its own transform): each image's columns' transforms,
// an L x L transpose in registers, its rows' transforms. Sides of another prime factor, or no multiple of
// L, are refused (0 returned): phase.py then takes PyTorch's FFT. Its values differ from PyTorch's FFT's
// by rounding (float32 phase congruency as close to the float64 maps as with PyTorch's FFT:
// tests/test_native.py).
template <typename T> struct Lanes;
constexpr int FFT_BYTES_F32 = 32, FFT_BYTES_F64 = VBYTES == 64 ? 64 : 32;  // phase_fft_lanes_* tells Python
typedef float ff32 __attribute__((vector_size(FFT_BYTES_F32)));
typedef double ff64 __attribute__((vector_size(FFT_BYTES_F64)));
typedef int32_t fi32 __attribute__((vector_size(FFT_BYTES_F32)));
typedef int64_t fi64 __attribute__((vector_size(FFT_BYTES_F64)));
template <> struct Lanes<float> {
    typedef ff32 type;
    typedef fi32 index;  // a shuffle's lane indices
};
template <> struct Lanes<double> {
    typedef ff64 type;
    typedef fi64 index;
};

static int radices(int64_t n, int *out)  // n's radices, 4s first, then 2, 3, 5; 0 where another factor is left
{
    int k = 0;
    for (const int r : {4, 2, 3, 5})
        while (n % r == 0 && n > 1) {
            out[k++] = r;
            n /= r;
        }
    return n == 1 ? k : 0;
}

// The twiddles of every stage of a transform of n points, inverse (sign +1): for stage (n_p, r), m = n_p / r,
// w^(p k) = exp(2 pi i p k / n_p) for p < m, k = 1 .. r - 1, as (cos, sin), computed in double.
template <typename T> static void twiddles(int64_t n, const int *rad, int nr, T *tw)
{
    int64_t np = n, off = 0;
    for (int st = 0; st < nr; st++) {
        const int r = rad[st];
        const int64_t m = np / r;
        for (int64_t p = 0; p < m; p++)
            for (int k = 1; k < r; k++) {
                const double a = 6.283185307179586476925286766559 * double(p * k) / double(np);
                tw[off++] = T(__builtin_cos(a));
                tw[off++] = T(__builtin_sin(a));
            }
        np = m;
    }
}

// The R-point inverse DFT of a[0 .. R) into b (R = 2, 3, 4 or 5), each value L lanes.
template <int R, typename T, typename V> static inline void butterfly(const V *ar, const V *ai, V *br, V *bi)
{
    if (R == 4) {
        const V s0r = ar[0] + ar[2], s0i = ai[0] + ai[2], d0r = ar[0] - ar[2], d0i = ai[0] - ai[2];
        const V s1r = ar[1] + ar[3], s1i = ai[1] + ai[3], d1r = ar[1] - ar[3], d1i = ai[1] - ai[3];
        br[0] = s0r + s1r, bi[0] = s0i + s1i;
        br[2] = s0r - s1r, bi[2] = s0i - s1i;
        br[1] = d0r - d1i, bi[1] = d0i + d1r;  // d0 + i d1
        br[3] = d0r + d1i, bi[3] = d0i - d1r;  // d0 - i d1
    } else if (R == 2) {
        br[0] = ar[0] + ar[1], bi[0] = ai[0] + ai[1];
        br[1] = ar[0] - ar[1], bi[1] = ai[0] - ai[1];
    } else if (R == 3) {
        const T c = T(-0.5), sn = T(0.86602540378443864676372317075294);
        const V tr = ar[1] + ar[2], ti = ai[1] + ai[2];
        const V ur = ar[0] + c * tr, ui = ai[0] + c * ti;
        const V vr = sn * (ar[1] - ar[2]), vi = sn * (ai[1] - ai[2]);
        br[0] = ar[0] + tr, bi[0] = ai[0] + ti;
        br[1] = ur - vi, bi[1] = ui + vr;  // u + i v
        br[2] = ur + vi, bi[2] = ui - vr;  // u - i v
    } else {  // 5
        const T c1 = T(0.30901699437494742410229341718282), c2 = T(-0.80901699437494742410229341718282);
        const T s1 = T(0.95105651629515357211643933337938), s2 = T(0.58778525229247312916870595463907);
        const V pr = ar[1] + ar[4], pi = ai[1] + ai[4], mr = ar[1] - ar[4], mi = ai[1] - ai[4];
        const V qr = ar[2] + ar[3], qi = ai[2] + ai[3], nr = ar[2] - ar[3], ni = ai[2] - ai[3];
        br[0] = ar[0] + pr + qr, bi[0] = ai[0] + pi + qi;
        const V u1r = ar[0] + c1 * pr + c2 * qr, u1i = ai[0] + c1 * pi + c2 * qi;
        const V v1r = s1 * mr + s2 * nr, v1i = s1 * mi + s2 * ni;
        const V u2r = ar[0] + c2 * pr + c1 * qr, u2i = ai[0] + c2 * pi + c1 * qi;
        const V v2r = s2 * mr - s1 * nr, v2i = s2 * mi - s1 * ni;
        br[1] = u1r - v1i, bi[1] = u1i + v1r;  // u1 + i v1
        br[4] = u1r + v1i, bi[4] = u1i - v1r;
        br[2] = u2r - v2i, bi[2] = u2i + v2r;  // u2 + i v2
        br[3] = u2r + v2i, bi[3] = u2i - v2r;
    }
}

// One stage of radix R over blocks transforms of n_p = R m points, in place: in each block the R points
// p + j m (j < R) through the butterfly, output k back at p + k m times the twiddle w^(p k) (w: m (R - 1)
// pairs). The operations of a Stockham (self-sorting) stage, operand for operand; only where the results
// are kept differs, so the transform needs no second buffer (a block of 16 floats' columns: one 30 KB
// buffer, not two of 61 KB that left the L1 cache) and ends in digit-reversed order (fft_order).
template <int R, typename T, typename V>
static void stage(V *xr, V *xi, int64_t m, int64_t blocks, const T *w)
{
    const int64_t np = R * m;
    for (int64_t p = 0; p < m; p++, w += 2 * (R - 1)) {
        T c[R], sn[R];
        for (int k = 1; k < R; k++)
            c[k] = w[2 * (k - 1)], sn[k] = w[2 * (k - 1) + 1];
        for (int64_t q = 0; q < blocks; q++) {
            V ar[R], ai[R], br[R], bi[R];
            V *pr = xr + q * np + p, *pi = xi + q * np + p;
            for (int j = 0; j < R; j++) {
                ar[j] = pr[j * m];
                ai[j] = pi[j * m];
            }
            butterfly<R, T, V>(ar, ai, br, bi);
            pr[0] = br[0];
            pi[0] = bi[0];
            for (int k = 1; k < R; k++) {
                pr[k * m] = br[k] * c[k] - bi[k] * sn[k];
                pi[k * m] = br[k] * sn[k] + bi[k] * c[k];
            }
        }
    }
}

// L transforms of n points at once, in place in (xr, xi); the result in digit-reversed order: frequency f
// at fft_order()'s place[f].
template <typename T, typename V>
__attribute__((noinline)) static void fft(V *xr, V *xi, int64_t n, const int *rad, int nr, const T *tw)
{
    int64_t np = n, blocks = 1;
    const T *w = tw;
    for (int st = 0; st < nr; st++) {
        const int r = rad[st];
        const int64_t m = np / r;
        if (r == 4)
            stage<4, T, V>(xr, xi, m, blocks, w);
        else if (r == 2)
            stage<2, T, V>(xr, xi, m, blocks, w);
        else if (r == 3)
            stage<3, T, V>(xr, xi, m, blocks, w);
        else
            stage<5, T, V>(xr, xi, m, blocks, w);
        w += 2 * m * (r - 1);
        np = m;
        blocks *= r;
    }
}

// Where fft() leaves frequency f of n = rad[0] rad[1] .. points: stage st's output digit k (the digit of f
// of weight rad[0] .. rad[st - 1]) at k m_st, m_st = n / (rad[0] .. rad[st]).
static void fft_order(int64_t n, const int *rad, int nr, int32_t *place)
{
    for (int64_t f = 0; f < n; f++) {
        int64_t rest = f, np = n, at = 0;
        for (int st = 0; st < nr; st++) {
            const int64_t m = np / rad[st];
            at += (rest % rad[st]) * m;
            rest /= rad[st];
            np = m;
        }
        place[f] = int32_t(at);
    }
}

// Rows r[0 .. L) of an L x L block, transposed in registers: log2(L) rounds of two-register shuffles,
// each swapping the off-diagonal half-blocks of every 2h x 2h block (h = L / 2, L / 4, .. 1); the rounds'
// shuffle indices made once (made inside the rounds, GCC built them lane by lane at every call).
template <typename M, int L> struct Transpose {
    M lo[8], hi[8];
    Transpose()
    {
        int k = 0;
        for (int h = L / 2; h >= 1; h /= 2, k++)
            for (int j = 0; j < L; j++) {
                lo[k][j] = (j & h) ? L + j - h : j;
                hi[k][j] = (j & h) ? L + j : j + h;
            }
    }
    template <typename V> inline void operator()(V *r) const
    {
        int k = 0;
        for (int h = L / 2; h >= 1; h /= 2, k++)
            for (int i = 0; i < L; i++)
                if (!(i & h)) {
                    const V a = __builtin_shuffle(r[i], r[i + h], lo[k]), b = __builtin_shuffle(r[i], r[i + h], hi[k]);
                    r[i] = a;
                    r[i + h] = b;
                }
    }
};

// Phase congruency's totals over the orientations and their end (phase_congruency's return), for pixels
// [i0, i1) of n = images x hw: sums (no, 4, n) as orientation() left them for each of the no
// orientations, threshold (no, images) their noise thresholds, cs (no, 2) the cos and sin of their
// angles. Per orientation the weighted energy above its threshold, the total amplitude and the squared
// and crossed moments of its phase congruency, summed over the orientations in their order (each pixel's
// totals in registers: they were five maps read and written again for every orientation); then out
// (3, n): pc = energy / (amplitude + eps) and the moments' maximum and minimum. Registers of L pixels,
// glibc's vector exp; fp contraction off, as eager PyTorch computes each step. Where cols is not 0, each
// image's pixels come in orientation_fft()'s order (blocks of `lanes` rows, cols wide) and out gets them
// in the image's rows (what metrics/_native.py's fft_unblock made of them, a copy of 0.13 ms an image).
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void totals(const T *sums, const T *threshold, int64_t no,
                                                                 int64_t nb, int64_t n, int64_t hw, int64_t i0,
                                                                 int64_t i1, const double *cs, T eps, T cut_off,
                                                                 T gain, int64_t cols, int64_t lanes, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int L = sizeof(V) / sizeof(T);
    const V zero = V{}, one = V{} + 1;
    const T half = T(no) / 2, norient = T(no);
    // One orientation's share of a register of pixels' totals (add), and the totals' end (finish): the
    // steps of phase.py's loop over the orientations and of its return, in their order.
    struct Acc {
        V ts, te, x2, y2, xy;
    };
    auto add = [&](Acc &t, V sa, V ma, V en, T th, T c, T s) {
        V e = en - th;
        e = e < 0 ? zero : e;  // clamp(min=0): NaN stays NaN
        const V width = sa / (ma + eps) / T(NS);
        const V weighted = e / (one + vexp((cut_off - width) * gain));
        t.ts = t.ts + sa;
        t.te = t.te + weighted;
        const V pc = weighted / sa;  // no guard: 0 / 0 on a constant image, as the original
        const V cx = pc * c, cy = pc * s;
        t.x2 = t.x2 + cx * cx;
        t.y2 = t.y2 + cy * cy;
        t.xy = t.xy + cx * cy;
    };
    auto finish = [&](const Acc &t, V *res) {
        const V x2 = t.x2 / half, y2 = t.y2 / half, xy = t.xy / norient;
        const V d = x2 - y2;
        const V denom = vsqrt(xy * xy + d * d) + eps;
        res[0] = t.te / (t.ts + eps);
        res[1] = (y2 + x2 + denom) / 2;
        res[2] = (y2 + x2 - denom) / 2;
    };
    auto step = [&](int64_t i, int k, int64_t img) {  // pixels i .. i + k - 1 (k <= L) of one image
        Acc t = {zero, zero, zero, zero, zero};
        for (int64_t o = 0; o < no; o++) {
            const T *in[3] = {sums + 4 * o * n + i, sums + (4 * o + 1) * n + i, sums + (4 * o + 2) * n + i};
            V v[3];
            for (int a = 0; a < 3; a++) {
                if (k == L) {
                    __builtin_memcpy(&v[a], in[a], sizeof(V));
                } else {  // a short group: its missing lanes take harmless values
                    v[a] = a < 2 ? one : zero;
                    for (int j = 0; j < k; j++)
                        v[a][j] = in[a][j];
                }
            }
            add(t, v[0], v[1], v[2], threshold[o * nb + img], T(cs[2 * o]), T(cs[2 * o + 1]));
        }
        V res[3];
        finish(t, res);
        if (cols) {  // pixel p of the image (in blocks of `lanes` rows) to its place in the image's rows
            const int64_t band = cols * lanes, p = i - img * hw;
            int64_t yb = p / band, x = p % band / lanes, lane = p % lanes;
            T *dst = out + img * hw;
            for (int j = 0; j < k; j++) {
                const int64_t at = (yb * lanes + lane) * cols + x;
                for (int a = 0; a < 3; a++)
                    dst[a * n + at] = res[a][j];
                if (++lane == lanes) {
                    lane = 0;
                    if (++x == cols)
                        x = 0, yb++;
                }
            }
            return;
        }
        for (int a = 0; a < 3; a++) {
            if (k == L)
                __builtin_memcpy(out + a * n + i, &res[a], sizeof(V));
            else
                for (int j = 0; j < k; j++)
                    out[a * n + i + j] = res[a][j];
        }
    };
    // step() for m <= CH whole groups of L pixels from pixel i, into a band's buffer `to` (from its pixel
    // `first`): each orientation over the m groups in turn, their totals on the stack, so that three of the
    // sums' 3 no streams are read at a time (each pixel's operations and their order as step()'s: the same
    // bits).
    constexpr int CH = 24;
    T *to = nullptr;
    int64_t first = 0;
    auto chunk = [&](int64_t i, int m, int64_t img) {
        Acc acc[CH];
        for (int g = 0; g < m; g++)
            acc[g] = {zero, zero, zero, zero, zero};
        for (int64_t o = 0; o < no; o++) {
            const T *pa = sums + 4 * o * n + i, *pm = pa + n, *pe = pa + 2 * n;
            const T c = T(cs[2 * o]), s = T(cs[2 * o + 1]), th = threshold[o * nb + img];
            for (int g = 0; g < m; g++) {
                V sa, ma, en;
                __builtin_memcpy(&sa, pa + g * L, sizeof(V));
                __builtin_memcpy(&ma, pm + g * L, sizeof(V));
                __builtin_memcpy(&en, pe + g * L, sizeof(V));
                add(acc[g], sa, ma, en, th, c, s);
            }
        }
        for (int g = 0; g < m; g++) {
            V res[3];
            finish(acc[g], res);
            for (int a = 0; a < 3; a++)
                __builtin_memcpy(to + a * cols * lanes + (i + g * L - first), &res[a], sizeof(V));
        }
    };
    // In the FFT's order (cols not 0) with whole bands of `lanes` rows: each band's results into a buffer in
    // that order, then into the images' rows by L x L transposes in registers (a pixel's three values were
    // scattered one by one: 3.05 against 2.34 ms a call of four 240x240 images without the reordering here).
    typedef typename Lanes<T>::type F;
    constexpr int FL = sizeof(F) / sizeof(T);
    const int64_t band = cols * lanes;
    if (cols && lanes == FL && band % L == 0 && hw % band == 0 && i0 % band == 0 && i1 % band == 0) {
        Buf<T> raw(3 * band + L);
        const uintptr_t start = reinterpret_cast<uintptr_t>(raw.data());
        to = reinterpret_cast<T *>((start + sizeof(V) - 1) & ~uintptr_t(sizeof(V) - 1));
        const Transpose<typename Lanes<T>::index, FL> transpose;
        for (first = i0; first < i1; first += band) {
            const int64_t img = first / hw, yb = (first - img * hw) / band;
            for (int64_t i = first; i < first + band; i += CH * L)
                chunk(i, int((first + band - i) / L < CH ? (first + band - i) / L : CH), img);
            for (int a = 0; a < 3; a++) {
                T *dst = out + a * n + img * hw + yb * band;  // rows yb lanes .. (yb + 1) lanes of the image
                for (int64_t x0 = 0; x0 < cols; x0 += FL) {
                    F t[FL];
                    for (int j = 0; j < FL; j++)
                        __builtin_memcpy(&t[j], to + a * band + (x0 + j) * FL, sizeof(F));
                    transpose(t);  // t[j]: row yb lanes + j, columns x0 .. x0 + FL
                    for (int j = 0; j < FL; j++)
                        __builtin_memcpy(dst + j * cols + x0, &t[j], sizeof(F));
                }
            }
        }
        return;
    }
    for (int64_t i = i0; i < i1;) {
        const int64_t img = i / hw, end = i1 < (img + 1) * hw ? i1 : (img + 1) * hw;  // this image's pixels
        for (; i < end; i += L)
            step(i, int(end - i < L ? end - i : L), img);
        i = end;  // the next image from its first pixel (a short last group overshot by L - k: where an image's
                  // pixels were no multiple of L, its next image's first L - k pixels were skipped, until 2026-12-06)
    }
}

// A 2-D transform's plan for H x W images of T, as orientation_fft(), spectrum() and csf() take it: each
// side's radices and twiddles and where fft() leaves each frequency (place_h, place_w); ok false for sides
// of other prime factors or no multiple of L, which the callers refuse (0 returned, nothing written).
// over_h / over_w: L transforms over a column's H or a row's W points, in place. regs(): a buffer of
// registers, aligned (calloc's memory is aligned to 16 bytes).
template <typename T> struct Plan2 {
    typedef typename Lanes<T>::type V;
    static constexpr int L = sizeof(V) / sizeof(T);
    const int64_t h, w;
    int rh[64], rw[64];
    const int nrh, nrw;
    const bool ok;
    Buf<T> twh, tww;
    Buf<int32_t> place_h, place_w;
    Plan2(int64_t h_, int64_t w_)
        : h(h_), w(w_), nrh(radices(h_, rh)), nrw(radices(w_, rw)), ok(nrh && nrw && h_ % L == 0 && w_ % L == 0),
          twh(2 * h_ + 2), tww(2 * w_ + 2), place_h(h_), place_w(w_)
    {
        if (!ok)
            return;
        twiddles<T>(h, rh, nrh, twh.data());
        twiddles<T>(w, rw, nrw, tww.data());
        fft_order(h, rh, nrh, place_h.data());
        fft_order(w, rw, nrw, place_w.data());
    }
    void over_h(V *re, V *im) { fft<T, V>(re, im, h, rh, nrh, twh.data()); }
    void over_w(V *re, V *im) { fft<T, V>(re, im, w, rw, nrw, tww.data()); }
    static V *regs(Buf<T> &raw)
    {
        const uintptr_t start = reinterpret_cast<uintptr_t>(raw.data());
        return reinterpret_cast<V *>((start + sizeof(V) - 1) & ~uintptr_t(sizeof(V) - 1));
    }
};

// scale_sums() of the pixels of one block of L rows, their scales' transforms er[s], ei[s] (w registers
// each, a column of L pixels a register); out: the block's place in orientation_fft()'s output (4, n).
template <typename T, typename V>
__attribute__((optimize("fp-contract=off"))) static void block_sums(const V *const *er, const V *const *ei, const int32_t *place,
                                                                     int64_t w, T eps, int64_t n, T *out)
{
    constexpr int L = sizeof(V) / sizeof(T);
    const V veps = V{} + eps;
    for (int64_t x = 0; x < w; x++) {
        V r[4];
        const int64_t at = place[x];
        scale_sums<V>([&](int64_t s, V &e, V &o) { e = er[s][at], o = ei[s][at]; }, veps, r[0], r[1], r[2], r[3]);
        for (int k = 0; k < 4; k++)
            __builtin_memcpy(out + k * n + x * L, &r[k], sizeof(V));
    }
}

// orientation() of one orientation's responses, computed here: the inverse FFTs of the NS real filters g
// times the spectra of B images (their real and imaginary planes sre, sim), then the sums over the scales.
// The spectra's planes in orientation_fft()'s input layout from PyTorch's complex images z (B, H, W; real and
// imaginary parts interleaved): re and im (B, W / L, H, L), value (y, x) at [x / L][y][x % L], in one pass
// (metrics/_native.py's fft_blocks of each plane took two strided copies, 0.3 ms for four 240x240 spectra).
template <typename T> static void spectrum_blocks(const T *z, int64_t nb, int64_t h, int64_t w, T *re, T *im)
{
    constexpr int64_t L = sizeof(typename Lanes<T>::type) / sizeof(T);
    for (int64_t b = 0; b < nb; b++)
        for (int64_t xb = 0; xb < w / L; xb++)
            for (int64_t y = 0; y < h; y++) {
                const T *s = z + 2 * ((b * h + y) * w + xb * L);
                const int64_t at = ((b * (w / L) + xb) * h + y) * L;
                for (int64_t j = 0; j < L; j++) {
                    re[at + j] = s[2 * j];
                    im[at + j] = s[2 * j + 1];
                }
            }
}

// Layouts by blocks of L (Lanes<T>'s lanes) columns or rows, so that every pass reads and writes
// memory in order: g (NS, W / L, H, L), sre and sim (B, W / L, H, L) (value (ky, kx) at
// [kx / L][ky][kx % L]); out (4, B, H / L, W, L) (pixel (y, x) at [y / L][x][y % L]), as metrics/_native.py
// arranges them. Per image: the columns' transforms of every scale (the filter product, with the scale
// 1 / (H W), taken as a column block is loaded) into mid (NS, 2, H / L, W, L), transposed by L x L blocks in
// registers; then, L rows at a time, the rows' transforms of the four scales and at once their sums, so
// that the responses never go to memory. Returns 0 (and writes nothing) for sides of other prime factors
// or no multiple of L.
template <typename T>
static int64_t orientation_fft(const T *g, const T *sre, const T *sim, int64_t nb, int64_t h, int64_t w, T eps,
                               T *out)
{
    typedef typename Lanes<T>::type V;
    typedef typename Lanes<T>::index M;
    constexpr int L = sizeof(V) / sizeof(T);
    Plan2<T> p(h, w);
    if (!p.ok)
        return 0;
    const int64_t hw = h * w, n = nb * hw;
    // Registers, aligned (calloc's memory is aligned to 16 bytes): the columns' transforms' buffer, then the
    // columns' transforms of every scale, transposed: mid (NS, 2, H / L, W, L), where the rows' are made.
    Buf<T> raw((2 * h + 2 * NS * hw / L) * L + L);
    V *xr = Plan2<T>::regs(raw);
    V *xi = xr + h, *mid = xi + h;
    const T scale = T(1) / T(hw);
    const Transpose<M, L> transpose;
    for (int64_t b = 0; b < nb; b++) {
        const T *br = sre + b * hw, *bi = sim + b * hw;
        for (int64_t c0 = 0; c0 < w; c0 += L)  // columns c0 .. c0 + L: transforms over the rows, every scale
            for (int64_t s = 0; s < NS; s++) {
                const T *gs = g + s * hw;
                T *mre = reinterpret_cast<T *>(mid + 2 * s * hw / L), *mim = mre + hw;
                const int64_t at = c0 * h;
                for (int64_t ky = 0; ky < h; ky++) {
                    V gv, rv, iv;
                    __builtin_memcpy(&gv, gs + at + ky * L, sizeof(V));
                    __builtin_memcpy(&rv, br + at + ky * L, sizeof(V));
                    __builtin_memcpy(&iv, bi + at + ky * L, sizeof(V));
                    gv = gv * scale;
                    xr[ky] = gv * rv;
                    xi[ky] = gv * iv;
                }
                p.over_h(xr, xi);
                for (int64_t y0 = 0; y0 < h; y0 += L) {
                    V tr[L], ti[L];
                    for (int l = 0; l < L; l++)
                        tr[l] = xr[p.place_h[y0 + l]], ti[l] = xi[p.place_h[y0 + l]];
                    transpose(tr);
                    transpose(ti);
                    T *dr = mre + y0 * w + c0 * L, *di = mim + y0 * w + c0 * L;  // [y0 / L][c0 + l][.]
                    for (int l = 0; l < L; l++) {
                        __builtin_memcpy(dr + l * L, &tr[l], sizeof(V));
                        __builtin_memcpy(di + l * L, &ti[l], sizeof(V));
                    }
                }
            }
        for (int64_t y0 = 0; y0 < h; y0 += L) {  // rows y0 .. y0 + L: transforms over the columns
            const V *er[NS], *ei[NS];  // each scale's transforms, in place in its block of mid
            for (int64_t s = 0; s < NS; s++) {
                V *mre = mid + 2 * s * hw / L + y0 * w / L, *mim = mre + hw / L;
                p.over_w(mre, mim);
                er[s] = mre;
                ei[s] = mim;
            }
            block_sums<T, V>(er, ei, p.place_w.data(), w, eps, n, out + b * hw + y0 * w);
        }
    }
    return 1;
}

// The spectra fft2(x) of real images x (nb, H, W, in rows) in orientation_fft()'s input layout: re and im
// (nb, W / L, H, L), value (ky, kx) at [kx / L][ky][kx % L] (what spectrum_blocks() makes of PyTorch's
// fft2, 2x faster here than that and its copy). This file's fft() has the inverse sign: for a real image
// it gives the conjugate of fft2, whose imaginary part is negated as it is written. Each image's rows'
// transforms first (L rows a register, an L x L block transposed in registers as it is loaded), transposed
// into columns of L, then the columns' transforms, written in frequency order. Sides as orientation_fft()'s
// (0 returned, nothing written, for others).
template <typename T> static int64_t spectrum(const T *x, int64_t nb, int64_t h, int64_t w, T *re, T *im)
{
    typedef typename Lanes<T>::type V;
    typedef typename Lanes<T>::index M;
    constexpr int L = sizeof(V) / sizeof(T);
    Plan2<T> p(h, w);
    if (!p.ok)
        return 0;
    const int64_t hw = h * w, nv = hw / L;
    // Registers, aligned: a row block's transforms (2 W), the columns' stage (2 planes, W / L, H, L)
    Buf<T> raw((2 * w + 2 * nv) * L + L);
    V *rr = Plan2<T>::regs(raw);
    V *ri = rr + w, *kre = ri + w, *kim = kre + nv;
    const Transpose<M, L> transpose;
    const V zero = V{};
    for (int64_t b = 0; b < nb; b++) {
        const T *xb = x + b * hw;
        for (int64_t y0 = 0; y0 < h; y0 += L) {  // rows y0 .. y0 + L: transforms over the columns
            for (int64_t c0 = 0; c0 < w; c0 += L) {
                V t[L];
                for (int l = 0; l < L; l++)
                    __builtin_memcpy(&t[l], xb + (y0 + l) * w + c0, sizeof(V));
                transpose(t);  // t[l]: column c0 + l, rows y0 .. y0 + L
                for (int l = 0; l < L; l++)
                    rr[c0 + l] = t[l], ri[c0 + l] = zero;
            }
            p.over_w(rr, ri);
            for (int64_t k0 = 0; k0 < w; k0 += L) {  // frequency columns k0 .. k0 + L, back to registers of columns
                V tr[L], ti[L];
                for (int l = 0; l < L; l++)
                    tr[l] = rr[p.place_w[k0 + l]], ti[l] = ri[p.place_w[k0 + l]];
                transpose(tr);
                transpose(ti);  // tr[l]: row y0 + l, frequency columns k0 .. k0 + L
                for (int l = 0; l < L; l++)
                    kre[k0 / L * h + y0 + l] = tr[l], kim[k0 / L * h + y0 + l] = ti[l];
            }
        }
        for (int64_t k0 = 0; k0 < w; k0 += L) {  // frequency columns k0 .. k0 + L: transforms over the rows
            V *pr = kre + k0 / L * h, *pi = kim + k0 / L * h;
            p.over_h(pr, pi);
            T *dr = re + b * hw + k0 * h, *di = im + b * hw + k0 * h;  // [k0 / L][ky][.]
            for (int64_t ky = 0; ky < h; ky++) {
                const int64_t at = p.place_h[ky];
                const V vi = -pi[at];
                __builtin_memcpy(dr + ky * L, &pr[at], sizeof(V));
                __builtin_memcpy(di + ky * L, &vi, sizeof(V));
            }
        }
    }
    return 1;
}

// Real images through a real, even frequency response (VIFB's and MEFB's contrast-sensitivity filters,
// metrics/lineage/kernels.py's csf_filter): out = real(ifft2(fft2(x) .* g)), g (H, W) uncentred with
// g(k) = g(-k) (a radial response on freqspace's grid). Two images a call as one complex image z = x + i y:
// g being real and even, ifft2(fft2(z) .* g) is x's result plus i times y's (to rounding), so one complex
// transform each way filters both (y null: x alone, the imaginary part dropped). Both transforms are this
// file's inverse-sign fft(), unnormalised: it gives fft2(z) at -k, which times the even g / (H W) is the
// product's spectrum at -k, whose inverse-sign transform is the result at -n; the last writes put each
// pixel back at n. The order: each image's columns' transforms (L columns a register), transposed by
// L x L blocks into rows of L; then, L rows at a time, the rows' transforms, the response, the rows'
// inverse transforms, transposed back into columns of L; then the columns' inverse transforms, written to
// the image's rows. Sides as orientation_fft()'s (0 returned, nothing written, for others). Images
// in rows, image b's at b * stride in x, y, ox and oy (H W apart for a batch, 2 H W for the pairs of a
// (B, 2, H, W) tensor), each pair filtered on its own: a batch's results are each image's alone.
template <typename T>
static int64_t csf(const T *x, const T *y, const T *g, int64_t nb, int64_t h, int64_t w, int64_t stride, T *ox,
                   T *oy)
{
    typedef typename Lanes<T>::type V;
    typedef typename Lanes<T>::index M;
    constexpr int L = sizeof(V) / sizeof(T);
    Plan2<T> p(h, w);
    if (!p.ok)
        return 0;
    const int64_t hw = h * w, nv = hw / L;  // registers an image plane
    // Registers, aligned: a column's transforms (2 H), a row block's (2 W), the response in rows of L
    // (H / L, W, L), the rows' stage (2 planes, H / L, W, L) and the columns' stage (2 planes, W / L, H, L).
    Buf<T> raw((2 * h + 2 * w + 5 * nv) * L + L);
    V *cr = Plan2<T>::regs(raw);
    V *ci = cr + h, *rr = ci + h, *ri = rr + w, *gb = ri + w, *mre = gb + nv, *mim = mre + nv, *kre = mim + nv,
      *kim = kre + nv;
    const T scale = T(1) / T(hw);
    for (int64_t y0 = 0; y0 < h; y0 += L)
        for (int64_t kx = 0; kx < w; kx++)
            for (int l = 0; l < L; l++)
                gb[y0 / L * w + kx][l] = g[(y0 + l) * w + kx] * scale;
    const Transpose<M, L> transpose;
    const V zero = V{};
    for (int64_t b = 0; b < nb; b++) {
        const T *xb = x + b * stride, *yb = y ? y + b * stride : nullptr;
        T *xo = ox + b * stride, *yo = oy ? oy + b * stride : nullptr;
        for (int64_t c0 = 0; c0 < w; c0 += L) {  // columns c0 .. c0 + L: transforms over the rows
            for (int64_t r = 0; r < h; r++) {
                __builtin_memcpy(&cr[r], xb + r * w + c0, sizeof(V));
                if (yb)
                    __builtin_memcpy(&ci[r], yb + r * w + c0, sizeof(V));
                else
                    ci[r] = zero;
            }
            p.over_h(cr, ci);
            for (int64_t y0 = 0; y0 < h; y0 += L) {
                V tr[L], ti[L];
                for (int l = 0; l < L; l++)
                    tr[l] = cr[p.place_h[y0 + l]], ti[l] = ci[p.place_h[y0 + l]];
                transpose(tr);
                transpose(ti);
                for (int l = 0; l < L; l++)
                    mre[y0 / L * w + c0 + l] = tr[l], mim[y0 / L * w + c0 + l] = ti[l];
            }
        }
        for (int64_t y0 = 0; y0 < h; y0 += L) {  // rows y0 .. y0 + L: over the columns, there and back
            V *pr = mre + y0 / L * w, *pi = mim + y0 / L * w;
            p.over_w(pr, pi);
            const V *gr = gb + y0 / L * w;
            for (int64_t kx = 0; kx < w; kx++) {
                const int64_t at = p.place_w[kx];
                rr[kx] = pr[at] * gr[kx];
                ri[kx] = pi[at] * gr[kx];
            }
            p.over_w(rr, ri);
            for (int64_t c0 = 0; c0 < w; c0 += L) {  // output column c takes the transform's column -c
                V tr[L], ti[L];
                for (int l = 0; l < L; l++) {
                    const int64_t at = p.place_w[(w - c0 - l) % w];
                    tr[l] = rr[at], ti[l] = ri[at];
                }
                transpose(tr);
                transpose(ti);
                for (int l = 0; l < L; l++)
                    kre[c0 / L * h + y0 + l] = tr[l], kim[c0 / L * h + y0 + l] = ti[l];
            }
        }
        for (int64_t c0 = 0; c0 < w; c0 += L) {  // columns c0 .. c0 + L: back over the rows; row r takes -r
            V *pr = kre + c0 / L * h, *pi = kim + c0 / L * h;
            p.over_h(pr, pi);
            for (int64_t r = 0; r < h; r++) {
                const int64_t at = p.place_h[(h - r) % h];
                __builtin_memcpy(xo + r * w + c0, &pr[at], sizeof(V));
                if (yo)
                    __builtin_memcpy(yo + r * w + c0, &pi[at], sizeof(V));
            }
        }
    }
    return 1;
}

// The entry points of one type (T, SUFFIX: float, f32 or double, f64); a unit built for one type has only its own.
// Part 0 of this source (simd.h's FUSIONBENCH_PART): phase congruency's, MEFB's Qp alone; part 1: the
// contrast-sensitivity filter's (csf_*), which VIFB's and MEFB's Q_CB and Q_CV call, a unit of its own
// (0.3-0.4 s of build a type, where phase congruency's part takes 0.7-0.8), so that VIFB does not build
// phase congruency's kernels. fft() is not inlined into its callers: a copy of its stages in each took
// the part with both 0.3 s more to build, and ran no faster (phase congruency's maps the same bits).
#define FUSIONBENCH_PHASE(T, SUFFIX)                                                                                  \
    void phase_orientation_##SUFFIX(const T *parts, int64_t n, int64_t i0, int64_t i1, double eps, T *out)            \
    {                                                                                                                 \
        orientation<T>(parts, n, i0, i1, T(eps), out);                                                                \
    }                                                                                                                 \
    void phase_totals_##SUFFIX(const T *sums, const T *threshold, int64_t no, int64_t nb, int64_t n, int64_t hw,     \
                               int64_t i0, int64_t i1, const double *cs, double eps, double cut_off, double gain,     \
                               int64_t cols, int64_t lanes, T *out)                                                   \
    {                                                                                                                 \
        totals<T>(sums, threshold, no, nb, n, hw, i0, i1, cs, T(eps), T(cut_off), T(gain), cols, lanes, out);         \
    }                                                                                                                 \
    void phase_spectrum_blocks_##SUFFIX(const T *z, int64_t nb, int64_t h, int64_t w, T *re, T *im)                   \
    {                                                                                                                 \
        spectrum_blocks<T>(z, nb, h, w, re, im);                                                                      \
    }                                                                                                                 \
    void phase_median_##SUFFIX(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)                                 \
    {                                                                                                                 \
        median<T>(x, n, r0, r1, out);                                                                                 \
    }                                                                                                                 \
    int64_t phase_fft_lanes_##SUFFIX() { return int64_t(sizeof(Lanes<T>::type) / sizeof(T)); }                     \
    int64_t phase_spectrum_##SUFFIX(const T *x, int64_t nb, int64_t h, int64_t w, T *re, T *im)                     \
    {                                                                                                                 \
        return spectrum<T>(x, nb, h, w, re, im);                                                                      \
    }                                                                                                                 \
    int64_t phase_orientation_fft_##SUFFIX(const T *g, const T *sre, const T *sim, int64_t nb, int64_t h, int64_t w, \
                                           double eps, T *out)                                                        \
    {                                                                                                                 \
        return orientation_fft<T>(g, sre, sim, nb, h, w, T(eps), out);                                                \
    }
#define FUSIONBENCH_CSF(T, SUFFIX)                                                                                    \
    int64_t csf_fft_lanes_##SUFFIX() { return int64_t(sizeof(Lanes<T>::type) / sizeof(T)); }                       \
    int64_t csf_filter_##SUFFIX(const T *x, const T *y, const T *g, int64_t nb, int64_t h, int64_t w, int64_t stride, \
                                T *ox, T *oy)                                                                         \
    {                                                                                                                 \
        return csf<T>(x, y, g, nb, h, w, stride, ox, oy);                                                             \
    }
#if FUSIONBENCH_PART == 0
#define FUSIONBENCH_ENTRIES FUSIONBENCH_PHASE
#else
#define FUSIONBENCH_ENTRIES FUSIONBENCH_CSF
#endif
extern "C" {
#if FUSIONBENCH_F32
FUSIONBENCH_ENTRIES(float, f32)
#endif
#if FUSIONBENCH_F64
FUSIONBENCH_ENTRIES(double, f64)
#endif
}
