// Haghighat's Fast-FMI window kernel (metrics/fmi.py, _nfmi) for 3x3 windows, hand-written for the CPU.
//
// Why hand-written: inductor compiles _nfmi into ~40 loops over each block of windows' 9x9 joint
// pdfs, 80-110 ns a window on two cores, and costs 10-15 s of compilation on a fresh machine. Here
// each group of windows (one SIMD register's worth) keeps its pdfs, cdfs and joint-pdf cells in
// registers, and the logarithms run in glibc's vector log2 (libmvec), about 3x faster a core
// (docs/speed.md, "A hand-written FMI kernel"). A window's entropies take 36 logarithms instead of
// 99 (17 for the joint pdf's cells on the Frechet bound, 19 for the marginals and the mixture's
// weight), since the other cells' masses are products of those (see below): 1.5x faster again. Where
// neither source's window at a place is skipped, F's window is prepared once for both (its pdf, cdf and
// logarithms: the x2 pass sees the same bits): Tang's three FMI maps 13.0 -> 12.8 ms a triple. Windows flat
// in the source and in F all score one value, computed once (fmi_maps), and where every lane of a group
// takes one Frechet bound the other is not summed: Tang's FMI_w maps 8.3-8.5 -> 6.9-7.6 ms a triple, bit
// for bit (Intel Xeon, one thread, 16 phantom triples, alternating with the code before). It is
// built once per machine by metrics/_native.py with the system's C++ compiler and loaded with
// ctypes; where it cannot be built (no compiler, no libmvec, not x86-64) fusionbench scores with the
// PyTorch kernel instead.
//
// The arithmetic follows _nfmi step by step (same formulas, same quirks: c = 0 when the covariance
// sum is exactly 0, c = 1 for two flat windows, -p log2|p| for negative masses, 0 when I = 0);
// sums run in another order and most cells' logarithms are sums of their factors' logarithms, so
// values agree with the PyTorch kernel to float rounding, not bit for bit.
#include <cstddef>
#include <cstdint>

#include "simd.h"  // VBYTES, vf32 / vf64, vlog2, Vec<T>

template <typename V> static inline V vmin(V a, V b) { return a < b ? a : b; }
template <typename V> static inline V vmax(V a, V b) { return a > b ? a : b; }
template <typename V> static inline V vabs(V x) { return x < 0 ? -x : x; }
template <typename V> static inline V plogp(V p)  // p * log2|p|, 0 where p is 0
{
    const V one = V{} + 1;
    return p * vlog2(p != 0 ? vabs(p) : one);
}

// Two half registers of floats side by side as one (float64 input scored in float32).
typedef float vf32h __attribute__((vector_size(VBYTES / 2)));
static inline vf32 join(vf32h lo, vf32h hi)
{
#if VBYTES == 64
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
#endif
}

// One side of a group of L windows (a source's, or F's), from its gathered window elements on: the
// min-max normalised window (or SHIFT: minus its minimum; a flat window becomes ones), whether it is
// all ones, its pdf p, cdf c and log2 p, the cdf's sum, the pdf's mean, its index moments (for the
// bound's sd) and its entropy. F's side is the same for both sources' windows at one place (the x2 pass
// takes F's window as the x1 pass left it, normalised; normalising that again changes no bit), so
// fmi_maps prepares it once for both.
template <typename T> struct Side {
    typedef typename Vec<T>::type V;
    V p[9], c[9], l[9];
    V csum, mean, m1, m2, h;
    decltype(V{} == V{}) ones;
};

// Side of the L windows at base of the lists p (top-left flat pixels of img), elements at off[0..8];
// past n, the last window is repeated.
template <typename In, typename T, bool SHIFT>
static inline void prepare(const In *img, const int64_t *p, int64_t base, int64_t n, const int64_t *off, Side<T> &s)
{
    typedef typename Vec<T>::type V;
    constexpr int L = sizeof(V) / sizeof(T);
    // The gather and the normalisation run in the input's type, a native register (LH windows) at a
    // time: with float64 input and float32 scoring a group is two such halves. (As one 16-double
    // vector, twice the register, GCC lowered its min and max to scalar instructions, lane by lane:
    // 70 ns a window against 42 for float32 input, Tang's FMI_w.)
    constexpr int LH = VBYTES / sizeof(In) < L ? VBYTES / sizeof(In) : L;
    typedef In VI __attribute__((vector_size(LH * sizeof(In))));
    typedef T VH __attribute__((vector_size(LH * sizeof(T))));
    const V zero = V{}, one = V{} + 1;
    V *sp = s.p;
    bool row = base + L <= n;  // L windows side by side in one row?
    for (int k = 1; row && k < L; k++)
        row = p[base + k] == p[base] + k;
    VH part[L / LH][9];
    for (int half = 0; half < L / LH; half++) {
        VI x[9];
        if (row) {
            // LH windows side by side in one row (most groups): nine vector loads
            for (int i = 0; i < 9; i++)
                x[i] = loadu<VI>(img + p[base] + half * LH + off[i]);
        } else {
            for (int k = 0; k < LH; k++) {
                const int64_t at = base + half * LH + k;
                const int64_t w = at < n ? at : n - 1;  // the last group: repeat the last window
                for (int i = 0; i < 9; i++)
                    x[i][k] = img[p[w] + off[i]];
            }
        }
        VI lo = x[0], hi = x[0];
        for (int i = 1; i < 9; i++) {
            lo = vmin(lo, x[i]);
            hi = vmax(hi, x[i]);
        }
        const VI ione = VI{} + 1;
        const auto flat = hi == lo;
        const VI span = flat ? ione : hi - lo;
        for (int i = 0; i < 9; i++) {
            const VI y = flat ? ione : (SHIFT ? x[i] - lo : (x[i] - lo) / span);
            part[half][i] = __builtin_convertvector(y, VH);
        }
    }
    for (int i = 0; i < 9; i++) {
        if constexpr (L == LH)
            sp[i] = V(part[0][i]);
        else  // the halves joined in registers (copied into sp's halves, the whole read back stalled)
            sp[i] = join(part[0][i], part[1][i]);
    }
    auto ones = sp[0] == one;
    V sum = zero;
    for (int i = 0; i < 9; i++) {
        ones &= sp[i] == one;
        sum += sp[i];
    }
    s.ones = ones;
    // The pdf, cdf, mean and the index moments of the pdf (for the bound's sd).
    V cs = zero, ccs = zero, m = zero, m1 = zero, m2 = zero;
    for (int i = 0; i < 9; i++) {
        const T ii = T(i + 1);
        const V a = sp[i] / sum;
        sp[i] = a;
        cs += a;
        s.c[i] = cs;
        ccs += cs;
        m += a;
        m1 += ii * a;
        m2 += (ii * ii) * a;
    }
    s.csum = ccs, s.mean = m / T(9), s.m1 = m1, s.m2 = m2;
    V h = zero;
    for (int i = 0; i < 9; i++) {
        s.l[i] = vlog2(sp[i] != 0 ? sp[i] : one);
        h -= sp[i] * s.l[i];
    }
    s.h = h;
}

// Normalised FMI of a group of windows from the source's side s and F's side t.
template <typename T> static inline typename Vec<T>::type score(const Side<T> &s, const Side<T> &t)
{
    typedef typename Vec<T>::type V;
    const V zero = V{}, one = V{} + 1;
    const V *sp = s.p, *tp = t.p, *sc = s.c, *tc = t.c;
    V num = zero, vs = zero, vt = zero;
    for (int i = 0; i < 9; i++) {
        const V a = sp[i] - s.mean, b = tp[i] - t.mean;
        num += a * b;
        vs += a * a;
        vt += b * b;
    }
    V c = num == 0 ? zero : num / vsqrt(vs * vt);
    c = (s.ones & t.ones) ? one : c;
    const auto pos = c >= 0;
    // The bound's sum: where every lane takes the same bound (most groups), that bound's cells alone
    // (the same sums in the same order as the selecting loop, so the same bits).
    bool all_pos = true, all_neg = true;
    for (int k = 0; k < int(sizeof(V) / sizeof(T)); k++)
        all_pos &= pos[k] != 0, all_neg &= pos[k] == 0;
    V bsum = zero;
    if (all_pos) {
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 9; j++)
                bsum += vmin(tc[i], sc[j]);
    } else if (all_neg) {
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 9; j++)
                bsum += vmax(tc[i] + sc[j] - one, zero);
    } else {
        for (int i = 0; i < 9; i++)
            for (int j = 0; j < 9; j++)
                bsum += pos ? vmin(tc[i], sc[j]) : vmax(tc[i] + sc[j] - one, zero);
    }
    const V sd_s = vsqrt(vmax(s.m2 - s.m1 * s.m1, zero)), sd_t = vsqrt(vmax(t.m2 - t.m1 * t.m1, zero));
    const V cov = bsum - t.csum * s.csum;
    const auto sd0 = (sd_s == 0) | (sd_t == 0);
    const V corr_bound = cov / (sd0 ? one : sd_t * sd_s);
    const V safe = corr_bound == 0 ? one : corr_bound;
    const V phi = (sd0 | (pos & (c == 0))) ? zero : c / safe;
    const V rest = one - phi;
    // The entropies with 36 logarithms a window instead of 99 (27 where F's side serves both sources'
    // windows). A cell's mass is phi * cell + rest * tp_i * sp_j. Where the bound's cell is empty it is
    // the product alone, and log2|rest tp_i sp_j| = log2|rest| + log2 tp_i + log2 sp_j. The bound's mass
    // lies on at most 17 cells, one per anti-diagonal i + j: two cells on one anti-diagonal would need
    // (T_{i-1}, T_i] before and after the same source interval (both cdfs are non-decreasing, so this
    // holds for the rounded values too). For the lower bound the same holds with the source order
    // reversed, so a lane with c < 0 takes its source quantities as j' = 8 - j: the cells of
    // anti-diagonal d then hold each lane's only bound cell there, kept in slot[d], and take a
    // logarithm of their own.
    const V lrest = vlog2(rest != 0 ? vabs(rest) : one);
    // The Frechet bound's cell masses: overlap of (T_{i-1}, T_i] with the source's interval (lo_j, hi_j]
    // (upper bound: (S_{j-1}, S_j]; lower: (1 - S_j, 1 - S_{j-1}], taken in reverse); its pdf and log pdf alike.
    V lo[9], hi[9], sq[9], lq[9];
    for (int j = 0; j < 9; j++) {
        const V s0 = j ? sc[j - 1] : zero;
        const V r1 = one - sc[8 - j], r0 = j < 8 ? one - sc[7 - j] : one;
        lo[j] = pos ? s0 : r1;
        hi[j] = pos ? sc[j] : r0;
        sq[j] = pos ? sp[j] : sp[8 - j];
        lq[j] = pos ? s.l[j] : s.l[8 - j];
    }
    V slot[17];
    for (int d = 0; d < 17; d++)
        slot[d] = zero;
    V plain = zero;  // sum of p log2|p| over the cells outside the bound
    for (int i = 0; i < 9; i++) {
        const V t0 = i ? tc[i - 1] : zero;
        const V w = rest * tp[i], lw = lrest + t.l[i];
        V row = zero;
        for (int j = 0; j < 9; j++) {
            const V cell = vmin(tc[i], hi[j]) - vmax(t0, lo[j]);
            const auto in = cell > 0;
            const V prod = w * sq[j];
            row += in ? zero : prod * (lw + lq[j]);
            slot[i + j] = in ? phi * cell + prod : slot[i + j];
        }
        plain += row;
    }
    V je = -plain;
    for (int d = 0; d < 17; d++)
        je -= plogp(slot[d]);
    const V mi = s.h + t.h - je, den = s.h + t.h;
    return ((mi == 0) | (den == 0)) ? zero : T(2) * mi / (den == 0 ? one : den);
}

template <typename In, typename V>
static inline void put(const V &r, int64_t base, int64_t n, In *out, const int64_t *dst)
{
    for (int k = 0; k < int(sizeof(V) / sizeof(r[0])) && base + k < n; k++)
        out[dst ? dst[base + k] : base + k] = In(r[k]);
}

// Windows n at top-left flat pixels ps (source) and pf (fused) of the flat images src and f, their
// elements at offsets off[0..8] (column-major, as MATLAB's (:)); out[k] (or out[dst[k]] where dst is
// given) = normalised FMI of window k (the input's type). T: the scoring type. SHIFT: windows minus
// their minimum (_fmi_at_f32) instead of min-max normalised (_fmi_at); a flat window becomes ones
// either way. A lane's value does not depend on the other lanes of its group.
template <typename In, typename T, bool SHIFT>
static void fmi_windows(const In *src, const In *f, const int64_t *ps, const int64_t *pf, int64_t n,
                        const int64_t *off, In *out, const int64_t *dst = nullptr)
{
    constexpr int L = sizeof(typename Vec<T>::type) / sizeof(T);
    Side<T> s, t;
    for (int64_t base = 0; base < n; base += L) {
        prepare<In, T, SHIFT>(src, ps, base, n, off, s);
        prepare<In, T, SHIFT>(f, pf, base, n, off, t);
        put(score(s, t), base, n, out, dst);
    }
}

// Both sources' windows at the same L places (p, side by side in one row), against F's: F's side once.
template <typename In, typename T, bool SHIFT>
static void fmi_windows_both(const In *a, const In *b, const In *f, const int64_t *p, const int64_t *off, In *out1,
                             In *out2)
{
    constexpr int L = sizeof(typename Vec<T>::type) / sizeof(T);
    Side<T> s, t;
    prepare<In, T, SHIFT>(f, p, 0, L, off, t);
    prepare<In, T, SHIFT>(a, p, 0, L, off, s);
    put(score(s, t), 0, L, out1, nullptr);
    prepare<In, T, SHIFT>(b, p, 0, L, off, s);
    put(score(s, t), 0, L, out2, nullptr);
}

// What fmi_windows scores for two flat windows (each becomes ones).
template <typename In, typename T, bool SHIFT> static In flat_score()
{
    const In ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t at = 0, off[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    In out;
    fmi_windows<In, T, SHIFT>(ones, ones, &at, &at, 1, off, &out);
    return out;
}

// Both passes' FMI maps of window rows [r0, r1) (row r: image r / h, window row r % h; h = H - 2,
// w = W - 2) of the (n, H, W) images a (x1), b (x2) and f: out1 (x1 against F) and out2 (x2
// against F), each (n, h, w) flat. The windows the toolbox skips score 1 (metrics/fmi.py,
// fmi_from_images): x1's where it equals F's; x2's where it equals F's window as the x1 pass
// left it, F's own where x1's was skipped, else F's min-max normalised (as _minmax, in the
// input's type). Row by row: the skip rules first, a register of the input's type at a time; then
// each group of L windows side by side with none skipped is scored at once, and the other windows
// are gathered into a list, scored when it fills. Returns the number of windows scored.
template <typename In, typename T, bool SHIFT>
static int64_t fmi_maps(const In *a, const In *b, const In *f, int64_t H, int64_t W, int64_t r0, int64_t r1,
                        In *out1, In *out2)
{
    typedef typename Vec<T>::type V;
    constexpr int L = sizeof(V) / sizeof(T);  // windows scored at once
    constexpr int LS = VBYTES / sizeof(In);  // windows whose skip rules are checked at once
    typedef In VI __attribute__((vector_size(VBYTES)));
    typedef decltype(VI{} == VI{}) M;
    const int64_t h = H - 2, w = W - 2;
    int64_t off[9];
    for (int c = 0, k = 0; c < 3; c++)
        for (int r = 0; r < 3; r++)
            off[k++] = r * W + c;
    constexpr int64_t CAP = 2048;  // a list's windows before it is scored
    Buf<int64_t> lists(4 * (CAP + L));
    int64_t *p1 = lists.data(), *d1 = p1 + CAP + L, *p2 = d1 + CAP + L, *d2 = p2 + CAP + L;
    Buf<char> skips(2 * (w + LS));
    char *s1 = skips.data(), *s2 = s1 + w + LS;
    int64_t n1 = 0, n2 = 0, scored = 0;
    // A window flat in the source and in F scores what two windows of ones score (each normalised to ones,
    // the same bits in every lane): computed once, and such windows marked 2 in s1 / s2 (1: skipped, 0: to
    // score). Wavelet features' flat background: 14% of Tang's FMI_w windows on the phantom triples.
    const In flat_both = flat_score<In, T, SHIFT>();
    for (int64_t row = r0; row < r1; row++) {
        const int64_t top = (row / h) * H * W + (row % h) * W, at = row * w;
        int64_t x = 0;
        for (; x + LS <= w; x += LS) {  // LS windows side by side: nine vector loads an image
            VI va[9], vb[9], vf[9];
            for (int i = 0; i < 9; i++) {
                va[i] = loadu<VI>(a + top + x + off[i]);
                vb[i] = loadu<VI>(b + top + x + off[i]);
                vf[i] = loadu<VI>(f + top + x + off[i]);
            }
            M eq1 = va[0] == vf[0], eq2 = vb[0] == vf[0];
            for (int i = 1; i < 9; i++) {
                eq1 &= va[i] == vf[i];
                eq2 &= vb[i] == vf[i];
            }
            // x2 against F's normalised window: that holds a 0 where F is lowest and a 1 where highest
            // (all ones where F is flat), so only lanes whose x2 window does so need the division.
            VI lo = vf[0], hi = vf[0];
            for (int i = 1; i < 9; i++) {
                lo = vmin(lo, vf[i]);
                hi = vmax(hi, vf[i]);
            }
            const M flat = hi == lo;
            VI la = va[0], ha = va[0], lb = vb[0], hb = vb[0];  // in prepare()'s order: its flat test
            for (int i = 1; i < 9; i++) {
                la = vmin(la, va[i]);
                ha = vmax(ha, va[i]);
                lb = vmin(lb, vb[i]);
                hb = vmax(hb, vb[i]);
            }
            const M flat_a = ha == la, flat_b = hb == lb;
            const VI one = VI{} + 1, zero = VI{};
            M eqn = ~eq1;
            for (int i = 0; i < 9; i++)
                eqn &= (flat & (vb[i] == one)) |
                       (~flat & ((vf[i] != lo) | (vb[i] == zero)) & ((vf[i] != hi) | (vb[i] == one)));
            bool any = false;
            for (int k = 0; k < LS; k++)
                any |= eqn[k] != 0;
            if (any) {
                const VI span = flat ? one : hi - lo;
                for (int i = 0; i < 9; i++)
                    eqn &= vb[i] == (flat ? one : (vf[i] - lo) / span);
            }
            const M skip2 = (eq1 & eq2) | (~eq1 & eqn);
            for (int k = 0; k < LS; k++) {
                s1[x + k] = eq1[k] ? 1 : (flat_a[k] && flat[k]) ? 2 : 0;
                s2[x + k] = skip2[k] ? 1 : (flat_b[k] && flat[k]) ? 2 : 0;
            }
        }
        for (; x < w; x++) {  // the row's last windows, one at a time
            const int64_t t = top + x;
            In lo = f[t + off[0]], hi = lo;
            for (int i = 1; i < 9; i++) {
                lo = vmin(lo, f[t + off[i]]);
                hi = vmax(hi, f[t + off[i]]);
            }
            const bool flat = hi == lo;
            In la = a[t + off[0]], ha = la, lb = b[t + off[0]], hb = lb;
            for (int i = 1; i < 9; i++) {
                la = vmin(la, a[t + off[i]]);
                ha = vmax(ha, a[t + off[i]]);
                lb = vmin(lb, b[t + off[i]]);
                hb = vmax(hb, b[t + off[i]]);
            }
            const In span = flat ? In(1) : hi - lo;
            bool eq1 = true, eq2 = true, eqn = true;
            for (int i = 0; i < 9; i++) {
                const In fi = f[t + off[i]], bi = b[t + off[i]];
                eq1 &= a[t + off[i]] == fi;
                eq2 &= bi == fi;
                eqn &= bi == (flat ? In(1) : (fi - lo) / span);
            }
            s1[x] = eq1 ? 1 : (flat && ha == la) ? 2 : 0;
            s2[x] = (eq1 ? eq2 : eqn) ? 1 : (flat && hb == lb) ? 2 : 0;
        }
        // Score: whole groups of L windows with none skipped at once, the rest through the lists. A
        // row's last, short group is scored as the row's last L windows (the ones scored twice get
        // the same values: a lane's value does not depend on the others).
        int64_t idx[L];
        for (x = 0; x < w; x += L) {
            const int64_t xs = x + L <= w ? x : w - L;  // the group's first window; < 0: the row is short
            bool none_skipped = xs >= 0;
            for (int j = 0; none_skipped && j < L; j++)
                none_skipped = !s1[xs + j] && !s2[xs + j];
            if (none_skipped) {  // both passes at once (most groups), F's side prepared once
                for (int j = 0; j < L; j++)
                    idx[j] = top + xs + j;
                fmi_windows_both<In, T, SHIFT>(a, b, f, idx, off, out1 + at + xs, out2 + at + xs);
                scored += 2 * (x + L <= w ? L : w - x);
                continue;
            }
            for (int side = 0; side < 2; side++) {
                const char *sk = side ? s2 : s1;
                bool none = xs >= 0;
                for (int j = 0; none && j < L; j++)
                    none = !sk[xs + j];
                if (none) {
                    for (int j = 0; j < L; j++)
                        idx[j] = top + xs + j;
                    fmi_windows<In, T, SHIFT>(side ? b : a, f, idx, idx, L, off, (side ? out2 : out1) + at + xs);
                    scored += x + L <= w ? L : w - x;
                    continue;
                }
                int64_t *pl = side ? p2 : p1, *dl = side ? d2 : d1, &nl = side ? n2 : n1;
                In *out = side ? out2 : out1;
                for (int64_t j = x; j < vmin<int64_t>(x + L, w); j++)
                    if (sk[j])
                        out[at + j] = sk[j] == 1 ? In(1) : flat_both, scored += sk[j] == 2;
                    else
                        pl[nl] = top + j, dl[nl++] = at + j;
                if (nl >= CAP) {
                    fmi_windows<In, T, SHIFT>(side ? b : a, f, pl, pl, nl, off, out, dl);
                    scored += nl, nl = 0;
                }
            }
        }
    }
    if (n1)
        fmi_windows<In, T, SHIFT>(a, f, p1, p1, n1, off, out1, d1);
    if (n2)
        fmi_windows<In, T, SHIFT>(b, f, p2, p2, n2, off, out2, d2);
    return scored + n1 + n2;
}

// The three forms' entry points (windows from lists; whole maps). metrics/_native.py compiles this file
// once per form (-DFUSIONBENCH_FORM=0, 1, 2), in parallel, and links the objects into one library.
#ifndef FUSIONBENCH_FORM
#define FUSIONBENCH_FORM -1  // all three
#endif
extern "C" {
#if FUSIONBENCH_FORM < 0 || FUSIONBENCH_FORM == 0
// The ABI version metrics/_native.py checks, so that a stale build is never loaded.
int fusionbench_fmi_version() { return 3; }

void fmi_f32(const float *src, const float *f, const int64_t *ps, const int64_t *pf, int64_t n,
             const int64_t *off, float *out)
{
    fmi_windows<float, float, false>(src, f, ps, pf, n, off, out);
}

int64_t fmi_maps_f32(const float *a, const float *b, const float *f, int64_t H, int64_t W, int64_t r0, int64_t r1,
                     float *out1, float *out2)
{
    return fmi_maps<float, float, false>(a, b, f, H, W, r0, r1, out1, out2);
}
#endif

#if FUSIONBENCH_FORM < 0 || FUSIONBENCH_FORM == 1
void fmi_f64(const double *src, const double *f, const int64_t *ps, const int64_t *pf, int64_t n,
             const int64_t *off, double *out)
{
    fmi_windows<double, double, false>(src, f, ps, pf, n, off, out);
}

int64_t fmi_maps_f64(const double *a, const double *b, const double *f, int64_t H, int64_t W, int64_t r0, int64_t r1,
                     double *out1, double *out2)
{
    return fmi_maps<double, double, false>(a, b, f, H, W, r0, r1, out1, out2);
}
#endif

#if FUSIONBENCH_FORM < 0 || FUSIONBENCH_FORM == 2
void fmi_f64_scored_f32(const double *src, const double *f, const int64_t *ps, const int64_t *pf, int64_t n,
                        const int64_t *off, double *out)
{
    fmi_windows<double, float, true>(src, f, ps, pf, n, off, out);
}

int64_t fmi_maps_f64_scored_f32(const double *a, const double *b, const double *f, int64_t H, int64_t W, int64_t r0,
                                int64_t r1, double *out1, double *out2)
{
    return fmi_maps<double, float, true>(a, b, f, H, W, r0, r1, out1, out2);
}
#endif
}
