// Phase congruency's sums over the scales of one orientation (metrics/lineage/phase.py, _orientation),
// hand-written for the CPU: MEFB's Qp.
//
// Why hand-written: these ~20 elementwise passes over the four scales' responses are the part of
// phase congruency that eager PyTorch runs slowest, and inductor's compiled form cost every process
// of a fresh machine its compilation (MEFB's only compiled kernel once the FMI windows had their own,
// fmi_kernel.cpp). One pass over each pixel's four responses here, built with fmi_kernel.cpp into the
// same library by metrics/_native.py, in about a second.
//
// The arithmetic is _orientation's, in its order (sums over the scales from the smallest), with no
// fused multiply-adds: each operation rounded once, as IEEE arithmetic of the formula (NumPy's
// values). Eager PyTorch's differ from those by rounding (up to 4e-6 in float32 and 7e-15 in float64
// on random responses of unit scale), as inductor's compiled form does.
#include <algorithm>  // std::nth_element
#include <cstdint>

#include "simd.h"  // vf32 / vf64, vexp, Vec<T>

// Pixels [i0, i1) of the responses parts (NS, n, 2): even (real) and odd (imaginary) parts of the
// NS = 4 scales (phase.py's NSCALE); out (4, n): sum of the amplitudes over the scales, their maximum,
// the raw energy and the squared amplitude at the smallest scale.
constexpr int64_t NS = 4;
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void orientation(const T *parts, int64_t n, int64_t i0,
                                                                      int64_t i1, T eps, T *out)
{
    T *sum_an = out, *max_an = out + n, *energy = out + 2 * n, *an0_sq = out + 3 * n;
    const int64_t step = 2 * n;
#pragma GCC ivdep
    for (int64_t i = i0; i < i1; i++) {
        const T *p = parts + 2 * i;
        T se = p[0], so = p[1];
        T a0 = ssqrt(se * se + so * so), sa = a0, ma = a0;
        for (int64_t s = 1; s < NS; s++) {
            const T e = p[s * step], o = p[s * step + 1];
            const T a = ssqrt(e * e + o * o);
            se = se + e;
            so = so + o;
            sa = sa + a;
            ma = a > ma ? a : ma;
        }
        const T x = ssqrt(se * se + so * so) + eps;
        const T me = se / x, mo = so / x;
        T en = 0;
        for (int64_t s = 0; s < NS; s++) {
            const T e = p[s * step], o = p[s * step + 1];
            en = en + (e * me + o * mo - sabs(e * mo - o * me));
        }
        sum_an[i] = sa;
        max_an[i] = ma;
        energy[i] = en;
        an0_sq[i] = a0 * a0;
    }
}

// One orientation's share of the totals, after its noise threshold (phase_congruency's loop after the
// median), for pixels [i0, i1) of n = images x hw: sums (4, n) as orientation() left them, threshold
// one per image; acc (5, n) += total amplitude, weighted energy, and the squared and crossed moments of
// the orientation's phase congruency (c, s: cos and sin of its angle). Registers of L pixels, glibc's
// vector exp; fp contraction off, as eager PyTorch computes each step.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void accumulate(const T *sums, const T *threshold, int64_t n,
                                                                     int64_t hw, int64_t i0, int64_t i1, T c, T s,
                                                                     T eps, T cut_off, T gain, T *acc)
{
    typedef typename Vec<T>::type V;
    constexpr int L = sizeof(V) / sizeof(T);
    const T *sum_an = sums, *max_an = sums + n, *energy = sums + 2 * n;
    T *tsum = acc, *ten = acc + n, *cx2 = acc + 2 * n, *cy2 = acc + 3 * n, *cxy = acc + 4 * n;
    const V zero = V{}, one = V{} + 1;
    auto step = [&](int64_t i, int k, T th) {  // pixels i .. i + k - 1 (k <= L) of one image
        const T *in[8] = {sum_an + i, max_an + i, energy + i, tsum + i, ten + i, cx2 + i, cy2 + i, cxy + i};
        V v[8];
        for (int a = 0; a < 8; a++) {
            if (k == L) {
                __builtin_memcpy(&v[a], in[a], sizeof(V));
            } else {  // a short group: its missing lanes take harmless values
                v[a] = a < 2 ? one : zero;
                for (int j = 0; j < k; j++)
                    v[a][j] = in[a][j];
            }
        }
        V sa = v[0], ma = v[1], en = v[2], ts = v[3], te = v[4], x2 = v[5], y2 = v[6], xy = v[7];
        V e = en - th;
        e = e < 0 ? zero : e;  // clamp(min=0): NaN stays NaN
        const V width = sa / (ma + eps) / T(NS);
        const V weighted = e / (one + vexp((cut_off - width) * gain));
        ts = ts + sa;
        te = te + weighted;
        const V pc = weighted / sa;  // no guard: 0 / 0 on a constant image, as the original
        const V cx = pc * c, cy = pc * s;
        x2 = x2 + cx * cx;
        y2 = y2 + cy * cy;
        xy = xy + cx * cy;
        T *out[5] = {tsum + i, ten + i, cx2 + i, cy2 + i, cxy + i};
        const V res[5] = {ts, te, x2, y2, xy};
        for (int a = 0; a < 5; a++) {
            if (k == L)
                __builtin_memcpy(out[a], &res[a], sizeof(V));
            else
                for (int j = 0; j < k; j++)
                    out[a][j] = res[a][j];
        }
    };
    for (int64_t i = i0; i < i1;) {
        const int64_t img = i / hw, end = i1 < (img + 1) * hw ? i1 : (img + 1) * hw;  // this image's pixels
        for (; i < end; i += L)
            step(i, int(end - i < L ? end - i : L), threshold[img]);
        i = end;  // the next image from its first pixel (a short last group overshot by L - k: where an image's
                  // pixels were no multiple of L, its next image's first L - k pixels were skipped, until 2026-12-06)
    }
}

// The totals' end (phase_congruency's return): pc = energy / (amplitude + eps) and the moments' maximum
// and minimum, out (3, n), for pixels [i0, i1). norient: the orientations summed.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void finish(const T *acc, int64_t n, int64_t i0, int64_t i1,
                                                                 T eps, T norient, T *out)
{
    const T *tsum = acc, *ten = acc + n, *cx2 = acc + 2 * n, *cy2 = acc + 3 * n, *cxy = acc + 4 * n;
#pragma GCC ivdep
    for (int64_t i = i0; i < i1; i++) {
        const T x2 = cx2[i] / (norient / 2), y2 = cy2[i] / (norient / 2), xy = cxy[i] / norient;
        const T d = x2 - y2;
        const T denom = ssqrt(xy * xy + d * d) + eps;
        out[i] = ten[i] / (tsum[i] + eps);
        out[n + i] = (y2 + x2 + denom) / 2;
        out[2 * n + i] = (y2 + x2 - denom) / 2;
    }
}

// MATLAB's median of rows [r0, r1) of x (rows, n), as phase.py's _median: the middle value, or the
// mean of the two middle values. A radix selection: one pass counts the values by their leading bits
// (13 of a float: 32 buckets an octave; 16 of a double), then only the bucket holding the middle is
// copied and std::nth_element finds the middle in it (0.29 -> 0.08 ms for 57,600 floats here, the
// values phase congruency's 18 noise medians a triple take); the upper middle value of an even row is
// the smallest value past the lower one, in its bucket or the next non-empty one. The noise estimate's
// rows hold no NaN (phase congruency's inputs are checked).
template <typename T> struct Bits;
template <> struct Bits<float> {
    typedef uint32_t U;
    static constexpr int lead = 13;
};
template <> struct Bits<double> {
    typedef uint64_t U;
    static constexpr int lead = 16;
};

template <typename T> static inline uint32_t bucket(T v)  // the leading bits of an order-keeping key
{
    typedef typename Bits<T>::U U;
    constexpr U sign = U(1) << (8 * sizeof(U) - 1);
    U u;
    __builtin_memcpy(&u, &v, sizeof(U));
    u = (u & sign) ? ~u : (u | sign);  // negative values reversed below the positive ones
    return uint32_t(u >> (8 * sizeof(U) - Bits<T>::lead));
}

template <typename T>
static void median(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)
{
    constexpr int64_t NB = int64_t(1) << Bits<T>::lead;
    Buf<int64_t> count(NB);
    for (int64_t r = r0; r < r1; r++) {
        const T *row = x + r * n;
        const int64_t k = n % 2 ? n / 2 : n / 2 - 1;  // the (lower) middle value's place
        for (int64_t b = 0; b < NB; b++)
            count[b] = 0;
        for (int64_t i = 0; i < n; i++)
            count[bucket(row[i])]++;
        int64_t b = 0, before = 0;
        while (before + count[b] <= k)
            before += count[b++];
        // The bucket's values, in a buffer of their number (of the row's length, it was an mmap of the
        // kernel's own a call: glibc then raises its mmap threshold, and the process keeps more memory).
        Buf<T> buf(count[b]);
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (bucket(row[i]) == uint32_t(b))
                buf[m++] = row[i];
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
            for (int64_t i = at + 2; i < m; i++)
                upper = buf[i] < upper ? buf[i] : upper;
        } else {
            int64_t next = b + 1;
            while (count[next] == 0)
                next++;
            bool first = true;
            upper = lower;
            for (int64_t i = 0; i < n; i++)
                if (bucket(row[i]) == uint32_t(next) && (first || row[i] < upper)) {
                    upper = row[i];
                    first = false;
                }
        }
        out[r] = (lower + upper) / 2;
    }
}

// The entry points of one type (T, SUFFIX: float, f32 or double, f64); a unit built for one type has only its own.
#define FUSIONBENCH_PHASE(T, SUFFIX)                                                                                  \
    void phase_orientation_##SUFFIX(const T *parts, int64_t n, int64_t i0, int64_t i1, double eps, T *out)            \
    {                                                                                                                 \
        orientation<T>(parts, n, i0, i1, T(eps), out);                                                                \
    }                                                                                                                 \
    void phase_accumulate_##SUFFIX(const T *sums, const T *threshold, int64_t n, int64_t hw, int64_t i0,              \
                                   int64_t i1, double c, double s, double eps, double cut_off, double gain,           \
                                   T *acc)                                                                            \
    {                                                                                                                 \
        accumulate<T>(sums, threshold, n, hw, i0, i1, T(c), T(s), T(eps), T(cut_off), T(gain), acc);                  \
    }                                                                                                                 \
    void phase_finish_##SUFFIX(const T *acc, int64_t n, int64_t i0, int64_t i1, double eps, double norient,           \
                               T *out)                                                                                \
    {                                                                                                                 \
        finish<T>(acc, n, i0, i1, T(eps), T(norient), out);                                                           \
    }                                                                                                                 \
    void phase_median_##SUFFIX(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)                                 \
    {                                                                                                                 \
        median<T>(x, n, r0, r1, out);                                                                                 \
    }
extern "C" {
#if FUSIONBENCH_F32
FUSIONBENCH_PHASE(float, f32)
#endif
#if FUSIONBENCH_F64
FUSIONBENCH_PHASE(double, f64)
#endif
}
