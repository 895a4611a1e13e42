// Per-pixel steps after local moments, hand-written for the CPU: Sheikh & Bovik's pixel-domain VIF (the
// maps of metrics/lineage/kernels.py's vifp_scales: Tang's VIF, CDDFuse's VIFF, MEFB's VIF), the mean
// of Wang et al.'s SSIM map (kernels.py, ssim_means: Tang's SSIM, VIFB's Ssim), Liu's SSIM and Q_P maps
// (metrics/ssim.py, metrics/piella.py), MEFB's Q_P, Q_W, Q_Y and Q_C, Q_CB's tail, and CDDFuse's SSIM
// (skimage's) whole, its uniform windows included.
//
// Why hand-written: at each of VIF's four scales, once the Gaussian moments are filtered
// (metrics/filter_kernel.cpp), a reference's maps are ~25 elementwise steps a pixel (the gain, the
// noise variance, the original's four corrections, the information with distortion) and its own ~7
// (its variance and the information without), which eager PyTorch ran as as many float64 passes with a
// temporary each: two thirds of Tang's VIF (3.7 of 5.5 ms a triple). An SSIM map is ~15 such steps and
// a mean. Here each pixel takes them in registers, in one pass.
//
// The arithmetic is kernels.py's in its order, with no fused multiply-adds (each step rounded once, as
// PyTorch's elementwise operations round them). The base-10 logarithm is glibc's vector log2 (libmvec)
// times log10(2): within an ulp or two of PyTorch's log10, as its own vector forms are. Means are summed
// in double, lane by lane, then over the lanes.
#include <cstdint>

#include "simd.h"  // vf32 / vf64, vlog2, Vec<T>

template <typename V, typename T> static inline V log10_(V x)
{
    return vlog2(x) * T(0.301029995663981195213738894724493027);  // log10(2)
}

// A reference's own maps: s1 = max(e_kk - mu^2, 0) and den = log10(1 + s1' / sigma_nsq), s1' = 0 where
// s1 < eps (kernels.py, _vif_references). mu, e_kk: its local mean and mean square.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void reference(const T *mu, const T *e_kk, int64_t n, T sigma_nsq,
                                                                    T eps, T *s1, T *den)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    const V zero = {};
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const V u = load<V>(mu + i, m);
        V s = load<V>(e_kk + i, m) - u * u;
        s = s < 0 ? zero : s;  // clamp(min=0): NaN stays NaN
        store(s1 + i, s, m);
        store(den + i, log10_<V, T>((s < eps ? zero : s) / sigma_nsq + 1), m);
    }
}

// One reference's maps against F (kernels.py, vifp_scales): g = s12 / (s1 + eps), sv = s2 - g s12 with
// the original's corrections, num = log10(1 + g^2 s1' / (sv + sigma_nsq)). mu_k, s1: the reference's
// mean and clamped variance; mu_f, e_ff: F's mean and mean square; e_kf: the mean of their product.
// g may be null (not written).
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void against(const T *mu_k, const T *s1_k, const T *mu_f,
                                                                  const T *e_ff, const T *e_kf, int64_t n, T sigma_nsq,
                                                                  T eps, T *num, T *g_out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    const V zero = {};
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const V uf = load<V>(mu_f + i, m), uk = load<V>(mu_k + i, m), s1 = load<V>(s1_k + i, m);
        V s2 = load<V>(e_ff + i, m) - uf * uf;
        s2 = s2 < 0 ? zero : s2;
        const auto low1 = s1 < eps, low2 = s2 < eps;
        const V s12 = load<V>(e_kf + i, m) - uk * uf;
        V g = s12 / (s1 + eps);
        V sv = s2 - g * s12;
        const auto neg = g < 0;
        sv = (low1 | neg) ? s2 : sv;
        sv = (low2 | (sv <= eps)) ? zero + eps : sv;
        g = (low1 | low2 | neg) ? zero : g;
        store(num + i, log10_<V, T>(g * g * (low1 ? zero : s1) / (sv + sigma_nsq) + 1), m);
        if (g_out)
            store(g_out + i, g, m);
    }
}

// MEFB's VIFF at one scale (mefb.py, vif): where g_a < g_b A's maps, else B's (NaN: B's), each plus c: vid from
// the information with distortion, vind from the one without; the PyTorch steps' values (torch.where, + c),
// which the caller sums as it summed theirs.
template <typename T>
static void vif_pick(const T *g_a, const T *g_b, const T *num_a, const T *num_b, const T *den_a, const T *den_b,
                     int64_t n, T c, T *vid, T *vind)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const auto a = load<V>(g_a + i, m) < load<V>(g_b + i, m);
        store(vid + i, (a ? load<V>(num_a + i, m) : load<V>(num_b + i, m)) + c, m);
        store(vind + i, (a ? load<V>(den_a + i, m) : load<V>(den_b + i, m)) + c, m);
    }
}

// The mean over [0, n) of the SSIM map of x and y from their local means, mean squares and mean product:
// ((2 mu_x mu_y + c1) (2 cov + c2)) / ((mu_x^2 + mu_y^2 + c1) (var_x + var_y + c2)), with var and cov
// the moments minus the products of the means. Symmetric in x and y bit for bit (each step is).
template <typename T>
__attribute__((optimize("fp-contract=off"))) static double ssim_mean(const T *mu_x, const T *mu_y, const T *e_xx,
                                                                      const T *e_yy, const T *e_xy, int64_t n, T c1,
                                                                      T c2)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    double sum[L] = {};
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const V ux = load<V>(mu_x + i, m), uy = load<V>(mu_y + i, m);
        const V vx = load<V>(e_xx + i, m) - ux * ux, vy = load<V>(e_yy + i, m) - uy * uy;
        const V cov = load<V>(e_xy + i, m) - ux * uy;
        V s = ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        if (m < L)  // the short register's empty lanes (zeros: c1 c2 / (c1 c2) = 1) left out
            for (int64_t k = m; k < L; k++)
                s[k] = 0;
        for (int64_t k = 0; k < L; k++)
            sum[k] += double(s[k]);
    }
    double total = 0;
    for (int64_t k = 0; k < L; k++)
        total += sum[k];
    return total / double(n);
}

// Zhao et al.'s Q_P at one feature map (metrics/lineage/mefb.py, qp): for k = 0, 1, 2 (A's, B's and the
// picked map, each masked) the local correlation with F's map, r_k = (cov + C) / (sqrt|var_k var_f| + C),
// C = 1e-4, where mask k holds, else mu_k * 0 (NaN where the mean is); the largest over k skipping NaN
// (MATLAB's max, fmax), summed over [0, n) in double. mu, e_kk, e_kf: k = 0..2, then F's (mu[3], e[3]
// its mean square). PyTorch's sqrt took 6x longer on the masked maps' zeros than on other values here.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static double qp_sum(const T *const *mu, const T *const *e_kk,
                                                                   const T *const *e_kf, const unsigned char *const *mask,
                                                                   int64_t n)
{
    const T c = T(1e-4);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const T uf = mu[3][i];
        const T var_f = e_kk[3][i] - uf * uf;
        T best = 0;
        for (int k = 0; k < 3; k++) {
            const T u = mu[k][i];
            const T cov = e_kf[k][i] - u * uf, var = e_kk[k][i] - u * u;
            const T r = mask[k][i] ? (cov + c) / (ssqrt(sabs(var * var_f)) + c) : u * T(0);
            best = k == 0 ? r : (r != r ? best : (best != best ? r : (r > best ? r : best)));
        }
        sum += double(best);
    }
    return sum;
}

// Q_P's masks and masked feature maps (metrics/lineage/mefb.py, qp), pixels [0, n) of one image: pc1, pc2
// the sources' phase congruency; first = pc1 > pc2 (1 or 0), other = 1 - first, picked = first pc1 + other
// pc2; mask[0..3) (n each): pc1 > 0.1, pc2 > 0.1, picked > 0.1. Where out is not null, for each of the nt
// feature maps t (a = src[2 t], A's; b = src[2 t + 1], B's): out (3 nt, n) = a mask0, b mask1 and (first a
// + other b) mask2, each mask as 0 or 1. mefb.py's pick() and masked() in one pass, each product and sum rounded once
// in its order (a NaN or an infinity times 0 is NaN, as there): the same values bit for bit, where eager
// PyTorch took ~25 passes over the maps of a batch.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void qp_masks(const T *pc1, const T *pc2, const T *const *src,
                                                                   int64_t nt, int64_t n, unsigned char *const *mask,
                                                                   T *out)
{
    const T tenth = T(0.1), one = T(1), zero = T(0);
    for (int64_t i = 0; i < n; i++) {
        const T p1 = pc1[i], p2 = pc2[i];
        const T first = p1 > p2 ? one : zero, other = one - first;
        const bool k1 = p1 > tenth, k2 = p2 > tenth, k3 = first * p1 + other * p2 > tenth;
        mask[0][i] = k1;
        mask[1][i] = k2;
        mask[2][i] = k3;
        if (!out)
            continue;
        const T o1 = k1 ? one : zero, o2 = k2 ? one : zero, o3 = k3 ? one : zero;
        for (int64_t t = 0; t < nt; t++) {
            const T a = src[2 * t][i], b = src[2 * t + 1][i];
            out[3 * t * n + i] = a * o1;
            out[(3 * t + 1) * n + i] = b * o2;
            out[(3 * t + 2) * n + i] = (first * a + other * b) * o3;
        }
    }
}

// Chen & Blum's Q_CB after its filters (metrics/lineage/vifb.py, _chen_blum). contrast: each pixel's
// masked contrast from the two Gaussian responses g1, g2 of an image's CSF-filtered version, c = |g1 - g2|
// / |g2|, c^3 / (c^2 + 1e-4) (PyTorch's c**3 is c * c * c). score: the mean over [0, n) of w1 q1 + w2 q2,
// w_k = c_k^2 / (c1^2 + c2^2), q_k = c_k / cf where c_k < cf, else cf / c_k; summed in double.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void cb_contrast(const T *g1, const T *g2, int64_t n, T *out)
{
    for (int64_t i = 0; i < n; i++) {
        const T c = sabs(g1[i] - g2[i]) / sabs(g2[i]);
        out[i] = c * c * c / (c * c + T(0.0001));
    }
}
template <typename T>
__attribute__((optimize("fp-contract=off"))) static double cb_score(const T *c1, const T *c2, const T *cf, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const T a = c1[i], b = c2[i], f = cf[i];
        const T den = a * a + b * b;
        const T q1 = a < f ? a / f : f / a, q2 = b < f ? b / f : f / b;
        sum += double((a * a) / den * q1 + (b * b) / den * q2);
    }
    return sum / double(n);
}

// Yang et al.'s Q_Y and Cvejic et al.'s Q_C from the toolbox's ssim_yang maps (metrics/lineage/mefb.py,
// _yang_maps, qy, qc): from the local moments of A, B, F (mu[0..2], e_kk[0..2], then e_ab, e_af, e_bf),
// per pixel the three SSIM maps (C1 = C2 = c), then Q_Y's and Q_C's values; out[0..3] = the sum and count
// of Q_Y's non-NaN values, then Q_C's (MATLAB's mean of the non-NaN), in double. The selections keep the
// original's arithmetic (bin * x + (1 - bin) * y: a NaN in either survives).
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void yang(const T *const *mu, const T *const *e_kk,
                                                               const T *const *e_ij, int64_t n, T c, double *out)
{
    double sy = 0, ny = 0, sc = 0, nc = 0;
    for (int64_t i = 0; i < n; i++) {
        const T u0 = mu[0][i], u1 = mu[1][i], u2 = mu[2][i];
        const T v0 = e_kk[0][i] - u0 * u0, v1 = e_kk[1][i] - u1 * u1, v2 = e_kk[2][i] - u2 * u2;
        const T c01 = e_ij[0][i] - u0 * u1, c02 = e_ij[1][i] - u0 * u2, c12 = e_ij[2][i] - u1 * u2;
        const T s01 = ((2 * u0 * u1 + c) * (2 * c01 + c)) / ((u0 * u0 + u1 * u1 + c) * (v0 + v1 + c));
        const T s02 = ((2 * u0 * u2 + c) * (2 * c02 + c)) / ((u0 * u0 + u2 * u2 + c) * (v0 + v2 + c));
        const T s12 = ((2 * u1 * u2 + c) * (2 * c12 + c)) / ((u1 * u1 + u2 * u2 + c) * (v1 + v2 + c));
        const T bin = s01 >= T(0.75) ? T(1) : T(0);
        const T lam = v0 / (v0 + v1);
        const T fm = s02 != s02 ? s12 : (s12 != s12 ? s02 : (s02 > s12 ? s02 : s12));  // fmax
        const T q = (lam * s02 + (1 - lam) * s12) * bin + fm * (1 - bin);
        if (q == q)
            sy += double(q), ny += 1;
        const T w = c02 / (c02 + c12);
        T sim = w * s02 + (1 - w) * s12;
        sim = w < 0 ? T(0) : sim;
        sim = w > 1 ? T(1) : sim;
        if (sim == sim)
            sc += double(sim), nc += 1;
    }
    out[0] = sy, out[1] = ny, out[2] = sc, out[3] = nc;
}

// Piella & Heijmans' Q_W as MEFB's metricPeilla takes it (metrics/lineage/mefb.py, qw), from the local moments
// of the edge images of A, B, F (mu[0..2], e_kk[0..2], then e_fa, e_fb): per pixel the variances (0.5 added to
// A's and B's where both are 0), lam = va / (va + vb), Wang's SSIM of F's edges with each source's (c1, c2),
// q = lam s_a + (1 - lam) s_b and the weight max(va, vb) (NaN in either kept, as torch.maximum); the index
// sum(w / sum(w) * q) as the original orders it: a pass for the weights' sum (in double, then in T as
// PyTorch's), a pass for the sum of the normalised weights times q (in double, both compensated). Each step
// as the eager one rounds it (fp contraction off); only the sums' order differs.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static double piella(const T *const *mu, const T *const *e_kk,
                                                                   const T *const *e_fk, int64_t n, T c1, T c2)
{
    const auto pixel = [&](int64_t i, T &w, T &q) {
        const T u0 = mu[0][i], u1 = mu[1][i], uf = mu[2][i];
        const T v0 = e_kk[0][i] - u0 * u0, v1 = e_kk[1][i] - u1 * u1, vf = e_kk[2][i] - uf * uf;
        const T zero = (v0 + v1) == 0 ? T(0.5) : T(0);
        const T va = v0 + zero, vb = v1 + zero;
        const T lam = va / (va + vb);
        const T cov0 = e_fk[0][i] - uf * u0, cov1 = e_fk[1][i] - uf * u1;
        const T s0 = ((2 * (uf * u0) + c1) * (2 * cov0 + c2)) / ((uf * uf + u0 * u0 + c1) * (vf + v0 + c2));
        const T s1 = ((2 * (uf * u1) + c1) * (2 * cov1 + c2)) / ((uf * uf + u1 * u1 + c1) * (vf + v1 + c2));
        w = va != va ? va : (vb != vb ? vb : (va > vb ? va : vb));
        q = lam * s0 + (1 - lam) * s1;
    };
    // Neumaier's compensated sums: a plain double sum of 57,600 positive float64 terms drifted by up to 5e-13
    // (PyTorch's pairwise sum and the original's by ~1e-15)
    const auto add = [](double &acc, double &comp, double t) {
        const double s = acc + t;
        comp += (acc < 0 ? -acc : acc) >= (t < 0 ? -t : t) ? (acc - s) + t : (t - s) + acc;
        acc = s;
    };
    double total = 0, c_total = 0;
    for (int64_t i = 0; i < n; i++) {
        T w, q;
        pixel(i, w, q);
        add(total, c_total, double(w));
    }
    const T norm = T(total + c_total);
    double sum = 0, c_sum = 0;
    for (int64_t i = 0; i < n; i++) {
        T w, q;
        pixel(i, w, q);
        add(sum, c_sum, double(w / norm * q));
    }
    return sum + c_sum;
}

// Liu's Q_SSIM and Q_P after their Gaussian moments (metrics/ssim.py, ssim_map_of; metrics/piella.py): the
// SSIM map of a pair x, y from the local means, mean squares and mean product (stats: var = e_xx - mu_x^2,
// cov = e_xy - mu_x mu_y; ssim_map: ((2 mu_x mu_y + c1)(2 cov + c2)) / ((mu_x^2 + mu_y^2 + c1)(var_x + var_y
// + c2))), and Q_P's map from A's and B's moments and the maps m1 = SSIM(F, A), m2 = SSIM(F, B): lam m1 +
// (1 - lam) m2, lam = s_a / (s_a + s_b), 0.5 added to both variances where their sum is 0. Each step as
// the eager one rounds it (fp contraction off): the same maps bit for bit, whose means PyTorch takes.
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void liu_ssim(const T *mu_x, const T *mu_y, const T *e_xx,
                                                                   const T *e_yy, const T *e_xy, int64_t n, T c1, T c2,
                                                                   T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const V ux = load<V>(mu_x + i, m), uy = load<V>(mu_y + i, m);
        const V vx = load<V>(e_xx + i, m) - ux * ux, vy = load<V>(e_yy + i, m) - uy * uy;
        const V cov = load<V>(e_xy + i, m) - ux * uy;
        const V num = (ux * uy * 2 + c1) * (cov * 2 + c2);
        store(out + i, num / ((ux * ux + uy * uy + c1) * (vx + vy + c2)), m);
    }
}
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void liu_piella(const T *mu_a, const T *mu_b, const T *e_aa,
                                                                     const T *e_bb, const T *m1, const T *m2,
                                                                     int64_t n, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    const V zero = {}, half = zero + T(0.5), one = zero + 1;
    for (int64_t i = 0; i < n; i += L) {
        const int64_t m = n - i < L ? n - i : L;
        const V ua = load<V>(mu_a + i, m), ub = load<V>(mu_b + i, m);
        V sa = load<V>(e_aa + i, m) - ua * ua, sb = load<V>(e_bb + i, m) - ub * ub;
        const V test = sa + sb == 0 ? half : zero;
        sa = sa + test;
        sb = sb + test;
        const V lam = sa / (sa + sb);
        store(out + i, lam * load<V>(m1 + i, m) + (one - lam) * load<V>(m2 + i, m), m);
    }
}

// skimage 0.19's structural_similarity(x, y) with its defaults on float32 images, as CDDFuse's SSIM calls it
// (metrics/lineage/cddfuse.py, _skimage_ssim), for F against A and against B at once: the SSIM maps, cropped
// by 3, whose means PyTorch then takes. Eight 7x7 uniform means an image (F, F^2, A, A^2, B, B^2, F A, F B,
// each product in float32), each as scipy's uniform_filter1d twice (_uniform7: along the rows, then along
// the columns), a pass being the window sum as a difference of running sums in double, divided by 7 and
// stored as float32; then the map's ~20 float32 steps a pixel. Eager PyTorch took ~80 passes with a
// temporary each (6 ms a triple of 240x240 on one thread).
//
// Every step as _skimage_ssim rounds it, bit for bit: the running sums in the same order (the padded
// line's values added one after another from its start, as PyTorch's cumsum adds them), the same
// divisions, fp contraction off. The first pass streams down the image with the last eight running sums
// of each column in a ring (vectors over the columns); each row it finishes (only rows 3 .. h - 4, what
// the crop keeps) is summed along (the eight maps' scalar sums interleaved) and scored. The padding's far
// side is never needed: the last kept output ends at the image's last row or column.
typedef double ssim_d8 __attribute__((vector_size(64)));
typedef float ssim_f8 __attribute__((vector_size(32)));

static inline ssim_f8 load8(const float *p)
{
    ssim_f8 v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}
static inline ssim_d8 loadd8(const double *p)
{
    ssim_d8 v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

#if FUSIONBENCH_PART == 2  // its unit alone (below)
__attribute__((optimize("fp-contract=off"))) static void skimage_ssim(const float *f, const float *a, const float *b,
                                                                       int64_t h, int64_t w, float norm_, float c1_,
                                                                       float c2_, float *out_a, float *out_b)
{
    constexpr int M = 8;                  // the maps: F, F^2, A, A^2, B, B^2, F A, F B
    const int64_t wp = (w + 7) / 8 * 8;   // a row's columns, a whole number of vectors
    const int64_t cw = (w + 4 + 7) / 8 * 8 + 8;  // a row's running sums c[0 .. w + 3], and slack
    const int64_t wo = w - 6;             // kept columns (outputs)
    Buf<float> src(3 * wp), rows(M * wp), out(2 * (wo + 8));
    Buf<double> ring(M * 8 * wp), sums(M * cw);
    const ssim_d8 seven = ssim_d8{} + 7.0;
    const ssim_f8 two = ssim_f8{} + 2.0f, norm = ssim_f8{} + norm_, c1 = ssim_f8{} + c1_, c2 = ssim_f8{} + c2_;
    for (int64_t t = 0; t <= h + 2; t++) {  // padded row t: source row 2 - t, then t - 3
        const int64_t r = t < 3 ? 2 - t : t - 3;
        __builtin_memcpy(&src[0], f + r * w, w * sizeof(float));
        __builtin_memcpy(&src[wp], a + r * w, w * sizeof(float));
        __builtin_memcpy(&src[2 * wp], b + r * w, w * sizeof(float));
        const int64_t now = (t + 1) & 7, before = t & 7, back = (t + 2) & 7;  // ring slots of c[t+1], c[t], c[t-6]
        const int64_t i = t + 1 - 7;  // the output row c[t + 1] completes
        const bool keep = i >= 3 && i <= h - 4;
        for (int64_t j = 0; j < wp; j += 8) {
            const ssim_f8 x = load8(&src[j]), ya = load8(&src[wp + j]), yb = load8(&src[2 * wp + j]);
            const ssim_f8 v[M] = {x, x * x, ya, ya * ya, yb, yb * yb, x * ya, x * yb};
            for (int k = 0; k < M; k++) {
                double *c = &ring[k * 8 * wp];
                const ssim_d8 cn = loadd8(c + before * wp + j) + __builtin_convertvector(v[k], ssim_d8);
                __builtin_memcpy(c + now * wp + j, &cn, sizeof(cn));
                if (keep) {
                    const ssim_f8 m = __builtin_convertvector((cn - loadd8(c + back * wp + j)) / seven, ssim_f8);
                    __builtin_memcpy(&rows[k * wp + j], &m, sizeof(m));
                }
            }
        }
        if (!keep)
            continue;
        // Along the row: c[0] = 0, c[u + 1] = c[u] + p[u], p the row padded by 2, 1, 0 before it.
        double acc[M] = {};
        for (int k = 0; k < M; k++)
            sums[k * cw] = 0;
        for (int64_t u = 0; u <= w + 2; u++) {
            const int64_t col = u < 3 ? 2 - u : u - 3;
            for (int k = 0; k < M; k++) {
                acc[k] += double(rows[k * wp + col]);
                sums[k * cw + u + 1] = acc[k];
            }
        }
        for (int64_t jo = 0; jo < wo; jo += 8) {  // output column jo: window sum c[jo + 10] - c[jo + 3]
            ssim_f8 u[M];
            for (int k = 0; k < M; k++) {
                const double *c = &sums[k * cw + jo + 3];
                u[k] = __builtin_convertvector((loadd8(c + 7) - loadd8(c)) / seven, ssim_f8);
            }
            const ssim_f8 ux = u[0], uxx = u[1];
            const ssim_f8 vx = norm * (uxx - ux * ux);
            for (int s = 0; s < 2; s++) {
                const ssim_f8 uy = u[2 + 2 * s], uyy = u[3 + 2 * s], uxy = u[6 + s];
                const ssim_f8 vy = norm * (uyy - uy * uy), vxy = norm * (uxy - ux * uy);
                const ssim_f8 a1 = two * ux * uy + c1, a2 = two * vxy + c2;
                const ssim_f8 b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2;
                const ssim_f8 q = (a1 * a2) / (b1 * b2);
                __builtin_memcpy(&out[s * (wo + 8) + jo], &q, sizeof(q));
            }
        }
        __builtin_memcpy(out_a + (i - 3) * wo, &out[0], wo * sizeof(float));
        __builtin_memcpy(out_b + (i - 3) * wo, &out[wo + 8], wo * sizeof(float));
    }
}
#endif

// Square roots of x[i0, i1): the hardware's, correctly rounded, as PyTorch's (whose vector form took 1.9 ns
// an element in float64 here, and 2.4 ns in float32 on zeros, against 0.4 for random values).
template <typename T> static void square_roots(const T *x, int64_t i0, int64_t i1, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = sizeof(V) / sizeof(T);
    int64_t i = i0;
    for (; i + L <= i1; i += L) {
        V v;
        __builtin_memcpy(&v, x + i, sizeof(V));
        v = vsqrt(v);
        __builtin_memcpy(out + i, &v, sizeof(V));
    }
    for (; i < i1; i++)
        out[i] = ssqrt(x[i]);
}

// Maps [i0, i1) of a batch; each input map i at its pointer + i * its stride (elements), each output
// contiguous, one map after another.
//
// Parts of this source (simd.h's FUSIONBENCH_PART), each a unit of its own: 0 the maps of every lineage
// metric set (square roots, VIF, SSIM means, Q_P's, Q_CB's, Piella's and Yang's), 1 Liu's SSIM and Piella maps
// (the Table 1 five alone, and built per type), 2 CDDFuse's (skimage's) SSIM. The whole source took 0.83 s to
// build on the Intel Xeon: Liu's five then built it for their two entry points, 0.13 s of it in float32.
extern "C" {
#if FUSIONBENCH_PART == 0
void sqrt_f32(const float *x, int64_t i0, int64_t i1, float *out) { square_roots(x, i0, i1, out); }
void sqrt_f64(const double *x, int64_t i0, int64_t i1, double *out) { square_roots(x, i0, i1, out); }
#elif FUSIONBENCH_PART == 2
// Images [i0, i1) of a batch of contiguous (h, w) float32 images; out_a, out_b: (h - 6, w - 6) maps each.
void skimage_ssim_f32(const float *f, const float *a, const float *b, int64_t h, int64_t w, int64_t i0, int64_t i1,
                      double norm, double c1, double c2, float *out_a, float *out_b)
{
    const int64_t n = h * w, no = (h - 6) * (w - 6);
    for (int64_t i = i0; i < i1; i++)
        skimage_ssim(f + i * n, a + i * n, b + i * n, h, w, float(norm), float(c1), float(c2), out_a + i * no,
                     out_b + i * no);
}
#endif
#define FUSIONBENCH_VIF(T, SUFFIX)                                                                                    \
    void vif_reference_##SUFFIX(const T *mu, int64_t s_mu, const T *e_kk, int64_t s_e, int64_t n, int64_t i0,        \
                                int64_t i1, double sigma_nsq, double eps, T *s1, T *den)                             \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++)                                                                            \
            reference<T>(mu + i * s_mu, e_kk + i * s_e, n, T(sigma_nsq), T(eps), s1 + i * n, den + i * n);            \
    }                                                                                                                \
    void vif_against_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1,         \
                              double sigma_nsq, double eps, T *num, T *g)                                             \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++)                                                                            \
            against<T>(in[0] + i * stride[0], in[1] + i * stride[1], in[2] + i * stride[2], in[3] + i * stride[3],  \
                       in[4] + i * stride[4], n, T(sigma_nsq), T(eps), num + i * n, g ? g + i * n : nullptr);        \
    }                                                                                                                \
    void vif_pick_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, double c,   \
                           T *vid, T *vind)                                                                          \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++) {                                                                          \
            const T *p[6];                                                                                           \
            for (int j = 0; j < 6; j++)                                                                              \
                p[j] = in[j] + i * stride[j];                                                                        \
            vif_pick<T>(p[0], p[1], p[2], p[3], p[4], p[5], n, T(c), vid + i * n, vind + i * n);                     \
        }                                                                                                            \
    }                                                                                                                \
    void ssim_mean_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, double c1, \
                            double c2, T *out)                                                                       \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++)                                                                            \
            out[i] = T(ssim_mean<T>(in[0] + i * stride[0], in[1] + i * stride[1], in[2] + i * stride[2],             \
                                    in[3] + i * stride[3], in[4] + i * stride[4], n, T(c1), T(c2)));                 \
    }                                                                                                                \
    void qp_sum_##SUFFIX(const T *const *in, const int64_t *stride, const unsigned char *const *mask, int64_t n,     \
                         int64_t i0, int64_t i1, double *out)                                                         \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++) {                                                                          \
            const T *p[11];                                                                                          \
            const unsigned char *m[3];                                                                               \
            for (int j = 0; j < 11; j++)                                                                             \
                p[j] = in[j] + i * stride[j];                                                                        \
            for (int j = 0; j < 3; j++)                                                                              \
                m[j] = mask[j] + i * n;                                                                              \
            out[i] = qp_sum<T>(p, p + 4, p + 8, m, n);                                                               \
        }                                                                                                            \
    }                                                                                                                \
    void qp_masks_##SUFFIX(const T *const *src, const int64_t *stride, int64_t nt, int64_t n, int64_t i0,          \
                           int64_t i1, unsigned char *const *mask, T *out)                                          \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++) { /* nt <= 8 (metrics/_native.py's qp_masks) */                            \
            const T *p[2 + 2 * 8];                                                                                   \
            unsigned char *m[3] = {mask[0] + i * n, mask[1] + i * n, mask[2] + i * n};                               \
            for (int64_t j = 0; j < 2 + 2 * nt; j++)                                                                 \
                p[j] = src[j] + i * stride[j];                                                                       \
            qp_masks<T>(p[0], p[1], p + 2, nt, n, m, out ? out + 3 * nt * n * i : nullptr);                          \
        }                                                                                                            \
    }                                                                                                                \
    void cb_contrast_##SUFFIX(const T *g1, int64_t s1, const T *g2, int64_t s2, int64_t n, int64_t i0, int64_t i1,   \
                              T *out)                                                                                 \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++)                                                                            \
            cb_contrast<T>(g1 + i * s1, g2 + i * s2, n, out + i * n);                                                 \
    }                                                                                                                \
    void cb_score_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, T *out)     \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++)                                                                            \
            out[i] = T(cb_score<T>(in[0] + i * stride[0], in[1] + i * stride[1], in[2] + i * stride[2], n));         \
    }                                                                                                                \
    void piella_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, double c1,     \
                         double c2, double *out)                                                                      \
    {                                                                                                                 \
        for (int64_t i = i0; i < i1; i++) {                                                                           \
            const T *p[8];                                                                                            \
            for (int k = 0; k < 8; k++)                                                                               \
                p[k] = in[k] + i * stride[k];                                                                         \
            out[i] = piella<T>(p, p + 3, p + 6, n, T(c1), T(c2));                                                     \
        }                                                                                                             \
    }                                                                                                                 \
    void yang_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, double c,        \
                       double *out)                                                                                   \
    {                                                                                                                \
        for (int64_t i = i0; i < i1; i++) {                                                                          \
            const T *p[9];                                                                                           \
            for (int j = 0; j < 9; j++)                                                                              \
                p[j] = in[j] + i * stride[j];                                                                        \
            yang<T>(p, p + 3, p + 6, n, T(c), out + 4 * i);                                                          \
        }                                                                                                            \
    }
#define FUSIONBENCH_LIU(T, SUFFIX)                                                                            \
    void liu_ssim_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1,         \
                           double c1, double c2, T *out)                                                      \
    {                                                                                                         \
        for (int64_t i = i0; i < i1; i++)                                                                     \
            liu_ssim<T>(in[0] + i * stride[0], in[1] + i * stride[1], in[2] + i * stride[2],                  \
                        in[3] + i * stride[3], in[4] + i * stride[4], n, T(c1), T(c2), out + i * n);           \
    }                                                                                                         \
    void liu_piella_##SUFFIX(const T *const *in, const int64_t *stride, int64_t n, int64_t i0, int64_t i1, T *out) \
    {                                                                                                         \
        for (int64_t i = i0; i < i1; i++)                                                                     \
            liu_piella<T>(in[0] + i * stride[0], in[1] + i * stride[1], in[2] + i * stride[2],                \
                          in[3] + i * stride[3], in[4] + i * stride[4], in[5] + i * stride[5], n, out + i * n); \
    }
#if FUSIONBENCH_PART == 1 && FUSIONBENCH_F32
FUSIONBENCH_LIU(float, f32)
#endif
#if FUSIONBENCH_PART == 1 && FUSIONBENCH_F64
FUSIONBENCH_LIU(double, f64)
#endif
#undef FUSIONBENCH_LIU
#if FUSIONBENCH_PART == 0
FUSIONBENCH_VIF(float, f32)
FUSIONBENCH_VIF(double, f64)
#endif
#undef FUSIONBENCH_VIF
}
