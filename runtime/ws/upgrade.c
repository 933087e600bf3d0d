/*
 * upgrade.c: the entry point the HTTP connection calls for a request on a
 * WebSocket route, on the same actor, after detaching its stream. It
 * decides before the 101: a stopping server answers 503, an invalid
 * handshake gets handshake.c's answer (400/403/405/426), the route's Origin
 * policy applies, then on_connect may refuse with a response of its own.
 * Every refusal closes the connection (the answer says Connection: close).
 * After the 101 the request's buffers go back to the HTTP layer's allocator
 * (http_conn_release) and the connection loop takes over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "actor/actor.h"
#include "http/server.h"
#include "ws/conn.h"

#define LINGER_MS 1000

/* Sends a refusal and closes: FIN first, then reads what the client still
 * sends for a moment, so the answer is not lost to a reset. */
static void refuse(struct http_stream *s, const char *p, size_t n, int64_t write_deadline)
{
    if (http_stream_write(s, p, n, write_deadline) == 0) {
        s->ops->shutdown(s);
        int64_t deadline = actor_deadline_after_ms(LINGER_MS);
        char buf[1024];
        for (int i = 0; i < 64 && http_stream_read(s, buf, sizeof buf, deadline) > 0; i++)
            ;
    }
    http_stream_close(s);
}

static void refuse_res(struct http_stream *s, SnowHttpRes *res, int64_t deadline)
{
    struct http_outbuf out = {0};
    if (http_format_response(&out, res, 1, 0, 1) == 0)
        refuse(s, out.p, out.len, deadline);
    else
        http_stream_close(s);
    free(out.p);
}

static bool origin_adapter(void *arg, struct http_str origin, const struct http_request *req)
{
    const SnowWsHandler *h = arg;
    /* struct http_request is the first member of SnowHttpReq. */
    const SnowHttpReq *r = (const SnowHttpReq *)(const void *)req;
    return h->origin_check(origin.n ? origin.p : NULL, origin.n, r, h->arg) != 0;
}

static void config_of(const SnowWsHandler *h, bool secure, struct ws_handshake_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->protocols = h->protocols;
    cfg->nprotocols = h->nprotocols;
    switch (h->origin_policy) {
    case SNOW_WS_ORIGIN_ANY:
        cfg->origin_policy = WS_ORIGIN_ANY;
        break;
    case SNOW_WS_ORIGIN_LIST:
        cfg->origin_policy = WS_ORIGIN_LIST;
        break;
    case SNOW_WS_ORIGIN_CALLBACK:
        cfg->origin_policy = WS_ORIGIN_CALLBACK;
        break;
    default:
        cfg->origin_policy = WS_ORIGIN_SAME;
        break;
    }
    cfg->origins = h->origins;
    cfg->norigins = h->norigins;
    cfg->origin_fn = h->origin_check ? origin_adapter : NULL;
    cfg->origin_arg = (void *)(uintptr_t)h;
    cfg->require_origin = h->require_origin != 0;
    cfg->secure = secure;
}

static struct ws_conn *conn_new(const SnowWsHandler *h, struct ws_route *route, struct http_upgrade *up)
{
    /* The connection is malloc'd, not in its actor's heap: an actor that
     * never allocates there (an echo) then has no heap at all, and a
     * connection costs one block of its own. The program's user data, the
     * one pointer of it into that heap, is a root slot instead
     * (snow_ws_set_user). Aligned so that its first cache line is what
     * a room's deliverer reads (conn.h). */
    struct ws_conn *c = aligned_alloc(_Alignof(struct ws_conn), sizeof *c);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->pid = snow_actor_self();
    c->h = h;
    c->route = route;
    c->hc = up->conn;
    c->stream = up->stream;
    atomic_init(&c->rtt_ms, -ENODATA);
    atomic_init(&c->accepting, true);
    if (ws_live_new(c) < 0) {
        free(c);
        return NULL;
    }
    c->ping_due = c->pong_due = -1;
    c->phase = WS_PHASE_CONNECTING;
    /* The leftover bytes are the first frames: they become the read buffer. */
    struct ws_live *lv = c->lv;
    size_t n = up->leftover.n;
    if (n > lv->rcap) {
        uint8_t *p = realloc(lv->rbuf, n);
        if (!p) {
            ws_conn_free(c);
            return NULL;
        }
        lv->rbuf = p;
        lv->rcap = n;
    }
    if (n)
        memcpy(lv->rbuf, up->leftover.p, n);
    lv->rlen = n;
    c->rd_more = true;
    return c;
}

struct connect_call {
    struct ws_conn *c;
    const SnowHttpReq *req;
    SnowHttpRes *res;
    int verdict;
};

static void call_connect(void *arg)
{
    struct connect_call *cc = arg;
    cc->verdict = cc->c->h->on_connect(ws_handle(cc->c->pid), cc->req, cc->res, cc->c->h->arg);
}

static void call_open(void *arg)
{
    struct ws_conn *c = arg;
    c->h->on_open(ws_handle(c->pid), c->h->arg);
}

/* The 101 for c, into buf: the chosen subprotocol is kept, the
 * extensions' state set up. Returns its length. */
static int accept_conn(struct ws_conn *c, struct ws_handshake *hs, char *buf, size_t cap)
{
    if (hs->protocol.n) {
        /* The chosen name outlives the request's buffers. */
        if (hs->protocol.n > UINT16_MAX || !(c->proto_buf = malloc(hs->protocol.n)))
            return -ENOMEM;
        memcpy(c->proto_buf, hs->protocol.p, hs->protocol.n);
        c->proto_len = (uint16_t)hs->protocol.n;
    }
    ws_pmd_accept(c, hs);
    return ws_handshake_write_101(hs, buf, cap);
}

int ws_upgrade_entry(struct http_upgrade *up)
{
    const SnowWsHandler *h = up->handler;
    struct http_stream *s = up->stream;
    int64_t wdeadline = actor_deadline_after_ms(h->write_timeout_ms > 0 ? h->write_timeout_ms : 30000);
    struct ws_route *route = ws_route_get(h);
    if (!route) {
        http_stream_close(s);
        return -ENOMEM;
    }
    SnowHttpRes res;
    http_res_init(&res);
    if (up->stopping) {
        ws_count(&route->refused, 1);
        http_res_error(&res, 503);
        if (up->retry_after > 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", up->retry_after);
            snow_http_res_header(&res, "Retry-After", v);
        }
        refuse_res(s, &res, wdeadline);
        http_res_fini(&res);
        return 0;
    }
    struct ws_handshake_config cfg;
    config_of(h, up->secure, &cfg);
    struct ws_handshake hs;
    if (ws_handshake_check(&up->req->r, &cfg, &hs) < 0) {
        ws_count(&route->refused, 1);
        char buf[WS_HANDSHAKE_RESPONSE_MAX];
        int len = ws_handshake_write_reject(&hs, buf, sizeof buf);
        if (len > 0)
            refuse(s, buf, (size_t)len, wdeadline);
        else
            http_stream_close(s);
        http_res_fini(&res);
        return 0;
    }
    struct ws_conn *c = conn_new(h, route, up);
    if (!c || ws_table_add(c) < 0) {
        if (c)
            ws_conn_free(c);
        http_res_error(&res, 503);
        refuse_res(s, &res, wdeadline);
        http_res_fini(&res);
        return -ENOMEM;
    }
    c->lv->hs = &hs;
    c->lv->req = up->req;
    /* From here a kill or crash also ends in ws_conn_finish. */
    http_conn_on_exit(up->conn, ws_conn_on_exit, c);
    if (h->on_connect) {
        struct connect_call cc = {c, up->req, &res, SNOW_WS_ACCEPT};
        bool panicked = ws_call(c, call_connect, &cc);
        if (panicked || cc.verdict != SNOW_WS_ACCEPT) {
            ws_count(&route->refused, 1);
            if (panicked) {
                http_res_reset(&res);
                http_res_error(&res, 500);
            } else if (res.status < 400 || res.status > 599) {
                res.status = 403;
            }
            /* No 101, so no on_close; the stream stays ours for the answer. */
            c->stream = NULL;
            ws_conn_finish(c);
            refuse_res(s, &res, wdeadline);
            http_res_fini(&res);
            return 0;
        }
    }
    http_res_fini(&res);
    c->lv->req = NULL;
    /* The kernel's part of the outbound limit: without a cap an accepted
     * socket here takes ~4 MiB that no user-space queue would see. */
    int sndbuf = ws_sndbuf(c);
    setsockopt(http_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    /* Counted open before the 101 goes out, so that a client that has read
     * it already sees itself in snow_ws_connection_count. */
    ws_count(&route->opened, 1);
    ws_count(&route->open, 1);
    ws_conn_count_add(1);
    /* A stop from here on drains this connection before the listener goes. */
    http_conn_upgraded(up->conn, h->drain_timeout_ms);
    char buf[WS_HANDSHAKE_RESPONSE_MAX];
    int len = accept_conn(c, &hs, buf, sizeof buf);
    if (len < 0) {
        ws_conn_count_add(-1);
        atomic_fetch_sub_explicit(&route->open, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&route->opened, 1, memory_order_relaxed);
        ws_conn_finish(c);
        return 0;
    }
    ws_table_set_phase(c, WS_PHASE_OPEN);
    c->ping_due = h->ping_interval_ms > 0 ? actor_deadline_after_ms(h->ping_interval_ms) : -1;
    /* on_open runs before the 101 is written, so what it does (a join, a
     * send) has taken effect by the time the client sees the connection
     * open: a member that joins there gets every broadcast made after its
     * client read the 101. Its frames are queued (nothing is flushed while
     * lv->hs is set) and go out after the 101. */
    if (h->on_open)
        ws_call(c, call_open, c);
    if (http_stream_write(c->stream, buf, (size_t)len, wdeadline) < 0)
        c->wr_failed = true; /* on_open ran: on_close reports 1006 */
    c->lv->hs = NULL;
    http_conn_release(up->conn);
    ws_conn_run(c);
    return 0;
}
