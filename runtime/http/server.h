/*
 * server.h: the listener (server.c) and the connection actor (conn.c).
 */
#ifndef SNOW_HTTP_SERVER_H
#define SNOW_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "http/parse.h"
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
    int max_conns;
    atomic_int nconns;
    atomic_int stopping;
    atomic_int paused;        /* the listener waits for a connection slot */
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
/* Adds / removes a connection actor from the server's list. */
void http_server_conn_link(struct SnowHttpServer *s, struct http_conn_link *l);
void http_server_conn_unlink(struct SnowHttpServer *s, struct http_conn_link *l);

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

/* Registers fn(reason, arg) to run when the connection actor ends on any
 * path, before the connection frees its memory. For the upgrade entry
 * point, which must not replace the actor's terminate callback. */
void http_conn_on_exit(struct http_conn *c, void (*fn)(int reason, void *arg), void *arg);

/* Serialises a complete response with the server's own headers (Date,
 * Server, Content-Length, Connection) into *out. Used by the connection and
 * by the upgrade path to answer before a 101. Returns 0 or -ENOMEM. */
struct http_outbuf {
    char *p;
    size_t len, cap;
};
int http_format_response(struct http_outbuf *out, const SnowHttpRes *res, int minor_version, int keep_alive,
                         int with_body);
/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7) for now, cached per
 * second and per worker thread. Writes 29 bytes. */
void http_date_now(char out[29]);

#endif
