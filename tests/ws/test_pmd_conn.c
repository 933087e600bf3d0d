/*
 * permessage-deflate over real connections (127.0.0.1, port 0), in the
 * manner of the Autobahn sections 12 and 13: compressed echo at many sizes
 * for each negotiated parameter combination, fragmented compressed
 * messages, RSV1 misuse (1002), bad compressed data and text (1007), a
 * decompression bomb (1009, memory bounded), the memory cap, and what
 * idle connections hold in each takeover mode.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include "rt.h"
#include "conn_util.h"
#include "util.h"
#include "ws/bcast.h"
#include "ws/pmd.h"
#include "ws/rooms.h"
#include "wsclient.h"

/* Echoes, whatever the send answers (a closing connection refuses). */
static void echo_any(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    if (is_text)
        snow_ws_send_text(conn, data, len);
    else
        snow_ws_send_binary(conn, data, len);
}

/* What the room registry will do for one member: compress once for the
 * window the member's agreement allows, deliver the shared RSV1 frame, and
 * report what it saw. */
static void bc_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)is_text, (void)arg;
    SnowPid pid = snow_ws_pid(conn);
    int bits = ws_pmd_member_bits(pid);
    struct ws_shared_frame *f = ws_pmd_shared_frame(WS_OP_TEXT, data, len, bits > 0 ? (unsigned)bits : 15, 0);
    int r = f ? ws_conn_deliver(pid, f) : -ENOMEM;
    ws_shared_frame_unref(f);
    char msg[48];
    snprintf(msg, sizeof msg, "bits=%d deliver=%d", bits, r);
    snow_ws_send_text(conn, msg, strlen(msg));
}

static SnowWsHandler h_plain, h_def, h_all, h_nct, h_small, h_bits, h_bc, h_bcplain, h_room, h_roomplain;

#define PMD_ROOM "pmd-room"

/* "join": joins PMD_ROOM and says "joined"; "pub:..." publishes the rest
 * to it (the publisher is a member too); anything else is echoed. */
static void room_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    const char *s = data;
    if (len == 4 && memcmp(s, "join", 4) == 0) {
        ck_assert_int_eq(snow_ws_join(conn, PMD_ROOM, strlen(PMD_ROOM), NULL), 0);
        snow_ws_send_text(conn, "joined", 6);
    } else if (len >= 4 && memcmp(s, "pub:", 4) == 0) {
        snow_ws_broadcast(PMD_ROOM, strlen(PMD_ROOM), s + 4, len - 4, is_text);
    } else {
        echo_any(conn, data, len, is_text, arg);
    }
}

static void routes(SnowRouter *r)
{
    SnowWsHandler *all[] = {&h_plain, &h_def, &h_all, &h_nct, &h_small, &h_bits, &h_bc, &h_bcplain, &h_room, &h_roomplain};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        snow_ws_handler_init(all[i]);
        all[i]->on_close = record_close;
        all[i]->on_message = echo_any;
        all[i]->ping_interval_ms = 0;
        all[i]->deflate = all[i] != &h_plain && all[i] != &h_bcplain && all[i] != &h_roomplain;
        all[i]->outbound_limit = 8u << 20;
    }
    h_all.deflate_threshold = 0;
    h_nct.deflate_no_context_takeover = 1;
    h_small.max_message = 1 << 20;
    h_bits.deflate_window_bits = 9;
    h_bits.deflate_mem_level = 2;
    ck_assert_int_eq(snow_router_ws(r, "/plain", &h_plain), 0);
    ck_assert_int_eq(snow_router_ws(r, "/def", &h_def), 0);
    ck_assert_int_eq(snow_router_ws(r, "/all", &h_all), 0);
    ck_assert_int_eq(snow_router_ws(r, "/nct", &h_nct), 0);
    ck_assert_int_eq(snow_router_ws(r, "/small", &h_small), 0);
    ck_assert_int_eq(snow_router_ws(r, "/bits", &h_bits), 0);
    h_bc.on_message = bc_message;
    h_bcplain.on_message = bc_message;
    ck_assert_int_eq(snow_router_ws(r, "/bc", &h_bc), 0);
    ck_assert_int_eq(snow_router_ws(r, "/bcplain", &h_bcplain), 0);
    h_room.on_message = room_message;
    h_roomplain.on_message = room_message;
    ck_assert_int_eq(snow_router_ws(r, "/room", &h_room), 0);
    ck_assert_int_eq(snow_router_ws(r, "/roomplain", &h_roomplain), 0);
}

static void start(void)
{
    server_start(routes);
}

static void stop(void)
{
    server_stop();
}

/* ---- a compressing client ---- */

struct pc {
    struct wsc c;
    bool on;
    bool server_nct, client_nct;
    unsigned server_bits, client_bits;
    z_stream in, out;
};

static void pc_open(struct pc *p, const char *path, const char *offer)
{
    memset(p, 0, sizeof *p);
    char hdr[512] = "";
    if (offer)
        snprintf(hdr, sizeof hdr, "Sec-WebSocket-Extensions: %s\r\n", offer);
    ck_assert_int_eq(wsc_open(&p->c, port, path, hdr, NULL, 0), 101);
    const char *a = strcasestr(p->c.head, "\r\nSec-WebSocket-Extensions: ");
    p->on = a != NULL;
    p->server_bits = p->client_bits = 15;
    if (a) {
        const char *end = strstr(a + 2, "\r\n");
        char v[256];
        size_t n = (size_t)(end - a);
        ck_assert_uint_lt(n, sizeof v);
        memcpy(v, a, n);
        v[n] = 0;
        ck_assert(strstr(v, "permessage-deflate") != NULL);
        p->server_nct = strstr(v, "server_no_context_takeover") != NULL;
        p->client_nct = strstr(v, "client_no_context_takeover") != NULL;
        const char *sb = strstr(v, "server_max_window_bits=");
        if (sb)
            p->server_bits = (unsigned)atoi(sb + 23);
        const char *cb = strstr(v, "client_max_window_bits=");
        if (cb)
            p->client_bits = (unsigned)atoi(cb + 23);
        /* zlib's raw streams start at 9 bits (an 8-bit promise is kept
         * by a 9-bit compressor; a larger inflate window reads both). */
        ck_assert_int_eq(inflateInit2(&p->in, -(int)(p->server_bits < 9 ? 9 : p->server_bits)), Z_OK);
        ck_assert_int_eq(deflateInit2(&p->out, 6, Z_DEFLATED, -(int)(p->client_bits < 9 ? 9 : p->client_bits), 8,
                                      Z_DEFAULT_STRATEGY),
                         Z_OK);
    }
}

static void pc_close(struct pc *p)
{
    if (p->on) {
        inflateEnd(&p->in);
        deflateEnd(&p->out);
    }
    wsc_close(&p->c);
}

/* Compresses one message as the client; *n gets the length. */
static uint8_t *pc_deflate(struct pc *p, const void *data, size_t len, size_t *n)
{
    size_t cap = deflateBound(&p->out, len) + 16;
    uint8_t *out = malloc(cap);
    p->out.next_in = (Bytef *)(uintptr_t)data;
    p->out.avail_in = (uInt)len;
    p->out.next_out = out;
    p->out.avail_out = (uInt)cap;
    int rc = deflate(&p->out, Z_SYNC_FLUSH);
    ck_assert(rc == Z_OK || rc == Z_BUF_ERROR);
    *n = cap - p->out.avail_out;
    if (*n >= 4 && memcmp(out + *n - 4, "\x00\x00\xff\xff", 4) == 0)
        *n -= 4;
    else {
        /* A flush with nothing new: the empty-message byte. */
        ck_assert_uint_eq(len, 0);
        out[0] = 0;
        *n = 1;
    }
    if (p->client_nct)
        deflateReset(&p->out);
    return out;
}

static uint8_t *pc_inflate(struct pc *p, const uint8_t *data, size_t len, size_t *n)
{
    uint8_t *in = malloc(len + 4);
    memcpy(in, data, len);
    memcpy(in + len, "\x00\x00\xff\xff", 4);
    size_t cap = 4096, got = 0;
    uint8_t *out = malloc(cap);
    p->in.next_in = in;
    p->in.avail_in = (uInt)(len + 4);
    for (;;) {
        if (got == cap)
            out = realloc(out, cap *= 2);
        p->in.next_out = out + got;
        p->in.avail_out = (uInt)(cap - got);
        int rc = inflate(&p->in, Z_SYNC_FLUSH);
        ck_assert_msg(rc == Z_OK || rc == Z_BUF_ERROR, "client inflate: %d", rc);
        got = cap - p->in.avail_out;
        if (p->in.avail_in == 0 && p->in.avail_out != 0)
            break;
    }
    if (p->server_nct)
        inflateReset(&p->in);
    free(in);
    *n = got;
    return out;
}

/* Sends a message compressed, cut into frames of at most frag bytes
 * (0: one frame), RSV1 on the first only, a ping between fragments. */
static void pc_send(struct pc *p, unsigned op, const void *data, size_t len, size_t frag)
{
    size_t n;
    uint8_t *z = pc_deflate(p, data, len, &n);
    if (!frag || frag >= n) {
        ck_assert_int_eq(wsc_frame(&p->c, (uint8_t)(0x80 | WS_RSV1 | op), z, n), 0);
    } else {
        for (size_t at = 0; at < n; at += frag) {
            size_t k = n - at < frag ? n - at : frag;
            uint8_t b0 = (uint8_t)((at ? 0 : op | WS_RSV1) | (at + k == n ? 0x80 : 0));
            ck_assert_int_eq(wsc_frame(&p->c, b0, z + at, k), 0);
            if (at == 0)
                ck_assert_int_eq(wsc_frame(&p->c, 0x89, "pi", 2), 0);
        }
    }
    free(z);
}

/* Reads the next data message (skipping pongs), inflating it when RSV1 is
 * set on its first frame. Returns whether it was compressed. */
static bool pc_expect(struct pc *p, unsigned op, const void *want, size_t len)
{
    struct wsframe m;
    do {
        ck_assert_int_eq(wsc_message(&p->c, &m), 0);
        if (m.op == 10)
            free(m.data);
    } while (m.op == 10);
    ck_assert_uint_eq(m.op, op);
    bool z = (m.rsv & WS_RSV1) != 0;
    ck_assert_uint_eq(m.rsv & (WS_RSV2 | WS_RSV3), 0);
    uint8_t *d = m.data;
    size_t n = m.len;
    if (z) {
        ck_assert(p->on);
        d = pc_inflate(p, m.data, m.len, &n);
        free(m.data);
    }
    ck_assert_uint_eq(n, len);
    ck_assert(len == 0 || memcmp(d, want, len) == 0);
    free(d);
    return z;
}

static uint8_t *json(size_t n, unsigned seed)
{
    static const char *const words[8] = {"{\"id\":", "17", ",\"name\":\"", "bob", "\",\"tags\":[", "\"a\",", "\"b\"]}",
                                         " "};
    return mk_words(n, seed, words);
}

static void echo_sizes(const char *path, const char *offer, size_t threshold, size_t frag)
{
    static const size_t sizes[] = {0, 1, 20, 63, 64, 125, 126, 1000, 65535, 65536, 65537, 300000, 1 << 20};
    struct pc p;
    pc_open(&p, path, offer);
    ck_assert(p.on);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            uint8_t *d = json(n, (unsigned)(i + round));
            pc_send(&p, 1, d, n, frag);
            bool z = pc_expect(&p, 1, d, n);
            ck_assert_msg(z == (n >= threshold), "%s [%s]: %zu bytes came back %s", path, offer, n,
                          z ? "compressed" : "plain");
            pc_send(&p, 2, d, n, frag);
            pc_expect(&p, 2, d, n);
            /* An uncompressed message on the same connection. */
            ck_assert_int_eq(wsc_frame(&p.c, 0x81, d, n), 0);
            pc_expect(&p, 1, d, n);
            free(d);
        }
    }
    ck_assert_int_eq(wsc_close_frame(&p.c, 1000, "bye"), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1000);
    pc_close(&p);
}

static const char *const offers[] = {
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=x, permessage-deflate; server_max_window_bits=10",
};

START_TEST(echo_each_combination)
{
    start();
    for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
        echo_sizes("/def", offers[i], WS_PMD_DEFAULT_THRESHOLD, 0);
        echo_sizes("/all", offers[i], 0, 0);
        echo_sizes("/nct", offers[i], WS_PMD_DEFAULT_THRESHOLD, 0);
        echo_sizes("/bits", offers[i], WS_PMD_DEFAULT_THRESHOLD, 0);
    }
    wait_closes(4 * (int)(sizeof offers / sizeof offers[0]));
    stop();
}
END_TEST

START_TEST(fragmented_compressed)
{
    start();
    static const size_t frags[] = {1, 7, 100, 4096};
    for (size_t i = 0; i < sizeof frags / sizeof frags[0]; i++) {
        echo_sizes("/def", offers[0], WS_PMD_DEFAULT_THRESHOLD, frags[i]);
        echo_sizes("/all", offers[4], 0, frags[i]);
    }
    stop();
}
END_TEST

START_TEST(answers_per_route)
{
    start();
    struct pc p;
    /* Off by default: no answer, RSV1 is a protocol error. */
    pc_open(&p, "/plain", "permessage-deflate");
    ck_assert(!p.on);
    ck_assert_int_eq(wsc_frame(&p.c, 0xC1, "x", 1), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1002);
    pc_close(&p);
    /* The route's no-context-takeover and window appear in the answer. */
    pc_open(&p, "/nct", "permessage-deflate");
    ck_assert(p.server_nct && p.client_nct);
    pc_close(&p);
    pc_open(&p, "/bits", "permessage-deflate; client_max_window_bits");
    ck_assert(strstr(p.c.head, "client_max_window_bits=9") != NULL);
    pc_close(&p);
    /* No offer: no compression, and RSV1 is refused. */
    pc_open(&p, "/def", NULL);
    ck_assert(!p.on);
    ck_assert_int_eq(wsc_frame(&p.c, 0xC2, "x", 1), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1002);
    pc_close(&p);
    wait_closes(4);
    stop();
}
END_TEST

START_TEST(rsv1_misuse_1002)
{
    start();
    struct pc p;
    /* RSV1 on a continuation. */
    pc_open(&p, "/def", "permessage-deflate");
    size_t n;
    uint8_t *z = pc_deflate(&p, "hello hello hello", 17, &n);
    ck_assert_int_eq(wsc_frame(&p.c, 0x01 | WS_RSV1, z, 2), 0);
    ck_assert_int_eq(wsc_frame(&p.c, 0x80 | WS_RSV1, z + 2, n - 2), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1002);
    free(z);
    pc_close(&p);
    /* RSV1 on control frames. */
    static const uint8_t ctl[] = {0x89, 0x8A, 0x88};
    for (size_t i = 0; i < sizeof ctl; i++) {
        pc_open(&p, "/def", "permessage-deflate");
        ck_assert_int_eq(wsc_frame(&p.c, (uint8_t)(ctl[i] | WS_RSV1), "", 0), 0);
        ck_assert_uint_eq(expect_close(&p.c), 1002);
        pc_close(&p);
    }
    /* RSV2 / RSV3 stay reserved. */
    pc_open(&p, "/def", "permessage-deflate");
    ck_assert_int_eq(wsc_frame(&p.c, 0x80 | WS_RSV2 | 1, "a", 1), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1002);
    pc_close(&p);
    wait_closes(5);
    stop();
}
END_TEST

START_TEST(bad_payloads_1007)
{
    start();
    struct pc p;
    /* Compressed text that inflates to invalid UTF-8. */
    pc_open(&p, "/def", "permessage-deflate");
    static const uint8_t bad[] = {'o', 'k', 0xC0, 0xAF, 'x'};
    pc_send(&p, 1, bad, sizeof bad, 0);
    ck_assert_uint_eq(expect_close(&p.c), 1007);
    pc_close(&p);
    /* Invalid UTF-8 split over fragments of a compressed message. */
    pc_open(&p, "/def", "permessage-deflate");
    static const uint8_t cut[] = {'a', 0xE2, 0x82};
    pc_send(&p, 1, cut, sizeof cut, 1);
    ck_assert_uint_eq(expect_close(&p.c), 1007);
    pc_close(&p);
    /* Data that is not DEFLATE. */
    pc_open(&p, "/def", "permessage-deflate");
    ck_assert_int_eq(wsc_frame(&p.c, 0x80 | WS_RSV1 | 2, "\x07\x00", 2), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1007);
    pc_close(&p);
    /* Plain text on a negotiated connection is still checked. */
    pc_open(&p, "/def", "permessage-deflate");
    ck_assert_int_eq(wsc_frame(&p.c, 0x81, bad, sizeof bad), 0);
    ck_assert_uint_eq(expect_close(&p.c), 1007);
    pc_close(&p);
    wait_closes(4);
    stop();
}
END_TEST

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

START_TEST(bomb_1009_bounded)
{
    start();
    /* 2 GiB of zeros compress to about 2 MiB; the route allows 1 MiB
     * messages, and its compressed message fits: the inflated size decides.
     * Sent as 1 MiB - 1 KiB of compressed data in a few frames. */
    z_stream s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = 1 << 20;
    uint8_t *z = malloc(cap), *zero = calloc(1, 1 << 20);
    s.next_out = z;
    s.avail_out = (uInt)(cap - 1024);
    while (s.avail_out > 0) {
        s.next_in = zero;
        s.avail_in = 1 << 20;
        ck_assert_int_eq(deflate(&s, Z_NO_FLUSH), Z_OK);
    }
    size_t n = cap - 1024;
    deflateEnd(&s);
    long before = maxrss_kib();
    struct pc p;
    pc_open(&p, "/small", "permessage-deflate; client_no_context_takeover");
    for (size_t at = 0; at < n; at += 256 * 1024) {
        size_t k = n - at < 256 * 1024 ? n - at : 256 * 1024;
        uint8_t b0 = (uint8_t)((at ? 0 : 2 | WS_RSV1) | (at + k == n ? 0x80 : 0));
        if (wsc_frame(&p.c, b0, z + at, k) < 0)
            break;
    }
    ck_assert_uint_eq(expect_close(&p.c), 1009);
    pc_close(&p);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1009);
    /* ~1 GiB of output was possible; the process grew by a few MiB. */
    long grew = maxrss_kib() - before;
    ck_assert_msg(grew < 48 * 1024, "peak RSS grew by %ld KiB", grew);
    free(z);
    free(zero);
    stop();
}
END_TEST

START_TEST(memory_cap_falls_back)
{
    start();
    /* No room for any takeover stream: the connection still gets
     * compression, without context takeover, and works. */
    ws_pmd_set_mem_cap(ws_pmd_mem_reserved() + 1);
    struct pc p;
    pc_open(&p, "/def", "permessage-deflate");
    ck_assert(p.on);
    ck_assert(p.server_nct && p.client_nct);
    uint8_t *d = json(5000, 3);
    pc_send(&p, 1, d, 5000, 0);
    ck_assert(pc_expect(&p, 1, d, 5000));
    free(d);
    pc_close(&p);
    ws_pmd_set_mem_cap(0);
    wait_closes(1);
    size_t base = ws_pmd_mem_reserved();
    pc_open(&p, "/def", "permessage-deflate");
    ck_assert(!p.server_nct && !p.client_nct);
    /* Its streams are reserved from the handshake on... */
    ck_assert_uint_ge(ws_pmd_mem_reserved(), base + ws_zin_cost(15) + ws_zout_cost(15, 8));
    pc_close(&p);
    wait_closes(2);
    /* ...and given back when it ends (just after on_close, which is what
     * wait_closes sees: poll for it, bounded, as a failure guard). */
    for (int i = 0; i < 1000 && ws_pmd_mem_reserved() != base; i++)
        usleep(10000);
    ck_assert_uint_eq(ws_pmd_mem_reserved(), base);
    stop();
}
END_TEST

/* Opens n connections on path with offer, sends each one compressed
 * message and reads its echo, and returns the zlib bytes held while all of
 * them sit idle. */
static size_t idle_held(const char *path, const char *offer, int n)
{
    struct pc *ps = calloc((size_t)n, sizeof *ps);
    uint8_t *d = json(2000, 5);
    for (int i = 0; i < n; i++) {
        pc_open(&ps[i], path, offer);
        pc_send(&ps[i], 1, d, 2000, 0);
        pc_expect(&ps[i], 1, d, 2000);
    }
    size_t held = ws_pmd_mem_held();
    for (int i = 0; i < n; i++)
        pc_close(&ps[i]);
    free(ps);
    free(d);
    return held;
}

START_TEST(idle_state_by_mode)
{
    start();
    size_t base = ws_pmd_mem_held();
    int closes = 0;
    /* Without context takeover nothing is held per connection: only the
     * two workers' shared streams, whatever the count. */
    size_t nct = idle_held("/nct", "permessage-deflate", 100);
    closes += 100;
    wait_closes(closes);
    size_t per_worker = ws_zin_cost(15) + ws_zout_cost(15, 8);
    ck_assert_msg(nct <= base + 2 * per_worker + 4096, "100 idle nct connections hold %zu (base %zu)", nct, base);
    /* With it, each holds its streams, sized by the agreed window. */
    size_t tk = idle_held("/bits", "permessage-deflate; client_max_window_bits", 100);
    closes += 100;
    wait_closes(closes);
    size_t each = (tk - nct) / 100;
    ck_assert_msg(each >= 1024 && each <= ws_zin_cost(9) + ws_zout_cost(9, 2), "%zu per connection", each);
    stop();
}
END_TEST

START_TEST(shared_frames_for_rooms)
{
    start();
    uint8_t *d = json(3000, 8);
    char want[48];
    struct pc p;
    /* No server context takeover: one shared compressed frame fits, for
     * the window agreed (10 here). */
    pc_open(&p, "/bc", "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
    ck_assert(p.server_nct);
    pc_send(&p, 1, d, 3000, 0);
    ck_assert(pc_expect(&p, 1, d, 3000));
    snprintf(want, sizeof want, "bits=10 deliver=0");
    pc_expect(&p, 1, want, strlen(want));
    pc_close(&p);
    /* Takeover: the shared frame would break the context, so it is
     * refused and the member needs its own encoding. */
    pc_open(&p, "/bc", "permessage-deflate");
    ck_assert(!p.server_nct);
    pc_send(&p, 1, d, 3000, 0);
    snprintf(want, sizeof want, "bits=0 deliver=%d", -EINVAL);
    pc_expect(&p, 1, want, strlen(want));
    pc_close(&p);
    /* No compression agreed: refused as well. */
    pc_open(&p, "/bcplain", "permessage-deflate");
    ck_assert(!p.on);
    ck_assert_int_eq(wsc_frame(&p.c, 0x81, d, 3000), 0);
    pc_expect(&p, 1, want, strlen(want));
    pc_close(&p);
    free(d);
    wait_closes(3);
    stop();
}
END_TEST

static void room_join(struct pc *p, const char *path, const char *offer)
{
    pc_open(p, path, offer);
    ck_assert_int_eq(wsc_frame(&p->c, 0x81, "join", 4), 0);
    pc_expect(p, 1, "joined", 6);
}

/* The next data message, raw (RSV bits as sent, payload not inflated). */
static void raw_message(struct pc *p, struct wsframe *m)
{
    do {
        ck_assert_int_eq(wsc_message(&p->c, m), 0);
        if (m->op == 10)
            free(m->data);
    } while (m->op == 10);
}

START_TEST(room_broadcast_compressed_once)
{
    start();
    struct pc nct15, nct10, takeover, plain, off;
    /* Two members without server context takeover at windows 15 and 10,
     * one with takeover, one that offered nothing, one on a route without
     * deflate. */
    room_join(&nct15, "/room", "permessage-deflate; server_no_context_takeover");
    room_join(&nct10, "/room", "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
    room_join(&takeover, "/room", "permessage-deflate");
    room_join(&plain, "/room", NULL);
    room_join(&off, "/roomplain", "permessage-deflate");
    ck_assert(nct15.on && nct15.server_nct && nct15.server_bits == 15);
    ck_assert(nct10.on && nct10.server_nct && nct10.server_bits == 10);
    ck_assert(takeover.on && !takeover.server_nct);
    ck_assert(!plain.on && !off.on);
    struct pc *all[] = {&nct15, &nct10, &takeover, &plain, &off};
    for (int round = 0; round < 3; round++) {
        size_t n = 4000 + 1000 * (size_t)round;
        uint8_t *d = json(n, 40 + (unsigned)round);
        uint8_t *pub = malloc(n + 4);
        memcpy(pub, "pub:", 4);
        memcpy(pub + 4, d, n);
        uint64_t before = atomic_load(&rooms_stats.compressed);
        /* Published by the plain member, a member itself. */
        ck_assert_int_eq(wsc_frame(&plain.c, 0x81, pub, n + 4), 0);
        struct wsframe got[5];
        for (int i = 0; i < 5; i++)
            raw_message(all[i], &got[i]);
        /* One compressed frame, built once, the same bytes for both
         * shared members, at the smaller window: each inflates it. */
        ck_assert_uint_eq(atomic_load(&rooms_stats.compressed) - before, 1);
        ck_assert_uint_eq(got[0].rsv & WS_RSV1, WS_RSV1);
        ck_assert_uint_eq(got[1].rsv & WS_RSV1, WS_RSV1);
        ck_assert_uint_lt(got[0].len, n);
        ck_assert_uint_eq(got[0].len, got[1].len);
        ck_assert(memcmp(got[0].data, got[1].data, got[0].len) == 0);
        for (int i = 0; i < 2; i++) {
            size_t k;
            uint8_t *out = pc_inflate(all[i], got[i].data, got[i].len, &k);
            ck_assert_uint_eq(k, n);
            ck_assert(memcmp(out, d, n) == 0);
            free(out);
        }
        /* The others get the plain frame. */
        for (int i = 2; i < 5; i++) {
            ck_assert_uint_eq(got[i].op, 1);
            ck_assert_uint_eq(got[i].rsv, 0);
            ck_assert_uint_eq(got[i].len, n);
            ck_assert(memcmp(got[i].data, d, n) == 0);
        }
        for (int i = 0; i < 5; i++)
            free(got[i].data);
        /* The takeover member's own context is intact: its echo still
         * inflates with the window it has kept. */
        pc_send(&takeover, 1, d, n, 0);
        ck_assert(pc_expect(&takeover, 1, d, n));
        free(pub);
        free(d);
    }
    /* Under the threshold (64): nothing is compressed, all get it plain. */
    uint64_t before = atomic_load(&rooms_stats.compressed);
    ck_assert_int_eq(wsc_frame(&plain.c, 0x81, "pub:short", 9), 0);
    for (int i = 0; i < 5; i++) {
        struct wsframe m;
        raw_message(all[i], &m);
        ck_assert_uint_eq(m.rsv, 0);
        ck_assert_uint_eq(m.len, 5);
        ck_assert(memcmp(m.data, "short", 5) == 0);
        free(m.data);
    }
    ck_assert_uint_eq(atomic_load(&rooms_stats.compressed), before);
    for (int i = 0; i < 5; i++)
        pc_close(all[i]);
    wait_closes(5);
    stop();
}
END_TEST

START_TEST(room_broadcast_without_shared_members)
{
    start();
    /* A room of takeover and plain members: no compressed frame at all. */
    struct pc takeover, plain;
    room_join(&takeover, "/room", "permessage-deflate");
    room_join(&plain, "/roomplain", NULL);
    uint64_t before = atomic_load(&rooms_stats.compressed);
    uint8_t *d = json(3000, 77);
    uint8_t *pub = malloc(3004);
    memcpy(pub, "pub:", 4);
    memcpy(pub + 4, d, 3000);
    ck_assert_int_eq(wsc_frame(&plain.c, 0x81, pub, 3004), 0);
    struct pc *all[] = {&takeover, &plain};
    for (int i = 0; i < 2; i++) {
        struct wsframe m;
        raw_message(all[i], &m);
        ck_assert_uint_eq(m.rsv, 0);
        ck_assert_uint_eq(m.len, 3000);
        ck_assert(memcmp(m.data, d, 3000) == 0);
        free(m.data);
    }
    ck_assert_uint_eq(atomic_load(&rooms_stats.compressed), before);
    free(pub);
    free(d);
    pc_close(&takeover);
    pc_close(&plain);
    wait_closes(2);
    stop();
}
END_TEST

Suite *pmd_conn_suite(void)
{
    Suite *s = suite_create("pmd_conn");
    TCase *t = tcase_create("conn");
    tcase_set_timeout(t, CASE_TIMEOUT);
    tcase_add_test(t, echo_each_combination);
    tcase_add_test(t, fragmented_compressed);
    tcase_add_test(t, answers_per_route);
    tcase_add_test(t, rsv1_misuse_1002);
    tcase_add_test(t, bad_payloads_1007);
    tcase_add_test(t, bomb_1009_bounded);
    tcase_add_test(t, memory_cap_falls_back);
    tcase_add_test(t, idle_state_by_mode);
    tcase_add_test(t, shared_frames_for_rooms);
    tcase_add_test(t, room_broadcast_compressed_once);
    tcase_add_test(t, room_broadcast_without_shared_members);
    suite_add_tcase(s, t);
    return s;
}
