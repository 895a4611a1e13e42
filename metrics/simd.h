// What fusionbench's hand-written kernels (fmi_kernel.cpp, phase_kernel.cpp, filter_kernel.cpp,
// mef_kernel.cpp, qabf_kernel.cpp) share: one SIMD register of floats / doubles as GCC vector types,
// glibc's vector log2, exp, tan, atan and pow for them (libmvec's names: ISA letter, lanes), which a loop of scalar calls would not
// get without -ffast-math, and a square root per lane.
#pragma once
#include <cstdint>
#if defined(__AVX512F__)
#define VBYTES 64
#define LOG2_F32 _ZGVeN16v_log2f
#define LOG2_F64 _ZGVeN8v_log2
#define EXP_F32 _ZGVeN16v_expf
#define EXP_F64 _ZGVeN8v_exp
#define TAN_F64 _ZGVeN8v_tan
#define ATAN_F32 _ZGVeN16v_atanf
#define ATAN_F64 _ZGVeN8v_atan
#define POW_F64 _ZGVeN8vv_pow
#define POW_F32 _ZGVeN16vv_powf
#elif defined(__AVX2__)
#define VBYTES 32
#define LOG2_F32 _ZGVdN8v_log2f
#define LOG2_F64 _ZGVdN4v_log2
#define EXP_F32 _ZGVdN8v_expf
#define EXP_F64 _ZGVdN4v_exp
#define TAN_F64 _ZGVdN4v_tan
#define ATAN_F32 _ZGVdN8v_atanf
#define ATAN_F64 _ZGVdN4v_atan
#define POW_F64 _ZGVdN4vv_pow
#define POW_F32 _ZGVdN8vv_powf
#else
#error "fusionbench's hand-written kernels need AVX2 or AVX-512 (glibc's libmvec); the PyTorch kernels are used instead"
#endif
typedef float vf32 __attribute__((vector_size(VBYTES)));
typedef double vf64 __attribute__((vector_size(VBYTES)));
extern "C" vf32 LOG2_F32(vf32);
extern "C" vf64 LOG2_F64(vf64);
extern "C" vf32 EXP_F32(vf32);
extern "C" vf64 EXP_F64(vf64);
extern "C" vf64 TAN_F64(vf64);
extern "C" vf32 ATAN_F32(vf32);
extern "C" vf64 ATAN_F64(vf64);
extern "C" vf64 POW_F64(vf64, vf64);
extern "C" vf32 POW_F32(vf32, vf32);
static inline vf32 vlog2(vf32 x) { return LOG2_F32(x); }
static inline vf64 vlog2(vf64 x) { return LOG2_F64(x); }
static inline vf32 vexp(vf32 x) { return EXP_F32(x); }
static inline vf64 vexp(vf64 x) { return EXP_F64(x); }
static inline vf64 vtan(vf64 x) { return TAN_F64(x); }
static inline vf32 vatan(vf32 x) { return ATAN_F32(x); }
static inline vf64 vatan(vf64 x) { return ATAN_F64(x); }
static inline vf64 vpow(vf64 x, vf64 y) { return POW_F64(x, y); }
static inline vf32 vpow(vf32 x, vf32 y) { return POW_F32(x, y); }
template <typename V> static inline V vsqrt(V x)
{
    V r;
    for (unsigned k = 0; k < sizeof(V) / sizeof(x[0]); k++)
        r[k] = __builtin_sqrt(x[k]);  // a square root per lane: compiled to one vector sqrt
    return r;
}

// A heap array of n values, zeroed (or each set to fill), freed with the scope: what the kernels took
// std::vector for, without <vector> (and <cmath>: __builtin_sqrt and __builtin_fabs instead), whose
// parsing cost each translation unit 0.08-0.13 s of the build (0.3-0.4 s of a fresh machine's first command).
template <typename T> struct Buf {
    T *p;
    int64_t n;
    explicit Buf(int64_t size) : p(static_cast<T *>(__builtin_calloc(size > 0 ? size : 1, sizeof(T)))), n(size) {}
    Buf(int64_t size, T fill) : Buf(size)
    {
        for (int64_t i = 0; i < n; i++)
            p[i] = fill;
    }
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    ~Buf() { __builtin_free(p); }
    T &operator[](int64_t i) { return p[i]; }
    const T &operator[](int64_t i) const { return p[i]; }
    T *data() { return p; }
};

static inline float ssqrt(float x) { return __builtin_sqrtf(x); }  // std::sqrt, std::fabs without <cmath>
static inline double ssqrt(double x) { return __builtin_sqrt(x); }
static inline float sabs(float x) { return __builtin_fabsf(x); }
static inline double sabs(double x) { return __builtin_fabs(x); }

// A unit built for one type only (-DFUSIONBENCH_TYPE=32 or 64, metrics/_native_build.py: a command builds
// the types its metric sets call) keeps that type's entry points; without the flag, both.
#ifndef FUSIONBENCH_TYPE
#define FUSIONBENCH_F32 1
#define FUSIONBENCH_F64 1
#else
#define FUSIONBENCH_F32 (FUSIONBENCH_TYPE == 32)
#define FUSIONBENCH_F64 (FUSIONBENCH_TYPE == 64)
#endif
// A unit built for one part of a source (-DFUSIONBENCH_PART=n, metrics/_native_build.py) keeps that part's
// entry points alone: the source names its parts; 0 (no flag) is its main one. A part that few metric sets
// call is a unit of its own, so that the others do not build it.
#ifndef FUSIONBENCH_PART
#define FUSIONBENCH_PART 0
#endif

// A register of T (type) and of integers as wide as T's lanes (index: shuffle masks, a float's bits).
template <typename T> struct Vec;
template <> struct Vec<float> {
    typedef vf32 type;
    typedef int32_t index __attribute__((vector_size(VBYTES)));
};
template <> struct Vec<double> {
    typedef vf64 type;
    typedef int64_t index __attribute__((vector_size(VBYTES)));
};

// x in every lane of a register. As x - 0, which equals x for every x (-0 and NaN included), so the
// compiler drops the subtraction and only broadcasts; V{} + x kept an addition before each broadcast
// (-0 + 0 is +0), an instruction more a tap in the filters' inner loops (filter_kernel.cpp).
template <typename V, typename T> static inline V splat(T x) { return x - V{}; }

// One register of T values from p, any alignment: one unaligned vector load. (A __builtin_memcpy into an
// element of an array of registers compiled, under GCC 12's tuning for Intel's AVX-512 processors, to two
// 32-byte copies through the stack, read back as one 64-byte register: a store that could not forward to
// the load, the costliest instruction of fmi_kernel.cpp's prepare(), 9% of its samples on Tang's FMI_w.)
template <typename V, typename T> static inline V loadu(const T *p)
{
    typedef V U __attribute__((aligned(alignof(T)), may_alias));
    return *reinterpret_cast<const U *>(p);
}

// One register stored to p, any alignment: one vector store (where a __builtin_memcpy from an element of an
// array of registers may go through the stack, as loadu's note says of the loads).
template <typename T, typename V> static inline void storeu(T *p, const V &v)
{
    typedef V U __attribute__((aligned(alignof(T)), may_alias));
    *reinterpret_cast<U *>(p) = v;
}

// Pixels [0, n) with SIMD registers, the last one short: its m lanes copied in and out with a variable
// size, the others with a fixed one (a variable size throughout compiled each copy to `rep movs`, as in
// mef_kernel.cpp: 10 ns a pixel against 2.8).
template <typename V, typename T> static inline V load(const T *p, int64_t m)
{
    V v = {};
    if (m == int64_t(sizeof(V) / sizeof(T)))
        __builtin_memcpy(&v, p, sizeof(V));
    else
        __builtin_memcpy(&v, p, m * sizeof(T));
    return v;
}
template <typename V, typename T> static inline void store(T *p, const V &v, int64_t m)
{
    if (m == int64_t(sizeof(V) / sizeof(T)))
        __builtin_memcpy(p, &v, sizeof(V));
    else
        __builtin_memcpy(p, &v, m * sizeof(T));
}

// Bit l set where lane l of the comparison result `mask` (an integer register, -1 true, 0 false, as GCC's
// vector comparisons give) is true: AVX-512's vptestm, AVX2's movmsk of the sign bits. E.g. the lanes of a
// register x that are not zero (+0 and -0 are, a NaN is not): lanes_set(x != V{}).
template <typename I> static inline unsigned lanes_set(const I &mask)
{
    constexpr int lane = sizeof(mask[0]);
#if VBYTES == 64
    if constexpr (lane == 4) {
        return __builtin_ia32_ptestmd512(mask, mask, 0xffff);
    } else {
        typedef long long Q __attribute__((vector_size(64)));
        Q lanes;
        __builtin_memcpy(&lanes, &mask, sizeof(Q));
        return __builtin_ia32_ptestmq512(lanes, lanes, 0xff);
    }
#else
    if constexpr (lane == 4) {
        vf32 signs;
        __builtin_memcpy(&signs, &mask, sizeof(vf32));
        return __builtin_ia32_movmskps256(signs);
    } else {
        vf64 signs;
        __builtin_memcpy(&signs, &mask, sizeof(vf64));
        return __builtin_ia32_movmskpd256(signs);
    }
#endif
}
