#include "utf8.h"

#include <string.h>

#include "rt.h"

/*
 * Byte classes. Each class is a set of bytes that every DFA state treats
 * alike (RFC 3629 §4 syntax):
 *   0 00..7F  ASCII             6 E0     3-byte lead, next A0..BF
 *   1 80..8F  continuation      7 E1..EC, EE..EF  3-byte lead
 *   2 90..9F  continuation      8 ED     3-byte lead, next 80..9F (no surrogates)
 *   3 A0..BF  continuation      9 F0     4-byte lead, next 90..BF
 *   4 C0, C1, F5..FF  never     10 F1..F3 4-byte lead
 *   5 C2..DF  2-byte lead       11 F4    4-byte lead, next 80..8F (<= U+10FFFF)
 */
#define NCLASS 12

static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* DFA states: what the bytes seen so far still require. */
enum {
    S_ACCEPT, /* at a character boundary */
    S_REJECT, /* failed for good */
    S_NEED1,  /* one continuation byte 80..BF */
    S_NEED2,  /* two continuation bytes */
    S_NEED3,  /* three continuation bytes */
    S_E0,     /* after E0: A0..BF, then one more (rules out overlongs) */
    S_ED,     /* after ED: 80..9F, then one more (rules out surrogates) */
    S_F0,     /* after F0: 90..BF, then two more (rules out overlongs) */
    S_F4,     /* after F4: 80..8F, then two more (caps at U+10FFFF) */
    NSTATE
};

#define R S_REJECT
static const uint8_t next_state[NSTATE][NCLASS] = {
    /*            00  80  90  A0  C0  C2       E0    E1       ED    F0    F1       F4 */
    [S_ACCEPT] = {S_ACCEPT, R, R, R, R, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_NEED1] = {R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R},
    [S_NEED2] = {R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R},
    [S_NEED3] = {R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_E0] = {R, R, R, S_NEED1, R, R, R, R, R, R, R, R},
    [S_ED] = {R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R},
    [S_F0] = {R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_F4] = {R, S_NEED2, R, R, R, R, R, R, R, R, R, R},
};
#undef R

#define HIGH_BITS UINT64_C(0x8080808080808080)

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

void rt_utf8_init(struct rt_utf8 *v)
{
    v->state = S_ACCEPT;
}

/*
 * Between characters, with at least 4 bytes left, whole characters are
 * checked with direct comparisons instead of one table step per byte; the
 * second byte's range per lead (RFC 3629 §4) excludes overlongs,
 * surrogates and code points above U+10FFFF. Returns where it stopped: at
 * the end, within 4 bytes of it, or at a character it could not accept,
 * which the DFA then walks byte by byte to find the exact failing offset.
 */
static size_t skip_valid(const uint8_t *p, size_t i, size_t n)
{
    while (n - i >= 4) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (n - i >= 8 && !(load64(p + i) & HIGH_BITS))
                i += 8;
            else
                i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if ((p[i + 1] & 0xC0) != 0x80)
                break;
            i += 2;
        } else if ((c & 0xF0) == 0xE0) {
            uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
            if (p[i + 1] < lo || p[i + 1] > hi || (p[i + 2] & 0xC0) != 0x80)
                break;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
            if (p[i + 1] < lo || p[i + 1] > hi || (p[i + 2] & 0xC0) != 0x80 || (p[i + 3] & 0xC0) != 0x80)
                break;
            i += 4;
        } else {
            break;
        }
    }
    return i;
}

size_t rt_utf8_feed(struct rt_utf8 *v, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    unsigned s = v->state;
    size_t i = 0;

    if (RT_UNLIKELY(s == S_REJECT))
        return 0;
    while (i < n) {
        if (s == S_ACCEPT) {
            /* Runs of ASCII are skipped a word at a time: four words per
             * step while no byte has its top bit set. */
            while (n - i >= 32 &&
                   !((load64(p + i) | load64(p + i + 8) | load64(p + i + 16) | load64(p + i + 24)) & HIGH_BITS))
                i += 32;
            i = skip_valid(p, i, n);
            if (i == n)
                break;
        }
        s = next_state[s][byte_class[p[i]]];
        if (RT_UNLIKELY(s == S_REJECT)) {
            v->state = S_REJECT;
            return i;
        }
        i++;
    }
    v->state = (uint8_t)s;
    return n;
}

bool rt_utf8_complete(const struct rt_utf8 *v)
{
    return v->state == S_ACCEPT;
}

bool rt_utf8_failed(const struct rt_utf8 *v)
{
    return v->state == S_REJECT;
}

bool rt_utf8_valid(const void *p, size_t n, size_t *bad)
{
    struct rt_utf8 v;
    rt_utf8_init(&v);
    size_t off = rt_utf8_feed(&v, p, n);
    if (off == n && rt_utf8_complete(&v))
        return true;
    if (bad)
        *bad = off;
    return false;
}

size_t rt_utf8_prefix(const void *buf, size_t n, size_t max)
{
    const uint8_t *p = buf;
    if (n <= max)
        return n;
    /* Cutting before a continuation byte would split a character; back up
     * to the lead byte (at most three steps in valid input). */
    size_t cut = max;
    while (cut > 0 && (p[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}
