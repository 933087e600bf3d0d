/*
 * snow-bench-ws-deflate: echo throughput of snow-echo with and without
 * permessage-deflate, for a JSON-like text payload.
 *
 *   snow-bench-ws-deflate PORT [CONNS [SECONDS [BYTES [MODE]]]]
 *
 * MODE: plain (no extension offered), nct (offers server/client no context
 * takeover), takeover (offers permessage-deflate as is). CONNS connections
 * (default 16) each keep one message in flight (64 different documents of
 * the same shape, in turn): the client sends on every
 * connection, then reads every echo, for SECONDS (default 5). It compresses
 * what it sends when the extension was agreed, and inflates the echoes, so
 * the client's zlib work is in the figure too (both run on this machine).
 * Prints
 *
 *   bench ws_echo mode=M conns=C bytes=B msgs_per_s=X payload_mb_per_s=Y wire_ratio=R
 *
 * where R is uncompressed payload bytes over the bytes on the wire (both
 * directions, frame payloads only).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "../../tests/ws/wsclient.h"

struct conn {
    struct wsc c;
    bool on, cnct, snct;
    z_stream in, out;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *json(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n + 1);
    size_t i = 0;
    for (unsigned k = seed * 100003u; i < n; k++) {
        char row[160];
        int m = snprintf(row, sizeof row,
                         "{\"id\":%u,\"user\":\"user%u\",\"room\":\"lobby\",\"text\":\"message number %u\",\"ok\":true},",
                         k, k % 97, k * 7919 % 10007);
        for (int j = 0; j < m && i < n; j++)
            p[i++] = (uint8_t)row[j];
    }
    return p;
}

static size_t zdeflate(z_stream *s, const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    s->next_in = (Bytef *)(uintptr_t)p;
    s->avail_in = (uInt)n;
    s->next_out = out;
    s->avail_out = (uInt)cap;
    if (deflate(s, Z_SYNC_FLUSH) != Z_OK)
        exit(1);
    return cap - s->avail_out - 4;
}

static size_t zinflate(z_stream *s, const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    s->next_out = out;
    s->avail_out = (uInt)cap;
    s->next_in = (Bytef *)(uintptr_t)p;
    s->avail_in = (uInt)n;
    int rc = inflate(s, Z_SYNC_FLUSH);
    s->next_in = (Bytef *)(uintptr_t)tail;
    s->avail_in = 4;
    rc = inflate(s, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR)
        exit(1);
    return cap - s->avail_out;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: snow-bench-ws-deflate PORT [CONNS [SECONDS [BYTES [plain|nct|takeover]]]]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int nconn = argc > 2 ? atoi(argv[2]) : 16;
    double secs = argc > 3 ? atof(argv[3]) : 5;
    size_t bytes = argc > 4 ? (size_t)atol(argv[4]) : 1024;
    const char *mode = argc > 5 ? argv[5] : "plain";
    const char *offer = strcmp(mode, "plain") == 0 ? NULL
                        : strcmp(mode, "nct") == 0
                            ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                              "client_no_context_takeover\r\n"
                            : "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    for (int i = 0; i < nconn; i++) {
        if (wsc_open(&cs[i].c, port, "/echo", offer, NULL, 0) != 101) {
            fprintf(stderr, "upgrade failed\n");
            return 1;
        }
        const char *a = strcasestr(cs[i].c.head, "Sec-WebSocket-Extensions:");
        cs[i].on = a != NULL;
        if (offer && !cs[i].on) {
            fprintf(stderr, "permessage-deflate not agreed (snow-echo --deflate?)\n");
            return 1;
        }
        if (cs[i].on) {
            cs[i].snct = strstr(a, "server_no_context_takeover") != NULL;
            cs[i].cnct = strstr(a, "client_no_context_takeover") != NULL;
            inflateInit2(&cs[i].in, -15);
            deflateInit2(&cs[i].out, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        }
    }
    /* 64 different documents of the same shape, sent in turn, so that
     * context takeover sees realistic (similar, not identical) traffic. */
    enum { NDOC = 64 };
    uint8_t *docs[NDOC];
    for (unsigned d = 0; d < NDOC; d++)
        docs[d] = json(bytes, d + 1);
    unsigned turn = 0;
    size_t zcap = bytes + bytes / 100 + 64;
    uint8_t *z = malloc(zcap), *back = malloc(bytes + 64);
    uint64_t msgs = 0, wire = 0;
    double t0 = now_s(), t;
    do {
        const uint8_t *msg = docs[turn++ % NDOC];
        for (int i = 0; i < nconn; i++) {
            if (cs[i].on) {
                size_t n = zdeflate(&cs[i].out, msg, bytes, z, zcap);
                if (cs[i].cnct)
                    deflateReset(&cs[i].out);
                wsc_frame(&cs[i].c, 0xC1, z, n);
                wire += n;
            } else {
                wsc_frame(&cs[i].c, 0x81, msg, bytes);
                wire += bytes;
            }
        }
        for (int i = 0; i < nconn; i++) {
            struct wsframe f;
            if (wsc_read(&cs[i].c, &f) < 0 || f.op != 1) {
                fprintf(stderr, "echo lost\n");
                return 1;
            }
            wire += f.len;
            size_t got = f.len;
            if (f.rsv & 0x40) {
                got = zinflate(&cs[i].in, f.data, f.len, back, bytes + 64);
                if (cs[i].snct)
                    inflateReset(&cs[i].in);
            }
            if (got != bytes) {
                fprintf(stderr, "echo has %zu bytes, not %zu\n", got, bytes);
                return 1;
            }
            free(f.data);
            msgs++;
        }
        t = now_s();
    } while (t - t0 < secs);
    double el = t - t0;
    printf("bench ws_echo mode=%s conns=%d bytes=%zu msgs_per_s=%.0f payload_mb_per_s=%.1f wire_ratio=%.2f\n", mode,
           nconn, bytes, msgs / el, msgs * (double)bytes / el / 1e6, 2.0 * msgs * (double)bytes / (double)wire);
    for (int i = 0; i < nconn; i++)
        wsc_close(&cs[i].c);
    return 0;
}
