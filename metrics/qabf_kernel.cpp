// Xydeas & Petrovic's Q^AB/F as VIFB, MEFB, Tang and CDDFuse compute it (metrics/lineage/kernels.py,
// qabf), and Tang's N^AB/F (below), hand-written for the CPU: from the three images to the two sums
// whose ratio is the index. Also Liu's Q_XY after its Sobel responses (xydeas, below) and MATLAB's Sobel
// edge map (edge_sobel, below), the feature of the FMI that Tang's FMI_pixel and MEFB's FMI take.
//
// Why hand-written: eager PyTorch takes ~40 passes over the maps (Sobel responses as shifted slices,
// magnitudes, orientations with atan, the two sigmoids per source), each with its temporary: 3.2 ms
// a triple of 240x240 on one thread. Here each register of pixels takes them in one pass, with
// glibc's vector atan and exp.
//
// The arithmetic is kernels.py's in its order, with no fused multiply-adds: the Sobel responses as
// metrics/filters.py's filter_rank_one_3 takes them (conv2 'same' with h3 and h1: a column pass of
// (1/2, 1, 1/2) or (1, 0, -1), then a row pass of (2, 0, -2) or (-1, -2, -1), zeros around the image),
// so that they round as there; the sums over the pixels in double (PyTorch sums float32 maps in
// float32, in another order).
#include <cstdint>

#include "simd.h"  // vf32 / vf64, vexp, vatan, vsqrt, Vec<T>

// The column passes of a 3x3 Sobel filter at padded rows p, p + pw, p + 2 pw and columns +0, +1, +2
// (one register each): col = (1/2, 1, 1/2), dif = (1, 0, -1), as filter_rank_one_3 sums them.
template <typename V, typename T>
__attribute__((optimize("fp-contract=off"))) static inline void column_passes(const T *p, int64_t pw, V *col, V *dif)
{
    for (int64_t c = 0; c < 3; c++) {
        V up, mid, down;
        __builtin_memcpy(&up, p + c, sizeof(V));
        __builtin_memcpy(&mid, p + pw + c, sizeof(V));
        __builtin_memcpy(&down, p + 2 * pw + c, sizeof(V));
        col[c] = up * T(0.5) + mid + down * T(0.5);
        dif[c] = up - down;
    }
}

// out[0] += the row's w numerators (row[0, w)), out[1] += its w denominators (row[w + L, 2 w + L)).
template <typename T> static inline void add_row(const T *row, int64_t w, int64_t L, double *out)
{
    for (int64_t j = 0; j < w; j++) {
        out[0] += double(row[j]);
        out[1] += double(row[w + L + j]);
    }
}

// One image triple a, b, f (h, w): out[0] = sum over the pixels of Q^AF g_A + Q^BF g_B, out[1] = sum of
// g_A + g_B. A register of pixels where no image has a gradient (an image's background: 70% of the phantom's
// pixels) adds +0 to both, the values the steps give there (each Q finite, times a strength of +0), without
// its three arctangents and four exponentials.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void qabf(const T *a, const T *b, const T *f, int64_t h,
                                                               int64_t w, double *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t pw = w + 2 + L;  // padded row: a zero column each side, and a register's slack
    Buf<T> pad(3 * (h + 2) * pw, T(0)), row(2 * w + 2 * L);
    const T *src[3] = {a, b, f};
    for (int64_t k = 0; k < 3; k++)
        for (int64_t i = 0; i < h; i++)
            __builtin_memcpy(&pad[(k * (h + 2) + i + 1) * pw + 1], src[k] + i * w, w * sizeof(T));
    const V zero = {}, one = zero + 1, pi_2 = zero + T(1.5707963267948966);
    out[0] = out[1] = 0;
    for (int64_t i = 0; i < h; i++) {
        for (int64_t j = 0; j < w; j += L) {
            V g[3], t[3], gx[3], gy[3];
            for (int64_t k = 0; k < 3; k++) {
                const T *p = &pad[(k * (h + 2) + i) * pw + j];  // padded rows i..i+2, columns j..j+2
                V col[3], dif[3];
                column_passes(p, pw, col, dif);
                gx[k] = col[0] * 2 + col[2] * -2;
                gy[k] = dif[0] * -1 + dif[1] * -2 + dif[2] * -1;
                g[k] = vsqrt(gx[k] * gx[k] + gy[k] * gy[k]);
            }
            if (!lanes_set((g[0] != 0) | (g[1] != 0) | (g[2] != 0))) {  // flat everywhere: +0 and +0 (below)
                __builtin_memcpy(&row[j], &zero, sizeof(V));
                __builtin_memcpy(&row[w + L + j], &zero, sizeof(V));
                continue;
            }
            for (int64_t k = 0; k < 3; k++)
                t[k] = gx[k] == 0 ? pi_2 : vatan(gy[k] / gx[k]);
            V q[2];
            for (int64_t s = 0; s < 2; s++) {
                const V gs = g[s], gf = g[2];
                const V rel = gs > gf ? gf / gs : (gs == gf ? gf : gs / gf);
                const V d = t[s] - t[2];
                const V ang = one - (d < 0 ? -d : d) / pi_2;
                const V qg = T(0.9994) / (one + vexp(T(-15) * (rel - T(0.5))));
                const V qa = T(0.9879) / (one + vexp(T(-22) * (ang - T(0.8))));
                q[s] = qg * qa;
            }
            const V n = q[0] * g[0] + q[1] * g[1], tot = g[0] + g[1];
            __builtin_memcpy(&row[j], &n, sizeof(V));
            __builtin_memcpy(&row[w + L + j], &tot, sizeof(V));
        }
        add_row(row.data(), w, L, out);
    }
}

// Shreyamsha Kumar's N^AB/F as Tang's analysis_nabf.m computes it (metrics/lineage/tang.py, nabf), for
// one triple in Tang's roles: r plays the "fused" image (Tang passes B there), s0 and s1 the "sources"
// (A, and F). Sobel / 8 on the mirror-extended image (the edge not repeated), as filter_rank_one_3 takes
// it: vt a column pass of (1/2, 1, 1/2) then a row pass of (-1/4, 0, 1/4), ht (1, 0, -1) then (-1/8,
// -1/4, -1/8). out[0] = the sum of the artefacts' weighted (1 - Q), out[1] = the sum of the weights. A
// register of pixels where no image has a gradient adds what the steps give there, without them: no
// artefact (+0: the "fused" strength is no larger) and both weights 0.001.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void nabf(const T *r, const T *s0, const T *s1, int64_t h,
                                                               int64_t w, double *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t pw = w + 2 + L;
    Buf<T> pad(3 * (h + 2) * pw, T(0)), row(2 * w + 2 * L);
    const T *src[3] = {r, s0, s1};
    for (int64_t k = 0; k < 3; k++) {
        T *base = &pad[k * (h + 2) * pw];
        for (int64_t i = 0; i < h + 2; i++) {  // padded row i is image row i - 1, reflected at the edges
            const int64_t y = i == 0 ? 1 : (i == h + 1 ? h - 2 : i - 1);
            const T *line = src[k] + y * w;
            __builtin_memcpy(base + i * pw + 1, line, w * sizeof(T));
            base[i * pw] = line[1];
            base[i * pw + w + 1] = line[w - 2];
        }
    }
    const V zero = {}, one = zero + 1, two = zero + 2, eps_w = zero + T(0.001);
    const V pi = zero + T(3.141592653589793), pi_2 = zero + T(1.5707963267948966), one_half = zero + T(1.5);
    out[0] = out[1] = 0;
    for (int64_t i = 0; i < h; i++) {
        for (int64_t j = 0; j < w; j += L) {
            V g[3], t[3], gv[3], gh[3];
            for (int64_t k = 0; k < 3; k++) {
                const T *p = &pad[(k * (h + 2) + i) * pw + j];
                V col[3], dif[3];
                column_passes(p, pw, col, dif);
                gv[k] = col[0] * T(-0.25) + col[2] * T(0.25);
                gh[k] = dif[0] * T(-0.125) + dif[1] * T(-0.25) + dif[2] * T(-0.125);
                g[k] = vsqrt(gh[k] * gh[k] + gv[k] * gv[k]);
            }
            if (!lanes_set((g[0] != 0) | (g[1] != 0) | (g[2] != 0))) {  // flat everywhere: +0, 2 eps_w (above)
                const V tot = eps_w + eps_w;
                __builtin_memcpy(&row[j], &zero, sizeof(V));
                __builtin_memcpy(&row[w + L + j], &tot, sizeof(V));
                continue;
            }
            for (int64_t k = 0; k < 3; k++)
                t[k] = (gv[k] == 0) & (gh[k] == 0) ? zero : vatan(gv[k] / gh[k]);
            const V gf = g[0];
            V w_s[2], q[2];
            for (int64_t s = 0; s < 2; s++) {
                const V gs = g[s + 1];
                const V rel = (gs == 0) | (gf == 0) ? zero : (gs > gf ? gf / gs : gs / gf);
                V d = t[s + 1] - t[0];
                d = (d < 0 ? -d : d) - pi_2;
                const V ang = (d < 0 ? -d : d) * 2 / pi;
                const V qg = T(0.9999) / (one + vexp(T(-19) * (rel - T(0.5))));
                const V qa = T(0.9995) / (one + vexp(T(-22) * (ang - T(0.5))));
                q[s] = vsqrt(qg * qa);
                w_s[s] = gs >= two ? vpow(gs, one_half) : eps_w;
            }
            const V na = (gf > g[1]) & (gf > g[2]) ? one : zero;
            const V n = na * ((one - q[0]) * w_s[0] + (one - q[1]) * w_s[1]), tot = w_s[0] + w_s[1];
            __builtin_memcpy(&row[j], &n, sizeof(V));
            __builtin_memcpy(&row[w + L + j], &tot, sizeof(V));
        }
        add_row(row.data(), w, L, out);
    }
}

// MATLAB's edge(I) with its defaults (Sobel, automatic threshold, both directions, thinning), as
// metrics/lineage/kernels.py's edge_sobel computes it in double, in two passes around the threshold, 4
// mean(b), which PyTorch takes between them (so that it rounds as there). Pass one, for images [i0, i1) of
// x (n, h, w): gx, gy and b = gx^2 + gy^2, each (n, h, w), from the replicate-padded image, Sobel / 8 as
// filter_rank_one_3 takes it: gy a column pass of (1, 0, -1) then a row pass of (1/8, 1/4, 1/8), gx
// (1/2, 1, 1/2) then (1/4, 0, -1/4). The same roundings in the same order: the same values, bit for bit.
__attribute__((optimize("fp-contract=off"))) static void edge_gradients(const double *x, int64_t h, int64_t w,
                                                                         double *gx, double *gy, double *b)
{
    typedef vf64 V;
    constexpr int64_t L = VBYTES / sizeof(double);
    const int64_t pw = w + 2 + L;
    Buf<double> pad((h + 2) * pw, 0.0), row(3 * (w + L));
    for (int64_t i = 0; i < h + 2; i++) {  // padded row i is image row i - 1, the edges repeated
        const double *line = x + (i < 1 ? 0 : i - 1 > h - 1 ? h - 1 : i - 1) * w;
        __builtin_memcpy(&pad[i * pw + 1], line, w * sizeof(double));
        pad[i * pw] = line[0];
        pad[i * pw + w + 1] = line[w - 1];
    }
    for (int64_t i = 0; i < h; i++) {
        for (int64_t j = 0; j < w; j += L) {
            V col[3], dif[3];
            column_passes(&pad[i * pw + j], pw, col, dif);
            const V vx = col[0] * 0.25 + col[2] * -0.25;
            const V vy = dif[0] * 0.125 + dif[1] * 0.25 + dif[2] * 0.125;
            const V vb = vx * vx + vy * vy;
            __builtin_memcpy(&row[j], &vx, sizeof(V));
            __builtin_memcpy(&row[w + L + j], &vy, sizeof(V));
            __builtin_memcpy(&row[2 * (w + L) + j], &vb, sizeof(V));
        }
        __builtin_memcpy(gx + i * w, &row[0], w * sizeof(double));
        __builtin_memcpy(gy + i * w, &row[w + L], w * sizeof(double));
        __builtin_memcpy(b + i * w, &row[2 * (w + L)], w * sizeof(double));
    }
}

// Pass two: e = 1 where b > cutoff and the pixel survives thinning, as edge_sobel states it: |gx| >= |gy|
// - 100 eps with b(r, c-1) <= b(r, c) > b(r, c+1), or |gy| >= |gx| - 100 eps with b(r-1, c) <= b(r, c) >
// b(r+1, c), a missing neighbour at the border counting as passed; else 0.
static void edge_thin(const double *gx, const double *gy, const double *b, double cutoff, int64_t h, int64_t w,
                      double *e)
{
    const double tol = 100 * 2.220446049250313e-16;  // 100 * eps(1), as edge_sobel's torch.finfo
    // Missing neighbours as -inf, which every test passes (and a NaN b, which fails b > cutoff anyway):
    // the loop has no branch and is vectorised. row: the pixel's row with one each side.
    const double none = -__builtin_inf();
    Buf<double> row(w + 2, none), edge(w, none);
    for (int64_t r = 0; r < h; r++) {
        const double *v = b + r * w, *up = r ? v - w : edge.data(), *dn = r < h - 1 ? v + w : edge.data();
        __builtin_memcpy(&row[1], v, w * sizeof(double));
        const double *x = gx + r * w, *y = gy + r * w;
        double *o = e + r * w;
        for (int64_t c = 0; c < w; c++) {
            const double ax = x[c] < 0 ? -x[c] : x[c], ay = y[c] < 0 ? -y[c] : y[c], bc = v[c];
            const bool across = (ax >= ay - tol) & (row[c] <= bc) & (bc > row[c + 2]);
            const bool down = (ay >= ax - tol) & (up[c] <= bc) & (bc > dn[c]);
            o[c] = (bc > cutoff) & (across | down) ? 1.0 : 0.0;
        }
    }
}

// Liu's Q_XY (metrics/qabf.py, _q_xy_maps: metricXydeas.m) from the Sobel responses of A, B and F (in[0..5]:
// A's gx, gy, then B's, then F's), per pixel: the numerator Q_AF g_A + Q_BF g_B and the denominator g_A + g_B
// (n pixels each), whose mean ratio or ratio of sums qabf.py then takes. The toolbox's zero substitutions in
// its order (F's strength substituted during A's pass); c: Gamma_g, k_g, sigma_g, Gamma_a, k_a, sigma_a.
// Each step as PyTorch's eager one rounds it, fp contraction off (Gamma / x as PyTorch's reciprocal of x
// times Gamma); atan and exp are glibc's vector ones (PyTorch's are SLEEF's: within an ulp or two).
template <typename T> struct XydeasConstants {
    T gam_g, k_g, s_g, gam_a, k_a, s_a;
};

// One register of pixels: in = A's gx, gy, B's, F's; out = the numerator and the denominator.
template <typename T, typename V>
__attribute__((optimize("fp-contract=off"))) static inline void xydeas_pixels(const V *in, const XydeasConstants<T> &c,
                                                                               V *out)
{
    const V zero = {}, one = zero + 1, two = zero + 2, tiny = zero + T(1e-5);
    const V half_pi = zero + T(1.5707963267948966), pi = zero + T(3.141592653589793);
    V g[3], t[3];
    for (int k = 0; k < 3; k++) {
        const V gx = in[2 * k], gy = in[2 * k + 1];
        g[k] = vsqrt(gx * gx + gy * gy);
        t[k] = vatan(gy / (gx == 0 ? tiny : gx));
    }
    V gf = g[2], q[2];
    for (int s = 0; s < 2; s++) {  // qabf.py's _relative, then the two sigmoids
        const V raw = g[s];
        const auto bimap = raw > gf;
        const V gs = raw == 0 ? tiny : raw;
        const V above = gf / gs;
        gf = gf == 0 ? tiny : gf;
        const V rel = bimap ? above : gs / gf;
        g[s] = gs;
        V d = t[s] - t[2];
        d = (d < 0 ? -d : d) - half_pi;
        const V ang = (d < 0 ? -d : d) * two / pi;
        const V qg = one / (one + vexp(c.k_g * (rel - c.s_g))) * c.gam_g;
        const V qa = one / (one + vexp(c.k_a * (ang - c.s_a))) * c.gam_a;
        q[s] = qg * qa;
    }
    out[0] = q[0] * g[0] + q[1] * g[1];
    out[1] = g[0] + g[1];
}

// A register whose six responses are all zeros (of either sign: the steps see only their squares, their
// comparisons with 0 and atan(+-0 / 1e-5) = +-0, whose differences' magnitudes are 0) gets the values the
// steps give zeros, computed once a call (the toolbox's 1e-5 substitutions make them no zeros): the same
// bits, without its three arctangents and four exponentials; the background of an image is most of it.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void xydeas(const T *const *in, int64_t n, const double *c,
                                                                 T *num, T *den)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    const XydeasConstants<T> k = {T(c[0]), T(c[1]), T(c[2]), T(c[3]), T(c[4]), T(c[5])};
    V background[2];
    const V zeros[6] = {};
    xydeas_pixels(zeros, k, background);
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        V x[6], res[2];
        auto any = V{} != V{};
        for (int j = 0; j < 6; j++) {
            x[j] = load<V>(in[j] + i, m);
            any |= x[j] != 0;
        }
        if (lanes_set(any))
            xydeas_pixels(x, k, res);
        else
            res[0] = background[0], res[1] = background[1];
        store(num + i, res[0], m);
        store(den + i, res[1], m);
    }
}

// Images [i0, i1) of a batch of (h, w) images, one after another; out (batch, 2).
#define FUSIONBENCH_TRIPLES(name, index, T)                                                                   \
    void name(const T *x, const T *y, const T *z, int64_t h, int64_t w, int64_t i0, int64_t i1, double *out) \
    {                                                                                                         \
        for (int64_t i = i0; i < i1; i++)                                                                     \
            index(x + i * h * w, y + i * h * w, z + i * h * w, h, w, out + 2 * i);                            \
    }
#define FUSIONBENCH_XYDEAS(T, SUFFIX)                                                                          \
    void xydeas_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1,         \
                         const double *c, T *num, T *den)                                                     \
    {                                                                                                         \
        for (int64_t i = i0; i < i1; i++) {                                                                   \
            const T *p[6];                                                                                    \
            for (int k = 0; k < 6; k++)                                                                       \
                p[k] = in[k] + i * stride[k];                                                                 \
            xydeas<T>(p, n, c, num + i * n, den + i * n);                                                     \
        }                                                                                                     \
    }
extern "C" {
#if FUSIONBENCH_F32
FUSIONBENCH_XYDEAS(float, f32)
FUSIONBENCH_TRIPLES(qabf_f32, qabf, float)
FUSIONBENCH_TRIPLES(nabf_f32, nabf, float)
#endif
#if FUSIONBENCH_F64
FUSIONBENCH_XYDEAS(double, f64)
FUSIONBENCH_TRIPLES(qabf_f64, qabf, double)
FUSIONBENCH_TRIPLES(nabf_f64, nabf, double)
void edge_gradients_f64(const double *x, int64_t h, int64_t w, int64_t i0, int64_t i1, double *gx, double *gy,
                        double *b)
{
    for (int64_t i = i0; i < i1; i++)
        edge_gradients(x + i * h * w, h, w, gx + i * h * w, gy + i * h * w, b + i * h * w);
}
void edge_thin_f64(const double *gx, const double *gy, const double *b, const double *cutoff, int64_t h, int64_t w,
                   int64_t i0, int64_t i1, double *e)
{
    for (int64_t i = i0; i < i1; i++)
        edge_thin(gx + i * h * w, gy + i * h * w, b + i * h * w, cutoff[i], h, w, e + i * h * w);
}
#endif
}
