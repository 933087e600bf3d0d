/*
 * conn_upgrade.c: handing a connection to an upgrade entry point (the
 * WebSocket layer's), and the calls that entry point makes on it. The
 * connection detaches its stream and calls the entry point on the same
 * actor; from then on the upgrade owns the stream, and the connection keeps
 * only what its exit path needs. A long-lived upgraded connection first
 * frees the request buffers (http_conn_release, conn.c), then, when it
 * parks with its stack given back, moves into a compact record.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "http/conn.h"

void http_conn_hand_over(struct http_conn *c, const struct http_match *m)
{
    if (http_conn_flush(c) < 0)
        return;
    struct http_upgrade up;
    memset(&up, 0, sizeof up);
    up.conn = c;
    up.req = c->req;
    up.handler = m->ws;
    up.secure = c->k.srv->tls != NULL;
    up.stopping = atomic_load(&c->k.srv->stopping);
    up.retry_after = up.stopping ? http_server_retry_after(c->k.srv) : 0;
    http_conn_detach(c, &up.stream, &up.leftover);
    int r = m->upgrade(&up);
    if (r < 0)
        rt_log(RT_LOG_DEBUG, "http: upgrade ended with %s", snow_strerror(r));
}

int http_conn_detach(struct http_conn *c, struct http_stream **stream, struct http_str *leftover)
{
    if (!c->k.stream)
        return SNOW_EHTTP_DETACHED;
    *stream = c->k.stream;
    c->k.stream = NULL;
    c->k.lent = *stream;
    (*stream)->back = &c->k.lent;
    *leftover = (struct http_str){c->buf + c->next, c->len - c->next};
    return 0;
}

void http_conn_upgraded(struct http_conn *c, int drain_timeout_ms)
{
    if (c->k.upgraded)
        return;
    c->k.upgraded = 1;
    http_server_upgraded(c->k.srv, drain_timeout_ms);
}

void http_conn_on_exit(struct http_conn *c, void (*fn)(int reason, void *arg), void *arg)
{
    struct http_conn_core *k = http_conn_core_of(c);
    k->on_exit = fn;
    k->on_exit_arg = arg;
}

size_t http_conn_bytes(struct http_conn *c)
{
    size_t n = malloc_usable_size(c);
    if (http_conn_core_of(c)->compact)
        return n;
    n += c->buf ? malloc_usable_size(c->buf) : 0;
    n += c->hdrs ? malloc_usable_size(c->hdrs) : 0;
    n += c->req ? malloc_usable_size(c->req) + (c->req->scratch ? malloc_usable_size(c->req->scratch) : 0) : 0;
    n += c->out.p ? malloc_usable_size(c->out.p) : 0;
    return n + c->res.body_cap;
}

struct http_conn *http_conn_compact(struct http_conn *c)
{
    if (http_conn_core_of(c)->compact || c->k.stream || c->buf || c->req || c->out.p || c->res.body_cap)
        return c;
    struct http_conn_core *n = malloc(sizeof *n);
    if (!n)
        return c; /* the full record serves as well */
    /* Every field but the link: the neighbours in the server's list write
     * c->k.link under its lock, so only http_server_conn_move, holding
     * that lock, reads it. */
    n->srv = c->k.srv;
    n->stream = c->k.stream;
    n->lent = c->k.lent;
    n->on_exit = c->k.on_exit;
    n->on_exit_arg = c->k.on_exit_arg;
    n->charged = c->k.charged;
    n->upgraded = c->k.upgraded;
    n->compact = 1;
    if (n->lent)
        n->lent->back = &n->lent;
    http_server_conn_move(c->k.srv, &c->k.link, &n->link);
    free(c);
    /* A compact record is only ever reached through its core. */
    struct http_conn *r = (struct http_conn *)(void *)n;
    snow_actor_set_terminate(http_conn_terminate, r);
    return r;
}
