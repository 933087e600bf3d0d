/*
 * test_conn.c: the WebSocket connection loop over real sockets on
 * 127.0.0.1 (port 0), driven by the blocking client in wsclient.h from the
 * test thread: upgrade and leftover bytes, frames split at every offset,
 * on_connect (refusal, subprotocol, cookies, user data), Origin, protocol
 * errors, close paths and on_close exactly once, panics, sends from other
 * actors, handles after the end, the mailbox and hibernation, heartbeat
 * reaping, backpressure, write stalls, drain and counters.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "util.h"
#include "wsclient.h"

#include "actor/actor.h"

static SnowHttpServer *srv;
static int port;

/* ---- what the handlers saw ---- */

/* Written by the handlers (on worker threads) under ev.lock; the test's
 * thread reads a copy taken under it (seen()). */
struct seen {
    int closes;
    int last_code;
    char last_reason[128];
    SnowWsConn *last_conn;
    SnowPid last_pid;
    int opens;
    int bp_result;
    int64_t bp_buffered;
    int bp_sent;
    int after_end; /* a send after the end, from another actor */
    int after_end_buffered;
    void *conn_user_seen;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct seen s;
} ev = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}};

static struct seen seen(void)
{
    pthread_mutex_lock(&ev.lock);
    struct seen v = ev.s;
    pthread_mutex_unlock(&ev.lock);
    return v;
}

static void record_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ev.lock);
    ev.s.closes++;
    ev.s.last_code = code;
    size_t n = len < sizeof ev.s.last_reason - 1 ? len : sizeof ev.s.last_reason - 1;
    memcpy(ev.s.last_reason, reason, n);
    ev.s.last_reason[n] = 0;
    ev.s.last_conn = conn;
    /* Sends from the connection's own on_close find it closed. */
    ev.s.after_end = snow_ws_send_text(conn, "x", 1);
    pthread_cond_broadcast(&ev.cond);
    pthread_mutex_unlock(&ev.lock);
}

static void record_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ev.lock);
    ev.s.opens++;
    ev.s.last_pid = snow_ws_pid(conn);
    ev.s.last_conn = conn;
    pthread_cond_broadcast(&ev.cond);
    pthread_mutex_unlock(&ev.lock);
}

/* Waits (bounded, as a failure guard only) until on_close ran n times. */
static void wait_closes(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&ev.lock);
    while (ev.s.closes < n)
        if (pthread_cond_timedwait(&ev.cond, &ev.lock, &ts) != 0)
            break;
    int got = ev.s.closes;
    pthread_mutex_unlock(&ev.lock);
    ck_assert_int_eq(got, n);
}

static void wait_opens(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&ev.lock);
    while (ev.s.opens < n)
        if (pthread_cond_timedwait(&ev.cond, &ev.lock, &ts) != 0)
            break;
    int got = ev.s.opens;
    pthread_mutex_unlock(&ev.lock);
    ck_assert_int_eq(got, n);
}

/* ---- handlers ---- */

static void echo(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    int r = is_text ? snow_ws_send_text(conn, data, len) : snow_ws_send_binary(conn, data, len);
    ck_assert_int_eq(r, 0);
}

static int auth_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    const char *tok = snow_http_req_cookie(req, "token", &n);
    if (!tok || n != 4 || memcmp(tok, "good", 4) != 0) {
        snow_http_res_status(res, 401);
        snow_http_res_header(res, "WWW-Authenticate", "Cookie realm=\"chat\"");
        snow_http_res_body(res, "who are you?", 12);
        return SNOW_WS_REFUSE;
    }
    /* The request is readable in full before the 101. */
    size_t rl, ql;
    const char *room = snow_http_req_param(req, "room", &rl);
    const char *name = snow_http_req_query(req, "name", &ql);
    char *u = snow_gc_alloc(rl + ql + 2);
    memcpy(u, room, rl);
    u[rl] = '/';
    memcpy(u + rl + 1, name, ql);
    ck_assert_int_eq(snow_ws_set_user(conn, u), 0);
    /* Subprotocol: pick the second one the client offered, if any. */
    size_t pl;
    if (snow_ws_protocol_offered(conn, 1, &pl)) {
        char want[64];
        memcpy(want, snow_ws_protocol_offered(conn, 1, &pl), pl);
        want[pl] = 0;
        ck_assert_int_eq(snow_ws_select_protocol(conn, want), 0);
        ck_assert_int_eq(snow_ws_select_protocol(conn, "never-offered"), -EINVAL);
    }
    return SNOW_WS_ACCEPT;
}

static void auth_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    char out[256];
    size_t pl;
    const char *p = snow_ws_protocol(conn, &pl);
    int n = snprintf(out, sizeof out, "%s|%.*s", (const char *)snow_ws_user(conn), (int)pl, p ? p : "");
    snow_ws_send_text(conn, out, (size_t)n);
}

static void panic_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    if (len == 4 && memcmp(data, "boom", 4) == 0)
        snow_panic("handler failed on purpose");
    echo(conn, data, len, is_text, arg);
}

/* Sends 8 KiB messages until the route's limit refuses one. */
static void flood_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    static char block[8192];
    int r, sent = 0;
    while ((r = snow_ws_send_binary(conn, block, sizeof block)) == 0 && sent < 100000)
        sent++;
    pthread_mutex_lock(&ev.lock);
    ev.s.bp_result = r;
    ev.s.bp_sent = sent;
    ev.s.bp_buffered = snow_ws_buffered(conn);
    pthread_cond_broadcast(&ev.cond);
    pthread_mutex_unlock(&ev.lock);
}

/* One big message nobody reads. */
static void stall_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    size_t n = 8u << 20;
    char *big = calloc(1, n);
    ck_assert_int_eq(snow_ws_send_binary(conn, big, n), 0);
    free(big);
}

/* An actor that is not the connection sends to it by handle. */
static void foreign_actor(void *arg)
{
    SnowWsConn *conn = *(SnowWsConn **)arg;
    ck_assert_int_eq(snow_ws_send_text(conn, "one", 3), 0);
    ck_assert_int_eq(snow_ws_send_binary(conn, "two", 3), 0);
    ck_assert_int_eq(snow_ws_send_text(conn, "\xff", 1), -EILSEQ);
    ck_assert_int_eq(snow_ws_ping(conn, "hey", 3), 0);
    ck_assert_int_eq(snow_ws_set_user(conn, NULL), -EPERM);
    ck_assert_ptr_null(snow_ws_user(conn));
    ck_assert_int_ge(snow_ws_buffered(conn), 0);
    ck_assert_int_eq(snow_ws_close(conn, 1005, NULL, 0), -EINVAL);
    ck_assert_int_eq(snow_ws_close(conn, 4001, "from afar", 9), 0);
}

static void foreign_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    ck_assert(snow_actor_spawn(foreign_actor, &conn, sizeof conn) != 0);
}

/* on_info: a message from another actor (or thread) is answered as text. */
static void info(SnowWsConn *conn, SnowMessage *m, void *arg)
{
    (void)arg;
    if (m->tag == 77)
        snow_ws_send_text(conn, m->data, m->len);
}

static void close_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    echo(conn, data, len, is_text, arg);
    if (len == 3 && memcmp(data, "bye", 3) == 0) {
        ck_assert_int_eq(snow_ws_close(conn, 4000, "bye now", 7), 0);
        /* Nothing is sent after our Close. */
        ck_assert_int_eq(snow_ws_send_text(conn, "late", 4), SNOW_ECLOSED);
        ck_assert_int_eq(snow_ws_close(conn, 1000, NULL, 0), SNOW_ECLOSED);
    }
}

/* Keeps the first message and sends it back with the second. */
static void keep_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    size_t *kept = snow_ws_user(conn);
    if (!kept) {
        size_t n;
        void *p = snow_ws_msg_keep(conn, &n);
        ck_assert_ptr_nonnull(p);
        kept = snow_gc_alloc(2 * sizeof *kept);
        kept[0] = (size_t)p;
        kept[1] = n;
        snow_ws_set_user(conn, kept);
        snow_ws_send_text(conn, "kept", 4);
        return;
    }
    snow_ws_send_text(conn, (const void *)kept[0], kept[1]);
}

static int panic_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)conn;
    (void)req;
    (void)res;
    (void)arg;
    snow_panic("on_connect failed on purpose");
}

static SnowWsHandler h_keep, h_pconnect, h_spread, h_echo, h_auth, h_panic, h_flood, h_floodclose, h_stall, h_hb, h_foreign, h_info, h_close,
    h_origin, h_small;

static const char *const protos[] = {"chat.v1", "chat.v2"};
static const char *const origins[] = {"https://good.example"};

static void plain(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    snow_http_res_send(res, 200, "text/plain", "plain", 5);
}

static void routes(SnowRouter *r)
{
    SnowWsHandler *all[] = {&h_echo, &h_auth,  &h_panic, &h_flood,  &h_floodclose, &h_stall, &h_hb,   &h_foreign,
                            &h_info, &h_close, &h_origin, &h_small, &h_keep,       &h_pconnect, &h_spread};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        snow_ws_handler_init(all[i]);
        all[i]->on_close = record_close;
        all[i]->on_open = record_open;
        all[i]->on_message = echo;
        all[i]->ping_interval_ms = 0;
    }
    h_auth.on_connect = auth_connect;
    h_auth.on_message = auth_message;
    h_auth.protocols = protos;
    h_auth.nprotocols = 2;
    h_panic.on_message = panic_message;
    h_flood.on_message = flood_message;
    h_flood.outbound_limit = 64 * 1024;
    h_floodclose.on_message = flood_message;
    h_floodclose.outbound_limit = 64 * 1024;
    h_floodclose.close_on_backpressure = 1;
    h_stall.on_message = stall_message;
    h_stall.write_timeout_ms = 300;
    h_stall.outbound_limit = 16u << 20;
    h_hb.ping_interval_ms = 100;
    h_hb.pong_timeout_ms = 200;
    h_foreign.on_message = foreign_message;
    h_info.on_info = info;
    h_close.on_message = close_message;
    h_origin.origin_policy = SNOW_WS_ORIGIN_LIST;
    h_origin.origins = origins;
    h_origin.norigins = 1;
    h_small.max_message = 1000;
    h_keep.on_message = keep_message;
    h_pconnect.on_connect = panic_connect;
    h_spread.drain_spread_ms = 300;
    ck_assert_int_eq(snow_router_ws(r, "/keep", &h_keep), 0);
    ck_assert_int_eq(snow_router_ws(r, "/pconnect", &h_pconnect), 0);
    ck_assert_int_eq(snow_router_ws(r, "/spread", &h_spread), 0);
    ck_assert_int_eq(snow_router_ws(r, "/echo", &h_echo), 0);
    ck_assert_int_eq(snow_router_ws(r, "/auth/:room", &h_auth), 0);
    ck_assert_int_eq(snow_router_ws(r, "/panic", &h_panic), 0);
    ck_assert_int_eq(snow_router_ws(r, "/flood", &h_flood), 0);
    ck_assert_int_eq(snow_router_ws(r, "/floodclose", &h_floodclose), 0);
    ck_assert_int_eq(snow_router_ws(r, "/stall", &h_stall), 0);
    ck_assert_int_eq(snow_router_ws(r, "/hb", &h_hb), 0);
    ck_assert_int_eq(snow_router_ws(r, "/foreign", &h_foreign), 0);
    ck_assert_int_eq(snow_router_ws(r, "/info", &h_info), 0);
    ck_assert_int_eq(snow_router_ws(r, "/close", &h_close), 0);
    ck_assert_int_eq(snow_router_ws(r, "/origin", &h_origin), 0);
    ck_assert_int_eq(snow_router_ws(r, "/small", &h_small), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/plain", plain, NULL), 0);
}

static void start(void)
{
    ck_assert_int_eq(snow_rt_init(2), 0);
    SnowRouter *r = snow_router_new();
    routes(r);
    int err;
    srv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    ck_assert_msg(srv != NULL, "start: %s", snow_strerror(err));
    snow_router_free(r);
    port = snow_http_server_port(srv);
}

static void stop(void)
{
    if (srv)
        snow_http_server_stop(srv);
    srv = NULL;
    snow_rt_shutdown();
    snow_rt_run();
}

static void expect_message(struct wsc *c, unsigned op, const char *want, size_t n)
{
    struct wsframe m;
    ck_assert_int_eq(wsc_message(c, &m), 0);
    ck_assert_uint_eq(m.op, op);
    ck_assert_uint_eq(m.len, n);
    ck_assert(memcmp(m.data, want, n) == 0);
    free(m.data);
}

static unsigned expect_close(struct wsc *c)
{
    struct wsframe f;
    do {
        ck_assert_int_eq(wsc_read(c, &f), 0);
        if (f.op != 8)
            free(f.data);
    } while (f.op != 8);
    unsigned code = wsframe_code(&f);
    free(f.data);
    return code;
}

/* ---- cases ---- */

START_TEST(upgrade_echo_close)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    /* RFC 6455 §1.3: the sample nonce and its accept value. */
    ck_assert(strstr(c.head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    ck_assert(strcasestr(c.head, "\r\nUpgrade: websocket\r\n") != NULL);
    ck_assert_int_eq(snow_ws_connection_count(), 1);
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *p = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            p[k] = (char)('a' + k % 26);
        ck_assert_int_eq(wsc_frame(&c, 0x81, p, n), 0);
        expect_message(&c, 1, p, n);
        ck_assert_int_eq(wsc_frame(&c, 0x82, p, n), 0);
        expect_message(&c, 2, p, n);
        free(p);
    }
    ck_assert_int_eq(wsc_close_frame(&c, 1000, "done"), 0);
    ck_assert_uint_eq(expect_close(&c), 1000);
    /* §7.1.1: the server closes TCP after the close handshake. */
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    struct seen v = seen();
    ck_assert_int_eq(v.last_code, 1000);
    ck_assert_str_eq(v.last_reason, "done");
    ck_assert_int_eq(v.after_end, SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    SnowWsStats s;
    ck_assert_int_eq(snow_ws_route_stats(&h_echo, &s), 0);
    ck_assert_uint_eq(s.opened, 1);
    ck_assert_uint_eq(s.closed, 1);
    ck_assert_uint_eq(s.closed_1000, 1);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.msgs_in, 14);
    ck_assert_uint_eq(s.msgs_out, 14);
    ck_assert_uint_eq(s.bytes_in, s.bytes_out);
    stop();
}
END_TEST

START_TEST(leftover_bytes)
{
    /* Frames sent in the same write as the request are not lost. */
    start();
    uint8_t f[64];
    size_t n = ws_client_frame(f, 0x81, "early", 5, true);
    n += ws_client_frame(f + n, 0x82, "bird", 4, true);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, f, n), 101);
    expect_message(&c, 1, "early", 5);
    expect_message(&c, 2, "bird", 4);
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1006);
    stop();
}
END_TEST

START_TEST(split_everywhere)
{
    /* A fragmented text message with a ping between its fragments, a
     * binary message and a Close, fed split at every byte offset: the same
     * answers each time. */
    start();
    uint8_t in[256];
    size_t n = 0;
    n += ws_client_frame(in + n, 0x01, "frag", 4, true);
    n += ws_client_frame(in + n, 0x89, "pp", 2, true);
    n += ws_client_frame(in + n, 0x80, "mented", 6, true);
    n += ws_client_frame(in + n, 0x82, "\x00\x01\x02", 3, true);
    n += ws_client_frame(in + n, 0x88, "\x03\xe8", 2, true);
    for (size_t cut = 0; cut <= n; cut++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
        ck_assert_int_eq(wsc_send(&c, in, cut), 0);
        usleep(2000);
        ck_assert_int_eq(wsc_send(&c, in + cut, n - cut), 0);
        struct wsframe f;
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        ck_assert_uint_eq(f.op, 10); /* the pong comes first: control lane */
        ck_assert_str_eq((char *)f.data, "pp");
        free(f.data);
        expect_message(&c, 1, "fragmented", 10);
        expect_message(&c, 2, "\x00\x01\x02", 3);
        ck_assert_uint_eq(expect_close(&c), 1000);
        ck_assert(wsc_eof(&c));
        wsc_close(&c);
        wait_closes((int)cut + 1);
        ck_assert_int_eq(seen().last_code, 1000);
    }
    stop();
}
END_TEST

START_TEST(on_connect_refuses)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/auth/lobby?name=ann", "Cookie: a=1; token=bad\r\n", NULL, 0), 401);
    ck_assert(strstr(c.head, "\r\nWWW-Authenticate: Cookie realm=\"chat\"\r\n") != NULL);
    ck_assert(strstr(c.head, "\r\nConnection: close\r\n") != NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    /* Accepted: user data, params, query and the chosen subprotocol. */
    ck_assert_int_eq(wsc_open(&c, port, "/auth/lobby?name=ann",
                              "Cookie: a=1; token=\"good\"\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n", NULL, 0),
                     101);
    ck_assert(strstr(c.head, "\r\nSec-WebSocket-Protocol: chat.v2\r\n") != NULL);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "?", 1), 0);
    expect_message(&c, 1, "lobby/ann|chat.v2", 17);
    /* Without the on_connect choice the server's preference wins. */
    struct wsc d;
    ck_assert_int_eq(wsc_open(&d, port, "/auth/x?name=y", "Cookie: token=good\r\nSec-WebSocket-Protocol: chat.v1\r\n",
                              NULL, 0),
                     101);
    ck_assert(strstr(d.head, "\r\nSec-WebSocket-Protocol: chat.v1\r\n") != NULL);
    wsc_close(&c);
    wsc_close(&d);
    wait_closes(2); /* the refused one never opened: no on_close */
    SnowWsStats s;
    snow_ws_route_stats(&h_auth, &s);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.opened, 2);
    stop();
}
END_TEST

START_TEST(bad_upgrades)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/origin", "Origin: https://evil.example\r\n", NULL, 0), 403);
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/origin", "Origin: https://good.example\r\n", NULL, 0), 101);
    wsc_close(&c);
    /* Same-origin by default: a browser page from elsewhere is refused. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", "Origin: http://elsewhere.example\r\n", NULL, 0), 403);
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/echo", "Origin: http://127.0.0.1\r\n", NULL, 0), 101);
    wsc_close(&c);
    /* Wrong version: 426 naming the one we speak. */
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *v8 = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, v8, strlen(v8)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 426);
    ck_assert(strstr(c.head, "Sec-WebSocket-Version: 13\r\n") != NULL);
    wsc_close(&c);
    /* A bad key: 400. A plain GET on a ws route: 426. */
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *bk = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, bk, strlen(bk)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 400);
    wsc_close(&c);
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *plain = "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, plain, strlen(plain)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 426);
    wsc_close(&c);
    wait_closes(2);
    stop();
}
END_TEST

struct bad_case {
    const char *path;
    uint8_t b0;
    const char *payload;
    size_t n;
    bool mask;
    unsigned code;
};

START_TEST(protocol_errors)
{
    static char big[1001];
    static const struct bad_case cases[] = {
        {"/echo", 0x81, "x", 1, false, 1002},         /* unmasked client frame (§5.1) */
        {"/echo", 0x81, "\xce\xba\xff", 3, true, 1007}, /* not UTF-8 */
        {"/echo", 0xC1, "x", 1, true, 1002},         /* RSV1 without an extension */
        {"/echo", 0x83, "x", 1, true, 1002},         /* reserved opcode */
        {"/echo", 0x80, "x", 1, true, 1002},         /* continuation with no message */
        {"/echo", 0x09, "x", 1, true, 1002},         /* fragmented ping */
        {"/echo", 0x88, "\x03\xe7", 2, true, 1002},  /* close code 999 */
        {"/echo", 0x88, "\x03", 1, true, 1002},      /* one-byte close payload */
        {"/small", 0x82, big, sizeof big, true, 1009}, /* over max_message */
    };
    start();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *k = &cases[i];
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, k->path, NULL, NULL, 0), 101);
        /* A good frame first, in the same write: its answer is already
         * queued when the bad one fails the connection, and goes first. */
        uint8_t f[1200];
        size_t n = ws_client_frame(f, 0x81, "ok", 2, true);
        n += ws_client_frame(f + n, k->b0, k->payload, k->n, k->mask);
        ck_assert_int_eq(wsc_send(&c, f, n), 0);
        expect_message(&c, 1, "ok", 2);
        ck_assert_uint_eq(expect_close(&c), k->code);
        wsc_close_frame(&c, k->code, NULL);
        ck_assert(wsc_eof(&c));
        wsc_close(&c);
        wait_closes((int)i + 1);
        ck_assert_int_eq(seen().last_code, (int)k->code);
    }
    stop();
}
END_TEST

START_TEST(utf8_fails_fast)
{
    /* A text frame that declares 100 bytes and brings one bad one: 1007
     * at once, without waiting for the other 99. */
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    uint8_t f[128];
    char payload[100];
    memset(payload, 'a', sizeof payload);
    payload[0] = (char)0xff;
    size_t n = ws_client_frame(f, 0x81, payload, sizeof payload, true);
    ck_assert_int_eq(wsc_send(&c, f, 2 + 4 + 1), 0); /* header, key, the bad byte */
    ck_assert_uint_eq(expect_close(&c), 1007);
    (void)n;
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

START_TEST(close_from_handler)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/close", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "hello", 5), 0);
    expect_message(&c, 1, "hello", 5);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "bye", 3), 0);
    expect_message(&c, 1, "bye", 3); /* queued before the Close: goes first */
    struct wsframe f;
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 8);
    ck_assert_uint_eq(wsframe_code(&f), 4000);
    ck_assert(f.len == 9 && memcmp(f.data + 2, "bye now", 7) == 0);
    free(f.data);
    ck_assert_int_eq(wsc_close_frame(&c, 4000, "ok"), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    /* The peer's Close is what on_close reports (§7.1.5). */
    struct seen v = seen();
    ck_assert_int_eq(v.last_code, 4000);
    ck_assert_str_eq(v.last_reason, "ok");
    stop();
}
END_TEST

START_TEST(panic_closes_1011)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/panic", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "boom", 4), 0);
    ck_assert_uint_eq(expect_close(&c), 1011);
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1011);
    /* The next connection is served. */
    ck_assert_int_eq(wsc_open(&c, port, "/panic", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "fine", 4), 0);
    expect_message(&c, 1, "fine", 4);
    wsc_close(&c);
    wait_closes(2);
    stop();
}
END_TEST

START_TEST(foreign_sender_and_handles)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/foreign", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    ck_assert_ptr_eq(snow_ws_conn(snow_ws_pid(h)), h);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    /* In the sender's order; the ping may overtake at a frame boundary. */
    struct wsframe f;
    int got_ping = 0, got = 0;
    const char *want[] = {"one", "two"};
    while (got < 2) {
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        if (f.op == 9) {
            ck_assert_str_eq((char *)f.data, "hey");
            got_ping++;
        } else {
            ck_assert_uint_eq(f.op, got == 0 ? 1 : 2);
            ck_assert_str_eq((char *)f.data, want[got]);
            got++;
        }
        free(f.data);
    }
    unsigned code;
    for (;;) {
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        if (f.op == 9) {
            got_ping++;
            free(f.data);
            continue;
        }
        ck_assert_uint_eq(f.op, 8);
        code = wsframe_code(&f);
        ck_assert(f.len == 11 && memcmp(f.data + 2, "from afar", 9) == 0);
        free(f.data);
        break;
    }
    ck_assert_int_eq(got_ping, 1);
    ck_assert_uint_eq(code, 4001);
    wsc_close_frame(&c, 4001, NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    /* After the end the handle is refused everywhere, never dereferenced. */
    ck_assert_int_eq(snow_ws_send_text(h, "x", 1), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_ping(h, NULL, 0), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_close(h, 1000, NULL, 0), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_buffered(h), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_rtt_ms(h), SNOW_ECLOSED);
    ck_assert_ptr_null(snow_ws_conn(snow_ws_pid(h)));
    ck_assert_ptr_null(snow_ws_conn(0));
    ck_assert_int_eq(snow_ws_send_text(NULL, "x", 1), SNOW_ECLOSED);
    stop();
}
END_TEST

START_TEST(mailbox_after_hibernation)
{
    /* An idle connection hibernates; a message from a plain thread wakes
     * it and reaches on_info, repeatedly. */
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/info", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowPid pid = seen().last_pid;
    for (int i = 0; i < 5; i++) {
        usleep(20000);
        char msg[16];
        int n = snprintf(msg, sizeof msg, "tick %d", i);
        ck_assert_int_eq(snow_actor_send(pid, 77, msg, (size_t)n), 0);
        expect_message(&c, 1, msg, (size_t)n);
        ck_assert_int_eq(wsc_frame(&c, 0x81, msg, (size_t)n), 0);
        expect_message(&c, 1, msg, (size_t)n);
    }
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

START_TEST(heartbeat_reaps_silent_peer)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/hb", NULL, NULL, 0), 101);
    /* A peer that answers: one ping, one pong, a round-trip time. */
    struct wsframe f;
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 9);
    ck_assert_int_eq(wsc_frame(&c, 0x8A, f.data, f.len), 0);
    free(f.data);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    for (int i = 0; i < 500 && snow_ws_rtt_ms(h) == -ENODATA; i++)
        usleep(2000);
    ck_assert_int_ge(snow_ws_rtt_ms(h), 0);
    /* Then it goes silent: the next ping is never answered -> 1001. */
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 9);
    free(f.data);
    ck_assert_uint_eq(expect_close(&c), 1001);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1001);
    SnowWsStats s;
    snow_ws_route_stats(&h_hb, &s);
    ck_assert_uint_eq(s.closed_heartbeat, 1);
    ck_assert_uint_eq(s.closed_1001, 1);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    stop();
}
END_TEST

START_TEST(backpressure_refuses)
{
    start();
    wsc_rcvbuf = 4096; /* a peer that takes little and never reads */
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/flood", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    wait_opens(1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&ev.lock);
    while (ev.s.bp_result == 0)
        if (pthread_cond_timedwait(&ev.cond, &ev.lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&ev.lock);
    ck_assert_int_eq(seen().bp_result, SNOW_EBACKPRESSURE);
    /* The limit (64 KiB) counts what the kernel holds too: at most the
     * limit plus the message that went over is pending. */
    ck_assert_int_le(seen().bp_buffered, 64 * 1024 + 8192 + 16);
    ck_assert_int_gt(seen().bp_sent, 0);
    /* Bounded by the limit plus what the peer's small window took. */
    ck_assert_int_lt(seen().bp_sent, 20);
    /* Everything accepted arrives. */
    for (int i = 0, n = seen().bp_sent; i < n; i++) {
        struct wsframe m;
        ck_assert_int_eq(wsc_message(&c, &m), 0);
        ck_assert_uint_eq(m.len, 8192);
        free(m.data);
    }
    SnowWsStats s;
    snow_ws_route_stats(&h_flood, &s);
    ck_assert_uint_eq(s.backpressure_refused, 1);
    ck_assert_uint_eq(s.closed_backpressure, 0);
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

START_TEST(backpressure_closes)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/floodclose", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    ck_assert_uint_eq(expect_close(&c), 1008);
    wsc_close_frame(&c, 1008, NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().bp_result, SNOW_EBACKPRESSURE);
    SnowWsStats s;
    snow_ws_route_stats(&h_floodclose, &s);
    ck_assert_uint_eq(s.closed_backpressure, 1);
    ck_assert_uint_eq(s.closed_1008, 1);
    stop();
}
END_TEST

START_TEST(write_stall_closes)
{
    start();
    wsc_rcvbuf = 4096;
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/stall", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    /* The client never reads: the server gives up after write_timeout. */
    wait_closes(1);
    SnowWsStats s;
    snow_ws_route_stats(&h_stall, &s);
    ck_assert_uint_eq(s.closed_write_stall, 1);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    wsc_close(&c);
    stop();
}
END_TEST

START_TEST(drain_on_stop)
{
    start();
    struct wsc c[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/echo", NULL, NULL, 0), 101);
    wait_opens(5);
    /* An upgrade request in flight when the server stops gets 503. */
    struct wsc late;
    ck_assert_int_eq(wsc_connect(&late, port), 0);
    char req[512];
    int n = wsc_request(req, sizeof req, "/echo", NULL);
    ck_assert_int_eq(wsc_send(&late, req, 10), 0);
    usleep(50000);
    snow_http_server_stop(srv);
    srv = NULL;
    ck_assert_int_eq(wsc_send(&late, req + 10, (size_t)n - 10), 0);
    ck_assert_int_eq(wsc_read_head(&late), 503);
    wsc_close(&late);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(5);
    ck_assert_int_eq(seen().last_code, 1001);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.closed_1001, 5);
    stop();
}
END_TEST

/* A new connection sends req; returns the status of the answer, with the
 * head in c->head. */
static int ask(struct wsc *c, const char *req)
{
    ck_assert_int_eq(wsc_connect(c, port), 0);
    ck_assert_int_eq(wsc_send(c, req, strlen(req)), 0);
    return wsc_read_head(c);
}

/* Connects until the port refuses (bounded: a failure guard only). */
static int connect_until_refused(void)
{
    int r = 0;
    for (int i = 0; i < 1000; i++) {
        struct wsc c;
        r = wsc_connect(&c, port);
        if (r == -ECONNREFUSED)
            break;
        if (r == 0)
            wsc_close(&c);
        usleep(10000);
    }
    return r;
}

START_TEST(drain_answers_503_until_closed)
{
    /* With WebSocket connections open, a stopped server keeps its port
     * through the drain and refuses every new request with 503; the port
     * closes once the last connection has ended. */
    start();
    static const char get_plain[] = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n";
    struct wsc h;
    ck_assert_int_eq(ask(&h, get_plain), 200);
    wsc_close(&h);
    struct wsc c[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/echo", NULL, NULL, 0), 101);
    wait_opens(2);
    snow_http_server_stop(srv);
    srv = NULL;
    /* The clients hold their answers back: the drain goes on. */
    for (int i = 0; i < 2; i++)
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
    for (int k = 0; k < 2; k++) {
        /* A plain request, twice in one write: one 503 that closes. */
        char two[2 * sizeof get_plain];
        snprintf(two, sizeof two, "%s%s", get_plain, get_plain);
        ck_assert_int_eq(ask(&h, two), 503);
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nConnection: close\r\n"));
        const char *ra = strcasestr(h.head, "\r\nRetry-After: ");
        ck_assert_ptr_nonnull(ra);
        ck_assert_int_ge(atoi(ra + 15), 1);
        ck_assert(wsc_eof(&h));
        wsc_close(&h);
        /* An upgrade. */
        ck_assert_int_eq(wsc_open(&h, port, "/echo", NULL, NULL, 0), 503);
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nConnection: close\r\n"));
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nRetry-After: "));
        ck_assert(wsc_eof(&h));
        wsc_close(&h);
    }
    /* A connection made during the drain that has sent nothing yet. */
    struct wsc quiet;
    ck_assert_int_eq(wsc_connect(&quiet, port), 0);
    ck_assert_int_eq(snow_ws_connection_count(), 2);
    for (int i = 0; i < 2; i++) {
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(2);
    /* The drain is over: the quiet connection is let go, the port closes. */
    ck_assert(wsc_eof(&quiet));
    wsc_close(&quiet);
    ck_assert_int_eq(connect_until_refused(), -ECONNREFUSED);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.refused, 2);
    ck_assert_uint_eq(s.closed_1001, 2);
    stop();
}
END_TEST

START_TEST(stop_without_ws_closes_port)
{
    /* A server whose WebSocket connections have all ended stops like an
     * HTTP-only one: its port closes at once, nothing is drained. */
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wsc_close_frame(&c, 1000, NULL);
    ck_assert_uint_eq(expect_close(&c), 1000);
    wsc_close(&c);
    wait_closes(1);
    /* The connection actor may linger a moment after on_close. */
    for (int i = 0; i < 1000 && snow_ws_connection_count() > 0; i++)
        usleep(1000);
    snow_http_server_stop(srv);
    srv = NULL;
    ck_assert_int_eq(connect_until_refused(), -ECONNREFUSED);
    stop();
}
END_TEST

START_TEST(abrupt_drops_report_1006)
{
    /* Peers that vanish (FIN without Close, or RST) end their connections
     * with 1006, and everything is counted back. */
    start();
    for (int i = 0; i < 20; i++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
        ck_assert_int_eq(wsc_frame(&c, 0x81, "x", 1), 0);
        expect_message(&c, 1, "x", 1);
        if (i % 2) {
            struct linger lg = {1, 0}; /* close with RST */
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        wsc_close(&c);
    }
    wait_closes(20);
    ck_assert_int_eq(seen().last_code, 1006);
    SnowWsStats s;
    snow_ws_route_stats(NULL, &s);
    ck_assert_uint_eq(s.closed_1006, 20);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    stop();
}
END_TEST

START_TEST(msg_keep_outlives_the_call)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/keep", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "first words", 11), 0);
    expect_message(&c, 1, "kept", 4);
    usleep(20000); /* long enough to hibernate in between */
    ck_assert_int_eq(wsc_frame(&c, 0x81, "later", 5), 0);
    expect_message(&c, 1, "first words", 11);
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

START_TEST(on_connect_panic_500)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/pconnect", NULL, NULL, 0), 500);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

START_TEST(kill_reports_1006_once)
{
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    usleep(20000); /* idle: killed while hibernating */
    ck_assert_int_eq(snow_actor_kill(snow_ws_pid(h), SNOW_EXIT_KILLED), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1006);
    ck_assert_int_eq(snow_ws_send_text(h, "x", 1), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    /* Killed while awake, inside nothing in particular: the same. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(2);
    ck_assert_int_eq(snow_actor_kill(snow_ws_pid(seen().last_conn), SNOW_EXIT_KILLED), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(2);
    ck_assert_int_eq(seen().last_code, 1006);
    /* The runtime shutting down with a connection open: on_close too. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(3);
    stop();
    ck_assert_int_eq(seen().closes, 3);
    wsc_close(&c);
}
END_TEST

START_TEST(drain_spread)
{
    start();
    struct wsc c[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/spread", NULL, NULL, 0), 101);
    wait_opens(4);
    snow_http_server_stop(srv);
    srv = NULL;
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(4);
    stop();
}
END_TEST

struct burst {
    struct wsc *c;
    int n;
    size_t size;
};

static void *burst_sender(void *arg)
{
    struct burst *b = arg;
    char *p = malloc(b->size);
    for (int i = 0; i < b->n; i++) {
        memset(p, 'a' + i % 26, b->size);
        if (wsc_frame(b->c, 0x82, p, b->size) < 0)
            break;
    }
    free(p);
    return NULL;
}

START_TEST(flow_control_loses_nothing)
{
    /* A peer that sends far more than the outbound limit before reading
     * any answer: reading pauses while half the limit is queued, so every
     * echo is accepted and arrives, in order. */
    start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    struct burst b = {&c, 300, 20000};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, burst_sender, &b), 0);
    usleep(100000); /* let the sender run ahead */
    for (int i = 0; i < b.n; i++) {
        struct wsframe m;
        ck_assert_int_eq(wsc_message(&c, &m), 0);
        ck_assert_uint_eq(m.op, 2);
        ck_assert_uint_eq(m.len, b.size);
        ck_assert_int_eq(m.data[0], 'a' + i % 26);
        ck_assert_int_eq(m.data[b.size - 1], 'a' + i % 26);
        free(m.data);
    }
    pthread_join(t, NULL);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.backpressure_refused, 0);
    ck_assert_uint_eq(s.msgs_out, (uint64_t)b.n);
    wsc_close(&c);
    wait_closes(1);
    stop();
}
END_TEST

Suite *conn_suite(void)
{
    Suite *s = suite_create("ws_conn");
    TCase *t = tcase_create("conn");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, upgrade_echo_close);
    tcase_add_test(t, leftover_bytes);
    tcase_add_test(t, split_everywhere);
    tcase_add_test(t, on_connect_refuses);
    tcase_add_test(t, bad_upgrades);
    tcase_add_test(t, protocol_errors);
    tcase_add_test(t, utf8_fails_fast);
    tcase_add_test(t, close_from_handler);
    tcase_add_test(t, panic_closes_1011);
    tcase_add_test(t, foreign_sender_and_handles);
    tcase_add_test(t, mailbox_after_hibernation);
    tcase_add_test(t, heartbeat_reaps_silent_peer);
    tcase_add_test(t, backpressure_refuses);
    tcase_add_test(t, backpressure_closes);
    tcase_add_test(t, write_stall_closes);
    tcase_add_test(t, drain_on_stop);
    tcase_add_test(t, drain_answers_503_until_closed);
    tcase_add_test(t, stop_without_ws_closes_port);
    tcase_add_test(t, abrupt_drops_report_1006);
    tcase_add_test(t, msg_keep_outlives_the_call);
    tcase_add_test(t, on_connect_panic_500);
    tcase_add_test(t, kill_reports_1006_once);
    tcase_add_test(t, drain_spread);
    tcase_add_test(t, flow_control_loses_nothing);
    suite_add_tcase(s, t);
    return s;
}
