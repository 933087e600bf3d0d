/*
 * server.h: the listener (server.c) and the connection actor (conn.c and
 * its conn_*.c files, conn.h).
 */
#ifndef SNOW_HTTP_SERVER_H
#define SNOW_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "http/parse.h"
#include "http/response.h"
#include "http/router.h"
#include "http/stream.h"

struct http_tls_config;

/* A connection's entry in its server's list, so that stopping the server
 * can ask every connection to end once it is between requests. */
struct http_conn_link {
    struct http_conn_link *prev, *next;
    SnowPid pid;
};

struct SnowHttpServer {
    atomic_int refs;          /* the handle, the listener, each connection */
    SnowRouter *router;       /* one reference held */
    struct http_limits lim;
    int64_t write_timeout_ms;
    size_t max_buffered;      /* budget for buffered request/response bytes */
    atomic_size_t buffered;   /* bytes charged by all connections (http_server_charge) */
    int max_conns;
    atomic_int nconns;
    atomic_int stopping;
    atomic_int paused;        /* the listener waits for a connection slot */
    /* The drain (snow_http_server_stop with upgraded connections open):
     * the listener stays and every new request is answered 503 until the
     * last upgraded connection ends or drain_end_ns passes. */
    atomic_int nupgraded;     /* connections handed to an upgrade (http_conn_upgraded) still running */
    atomic_int drain_ms;      /* the longest drain timeout they asked for */
    atomic_int draining;
    _Atomic int64_t drain_end_ns;
    atomic_uint_least64_t listener; /* SnowPid of the listener actor */
    int fd;                   /* listening socket */
    int port;
    struct http_tls_config *tls; /* NULL for plain TCP; read-only once started */
    pthread_mutex_t conns_lock;
    struct http_conn_link conns; /* [conns_lock] circular list, this is the head */
};

void http_server_ref(struct SnowHttpServer *s);
void http_server_unref(struct SnowHttpServer *s);
/* A connection ended: frees its slot and wakes a listener paused at the
 * connection limit. */
void http_server_conn_done(struct SnowHttpServer *s);
/* Counts an upgraded connection (http_conn_upgraded) in and out. */
void http_server_upgraded(struct SnowHttpServer *s, int drain_timeout_ms);
void http_server_upgraded_done(struct SnowHttpServer *s);
/* Seconds a client refused during the drain should wait (Retry-After),
 * at least 1; 0 when the server is not draining. */
int http_server_retry_after(struct SnowHttpServer *s);
/* Reserves more bytes of the buffering budget: 0, or -ENOBUFS when the
 * server's connections already hold max_buffered. */
int http_server_charge(struct SnowHttpServer *s, size_t more);
/* Gives bytes back; also used for growth charged without a check. */
void http_server_uncharge(struct SnowHttpServer *s, size_t less);
void http_server_charge_anyway(struct SnowHttpServer *s, size_t more);
/* Adds / removes a connection actor from the server's list. */
void http_server_conn_link(struct SnowHttpServer *s, struct http_conn_link *l);
void http_server_conn_unlink(struct SnowHttpServer *s, struct http_conn_link *l);
/* Puts to in from's place in the list (from is left unlinked); to gets
 * from's pid. Nothing happens to the list when from is not in it. */
void http_server_conn_move(struct SnowHttpServer *s, struct http_conn_link *from, struct http_conn_link *to);

/* Runs a connection actor on fd, an already connected stream socket
 * (any family), exactly as for one the listener accepted: fd is the
 * connection's from here on (closed if no actor can be spawned). For
 * harnesses that drive a real connection over a socketpair. */
void http_server_adopt(struct SnowHttpServer *s, int fd);

/* Tag of the runtime-internal wake-up sent to a listener (stop, free slot).
 * A user tag value: listeners receive nothing else. */
#define HTTP_LISTENER_WAKE UINT64_C(0x48545450574b)

/* Arguments of a connection actor (copied by spawn). */
struct http_conn_args {
    struct SnowHttpServer *srv; /* a reference the connection releases */
    int fd;
    int64_t accepted_ns;
};
void http_conn_main(void *arg);
/* Spawn-time terminate callback of a connection actor that never ran. */
void http_conn_abandoned(int reason, void *arg);

struct http_conn;

/* Takes the stream away from the connection: *stream is the caller's to
 * close, *leftover views the bytes read past the current request (valid
 * until the connection actor ends). The connection stops using the socket.
 * Returns 0, or SNOW_EHTTP_DETACHED if it was already detached. */
int http_conn_detach(struct http_conn *c, struct http_stream **stream, struct http_str *leftover);

/* After an upgrade took what it needs from the request and the leftover
 * bytes: frees the connection's request buffers (read buffer, headers,
 * request, response), so a long-lived upgraded connection does not keep
 * them. The upgrade's req and leftover views are invalid afterwards. */
void http_conn_release(struct http_conn *c);

/* The upgrade took the connection over for good (a WebSocket connection
 * got its 101): stopping the server while such connections run keeps the
 * listener for up to drain_timeout_ms, answering new requests with 503,
 * until they have all ended. */
void http_conn_upgraded(struct http_conn *c, int drain_timeout_ms);

/* For an upgraded connection that is about to park with its stack given
 * back (nothing on a stack refers to c any more), after http_conn_release:
 * moves what its exit path needs (server, lent stream, exit callback, list
 * link, counts) into a small record, frees c and returns the record, which
 * replaces c everywhere (it is the terminate callback's argument from then
 * on). Returns c itself when c is compact already, still holds buffers or
 * there is no memory. */
struct http_conn *http_conn_compact(struct http_conn *c);
/* Bytes c holds in malloc blocks (its record and buffers), for accounting. */
size_t http_conn_bytes(struct http_conn *c);

/* Registers fn(reason, arg) to run when the connection actor ends on any
 * path, before the connection frees its memory. For the upgrade entry
 * point, which must not replace the actor's terminate callback. */
void http_conn_on_exit(struct http_conn *c, void (*fn)(int reason, void *arg), void *arg);

#endif
