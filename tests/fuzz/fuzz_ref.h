/*
 * fuzz_ref.h: what the newer fuzz targets share: a CHECK that aborts (so
 * libFuzzer saves the input) and slow reference models written from the
 * RFCs' text rather than from the runtime's code, which the targets compare
 * the runtime against.
 */
#ifndef SNOW_FUZZ_REF_H
#define SNOW_FUZZ_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/*
 * RFC 3629 §4, read as "how far can this be a prefix of valid UTF-8":
 *
 *   UTF8-2 = %xC2-DF UTF8-tail
 *   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
 *            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
 *   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
 *            %xF4 %x80-8F 2( UTF8-tail )
 *
 * Returns the offset of the first byte that no valid string can have at
 * that place, or n when s[0..n) is a prefix of valid UTF-8; *complete then
 * says whether it also ends on a character boundary.
 */
static inline size_t ref_utf8_bad(const uint8_t *s, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        for (size_t k = 1; k < len; k++) {
            if (i + k == n) {
                *complete = false;
                return n;
            }
            uint8_t t = s[i + k];
            if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF))
                return i + k;
        }
        i += len;
    }
    return n;
}

static inline bool ref_utf8_ok(const uint8_t *s, size_t n)
{
    bool complete;
    return ref_utf8_bad(s, n, &complete) == n && complete;
}

/* RFC 6455 §7.4: the codes a Close frame may carry. 1000-1003 and
 * 1007-1011 are defined there, 1012-1014 were registered later (IANA
 * "WebSocket Close Code Number Registry"), 3000-4999 are for libraries and
 * applications. 1004 is reserved; 1005, 1006 and 1015 are never sent. */
static inline bool ref_close_code_sendable(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* Tiny deterministic generator for sizes taken from the input. */
static inline uint32_t ref_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

#endif
