/*
 * conn.c: the connection actor. One per accepted socket, on its own 64 KiB
 * stack; it reads and parses requests, looks up their route, reads their
 * bodies (conn_read.c), runs the router and writes responses, keeping the
 * connection alive between requests (conn_idle.c) until it closes or an
 * upgrade takes it over (conn_upgrade.c). conn.h maps the four files.
 *
 * Responses go to an output buffer. While pipelined requests are already
 * buffered, responses accumulate and are written together; the buffer is
 * always flushed before the actor parks to read, so an answer is never held
 * back waiting for the peer. Writes time out only when no byte moves for
 * write_timeout_ms. Serialising a response is response.c's part.
 *
 * The record lives from http_conn_main to the terminate callback, which
 * every exit path runs. The actor's stack may go in between: a hibernating
 * connection (conn_idle.c) starts again on a fresh one at http_conn_resume.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/conn.h"
#include "http/tls.h"

#define FLUSH_AT (64 * 1024)
#define COPY_BODY_MAX (16 * 1024)

/* What to do with the connection after a response. */
enum after_response {
    AFTER_KEEP,   /* serve the next request */
    AFTER_LINGER, /* close after a lingering close */
    AFTER_GONE,   /* nothing more to do here: peer gone, or the stream detached */
};

/* ---- the request buffers ---- */

/* The per-request state. Its parameter and query arrays (5 KiB) are
 * written before they are counted (router.c, exchange.c), so only the rest
 * is cleared: zeroing them for every connection cost more than the rest of
 * its allocations together. */
static SnowHttpReq *req_new(void)
{
    SnowHttpReq *q = malloc(sizeof *q);
    if (q) {
        memset(&q->r, 0, sizeof q->r);
        q->nparams = q->nquery = 0;
        q->body = NULL;
        q->body_len = 0;
        q->scratch = NULL;
        q->scratch_len = 0;
    }
    return q;
}

/* Allocates what serving requests needs: the read buffer, the header array
 * and the request. http_conn_release frees them again. */
static int acquire(struct http_conn *c)
{
    c->cap = READ_BUF_INITIAL;
    c->buf = malloc(c->cap);
    c->hdrs = malloc(c->nhdrs * sizeof *c->hdrs);
    c->req = req_new();
    return c->buf && c->hdrs && c->req ? 0 : -ENOMEM;
}

void http_conn_release(struct http_conn *c)
{
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = c->start = c->next = 0;
    free(c->hdrs);
    c->hdrs = NULL;
    if (c->req) {
        free(c->req->scratch);
        free(c->req);
        c->req = NULL;
    }
    c->scratch_cap = 0;
    free(c->out.p);
    c->out = (struct http_outbuf){0};
    http_res_fini(&c->res);
    http_res_init(&c->res);
}

/* ---- responding ---- */

int http_conn_flush(struct http_conn *c)
{
    if (!c->out.len)
        return 0;
    struct iovec v = {c->out.p, c->out.len};
    int r = http_stream_writev_stall(c->k.stream, &v, 1, c->k.srv->write_timeout_ms);
    c->out.len = 0;
    return r;
}

static int queue_response(struct http_conn *c, int keep_alive)
{
    SnowHttpRes *res = &c->res;
    int with_body = !res->head_only && res->body_len <= COPY_BODY_MAX;
    int r = http_format_response(&c->out, res, c->req->r.minor_version, keep_alive, with_body);
    http_conn_account(c);
    if (r < 0)
        return -ENOMEM;
    if (!with_body && !res->head_only && res->body_len) {
        /* A large body goes out straight from where it is (the response
         * buffer, or the request's bytes for an echo), in the same writev as
         * the head. */
        struct iovec v[2] = {{c->out.p, c->out.len}, {(void *)http_res_body(res), res->body_len}};
        c->out.len = 0;
        return http_stream_writev_stall(c->k.stream, v, 2, c->k.srv->write_timeout_ms);
    }
    return 0;
}

static void send_error(struct http_conn *c, int status)
{
    http_res_reset(&c->res);
    c->res.close = 1;
    /* A HEAD response never has content (RFC 9110 §9.3.2), also when the
     * server itself answers an error; the request-line tells, even when the
     * rest of the head was bad. */
    c->res.head_only = c->parser.is_head;
    http_res_error(&c->res, status);
    int retry = status == 503 ? http_server_retry_after(c->k.srv) : 0;
    if (retry > 0) {
        char v[16];
        int n = snprintf(v, sizeof v, "%d", retry);
        http_res_add_header(&c->res, "Retry-After", 11, v, (size_t)n);
    }
    c->req->r.minor_version = 1;
    if (queue_response(c, 0) == 0 && http_conn_flush(c) == 0)
        http_conn_linger_close(c);
}

/* ---- dispatching ---- */

struct chain {
    const SnowRouter *router;
    const struct http_match *m;
    SnowHttpReq *req;
    SnowHttpRes *res;
    int before_only;
    int stopped;
};

static void run_chain(void *arg)
{
    struct chain *ch = arg;
    ch->stopped = http_router_run(ch->router, ch->m, ch->req, ch->res, ch->before_only);
}

/* Runs the chain catching a panic: the answer becomes 500 and the
 * connection goes on serving. */
static int run_caught(struct http_conn *c, const struct http_match *m, int before_only)
{
    struct chain ch = {c->k.srv->router, m, c->req, &c->res, before_only, 0};
    if (actor_catch(run_chain, &ch) == SNOW_EXIT_PANIC) {
        rt_log(RT_LOG_WARN, "http: handler panicked: %s", actor_panic_message());
        http_res_error(&c->res, 500);
        return 1;
    }
    return ch.stopped;
}

/* Answers the parsed request whose route is m; its body, when the route
 * runs a handler, has been read. */
static enum after_response handle(struct http_conn *c, const struct http_match *m)
{
    SnowHttpReq *req = c->req;
    SnowHttpRes *res = &c->res;
    if (m->kind == HTTP_ROUTE_UPGRADE) {
        /* The before-middleware runs first and may answer instead. */
        if (!run_caught(c, m, 1)) {
            http_conn_hand_over(c, m);
            return AFTER_GONE;
        }
    } else {
        /* The handler may answer with the request's own body without a
         * copy (snow_http_res_body); it stays in place until written. */
        res->lend = req->body;
        res->lend_len = req->body_len;
        run_caught(c, m, 0);
    }
    /* A body left unread (a built-in answer) still sits on the wire ahead
     * of any next request: the connection cannot go on. */
    int unread_body = m->kind != HTTP_ROUTE_HANDLER && http_conn_has_body(&req->r);
    int keep = req->r.keep_alive && !res->close && !unread_body &&
               !atomic_load_explicit(&c->k.srv->stopping, memory_order_relaxed);
    int q = queue_response(c, keep);
    res->lend = NULL;
    res->lend_len = 0;
    if (q < 0)
        return AFTER_GONE;
    /* Pipelined requests already here: answer them in the same write. */
    if (!keep || c->len == c->next || c->out.len >= FLUSH_AT)
        if (http_conn_flush(c) < 0)
            return AFTER_GONE;
    return keep ? AFTER_KEEP : AFTER_LINGER;
}

/* ---- the exchange loop ---- */

static void conn_loop(struct http_conn *c, int first)
{
    for (;; first = 0) {
        struct http_match m;
        enum req_outcome o = http_conn_read_request(c, first, &m);
        if (o == REQ_GONE)
            return;
        if (o == REQ_ANSWER) {
            send_error(c, c->status);
            return;
        }
        switch (handle(c, &m)) {
        case AFTER_KEEP:
            break;
        case AFTER_LINGER:
            http_conn_linger_close(c);
            return;
        case AFTER_GONE:
        default:
            return;
        }
        c->start = c->next;
        if (c->start == c->len)
            c->start = c->len = c->next = 0;
        http_conn_shrink(c);
        snow_reduction_check();
    }
}

/* ---- the actor's life ---- */

static void conn_free(struct http_conn *c)
{
    struct http_conn_core *k = http_conn_core_of(c);
    struct SnowHttpServer *srv = k->srv;
    http_server_conn_unlink(srv, &k->link);
    http_server_uncharge(srv, k->charged);
    if (!k->compact)
        http_conn_release(c);
    int upgraded = k->upgraded;
    free(c);
    if (upgraded)
        http_server_upgraded_done(srv);
    http_server_conn_done(srv);
    http_server_unref(srv);
}

void http_conn_terminate(int reason, void *arg)
{
    struct http_conn *c = arg;
    struct http_conn_core *k = http_conn_core_of(c);
    if (k->on_exit)
        k->on_exit(reason, k->on_exit_arg);
    if (k->stream)
        http_stream_close(k->stream);
    if (k->lent)
        http_stream_close(k->lent);
    conn_free(c);
}

void http_conn_abandoned(int reason, void *arg)
{
    (void)reason;
    struct http_conn_args *a = arg;
    close(a->fd);
    http_server_conn_done(a->srv);
    http_server_unref(a->srv);
}

void http_conn_main(void *arg)
{
    struct http_conn_args a = *(struct http_conn_args *)arg;
    struct SnowHttpServer *srv = a.srv;
    /* From here on this function owns the socket and the reference. */
    snow_actor_set_terminate(NULL, NULL);
    struct http_conn *c = calloc(1, sizeof *c);
    if (c) {
        c->k.srv = srv;
        c->accepted_ns = a.accepted_ns;
        c->nhdrs = srv->lim.max_headers;
        http_res_init(&c->res);
    }
    if (!c || acquire(c) < 0) {
        close(a.fd);
        if (c)
            conn_free(c);
        else {
            http_server_conn_done(srv);
            http_server_unref(srv);
        }
        return;
    }
    snow_actor_set_terminate(http_conn_terminate, c);
    c->k.link.pid = snow_actor_self();
    http_server_conn_link(srv, &c->k.link);
    int err;
    /* accept4 made it non-blocking already. */
    SnowIo *io = actor_io_open_nonblocking(a.fd, &err);
    if (!io) {
        close(a.fd);
        return;
    }
    c->k.stream = srv->tls ? http_stream_tls(io, srv->tls) : http_stream_plain(io);
    if (!c->k.stream) {
        snow_io_close(io);
        return;
    }
    conn_loop(c, 1);
}

void http_conn_resume(void *arg)
{
    struct http_conn *c = arg;
    if (acquire(c) < 0)
        return; /* the terminate callback closes and frees */
    /* The first request keeps its deadline from the accept (slowloris). */
    conn_loop(c, c->reading_first);
}
