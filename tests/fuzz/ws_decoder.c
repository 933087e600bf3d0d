/*
 * ws_decoder.c: libFuzzer target for the WebSocket read path: the frame
 * decoder, reassembly, Close parsing and UTF-8 validation.
 *
 * Input: one configuration byte, then the byte stream from the "client".
 * The stream is decoded twice, whole and in chunks whose sizes come from
 * the configuration, and both runs must agree on every frame, control
 * frame, data byte and the error (code and stream offset); a third run
 * tries the one-step ws_decoder_whole first at every step, as the
 * connection loop does, and must agree too. Completed text
 * messages and accepted Close reasons are checked against a separate,
 * slow UTF-8 decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "utf8.h"
#include "ws/close.h"
#include "ws/frame.h"
#include "ws/message.h"

#define CHECK(c)                                                   \
    do {                                                           \
        if (!(c)) {                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                               \
        }                                                          \
    } while (0)

struct digest {
    uint64_t shape; /* frames, ends, controls */
    uint64_t data;  /* every data byte in order */
    uint64_t data_len;
    unsigned code;
    uint64_t at;
    unsigned messages;
};

static void mix(uint64_t *h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        *h ^= (uint8_t)(v >> (8 * i));
        *h *= UINT64_C(0x100000001b3);
    }
}

/* Slow UTF-8 check by code point arithmetic. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, cp = c & 0x07;
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

static void on_message(const struct ws_reasm *r)
{
    if (r->opcode == WS_OP_TEXT)
        CHECK(ref_utf8(r->buf.data, r->buf.len));
}

static void on_close(const uint8_t *p, size_t n)
{
    struct ws_close_payload cp;
    struct ws_close c;
    uint8_t reply[WS_CONTROL_FRAME_MAX];
    int rc = ws_close_parse(p, n, &cp);
    if (rc == 0) {
        CHECK(n == 0 || ws_close_code_valid(cp.code));
        CHECK(ref_utf8(cp.reason, cp.reason_len));
    } else {
        CHECK(cp.code == WS_CLOSE_PROTOCOL_ERROR || cp.code == WS_CLOSE_INVALID_DATA);
    }
    ws_close_init(&c);
    int len = ws_close_received(&c, p, n, reply);
    CHECK(len == 2 || len == 4);
    CHECK(c.state == WS_STATE_CLOSED);
    /* The reply itself must parse. */
    struct ws_close_payload back;
    CHECK(ws_close_parse(reply + 2, (size_t)len - 2, &back) == 0);
}

static void run(const struct ws_decoder_config *cfg, uint8_t *in, size_t n, uint32_t seed, bool reassemble,
                bool whole_first, struct digest *dg)
{
    struct ws_decoder d;
    struct ws_event ev;
    struct ws_reasm r;
    size_t start = 0;

    memset(dg, 0, sizeof *dg);
    dg->shape = dg->data = UINT64_C(0xcbf29ce484222325);
    ws_decoder_init(&d, cfg);
    ws_reasm_init(&r, NULL, 0, (size_t)(cfg->max_message > SIZE_MAX ? SIZE_MAX : cfg->max_message), grow, NULL);
    while (start < n || start == 0) {
        size_t len = n - start;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t want = 1 + (seed >> 16) % 17;
            if (want < len)
                len = want;
        }
        uint8_t *chunk = in + start;
        size_t off = 0;
        for (;;) {
            ssize_t rc = whole_first ? ws_decoder_whole(&d, chunk + off, len - off, &ev) : 0;
            if (rc > 0) {
                /* The FRAME, DATA and FRAME_END events it stands for. */
                CHECK(ev.kind == WS_EV_MESSAGE && (size_t)rc <= len - off);
                CHECK(ev.data + ev.len == chunk + off + (size_t)rc);
                off += (size_t)rc;
                CHECK(d.consumed == start + off);
                mix(&dg->shape, 1);
                mix(&dg->shape, ev.opcode | (unsigned)ev.fin << 8 | (unsigned)ev.rsv << 16);
                mix(&dg->shape, ev.frame_len);
                for (size_t i = 0; i < ev.len; i++)
                    mix(&dg->data, ev.data[i]);
                dg->data_len += ev.len;
                mix(&dg->shape, 2);
                mix(&dg->shape, ev.opcode | (unsigned)ev.fin << 8);
                if (ev.opcode == WS_OP_TEXT)
                    CHECK(ref_utf8(ev.data, ev.len));
                continue;
            }
            if (rc == 0)
                rc = ws_decoder_next(&d, chunk + off, len - off, &ev);
            if (rc == RT_PARSE_ERROR) {
                dg->code = ws_decoder_close_code(&d);
                CHECK(dg->code == 1002 || dg->code == 1007 || dg->code == 1009);
                CHECK(d.consumed >= start && d.consumed <= start + len);
                dg->at = (size_t)d.consumed;
                free(r.buf.data);
                return;
            }
            if (rc == RT_PARSE_INCOMPLETE) {
                CHECK(d.consumed == start + len);
                off = len;
                break;
            }
            CHECK(rc >= 0 && (size_t)rc <= len - off);
            off += (size_t)rc;
            switch (ev.kind) {
            case WS_EV_FRAME:
                mix(&dg->shape, 1);
                mix(&dg->shape, ev.opcode | (unsigned)ev.fin << 8 | (unsigned)ev.rsv << 16);
                mix(&dg->shape, ev.frame_len);
                break;
            case WS_EV_DATA:
                CHECK(ev.data >= chunk && ev.data + ev.len <= chunk + off && ev.len > 0);
                for (size_t i = 0; i < ev.len; i++)
                    mix(&dg->data, ev.data[i]);
                dg->data_len += ev.len;
                break;
            case WS_EV_FRAME_END:
                mix(&dg->shape, 2);
                mix(&dg->shape, ev.opcode | (unsigned)ev.fin << 8);
                break;
            case WS_EV_CONTROL:
                CHECK(ev.len <= WS_CONTROL_MAX && ev.fin);
                mix(&dg->shape, 3);
                mix(&dg->shape, ev.opcode);
                for (size_t i = 0; i < ev.len; i++)
                    mix(&dg->shape, ev.data[i]);
                if (reassemble && ev.opcode == WS_OP_CLOSE)
                    on_close(ev.data, ev.len);
                break;
            default:
                CHECK(0);
            }
            if (reassemble) {
                int m = ws_reasm_feed(&r, &ev);
                /* The decoder already enforced sequencing and the limit. */
                CHECK(m >= 0);
                if (m == WS_REASM_MESSAGE) {
                    dg->messages++;
                    on_message(&r);
                }
            }
        }
        start += len;
        if (n == 0)
            break;
    }
    free(r.buf.data);
}

static void fuzz_utf8(const uint8_t *p, size_t n, uint8_t cut)
{
    size_t bad = 0;
    bool ok = rt_utf8_valid(p, n, &bad);
    CHECK(ok == ref_utf8(p, n));
    /* Split in two: the same verdict and the same offset. */
    size_t k = n ? cut % (n + 1) : 0;
    struct rt_utf8 v;
    rt_utf8_init(&v);
    size_t a = rt_utf8_feed(&v, p, k);
    size_t off;
    if (a < k) {
        off = a;
    } else {
        size_t b = rt_utf8_feed(&v, p + k, n - k);
        off = b < n - k ? k + b : n;
    }
    if (ok)
        CHECK(off == n && rt_utf8_complete(&v));
    else
        CHECK(off == bad);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t c = data[0];
    struct ws_decoder_config cfg = {
        /* Small limits so the fuzzer reaches 1009 with short inputs. */
        .max_message = (c & 0x08) ? 64 + (uint64_t)(c & 0x07) * 1000 : 0,
        .max_frame = (c & 0x10) ? 100 : 0,
        .rsv_allowed = (c & 0x20) ? WS_RSV1 : 0,
    };
    const uint8_t *stream = data + 1;
    size_t n = size - 1;

    fuzz_utf8(stream, n, c);

    uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1), *f = malloc(n ? n : 1);
    if (n) {
        memcpy(a, stream, n);
        memcpy(b, stream, n);
        memcpy(f, stream, n);
    }
    struct digest whole, pieces, first;
    run(&cfg, a, n, 0, false, false, &whole);
    run(&cfg, b, n, 0x9e3779b9u ^ c, true, false, &pieces);
    run(&cfg, f, n, 0, false, true, &first);

    CHECK(whole.code == pieces.code);
    CHECK(whole.at == pieces.at);
    CHECK(whole.shape == pieces.shape);
    /* A text payload that fails UTF-8 is handed out up to the bad byte
     * when it arrives in pieces, and not at all when its chunk fails
     * whole, so the data is compared only without 1007. */
    if (whole.code != WS_CLOSE_INVALID_DATA) {
        CHECK(whole.data == pieces.data);
        CHECK(whole.data_len == pieces.data_len);
    }
    /* The one-step path fails a bad text payload before reporting its
     * frame, so with 1007 only the error itself is compared. */
    CHECK(first.code == whole.code);
    CHECK(first.at == whole.at);
    if (whole.code != WS_CLOSE_INVALID_DATA) {
        CHECK(first.shape == whole.shape);
        CHECK(first.data == whole.data);
        CHECK(first.data_len == whole.data_len);
    }
    free(a);
    free(b);
    free(f);
    return 0;
}
