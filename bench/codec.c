/*
 * codec.c: micro-benchmarks for the WebSocket read path: unmasking, frame
 * decoding and UTF-8 validation. Prints "bench <name> <key>=<value> ..."
 * lines; no figure here is a pass/fail criterion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "utf8.h"
#include "ws/frame.h"

/* Each figure runs for at least this long. */
#define MIN_NS INT64_C(300000000)

static volatile unsigned sink;

static void bench_unmask(size_t size)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *buf = aligned_alloc(64, size);
    memset(buf, 'a', size);
    size_t iters = (64u << 20) / size + 1, bytes = 0;
    int64_t t0 = rt_now_ns(), t;
    do {
        for (size_t i = 0; i < iters; i++)
            sink += ws_unmask(buf, size, key, 0);
        bytes += iters * size;
        t = rt_now_ns();
    } while (t - t0 < MIN_NS);
    printf("bench unmask size=%zu gb_per_s=%.2f\n", size, (double)bytes / (double)(t - t0));
    free(buf);
}

/* A buffer of back-to-back masked binary frames, decoded over and over:
 * unmasking in place flips the payload each pass, which binary frames do
 * not mind, while the headers stay intact. */
static void bench_decode(size_t size)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t frame = ws_frame_header_len(size) + 4 + size;
    size_t nframes = (1u << 20) / frame;
    if (nframes < 16)
        nframes = 16;
    uint8_t *buf = malloc(nframes * frame), *p = buf;
    for (size_t f = 0; f < nframes; f++) {
        int h = ws_frame_header(p, WS_OP_BINARY, true, size);
        p[1] |= 0x80; /* make it a client frame */
        p += h;
        memcpy(p, key, 4);
        p += 4;
        memset(p, 'x', size);
        p += size;
    }
    size_t len = (size_t)(p - buf);

    struct ws_decoder d;
    struct ws_decoder_config cfg = {.max_message = UINT64_MAX};
    struct ws_event ev;
    ws_decoder_init(&d, &cfg);
    uint64_t frames = 0;
    int64_t t0 = rt_now_ns(), t;
    do {
        for (int pass = 0; pass < 8; pass++) {
            size_t off = 0;
            ssize_t rc;
            while ((rc = ws_decoder_next(&d, buf + off, len - off, &ev)) >= 0) {
                off += (size_t)rc;
                frames += ev.kind == WS_EV_FRAME_END;
            }
            if (rc == RT_PARSE_ERROR) {
                fprintf(stderr, "decode failed: close code %u\n", ws_decoder_close_code(&d));
                exit(1);
            }
        }
        t = rt_now_ns();
    } while (t - t0 < MIN_NS);
    printf("bench decode size=%zu frames_per_s=%.0f\n", size, (double)frames * 1e9 / (double)(t - t0));
    free(buf);
}

static void bench_utf8(const char *kind, const char *unit, size_t unit_len)
{
    size_t size = 256u << 10;
    char *buf = malloc(size);
    size_t n = 0;
    while (n + unit_len <= size) {
        memcpy(buf + n, unit, unit_len);
        n += unit_len;
    }
    size_t bytes = 0;
    int64_t t0 = rt_now_ns(), t;
    do {
        for (int i = 0; i < 64; i++) {
            struct rt_utf8 v;
            rt_utf8_init(&v);
            sink += (unsigned)rt_utf8_feed(&v, buf, n);
            if (!rt_utf8_complete(&v)) {
                fprintf(stderr, "utf8 %s: invalid input\n", kind);
                exit(1);
            }
        }
        bytes += 64 * n;
        t = rt_now_ns();
    } while (t - t0 < MIN_NS);
    printf("bench utf8 kind=%s gb_per_s=%.2f\n", kind, (double)bytes / (double)(t - t0));
    free(buf);
}

int main(void)
{
    static const size_t sizes[] = {16, 1024, 65536};
    for (size_t i = 0; i < 3; i++)
        bench_unmask(sizes[i]);
    for (size_t i = 0; i < 3; i++)
        bench_decode(sizes[i]);

    static const char ascii[] = "The quick brown fox jumps over the lazy dog; {\"id\": 12345, \"ok\": true}\n";
    /* Latin with accents, Cyrillic, CJK and emoji: 1- to 4-byte forms. */
    static const char mixed[] = "Hello, w\xc3\xb6rld! \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, "
                                "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c "
                                "\xf0\x9f\x8c\x8d\xf0\x9f\x9a\x80 caf\xc3\xa9 na\xc3\xafve\n";
    bench_utf8("ascii", ascii, sizeof ascii - 1);
    bench_utf8("mixed", mixed, sizeof mixed - 1);
    return 0;
}
