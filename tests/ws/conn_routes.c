/*
 * conn_routes.c: the route set of the connection suites (test_conn_*.c):
 * an echo route and one route per behaviour under test (refusal and
 * subprotocols, panics, floods over the outbound limit, a stalled big
 * message, heartbeat, sends from other actors, on_info, closing from a
 * handler, Origin lists, a small message limit, kept messages, a spread
 * drain, a heartbeat route that says whether it is waiting awake, an
 * on_close that takes its time), each recording opens and closes in
 * conn_ev.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn_routes.h"
#include "ws/conn.h"

void echo(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
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
void record_flood(SnowWsConn *conn, int r, int sent)
{
    pthread_mutex_lock(&conn_ev.lock);
    conn_ev.s.bp_result = r;
    conn_ev.s.bp_sent = sent;
    conn_ev.s.bp_buffered = snow_ws_buffered(conn);
    pthread_cond_broadcast(&conn_ev.cond);
    pthread_mutex_unlock(&conn_ev.lock);
}

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
    record_flood(conn, r, sent);
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

/* /calm's on_info (tag 78): whether the connection is waiting awake after
 * data (WS_HOT_MS) or was built afresh on waking from hibernation. It runs
 * on the connection's own actor, so the state is read where it is kept. */
static int hot_of(struct ws_conn *c, void *arg)
{
    *(bool *)arg = c && c->lv && c->lv->hot_until > 0;
    return 0;
}

static void say_hot(SnowWsConn *conn, SnowMessage *m, void *arg)
{
    (void)arg;
    if (m->tag != 78)
        return;
    bool hot = false;
    ws_table_with(snow_ws_pid(conn), hot_of, &hot);
    snow_ws_send_text(conn, hot ? "hot" : "cold", hot ? 3 : 4);
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

/* Answers every message as text: the message itself when that is valid
 * UTF-8 (a text message echoed whole is not validated again; a binary one
 * is), "EILSEQ" as binary when the send refuses it. */
static void astext_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)is_text;
    (void)arg;
    int r = snow_ws_send_text(conn, data, len);
    if (r == -EILSEQ)
        r = snow_ws_send_binary(conn, "EILSEQ", 6);
    ck_assert_int_eq(r, 0);
}

/* Records the close only after a second's sleep: what the peer receives
 * meanwhile went out before on_close returned. */
static void slow_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg)
{
    snow_sleep(1000);
    record_close(conn, code, reason, len, arg);
}

SnowWsHandler h_keep, h_pconnect, h_spread, h_echo, h_auth, h_panic, h_flood, h_floodclose, h_stall, h_hb, h_foreign, h_info,
    h_close, h_origin, h_small, h_astext, h_calm, h_slowclose;

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
                            &h_info, &h_close, &h_origin, &h_small, &h_keep,       &h_pconnect, &h_spread, &h_astext,
                            &h_calm, &h_slowclose};
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
    h_calm.on_info = say_hot;
    h_calm.ping_interval_ms = 300;
    h_calm.pong_timeout_ms = 10000;
    h_close.on_message = close_message;
    h_origin.origin_policy = SNOW_WS_ORIGIN_LIST;
    h_origin.origins = origins;
    h_origin.norigins = 1;
    h_small.max_message = 1000;
    h_keep.on_message = keep_message;
    h_astext.on_message = astext_message;
    h_pconnect.on_connect = panic_connect;
    h_spread.drain_spread_ms = 300;
    h_slowclose.on_close = slow_close;
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
    ck_assert_int_eq(snow_router_ws(r, "/calm", &h_calm), 0);
    ck_assert_int_eq(snow_router_ws(r, "/close", &h_close), 0);
    ck_assert_int_eq(snow_router_ws(r, "/origin", &h_origin), 0);
    ck_assert_int_eq(snow_router_ws(r, "/small", &h_small), 0);
    ck_assert_int_eq(snow_router_ws(r, "/astext", &h_astext), 0);
    ck_assert_int_eq(snow_router_ws(r, "/slowclose", &h_slowclose), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/plain", plain, NULL), 0);
}

void conn_start(void)
{
    server_start(routes);
}

void conn_stop(void)
{
    server_stop();
}
