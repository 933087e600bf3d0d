/*
 * tls_aes.c: the two halves of AES-GCM, AES-CTR and GHASH, over 256-bit
 * registers, for BearSSL's GCM record layer (br_ssl_engine_set_aes_ctr,
 * br_ssl_engine_set_ghash).
 *
 * BearSSL's x86 code (br_aes_x86ni_ctr_run, br_ghash_pclmul) works on one
 * 128-bit block per instruction, four blocks in flight, and a wss echo of
 * large messages spent about a third of the server's samples in the two
 * (bench/README.md). VAES and VPCLMULQDQ do the same operations on two
 * blocks per 256-bit register; with sixteen AES blocks in flight and
 * sixteen GHASH blocks per reduction, each half costs about half as much
 * per byte. Both instructions take constant time, as BearSSL's
 * x86ni/pclmul code does. Results are identical to BearSSL's, which the
 * tests check against br_aes_x86ni_ctr_vtable and br_ghash_ctmul64.
 *
 * GHASH follows the usual byte-reflected formulation: each 16-byte block
 * (and the hash key) is byte-reversed into a register, multiplied as a
 * polynomial with carry-less multiplication, the 256-bit product shifted
 * left by one bit and reduced modulo x^128 + x^7 + x^2 + x + 1 in its
 * reflected form (NIST SP 800-38D; Gueron and Kounavis, "Intel
 * Carry-Less Multiplication Instruction and its Usage for Computing the
 * GCM Mode"). n blocks (sixteen, or eight near the end) are folded at
 * once as (Y ^ X0)·H^n ^ X1·H^(n-1) ^ ... ^ X(n-1)·H, summing the
 * unreduced products.
 */
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "http/tls_aes.h"

#define WIDE __attribute__((target("avx2,aes,pclmul,vaes,vpclmulqdq,ssse3,sse4.1")))

/* CPUID leaf 1 (AES, PCLMULQDQ, OSXSAVE, AVX) and leaf 7 (AVX2, VAES,
 * VPCLMULQDQ), and XCR0: the OS saves the 256-bit register state. Read
 * by hand: not every compiler's __builtin_cpu_supports knows VAES. */
bool http_tls_aes_wide(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    if (!(c & bit_AES) || !(c & bit_PCLMUL) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) /* XMM and YMM state */
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b & bit_AVX2) && (c & (1u << 9)) && (c & (1u << 10)); /* VAES, VPCLMULQDQ */
}

/* ---- AES-CTR ---- */

static void ctr_init(const br_block_ctr_class **vctx, const void *key, size_t len)
{
    br_aes_x86ni_ctr_keys *ctx = (br_aes_x86ni_ctr_keys *)vctx;
    br_aes_x86ni_ctr_init(ctx, key, len);
    ctx->vtable = &http_tls_aes_ctr_wide_vtable;
}

/* n registers (2n blocks) of key stream from the counters at *ctr,
 * which advance; n is a constant at every call, so the loops unroll and
 * the registers stay registers at -O2. */
WIDE static inline void keystream(__m256i *x, __m256i *ctr, const __m256i *rk, unsigned nr, int n)
{
    const __m256i two = _mm256_set_epi32(2, 0, 0, 0, 2, 0, 0, 0);
    const __m256i swap = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 14, 13, 12, 0, 1, 2, 3, 4, 5,
                                          6, 7, 8, 9, 10, 11, 15, 14, 13, 12);
#pragma GCC unroll 8
    for (int i = 0; i < n; i++) {
        x[i] = _mm256_xor_si256(_mm256_shuffle_epi8(*ctr, swap), rk[0]);
        *ctr = _mm256_add_epi32(*ctr, two);
    }
    for (unsigned r = 1; r < nr; r++) {
        __m256i k = rk[r];
#pragma GCC unroll 8
        for (int i = 0; i < n; i++)
            x[i] = _mm256_aesenc_epi128(x[i], k);
    }
#pragma GCC unroll 8
    for (int i = 0; i < n; i++)
        x[i] = _mm256_aesenclast_epi128(x[i], rk[nr]);
}

/* As br_aes_x86ni_ctr_run: XORs data with the key stream of the blocks
 * iv || cc, iv || cc+1, ... (counter big-endian, wrapping at 2^32); a
 * partial last block uses the start of its key-stream block. Returns cc
 * plus the number of whole blocks. */
WIDE static uint32_t ctr_run(const br_block_ctr_class *const *vctx, const void *iv, uint32_t cc, void *data,
                             size_t len)
{
    const br_aes_x86ni_ctr_keys *ctx = (const br_aes_x86ni_ctr_keys *)vctx;
    unsigned nr = ctx->num_rounds;
    __m256i rk[15];
    for (unsigned u = 0; u <= nr; u++)
        rk[u] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(ctx->skey.skni + 16 * u)));
    uint32_t end = cc + (uint32_t)(len >> 4);
    /* Counters are kept little-endian in the last word of each lane, so
     * that a 32-bit add steps them; a shuffle makes them big-endian. */
    unsigned char b[16];
    memcpy(b, iv, 12);
    memcpy(b + 12, &cc, 4);
    __m256i ctr = _mm256_add_epi32(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b)),
                                   _mm256_set_epi32(1, 0, 0, 0, 0, 0, 0, 0));
    unsigned char *p = data;
    __m256i x[8];
    for (; len >= 256; p += 256, len -= 256) {
        keystream(x, &ctr, rk, nr, 8);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m256i d = _mm256_loadu_si256((const __m256i *)(p + 32 * i));
            _mm256_storeu_si256((__m256i *)(p + 32 * i), _mm256_xor_si256(d, x[i]));
        }
    }
    if (len == 0)
        return end;
    /* The tail (all of a small record, the tag's one block) in one batch
     * of the size it needs, its rounds overlapping. */
    if (len <= 64)
        keystream(x, &ctr, rk, nr, 2);
    else if (len <= 128)
        keystream(x, &ctr, rk, nr, 4);
    else
        keystream(x, &ctr, rk, nr, 8);
    unsigned char ks[256];
    for (size_t i = 0; i < 8 && 32 * i < len; i++)
        _mm256_storeu_si256((__m256i *)(ks + 32 * i), x[i]);
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i d = _mm256_loadu_si256((const __m256i *)(p + i));
        _mm256_storeu_si256((__m256i *)(p + i), _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(ks + i))));
    }
    for (; i < len; i++)
        p[i] ^= ks[i];
    return end;
}

const br_block_ctr_class http_tls_aes_ctr_wide_vtable = {
    sizeof(br_aes_x86ni_ctr_keys), 16, 4, ctr_init, ctr_run,
};

/* ---- GHASH ---- */

WIDE static inline __m128i rev128(__m128i x)
{
    return _mm_shuffle_epi8(x, _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
}

/* The reflected 256-bit product hi:lo shifted left by one bit and
 * reduced: the GF(2^128) product of the two factors. */
WIDE static inline __m128i gf_reduce(__m128i lo, __m128i hi)
{
    __m128i c0 = _mm_srli_epi32(lo, 31), c1 = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    hi = _mm_or_si128(hi, _mm_srli_si128(c0, 12));
    hi = _mm_or_si128(hi, _mm_slli_si128(c1, 4));
    lo = _mm_or_si128(lo, _mm_slli_si128(c0, 4));
    __m128i a = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
    __m128i carry = _mm_srli_si128(a, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(a, 12));
    __m128i b = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
    lo = _mm_xor_si128(lo, _mm_xor_si128(b, carry));
    return _mm_xor_si128(hi, lo);
}

WIDE static inline __m128i gf_mul(__m128i a, __m128i b)
{
    __m128i lo = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i hi = _mm_clmulepi64_si128(a, b, 0x11);
    __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    return gf_reduce(lo, hi);
}

/* Folds n = 2 * nk blocks at p into acc: acc = (acc ^ X0)·H^n ^ X1·H^(n-1)
 * ^ ... ^ X(n-1)·H, with one reduction. k[j] holds the powers for blocks
 * 2j and 2j+1 (the higher one in lane 0, since it multiplies the earlier
 * block), kk[j] the XOR of each power's two halves: Karatsuba's middle
 * product, (a1 ^ a0)(b1 ^ b0) ^ a1·b1 ^ a0·b0, takes three carry-less
 * multiplications a block instead of four. */
WIDE static inline __m128i fold(__m128i acc, const unsigned char *p, const __m256i *k, const __m256i *kk, int nk)
{
    const __m256i rev = _mm256_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11,
                                         10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m256i x = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)p), rev);
    x = _mm256_xor_si256(x, _mm256_zextsi128_si256(acc));
    __m256i lo = _mm256_clmulepi64_epi128(x, k[0], 0x00);
    __m256i hi = _mm256_clmulepi64_epi128(x, k[0], 0x11);
    __m256i mid = _mm256_clmulepi64_epi128(_mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e)), kk[0], 0x00);
#pragma GCC unroll 8
    for (int j = 1; j < nk; j++) {
        x = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(p + 32 * j)), rev);
        lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128(x, k[j], 0x00));
        hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128(x, k[j], 0x11));
        mid = _mm256_xor_si256(
            mid, _mm256_clmulepi64_epi128(_mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e)), kk[j], 0x00));
    }
    __m128i l = _mm_xor_si128(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1));
    __m128i h = _mm_xor_si128(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1));
    __m128i m = _mm_xor_si128(_mm256_castsi256_si128(mid), _mm256_extracti128_si256(mid, 1));
    m = _mm_xor_si128(m, _mm_xor_si128(l, h));
    l = _mm_xor_si128(l, _mm_slli_si128(m, 8));
    h = _mm_xor_si128(h, _mm_srli_si128(m, 8));
    return gf_reduce(l, h);
}

/* As br_ghash_pclmul: y (16 bytes) = GHASH of data with key h, the last
 * partial block padded with zeros. Sixteen blocks a reduction while they
 * last (the reduction is the serial chain from one step to the next),
 * then eight, then one. */
WIDE void http_tls_ghash_wide(void *y, const void *h, const void *data, size_t len)
{
    const unsigned char *p = data;
    __m128i hk = rev128(_mm_loadu_si128((const __m128i *)h));
    __m128i acc = rev128(_mm_loadu_si128((const __m128i *)y));
    if (len >= 128) {
        /* pw[i] = H^(i+1), as many as the longest fold needs. */
        int npw = len >= 256 ? 16 : 8;
        __m128i pw[16];
        pw[0] = hk;
        for (int i = 1; i < npw; i++)
            pw[i] = gf_mul(pw[i - 1], hk);
        __m256i k[8], kk[8];
        for (int j = 0; j < npw / 2; j++) {
            k[j] = _mm256_set_m128i(pw[npw - 2 - 2 * j], pw[npw - 1 - 2 * j]);
            kk[j] = _mm256_xor_si256(k[j], _mm256_shuffle_epi32(k[j], 0x4e));
        }
        for (; len >= 256; p += 256, len -= 256)
            acc = fold(acc, p, k, kk, 8);
        /* The last eight powers, H^8..H, are the last four registers. */
        for (; len >= 128; p += 128, len -= 128)
            acc = fold(acc, p, k + npw / 2 - 4, kk + npw / 2 - 4, 4);
    }
    while (len >= 16) {
        acc = gf_mul(_mm_xor_si128(acc, rev128(_mm_loadu_si128((const __m128i *)p))), hk);
        p += 16;
        len -= 16;
    }
    if (len > 0) {
        unsigned char last[16] = {0};
        memcpy(last, p, len);
        acc = gf_mul(_mm_xor_si128(acc, rev128(_mm_loadu_si128((const __m128i *)last))), hk);
    }
    _mm_storeu_si128((__m128i *)y, rev128(acc));
}
