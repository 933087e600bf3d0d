/*
 * pmd_inflate.c: libFuzzer target for permessage-deflate's receive side:
 * inflate with the message limit on the inflated size and UTF-8 checked as
 * bytes come out (RFC 7692 §7.2.2), and the send side's round trip.
 *
 * Input: one configuration byte (text or binary, shared or own stream,
 * limit, window bits), then a compressed message. The result must agree
 * with zlib driven directly: output within the limit and equal to zlib's
 * prefix, 1009 exactly when zlib produces more than the limit, text
 * accepted exactly when it is complete valid UTF-8, 1007 when the data
 * with the tail does not end between blocks. Then the input itself
 * is compressed as a message and must inflate back to the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rt.h"
#include "utf8.h"
#include "ws/close.h"
#include "ws/pmd.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

/* zlib directly: up to cap bytes of output; *status 0 fine, 1 bad data,
 * 2 more than cap. */
static size_t ref(const uint8_t *in, size_t n, unsigned bits, uint8_t *out, size_t cap, int *status)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    CHECK(inflateInit2(&s, -(int)bits) == Z_OK);
    uint8_t *all = malloc(n + 4);
    memcpy(all, in, n);
    memcpy(all + n, "\x00\x00\xff\xff", 4);
    s.next_in = all;
    s.avail_in = (uInt)(n + 4);
    s.next_out = out;
    s.avail_out = (uInt)cap + 1;
    *status = 0;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    size_t got = cap + 1 - s.avail_out;
    if (got > cap)
        *status = 2;
    else if (rc == Z_STREAM_END) {
        /* Only our tail may follow a final block. */
        if (s.avail_in > 4 || (s.avail_in && (size_t)(s.next_in - all) < n))
            *status = 1;
    } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
        *status = 1;
    else if (s.avail_in != 0)
        *status = 1;
    else if (!(s.data_type & 128)) /* not between blocks: cut short (§7.2.1) */
        *status = 1;
    inflateEnd(&s);
    free(all);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    bool text = cfg & 1;
    bool own = cfg & 2;
    size_t limit = (size_t)1 << (4 + (cfg >> 2 & 7) * 2); /* 16 B .. 256 KiB */
    unsigned bits = 15;
    struct ws_msgbuf out;
    ws_msgbuf_init(&out, NULL, 0, limit, grow, NULL);
    struct ws_zin *z = own ? ws_zin_new(bits) : NULL;
    CHECK(!own || z);
    uint16_t code = ws_inflate_msg(z, in, n, text, &out);
    CHECK(out.len <= limit + 1);
    CHECK(out.cap <= limit + 1);
    uint8_t *r = malloc(limit + 1);
    int st;
    size_t rl = ref(in, n, bits, r, limit, &st);
    /* Whatever came out is zlib's output. */
    CHECK(out.len <= rl && memcmp(out.data ? out.data : (uint8_t *)"", r, out.len) == 0);
    size_t bad;
    bool valid = rt_utf8_valid(r, rl > limit ? limit : rl, &bad);
    if (code == 0) {
        CHECK(st == 0 && out.len == rl);
        if (text)
            CHECK(valid);
    } else if (code == WS_CLOSE_TOO_BIG) {
        CHECK(st == 2);
        if (text) /* no invalid byte before the limit was passed */
            CHECK(valid || bad >= limit);
    } else {
        CHECK(code == WS_CLOSE_INVALID_DATA);
        CHECK(st == 1 || (text && !valid) || (text && st == 2));
    }
    if (st == 0 && code == WS_CLOSE_INVALID_DATA)
        CHECK(text && !valid);
    ws_zin_free(z);
    free(r);

    /* Round trip of the input itself as a message. */
    uint8_t *c;
    size_t clen;
    unsigned wb = 8 + (cfg >> 5);
    CHECK(ws_deflate_msg(NULL, wb, 1 + cfg % 9, in, n, &c, &clen) == 0);
    ws_msgbuf_init(&out, out.data, out.cap, n ? n : 1, grow, NULL);
    CHECK(ws_inflate_msg(NULL, c, clen, false, &out) == 0);
    CHECK(out.len == n && (n == 0 || memcmp(out.data, in, n) == 0));
    free(c);
    free(out.data);
    return 0;
}
