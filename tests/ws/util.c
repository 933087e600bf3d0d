#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt.h"
#include "ws/close.h"

const uint8_t test_key[4] = {0x37, 0xfa, 0x21, 0x3d};

uint8_t *mk_words(size_t n, unsigned seed, const char *const words[8])
{
    uint8_t *p = malloc(n + 1);
    ck_assert_ptr_nonnull(p);
    uint32_t x = seed * 2654435761u + 1;
    size_t i = 0;
    while (i < n) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % 8];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
    }
    return p;
}

void tb_init(struct tbuf *t)
{
    memset(t, 0, sizeof *t);
}

void tb_free(struct tbuf *t)
{
    free(t->p);
    tb_init(t);
}

void tb_put(struct tbuf *t, const void *p, size_t n)
{
    if (t->n + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        QCHECK(t->p != NULL);
        t->cap = cap;
    }
    if (n)
        memcpy(t->p + t->n, p, n);
    t->n += n;
}

void tb_printf(struct tbuf *t, const char *fmt, ...)
{
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    QCHECK(n >= 0 && (size_t)n < sizeof s);
    tb_put(t, s, (size_t)n);
}

void tb_close_run(struct tbuf *t)
{
    if (t->in_data)
        tb_put(t, "] ", 2);
    t->in_data = false;
}

void tb_frame(struct tbuf *t, unsigned op, bool fin, uint64_t len)
{
    tb_close_run(t);
    tb_printf(t, "F%u/%d/%llu ", op, fin, (unsigned long long)len);
}

void tb_data(struct tbuf *t, const void *p, size_t n)
{
    if (!t->in_data)
        tb_put(t, "D[", 2);
    t->in_data = true;
    tb_put(t, p, n);
}

void tb_end(struct tbuf *t, unsigned op, bool fin)
{
    tb_close_run(t);
    tb_printf(t, "E%u/%d ", op, fin);
}

void tb_ctl(struct tbuf *t, unsigned op, const void *p, size_t n)
{
    tb_close_run(t);
    tb_printf(t, "C%u[", op);
    tb_put(t, p, n);
    tb_put(t, "] ", 2);
}

void tb_err(struct tbuf *t, unsigned code, uint64_t at)
{
    tb_close_run(t);
    tb_printf(t, "!%u@%llu", code, (unsigned long long)at);
}

void mk_frame_ex(struct tbuf *t, uint8_t b0, const uint8_t *key, const void *payload, size_t n, int len_bytes,
                 uint64_t declared_len)
{
    uint8_t h[14];
    size_t hn = 0;
    uint64_t len = declared_len ? declared_len : n;
    uint8_t mbit = key ? 0x80 : 0;
    if (len_bytes == 0)
        len_bytes = len < 126 ? 1 : len <= 0xFFFF ? 2 : 8;
    h[hn++] = b0;
    if (len_bytes == 1) {
        h[hn++] = (uint8_t)(mbit | len);
    } else if (len_bytes == 2) {
        h[hn++] = mbit | 126;
        h[hn++] = (uint8_t)(len >> 8);
        h[hn++] = (uint8_t)len;
    } else {
        h[hn++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            h[hn++] = (uint8_t)(len >> (8 * i));
    }
    if (key) {
        memcpy(h + hn, key, 4);
        hn += 4;
    }
    tb_put(t, h, hn);
    size_t at = t->n;
    tb_put(t, payload, n);
    /* The reference masking loop of §5.3, byte by byte. */
    for (size_t i = 0; key && i < n; i++)
        t->p[at + i] ^= key[i % 4];
}

void mk_frame(struct tbuf *t, uint8_t b0, const void *payload, size_t n)
{
    mk_frame_ex(t, b0, test_key, payload, n, 0, 0);
}

/* ws_decoder_whole at chunk[off..len): 0 with the decoder untouched, an
 * error, or a whole message recorded as the FRAME, DATA and FRAME_END
 * events the incremental path gives for it. */
static ssize_t try_whole(struct ws_decoder *d, uint8_t *chunk, size_t off, size_t len, struct tbuf *t)
{
    struct ws_decoder before;
    struct ws_event ev;
    memcpy(&before, d, sizeof before);
    ssize_t rc = ws_decoder_whole(d, chunk + off, len - off, &ev);
    if (rc == 0) {
        QCHECK(memcmp(&before, d, sizeof before) == 0);
        return 0;
    }
    if (rc < 0) {
        QCHECK(rc == RT_PARSE_ERROR);
        return rc;
    }
    QCHECK(ev.kind == WS_EV_MESSAGE && ev.fin && ev.msg_opcode == ev.opcode);
    QCHECK(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
    QCHECK(ev.len == ev.frame_len && (size_t)rc <= len - off);
    QCHECK(ev.data + ev.len == chunk + off + (size_t)rc);
    tb_frame(t, ev.opcode, true, ev.frame_len);
    if (ev.len)
        tb_data(t, ev.data, ev.len);
    tb_end(t, ev.opcode, true);
    return rc;
}

static void run_decoder_as(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const size_t *cuts,
                           size_t ncuts, struct tbuf *t, bool whole_first)
{
    static struct guard g;
    struct ws_decoder d;
    struct ws_event ev;
    size_t start = 0;

    ws_decoder_init(&d, cfg);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        size_t len = end - start;
        uint8_t *chunk = guard_place(&g, in + start, len);
        size_t off = 0;
        for (;;) {
            ssize_t rc = whole_first ? try_whole(&d, chunk, off, len, t) : 0;
            if (rc > 0) {
                off += (size_t)rc;
                QCHECK(d.consumed == start + off);
                continue;
            }
            if (rc == 0)
                rc = ws_decoder_next(&d, chunk + off, len - off, &ev);
            if (rc == RT_PARSE_ERROR) {
                QCHECK(ws_decoder_close_code(&d) != 0);
                QCHECK(d.consumed >= start && d.consumed - start <= len);
                tb_err(t, ws_decoder_close_code(&d), (size_t)d.consumed);
                /* Errors are sticky and consume nothing more. */
                uint64_t at = d.consumed;
                QCHECK(ws_decoder_next(&d, chunk + off, len - off, &ev) == RT_PARSE_ERROR);
                QCHECK(d.consumed == at);
                return;
            }
            if (rc == RT_PARSE_INCOMPLETE) {
                off = len;
                QCHECK(d.consumed == end);
                break;
            }
            QCHECK(rc >= 0 && (size_t)rc <= len - off);
            off += (size_t)rc;
            QCHECK(d.consumed == start + off);
            switch (ev.kind) {
            case WS_EV_FRAME:
                tb_frame(t, ev.opcode, ev.fin, ev.frame_len);
                break;
            case WS_EV_DATA:
                QCHECK(ev.len > 0);
                QCHECK(ev.data >= chunk && ev.data + ev.len <= chunk + off);
                tb_data(t, ev.data, ev.len);
                break;
            case WS_EV_FRAME_END:
                tb_end(t, ev.opcode, ev.fin);
                break;
            case WS_EV_CONTROL:
                QCHECK(ev.len <= WS_CONTROL_MAX);
                tb_ctl(t, ev.opcode, ev.data, ev.len);
                break;
            default:
                ck_abort_msg("unexpected event %d", ev.kind);
            }
        }
        start = end;
    }
    tb_close_run(t);
}

void run_decoder(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const size_t *cuts,
                 size_t ncuts, struct tbuf *t)
{
    run_decoder_as(cfg, in, n, cuts, ncuts, t, false);
}

void run_decoder_whole_first(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const size_t *cuts,
                             size_t ncuts, struct tbuf *t)
{
    run_decoder_as(cfg, in, n, cuts, ncuts, t, true);
}

static void show(const char *what, const struct tbuf *t)
{
    fprintf(stderr, "%s (%zu bytes): ", what, t->n);
    for (size_t i = 0; i < t->n && i < 200; i++) {
        uint8_t c = t->p[i];
        if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

static void same(const struct tbuf *want, const struct tbuf *got, const char *how, size_t at)
{
    if (want->n == got->n && (want->n == 0 || memcmp(want->p, got->p, want->n) == 0))
        return;
    show("want", want);
    show("got ", got);
    ck_abort_msg("transcripts differ (%s %zu)", how, at);
}

/* Both drivers (ws_decoder_next alone, and ws_decoder_whole tried first at
 * every step as the connection loop does) must give the same transcript. */
void check_decoder(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const struct tbuf *expect)
{
    struct tbuf whole, t;
    tb_init(&whole);
    tb_init(&t);

    run_decoder(cfg, in, n, NULL, 0, &whole);
    if (expect)
        same(expect, &whole, "whole", 0);
    for (int w = 0; w < 2; w++) {
        if (w) {
            t.n = 0;
            run_decoder_as(cfg, in, n, NULL, 0, &t, true);
            same(&whole, &t, "whole-first", 0);
        }

        /* Every split point, the 64 KiB inputs included. */
        for (size_t cut = 1; cut < n; cut++) {
            t.n = 0;
            run_decoder_as(cfg, in, n, &cut, 1, &t, w);
            same(&whole, &t, w ? "whole-first, split at" : "split at", cut);
        }

        if (n > 1) {
            size_t *cuts = malloc((n - 1) * sizeof *cuts);
            ck_assert_ptr_nonnull(cuts);
            for (size_t i = 0; i + 1 < n; i++)
                cuts[i] = i + 1;
            t.n = 0;
            run_decoder_as(cfg, in, n, cuts, n - 1, &t, w);
            same(&whole, &t, w ? "whole-first, byte at a time" : "byte at a time", 1);
            free(cuts);
        }
    }
    tb_free(&whole);
    tb_free(&t);
}
