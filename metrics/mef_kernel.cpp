// Ma, Zeng & Wang's MEF-SSIM of a fused image against two sources, per pixel, hand-written for the CPU:
// Tang's MS_SSIM and MEFB's MEF_SSIM (metrics/lineage/tang.py, _desired and _mef_ssim).
//
// Why hand-written: after the local moments (box sums and Gaussian means, metrics/filter_kernel.cpp),
// the index is ~60 elementwise steps per pixel (the desired patch's weights from a tangent and two
// powers, its norm, its moments, then the SSIM structure term), which eager PyTorch runs as ~60
// passes over float64 maps, each with its own temporary: two thirds of MS_SSIM's time. Here each pixel
// takes them in registers, in one pass for the sources' part and one for F's.
//
// The arithmetic is tang.py's in its order, with no fused multiply-adds (each step rounded once, as
// PyTorch's elementwise operations round them); tan and pow are glibc's vector forms (libmvec; within
// a few ulp, as PyTorch's own vector forms are). The mean over the pixels is summed in double.
#include <cstdint>

#include "simd.h"  // vf64, vsqrt, vtan, vpow

// One register of pixels: in = the 11x11 box sums of x0, x1, x0^2, x0 x1, x1^2 and their Gaussian means; res =
// the desired patch's coefficients a0, a1 and offset b (desired = a0 x0 + a1 x1 - b), its contrast scale,
// Gaussian mean and mean square. Each lane from its own pixel's values alone.
__attribute__((optimize("fp-contract=off"))) static inline void desired_pixels(const vf64 *in, vf64 *res)
{
    typedef vf64 V;
    const double eps = 2.220446049250313e-16;  // torch.finfo(torch.float64).eps, as tang.py takes it
    const V zero = {}, one = zero + 1, tiny = zero + 1e-300;
    const V u0 = in[0], u1 = in[1], e00 = in[2], e01 = in[3], e11 = in[4];
    const V g0 = in[5], g1 = in[6], ge00 = in[7], ge01 = in[8], ge11 = in[9];
    const V mu0 = u0 / 121, mu1 = u1 / 121;
    V t0 = 121 * (e00 / 121 - mu0 * mu0), t1 = 121 * (e11 / 121 - mu1 * mu1);
    const V ed0 = vsqrt(t0 < 0 ? zero : t0) + 0.001, ed1 = vsqrt(t1 < 0 ? zero : t1) + 0.001;
    const V s_sum = u0 + u1;
    const V s_sq = e00 + e01 * 2 + e11;
    const V q = s_sq - s_sum * s_sum / 121;
    const V num = vsqrt(q < 0 ? zero : q);
    t0 = e00 - 2 * mu0 * u0 + 121 * mu0 * mu0;
    t1 = e11 - 2 * mu1 * u1 + 121 * mu1 * mu1;
    const V den = vsqrt(t0 < 0 ? zero : t0) + vsqrt(t1 < 0 ? zero : t1);
    V r = (num + eps) / (den + eps);
    r = r > 1 ? one - eps : r;
    r = r < 0 ? zero + eps : r;
    V p = vtan(1.5707963267948966 * r);  // math.pi / 2 * r
    p = p > 10 ? zero + 10 : p;
    const V w0 = vpow(ed0 / 11, p) + eps, w1 = vpow(ed1 / 11, p) + eps;
    const V total = w0 + w1;
    const V a0 = w0 / total / ed0, a1 = w1 / total / ed1;
    const V b = a0 * mu0 + a1 * mu1;
    const V max_ed = ed0 > ed1 ? ed0 : ed1;
    V norm2 = a0 * a0 * e00 + a0 * a1 * e01 * 2 + a1 * a1 * e11;
    norm2 = norm2 - 2 * b * (a0 * u0 + a1 * u1) + 121 * b * b;
    const V scale = norm2 > 0 ? max_ed / vsqrt(norm2 < tiny ? tiny : norm2) : one;
    const V m_r = a0 * g0 + a1 * g1 - b;
    V e_rr = a0 * a0 * ge00 + a0 * a1 * ge01 * 2 + a1 * a1 * ge11;
    e_rr = e_rr - 2 * b * (a0 * g0 + a1 * g1) + b * b;
    res[0] = a0, res[1] = a1, res[2] = b, res[3] = scale, res[4] = m_r, res[5] = e_rr;
}

// Pixels [0, n) of each of the maps of one image. box (5, n): 11x11 box sums of x0, x1, x0^2, x0 x1,
// x1^2 ('valid'); gauss (5, n): their Gaussian means. out (6, n): desired_pixels' six maps. One SIMD
// register of pixels at a time (the last, short one padded with zeros), with glibc's vector tan and pow.
// A register whose ten inputs are all +0 (the images' background, 70% of the phantom's pixels: the box sums
// and the filters write +0 there) gets the values desired_pixels gives +0, computed once a call: the same
// bits, without its tangent and two powers.
__attribute__((optimize("fp-contract=off"))) static void desired(const double *box, const double *gauss, int64_t n,
                                                                  double *out)
{
    typedef vf64 V;
    typedef int64_t I __attribute__((vector_size(VBYTES)));
    constexpr int64_t L = VBYTES / sizeof(double);
    V background[6];
    const V zeros[10] = {};
    desired_pixels(zeros, background);
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;  // lanes in this register
        // Whole registers by vector loads and stores (simd.h's loadu, store): a variable size made each copy a
        // `rep movs`, two fifths of this function's time; and a __builtin_memcpy into or out of an array of
        // registers went through the stack in 32-byte halves (1.76-1.80 -> 1.44-1.49 ms a 230x230 image in
        // a harness, one thread, the same values).
        V in[10];
        I bits = {};
        for (int64_t k = 0; k < 10; k++) {
            const double *src = (k < 5 ? box + k * n : gauss + (k - 5) * n) + i;
            in[k] = m == L ? loadu<V>(src) : load<V>(src, m);
            I b;
            __builtin_memcpy(&b, &in[k], sizeof(V));
            bits |= b;
        }
        int64_t any = 0;
        for (int64_t l = 0; l < L; l++)
            any |= bits[l];
        V res[6];
        if (any)
            desired_pixels(in, res);
        for (int64_t k = 0; k < 6; k++)
            store(out + k * n + i, any ? res[k] : background[k], m);
    }
}

// The mean over [0, n) of F's structure index against the desired patch: des (6, n) from desired();
// fm (4, n): Gaussian means of F, x0 F, x1 F, F^2; c: the stabilising constant (0.03 * 255)^2.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static double score(const T *des, const T *fm, int64_t n, T c)
{
    const T *a0 = des, *a1 = des + n, *b = des + 2 * n, *scale = des + 3 * n, *m_r = des + 4 * n, *e_rr = des + 5 * n;
    const T *mu_f = fm, *e0f = fm + n, *e1f = fm + 2 * n, *eff = fm + 3 * n;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const T e_rf = a0[i] * e0f[i] + a1[i] * e1f[i] - b[i] * mu_f[i];
        const T var_r = scale[i] * scale[i] * (e_rr[i] - m_r[i] * m_r[i]);
        const T var_f = eff[i] - mu_f[i] * mu_f[i];
        const T cov = scale[i] * (e_rf - m_r[i] * mu_f[i]);
        sum += double((T(2) * cov + c) / (var_r + var_f + c));
    }
    return sum / double(n);
}

// Images [i0, i1) of a batch, each image's maps contiguous, one image after another.
extern "C" {
void mef_desired_f64(const double *box, const double *gauss, int64_t n, int64_t i0, int64_t i1, double *out)
{
    for (int64_t i = i0; i < i1; i++)
        desired(box + 5 * n * i, gauss + 5 * n * i, n, out + 6 * n * i);
}
void mef_score_f64(const double *des, const double *fm, int64_t n, int64_t i0, int64_t i1, double c, double *out)
{
    for (int64_t i = i0; i < i1; i++)
        out[i] = score(des + 6 * n * i, fm + 4 * n * i, n, c);
}
}
