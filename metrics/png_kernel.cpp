// PNG scanlines unfiltered, hand-written for the CPU: the step of a PNG's decoding after zlib's
// inflate (the PNG specification, ISO/IEC 15948:2004, section 9: filter method 0, types 0-4), for
// bench eval's reading of 8- and 16-bit PNGs (benchmark/data/png.py, which parses the chunks and
// inflates the data with Python's zlib).
//
// Why hand-written: Pillow decodes a 240x240 grey PNG in ~0.37-0.44 ms here, of which zlib's inflate is
// ~0.13; the rest is its per-row loop (inflating, unfiltering and unpacking one scanline at a time:
// a PNG stored without compression still took it 0.22 ms). bench eval reads 3,459 of them for 1,153
// triples. The Paeth and Average filters depend on the byte just decoded to their left, so NumPy cannot
// take them as whole-array operations; a byte at a time here they cost a few cycles each.
//
// The arithmetic is the specification's, modulo 256: Sub adds the byte bpp to the left, Up the byte
// above, Average the floor of their mean (taken in 16 bits), Paeth whichever of left, above and upper
// left is nearest to left + above - upper left (ties in that order). Bytes left of the first pixel and
// the row above the first are 0.
#include <cstdint>

// Without branches (the choice flips from byte to byte: as branches, mispredicted, they took 3.5 ns a
// byte): with d = a - c and e = b - c, the distances to a, b and c are |e|, |d| and |d + e|. (The choice
// as thresholds on a fixed by b and c, fewer steps after a is known, ran slower: 3.2 against 2.8 ns.)
static inline int paeth(int a, int b, int c)
{
    const int d = a - c, e = b - c;
    const int pa = e < 0 ? -e : e, pb = d < 0 ? -d : d, pc = d + e < 0 ? -(d + e) : d + e;
    const int bc = pb <= pc ? b : c;
    return pa <= pb && pa <= pc ? a : bc;
}

// One scanline of n bytes (a multiple of BPP) of filter type `type` (1, 3 or 4: those that read the byte
// to the left), `up` the row above or nullptr for the first. The BPP bytes to the left, and for Paeth the
// BPP above them, are carried in registers: read back from memory, each byte had waited for the store of
// the one before (1.6 ns a byte for Sub).
template <int BPP> static void row(int type, const uint8_t *src, const uint8_t *up, int64_t n, uint8_t *dst)
{
    int a[BPP] = {}, c[BPP] = {};
    if (type == 1 || (type == 4 && !up)) {  // Sub; Paeth with above and upper left 0 is Sub
        for (int64_t i = 0; i < n; i += BPP)
            for (int k = 0; k < BPP; k++)
                dst[i + k] = (uint8_t)(a[k] = (src[i + k] + a[k]) & 255);
    } else if (type == 3) {  // Average
        for (int64_t i = 0; i < n; i += BPP)
            for (int k = 0; k < BPP; k++)
                dst[i + k] = (uint8_t)(a[k] = (src[i + k] + ((a[k] + (up ? up[i + k] : 0)) >> 1)) & 255);
    } else {  // Paeth
        for (int64_t i = 0; i < n; i += BPP)
            for (int k = 0; k < BPP; k++) {
                const int b = up[i + k];
                dst[i + k] = (uint8_t)(a[k] = (src[i + k] + paeth(a[k], b, c[k])) & 255);
                c[k] = b;
            }
    }
}

extern "C" {

// rows scanlines of in (each a filter-type byte, then row_bytes filtered bytes) unfiltered into out
// (rows x row_bytes), bpp bytes a pixel (1 to 4; row_bytes a multiple of it). Returns 0, 1 + the row whose
// filter type is not 0-4 (out is then incomplete), or -1 for another bpp.
int64_t png_unfilter(const uint8_t *in, int64_t rows, int64_t row_bytes, int64_t bpp, uint8_t *out)
{
    if (bpp < 1 || bpp > 4 || row_bytes % bpp)
        return -1;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *src = in + r * (row_bytes + 1) + 1;
        const int type = src[-1];
        uint8_t *dst = out + r * row_bytes;
        const uint8_t *up = r ? dst - row_bytes : nullptr;  // the row above, already unfiltered
        if (type > 4)
            return r + 1;
        if (type == 0 || (type == 2 && !up)) {  // None; Up with the row above 0
            __builtin_memcpy(dst, src, row_bytes);
        } else if (type == 2) {  // Up: no byte depends on another, vectorized by the compiler
            for (int64_t i = 0; i < row_bytes; i++)
                dst[i] = (uint8_t)(src[i] + up[i]);
        } else if (bpp == 1) {
            row<1>(type, src, up, row_bytes, dst);
        } else if (bpp == 2) {
            row<2>(type, src, up, row_bytes, dst);
        } else if (bpp == 3) {
            row<3>(type, src, up, row_bytes, dst);
        } else {
            row<4>(type, src, up, row_bytes, dst);
        }
    }
    return 0;
}

}  // extern "C"
