// Separable filtering of images with a window outer(g, g), hand-written for the CPU: the local means,
// variances and covariances under a Gaussian or box window that most lineage metrics take (SSIM and
// MEF-SSIM, VIF, Q_P, Q_W, Q_CB, ...; metrics/filters.py, separable_matmul).
//
// Why hand-written: as banded matrix products (BLAS, in blocks of ~12 outputs) an 11-tap filter over a
// 240x240 map ran at ~3 GFLOP/s here, a quarter of tang's and mefb's scoring time: each block is a
// small product whose fixed costs outweigh its arithmetic, and it does (12 + k - 1) / k times the
// multiply-adds of a tap loop. Here each output row is a sum of k rows (the vertical pass) and each
// output pixel a sum of k neighbours in a padded copy of its row (the horizontal pass), four SIMD
// registers of outputs at a time, so that every tap is one broadcast and four multiply-adds.
//
// The padding (zeros, replicated, reflected, symmetric edges) comes as tables: for each padded
// position of a side, the source pixel it repeats, or -1 for a zero (metrics/filters.py, _sources).
// Each output is the sum over the taps in their order, in the images' own precision, as the matrix
// products' are (with fused multiply-adds; their summation order differs, so values differ by float
// rounding only). Each map is filtered alone: a batch gives what single calls give, bit for bit.
#include <cstdint>
#include <vector>

#include "simd.h"  // VBYTES, vf32 / vf64, Vec<T>

// out[0, len) = sum over i < nt of w[i] * p[i][0, len), in the order of i.
template <typename T> static void combine(const T *const *p, const T *w, int64_t nt, int64_t len, T *out)
{
    typedef typename Vec<T>::type V;
    constexpr int64_t L = VBYTES / sizeof(T);
    int64_t c = 0;
    for (; c + 4 * L <= len; c += 4 * L) {
        V a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int64_t i = 0; i < nt; i++) {
            const T *s = p[i] + c;
            V x0, x1, x2, x3;
            __builtin_memcpy(&x0, s, sizeof(V));
            __builtin_memcpy(&x1, s + L, sizeof(V));
            __builtin_memcpy(&x2, s + 2 * L, sizeof(V));
            __builtin_memcpy(&x3, s + 3 * L, sizeof(V));
            const V wi = V{} + w[i];
            a0 += wi * x0;
            a1 += wi * x1;
            a2 += wi * x2;
            a3 += wi * x3;
        }
        __builtin_memcpy(out + c, &a0, sizeof(V));
        __builtin_memcpy(out + c + L, &a1, sizeof(V));
        __builtin_memcpy(out + c + 2 * L, &a2, sizeof(V));
        __builtin_memcpy(out + c + 3 * L, &a3, sizeof(V));
    }
    for (; c + L <= len; c += L) {
        V a = {};
        for (int64_t i = 0; i < nt; i++) {
            V x;
            __builtin_memcpy(&x, p[i] + c, sizeof(V));
            a += (V{} + w[i]) * x;
        }
        __builtin_memcpy(out + c, &a, sizeof(V));
    }
    for (; c < len; c++) {
        T a = 0;
        for (int64_t i = 0; i < nt; i++)
            a += w[i] * p[i][c];
        out[c] = a;
    }
}

// Maps [m0, m1) of x (maps, n_r, n_c): out (maps, ceil(m_r / stride), ceil(m_c / stride)), where m_r =
// n_r + 2 p - k + 1 outputs of the padded rows (src_r: the source row of each of the n_r + 2 p padded
// positions, -1 for zeros; likewise src_c), every stride-th kept. taps: the k taps of g.
template <typename T>
static void separable(const T *x, int64_t n_r, int64_t n_c, const T *taps, int64_t k, const int64_t *src_r,
                      const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t m0, int64_t m1, T *out)
{
    constexpr int64_t L = VBYTES / sizeof(T);
    const int64_t rows = (m_r + stride - 1) / stride, cols = (m_c + stride - 1) / stride;
    const int64_t padded = m_c + k - 1, pad = (padded - n_c) / 2;  // every table maps [pad, pad + n_c) to 0..n_c-1
    std::vector<T> vert(rows * n_c), buf(padded + 4 * L), full(m_c);
    std::vector<const T *> p(k);
    std::vector<T> w(k);
    for (int64_t m = m0; m < m1; m++) {
        const T *img = x + m * n_r * n_c;
        for (int64_t r = 0; r < rows; r++) {  // vertical: each kept row the sum of its taps' rows
            int64_t nt = 0;
            for (int64_t t = 0; t < k; t++) {
                const int64_t s = src_r[r * stride + t];
                if (s >= 0) {
                    p[nt] = img + s * n_c;
                    w[nt++] = taps[t];
                }
            }
            combine(p.data(), w.data(), nt, n_c, vert.data() + r * n_c);
        }
        for (int64_t t = 0; t < k; t++)
            p[t] = buf.data() + t;
        T *o = out + m * rows * cols;
        for (int64_t r = 0; r < rows; r++) {  // horizontal: the row padded, then each output its taps' sum
            const T *v = vert.data() + r * n_c;
            for (int64_t j = 0; j < pad; j++)  // the edges from the table, the row itself copied
                buf[j] = src_c[j] >= 0 ? v[src_c[j]] : T(0);
            __builtin_memcpy(buf.data() + pad, v, n_c * sizeof(T));
            for (int64_t j = pad + n_c; j < padded; j++)
                buf[j] = src_c[j] >= 0 ? v[src_c[j]] : T(0);
            if (stride == 1) {
                combine(p.data(), taps, k, m_c, o + r * cols);
                continue;
            }
            combine(p.data(), taps, k, m_c, full.data());
            for (int64_t c = 0; c < cols; c++)
                o[r * cols + c] = full[c * stride];
        }
    }
}

extern "C" {
void separable_f32(const float *x, int64_t n_r, int64_t n_c, const float *taps, int64_t k, const int64_t *src_r,
                   const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t m0, int64_t m1, float *out)
{
    separable(x, n_r, n_c, taps, k, src_r, src_c, m_r, m_c, stride, m0, m1, out);
}
void separable_f64(const double *x, int64_t n_r, int64_t n_c, const double *taps, int64_t k, const int64_t *src_r,
                   const int64_t *src_c, int64_t m_r, int64_t m_c, int64_t stride, int64_t m0, int64_t m1,
                   double *out)
{
    separable(x, n_r, n_c, taps, k, src_r, src_c, m_r, m_c, stride, m0, m1, out);
}
}
