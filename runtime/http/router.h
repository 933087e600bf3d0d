/*
 * router.h: route table, lookup and the middleware chain (router.c), and the
 * hook through which the WebSocket layer takes over upgraded connections.
 *
 * The router is pure: lookup and running the chain do no I/O. The connection
 * actor wraps the chain in actor_catch so a panic becomes a 500.
 */
#ifndef SNOW_HTTP_ROUTER_H
#define SNOW_HTTP_ROUTER_H

#include "http/exchange.h"

struct http_stream;

/* What a WebSocket upgrade entry point receives. The stream and the bytes
 * read past the request (leftover, which may hold the first frames) belong
 * to the entry point from now on: it must http_stream_close(stream) when done.
 * req and leftover point into the connection object, which is freed only
 * after the entry point returns. */
struct http_conn;
struct http_upgrade {
    struct http_conn *conn;   /* for http_conn_on_exit */
    struct http_stream *stream;
    struct http_str leftover;
    SnowHttpReq *req;
    const SnowWsHandler *handler;
    int secure;   /* the connection is TLS */
    int stopping; /* the server is stopping: refuse the upgrade (503) */
    int retry_after; /* with stopping: seconds for Retry-After, 0 for none */
};

/* Runs the WebSocket session (handshake included) on the calling
 * connection actor; returns when it is over. The return value is only
 * logged when negative. */
typedef int (*http_upgrade_fn)(struct http_upgrade *up);

/* Sets the process-wide entry point used by routes added with
 * snow_router_ws (the WebSocket layer calls this once at start-up). */
void http_set_upgrade_hook(http_upgrade_fn fn);
http_upgrade_fn http_upgrade_hook(void);
/* Like snow_router_ws with an explicit entry point for this route. */
int http_router_ws(SnowRouter *r, const char *pattern, const SnowWsHandler *handler, http_upgrade_fn fn);

enum http_route_kind {
    HTTP_ROUTE_HANDLER,  /* run the chain with the handler */
    HTTP_ROUTE_ERROR,    /* run the chain with a built-in answer (404, 405, 400, 426, 501) */
    HTTP_ROUTE_OPTIONS,  /* automatic OPTIONS answer: 204 with Allow */
    HTTP_ROUTE_UPGRADE   /* hand the connection to match.upgrade */
};

struct http_match {
    enum http_route_kind kind;
    int status;                     /* HTTP_ROUTE_ERROR: the status to answer */
    char allow[128];                /* 405 / OPTIONS: "GET, HEAD, POST" */
    SnowHttpHandler handler;
    void *arg;
    const SnowWsHandler *ws;
    http_upgrade_fn upgrade;
};

/* Finds the route for req (method, path, Upgrade headers), fills
 * req->params (decoded into req->scratch) and req->query, and says what to
 * do. Never fails: problems become HTTP_ROUTE_ERROR. */
void http_router_lookup(const SnowRouter *r, SnowHttpReq *req, struct http_match *m);

/* Runs the before hooks, the handler (or the built-in answer) and the after
 * hooks. With before_only, stops after the before hooks and returns 1 when
 * one of them answered (SNOW_HTTP_STOP), 0 otherwise. */
int http_router_run(const SnowRouter *r, const struct http_match *m, SnowHttpReq *req, SnowHttpRes *res,
                    int before_only);

/* Reference counting: a server holds the router while it has connections. */
void http_router_ref(SnowRouter *r);
void http_router_unref(SnowRouter *r);

#endif
