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
#include <cmath>
#include <cstdint>

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
        T a0 = std::sqrt(se * se + so * so), sa = a0, ma = a0;
        for (int64_t s = 1; s < NS; s++) {
            const T e = p[s * step], o = p[s * step + 1];
            const T a = std::sqrt(e * e + o * o);
            se = se + e;
            so = so + o;
            sa = sa + a;
            ma = a > ma ? a : ma;
        }
        const T x = std::sqrt(se * se + so * so) + eps;
        const T me = se / x, mo = so / x;
        T en = 0;
        for (int64_t s = 0; s < NS; s++) {
            const T e = p[s * step], o = p[s * step + 1];
            en = en + (e * me + o * mo - std::fabs(e * mo - o * me));
        }
        sum_an[i] = sa;
        max_an[i] = ma;
        energy[i] = en;
        an0_sq[i] = a0 * a0;
    }
}

extern "C" {
void phase_orientation_f32(const float *parts, int64_t n, int64_t i0, int64_t i1, double eps, float *out)
{
    orientation<float>(parts, n, i0, i1, float(eps), out);
}

void phase_orientation_f64(const double *parts, int64_t n, int64_t i0, int64_t i1, double eps, double *out)
{
    orientation<double>(parts, n, i0, i1, eps, out);
}
}
