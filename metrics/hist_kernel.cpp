// The Shannon entropy of count tables (metrics/lineage/kernels.py, entropy), hand-written for the CPU: the
// joint histograms of the lineages' mutual informations (256 x 256 bins an image pair: Tang's MI, VIFB's,
// CDDFuse's, MEFB's MI, NMI and Q_NCIE's tables).
//
// Why hand-written: PyTorch takes -sum p log p over all 65,536 cells in about ten passes (the division,
// two masks, the logarithm, the product, the sum), where a joint histogram of 57,600 pixels fills a few
// thousand: 0.4-0.5 ms a table on one thread. Here one pass sums the counts and gathers the non-zero ones,
// whose p log2 p glibc's vector log2 takes: H = -ln 2 sum p log2 p, in double whatever the table's type
// (PyTorch sums a float32 table in float32: the two agree within its rounding).
#include <cstdint>

#include "simd.h"  // vf64, vlog2

// Neumaier's compensated sum of a register's lanes into (acc, comp), lane by lane.
static inline void neumaier(vf64 &acc, vf64 &comp, const vf64 &t)
{
    const vf64 sum = acc + t;
    const auto big = (acc < 0 ? -acc : acc) >= (t < 0 ? -t : t);
    comp += big ? (acc - sum) + t : (t - sum) + acc;
    acc = sum;
}

// The total of neumaier()'s lanes, compensated again across them.
static inline double lanes_total(const vf64 &acc, const vf64 &comp)
{
    constexpr int64_t L = VBYTES / sizeof(double);
    double s = 0, e = 0;
    for (int64_t k = 0; k < L; k++) {
        const double sum = s + acc[k];
        e += (s < 0 ? -s : s) >= (acc[k] < 0 ? -acc[k] : acc[k]) ? (s - sum) + acc[k] : (acc[k] - sum) + s;
        s = sum;
        e += comp[k];
    }
    return s + e;
}

template <typename T> static double entropy(const T *counts, int64_t m)
{
    constexpr int64_t L = VBYTES / sizeof(double);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < m; i++)
        nonzero += counts[i] > 0;
    if (nonzero == 0)
        return 0.0;  // an empty table: 0, as 0 log 0 = 0 everywhere
    // The non-zero counts, in a buffer of their number: one of the table's size (65,536 cells for 8-bit
    // images) was an mmap a call, after which glibc raises its mmap threshold and the process keeps more.
    Buf<double> nz(nonzero + L);
    double total = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < m; i++)
        if (counts[i] > 0) {
            total += double(counts[i]);
            nz[n++] = double(counts[i]);
        }
    int64_t full = n;
    while (full % L)
        nz[full++] = 1.0;  // padding, left out of the sum below
    // -sum p log2 p over p = c / N, with Neumaier's compensation lane by lane: the background's cell
    // (p ~ 0.5) and thousands of cells of 1e-4 summed plainly lost up to 4e-14; compensated, within 1e-15
    // of the exact sum, as PyTorch's cascade is. The padding's lanes are taken out of the last register.
    const vf64 tot = vf64{} + total;
    vf64 acc = {}, comp = {};
    for (int64_t i = 0; i < full; i += L) {
        vf64 c;
        __builtin_memcpy(&c, &nz[i], sizeof(vf64));
        const vf64 p = c / tot;
        vf64 t = p * vlog2(p);
        for (int64_t k = 0; k < L; k++)
            if (i + k >= n)
                t[k] = 0;
        neumaier(acc, comp, t);
    }
    return -0.6931471805599453 * lanes_total(acc, comp);
}

// Cvejic's Tsallis measure of one b x b joint count table as MEFB's tsallis.m takes it (metrics/lineage/
// mefb.py, te): p = c / N, its marginals paired transposed (cell (x, y) with column x's sum and row y's),
// (1 - sum p^q / (col_x row_y)^(q - 1)) / (1 - q) over the cells whose product of marginals is not 0.
// Rows with no count are skipped (an 8-bit image pair fills a few of its 256 rows' cells); powers by
// glibc's vector pow, the sum in double, compensated.
template <typename T> static double tsallis(const T *c, int64_t b, double q)
{
    constexpr int64_t L = VBYTES / sizeof(double);
    Buf<double> col(b + L), row(b + L);
    double total = 0;
    for (int64_t x = 0; x < b; x++)
        for (int64_t y = 0; y < b; y++) {
            const double v = double(c[x * b + y]);
            total += v;
            row[x] += v;
            col[y] += v;
        }
    for (int64_t i = 0; i < b; i++)
        col[i] /= total, row[i] /= total;
    const vf64 tot = vf64{} + total, vq = vf64{} + q, vq1 = vf64{} + (q - 1), zero = {}, one = zero + 1;
    vf64 acc = {}, comp = {};
    for (int64_t x = 0; x < b; x++) {
        if (row[x] == 0)
            continue;  // no count in this row
        for (int64_t y = 0; y < b; y += L) {
            vf64 cv, rv;
            const int64_t m = b - y < L ? b - y : L;
            for (int64_t k = 0; k < L; k++) {
                cv[k] = k < m ? double(c[x * b + y + k]) : 0.0;
                rv[k] = k < m ? row[y + k] : 0.0;
            }
            const vf64 buff = col[x] * rv;
            const auto ok = (cv > 0) & (buff != 0);
            bool any = false;
            for (int64_t k = 0; k < L; k++)
                any |= ok[k] != 0;
            if (!any)
                continue;
            const vf64 p = cv / tot;
            const vf64 t = vpow(ok ? p : one, vq) / vpow(ok ? buff : one, vq1);
            neumaier(acc, comp, ok ? t : zero);
        }
    }
    return (1 - lanes_total(acc, comp)) / (1 - q);
}

// Histograms of integer labels held as floats (metrics/lineage/kernels.py, hist and joint_hist): row r of
// a (rows, n) counted into out (rows, bins), or pairs of a's and b's rows into out (rows, bins, bins),
// a's label the row; each label truncated toward zero as PyTorch's .long(). Returns the number of labels
// outside 0..bins - 1 (NaN included), which are not counted: the caller refuses the histogram then.
template <typename T> static int64_t count(const T *a, int64_t n, int64_t bins, T *out)
{
    Buf<int32_t> c(bins);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const T v = a[i];
        if (v >= 0 && v < T(bins))  // false for NaN
            c[int64_t(v)]++;
        else
            bad++;
    }
    for (int64_t k = 0; k < bins; k++)
        out[k] = T(c[k]);
    return bad;
}
template <typename T> static int64_t count2(const T *a, const T *b, int64_t n, int64_t bins, T *out)
{
    Buf<int32_t> c(bins * bins);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const T u = a[i], v = b[i];
        if (u >= 0 && u < T(bins) && v >= 0 && v < T(bins))
            c[int64_t(u) * bins + int64_t(v)]++;
        else
            bad++;
    }
    for (int64_t k = 0; k < bins * bins; k++)
        out[k] = T(c[k]);
    return bad;
}

// Zheng Liu's normalize1 of images [r0, r1) of x (images, n), as metrics/lineage/kernels.py's normalize1
// takes it with PyTorch (MEFB's and VIFB's Q_CB, Q_CV and information measures): per image lo and hi its
// smallest and largest value (NaN where it holds one, as amin and amax), then each pixel
// sign(v) floor(|v| + 0.5) with v = (x - lo) / (hi - lo) * 255, every step rounded as PyTorch's (fp
// contraction off; sign(NaN) is 0 there, and 0 * NaN is NaN), an all-zero image (lo = hi = 0) kept as it
// is. Two passes an image, where PyTorch's eleven steps took 0.62 ms for four 240x240 float32 images and
// MEFB's set takes nine a batch.
static inline float sfloor(float v) { return __builtin_floorf(v); }
static inline double sfloor(double v) { return __builtin_floor(v); }
template <typename T> struct Ints;  // the first value with no fraction bits (integer lanes: simd.h's Vec<T>::index)
template <> struct Ints<float> {
    typedef Vec<float>::index type;
    static constexpr float exact = 8388608.0f;
};
template <> struct Ints<double> {
    typedef Vec<double>::index type;
    static constexpr double exact = 4503599627370496.0;
};

template <typename T>
__attribute__((optimize("fp-contract=off"))) static void normalize1(const T *x, int64_t n, int64_t r0, int64_t r1,
                                                                     bool flat_zero, T *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const T *p = x + r * n;
        T *o = out + r * n;
        typedef typename Vec<T>::type V;
        constexpr int64_t L = VBYTES / sizeof(T);
        V lo_v = V{} + p[0], hi_v = lo_v, nan_v = V{};  // lanes' extremes; nan_v: where a lane saw a NaN
        int64_t i = 0;
        for (; i + L <= n; i += L) {
            V v;
            __builtin_memcpy(&v, p + i, sizeof(V));
            lo_v = v < lo_v ? v : lo_v;
            hi_v = v > hi_v ? v : hi_v;
            nan_v = v != v ? V{} + 1 : nan_v;
        }
        T lo = lo_v[0], hi = hi_v[0];
        bool nan = false;
        for (int64_t k = 0; k < L; k++) {
            lo = lo_v[k] < lo ? lo_v[k] : lo;
            hi = hi_v[k] > hi ? hi_v[k] : hi;
            nan |= nan_v[k] != 0;
        }
        for (; i < n; i++) {
            const T v = p[i];
            nan |= v != v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (nan)
            lo = hi = T(__builtin_nan(""));
        if (flat_zero && !(hi - lo > 0)) {  // the callers whose rule makes such an image zeros (below)
            for (int64_t i = 0; i < n; i++)
                o[i] = T(0);
            continue;
        }
        if (lo == 0 && hi == 0) {
            for (int64_t i = 0; i < n; i++)
                o[i] = p[i];
            continue;
        }
        const T d = hi - lo;
        // sign(v) * f: f for v > 0, -f for v < 0, 0 * f for 0 and NaN (0, or NaN where f is)
        const auto one = [&](T v) {
            const T f = sfloor((v < 0 ? -v : v) + T(0.5));
            return v > 0 ? f : v < 0 ? -f : T(0) * f;
        };
        for (i = 0; i + L <= n; i += L) {
            V v, f, r;
            __builtin_memcpy(&v, p + i, sizeof(V));
            v = (v - lo) / d * T(255);
            const V a = (v < 0 ? -v : v) + T(0.5);
            // floor(a), a >= 0.5 or NaN: its integer part where a has a fraction (below 2^23 for floats, 2^52
            // for doubles), else a itself (NaN, infinity, an integer); GCC rounds a lane loop one by one
            typedef typename Ints<T>::type I;
            const V whole = __builtin_convertvector(__builtin_convertvector(a, I), V);
            f = a < Ints<T>::exact ? whole : a;
            r = v > 0 ? f : v < 0 ? -f : T(0) * f;
            __builtin_memcpy(o + i, &r, sizeof(V));
        }
        for (; i < n; i++)
            o[i] = one((p[i] - lo) / d * T(255));
    }
}

// The toolbox's 8-bit values of [0, 1] images (metrics/toolbox_input.py, quantize_255): round(x * 255) half to
// even, clamped to 0..255, as PyTorch's three passes (x * 255, round, clamp_) compute them: the product
// rounded once (fp contraction off), rint in the default rounding mode (ties to even, compiled to vector
// rounds; -0 and NaN as PyTorch's round keeps them), then the clamp, which keeps -0 and NaN as PyTorch's
// does. One pass where PyTorch's three took 0.65 ms for sixteen 240x240 float32 images (0.26 here).
static inline float srint(float v) { return __builtin_rintf(v); }
static inline double srint(double v) { return __builtin_rint(v); }
template <typename T>
__attribute__((optimize("fp-contract=off"))) static void quantize_255(const T *x, int64_t n, T *out)
{
    for (int64_t i = 0; i < n; i++) {
        const T r = srint(x[i] * T(255));
        out[i] = r < 0 ? T(0) : r > 255 ? T(255) : r;
    }
}

// Whether each image [r0, r1) of x (images, n) holds whole numbers only, out[r] 1 or 0: x == round(x) at
// every pixel as LineageImages' flags test it with PyTorch (an infinity is whole, a NaN is not). One pass,
// where round, the comparison and all took 0.1 ms an image set of four here.
template <typename T> static void integer_valued(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)
{
    typedef typename Vec<T>::type V;
    typedef typename Ints<T>::type I;
    constexpr int64_t L = VBYTES / sizeof(T);
    for (int64_t r = r0; r < r1; r++) {
        const T *p = x + r * n;
        I off = I{};  // lanes that met a value with a fraction (or a NaN)
        int64_t i = 0;
        for (; i + L <= n; i += L) {
            V v;
            __builtin_memcpy(&v, p + i, sizeof(V));
            // its integer part where it may have a fraction, else itself (no fraction bits, an infinity, NaN)
            const V part = __builtin_convertvector(__builtin_convertvector(v, I), V);
            const V whole = (v < 0 ? -v : v) < Ints<T>::exact ? part : v;
            off |= v != whole;
        }
        bool ok = true;
        for (int64_t k = 0; k < L; k++)
            ok &= off[k] == 0;
        for (; i < n; i++)
            ok &= p[i] == sfloor(p[i]);
        out[r] = ok ? T(1) : T(0);
    }
}

// The entry points of one type (T, SUFFIX), for rows [r0, r1): table_entropy: the entropy in nats of
// each row of counts (rows, m), its non-negative counts; hist, joint_hist: the histograms of each row of
// labels a (and b), n long, bins (x bins) each, returning the labels left out; table_tsallis: tsallis()
// of each table of counts (rows, b, b) with exponent q; normalize1, integer_valued: of each image (rows, n),
// normalize1 with flat_zero 1 making an image whose largest value is not above its smallest (constant, or
// holding a NaN) zeros, the rule of Liu's Q_NCIE and VIFB's mutinf (a PyTorch mask after the kernel took
// 0.12 ms a call of four 240x240 images, 0.6 of sixteen, more than the kernel's own 0.07 and 0.37).
// A unit built for one type has only its own.
#define FUSIONBENCH_HIST(T, SUFFIX)                                                                                   \
    void table_entropy_##SUFFIX(const T *counts, int64_t m, int64_t r0, int64_t r1, T *out)                           \
    {                                                                                                                 \
        for (int64_t r = r0; r < r1; r++)                                                                             \
            out[r] = T(entropy(counts + r * m, m));                                                                   \
    }                                                                                                                 \
    int64_t hist_##SUFFIX(const T *a, int64_t n, int64_t bins, int64_t r0, int64_t r1, T *out)                        \
    {                                                                                                                 \
        int64_t bad = 0;                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                                             \
            bad += count(a + r * n, n, bins, out + r * bins);                                                         \
        return bad;                                                                                                   \
    }                                                                                                                 \
    int64_t joint_hist_##SUFFIX(const T *a, const T *b, int64_t n, int64_t bins, int64_t r0, int64_t r1, T *out)      \
    {                                                                                                                 \
        int64_t bad = 0;                                                                                              \
        for (int64_t r = r0; r < r1; r++)                                                                             \
            bad += count2(a + r * n, b + r * n, n, bins, out + r * bins * bins);                                      \
        return bad;                                                                                                   \
    }                                                                                                                 \
    void table_tsallis_##SUFFIX(const T *counts, int64_t b, int64_t r0, int64_t r1, double q, T *out)                 \
    {                                                                                                                 \
        for (int64_t r = r0; r < r1; r++)                                                                             \
            out[r] = T(tsallis(counts + r * b * b, b, q));                                                            \
    }                                                                                                                 \
    void normalize1_##SUFFIX(const T *x, int64_t n, int64_t r0, int64_t r1, int64_t flat_zero, T *out)                \
    {                                                                                                                 \
        normalize1(x, n, r0, r1, flat_zero != 0, out);                                                                \
    }                                                                                                                 \
    void integer_valued_##SUFFIX(const T *x, int64_t n, int64_t r0, int64_t r1, T *out)                               \
    {                                                                                                                 \
        integer_valued(x, n, r0, r1, out);                                                                            \
    }                                                                                                                 \
    void quantize_255_##SUFFIX(const T *x, int64_t n, T *out) { quantize_255(x, n, out); }
extern "C" {
#if FUSIONBENCH_F32
FUSIONBENCH_HIST(float, f32)
#endif
#if FUSIONBENCH_F64
FUSIONBENCH_HIST(double, f64)
#endif
}
