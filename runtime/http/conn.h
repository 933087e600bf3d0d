/*
 * conn.h: the connection actor's record and what its four files share.
 *
 *   conn.c          the actor: its record's lifetime and the exchange loop
 *                   (read a request, dispatch it, respond, next)
 *   conn_read.c     reading one request into the read buffer: head, route
 *                   decision, body, within the limits and the buffering budget
 *   conn_idle.c     between requests: the idle read that a stopping server
 *                   ends, hibernation, giving buffers back, the lingering close
 *   conn_upgrade.c  the hand-off to an upgrade entry point, and what that
 *                   entry point may do with the connection afterwards
 *                   (detach, release, compact)
 *
 * The connection's public side (http_conn_main, the upgrade calls) is
 * declared in server.h; this header is for these four files only.
 */
#ifndef SNOW_HTTP_CONN_H
#define SNOW_HTTP_CONN_H

#include "http/server.h"

/* The read buffer's size when a connection starts, and after a request
 * that needed more; the buffering budget counts only what is past it. */
#define READ_BUF_INITIAL (16 * 1024)

/* What an upgraded connection still needs once it parks with its stack
 * given back: all http_conn_compact keeps. */
struct http_conn_core {
    struct SnowHttpServer *srv;
    struct http_stream *stream; /* NULL once detached */
    struct http_stream *lent;   /* the detached stream until it is closed */
    void (*on_exit)(int reason, void *arg);
    void *on_exit_arg;
    struct http_conn_link link; /* in the server's list of connections */
    size_t charged;             /* bytes of the server's buffering budget held */
    int upgraded;               /* counted in the server's nupgraded */
    int compact;                /* only this core exists (http_conn_compact) */
};

struct http_conn {
    struct http_conn_core k;    /* first: a compact record is just this */
    char *buf;
    size_t cap, len, start;     /* current request at buf[start..len) */
    size_t next;                /* offset of the next request after the current one */
    const char *head_at;        /* buf + start when the head was parsed */
    struct http_parser parser;
    struct http_header *hdrs;
    size_t nhdrs;
    size_t scratch_cap;
    SnowHttpReq *req;           /* per-request state; freed while hibernating */
    SnowHttpRes res;
    struct http_outbuf out;
    int64_t accepted_ns;
    int64_t request_deadline;   /* head + body of the current request */
    int status;                 /* the error to answer after REQ_ANSWER */
    int64_t idle_until;         /* idle deadline carried across a hibernation */
    int reading_first;          /* read_head is waiting for the first request */
};

/* The core of a full or a compact record: a compact one is a core only,
 * so whatever may meet one goes through this. */
static inline struct http_conn_core *http_conn_core_of(struct http_conn *c)
{
    return (struct http_conn_core *)(void *)c;
}

static inline bool http_conn_has_body(const struct http_request *r)
{
    return r->chunked || r->content_length > 0;
}

/* What reading a request (head, then body) came to. */
enum req_outcome {
    REQ_READY,  /* the head (after read_body: and the body) is here */
    REQ_ANSWER, /* answer c->status, then close */
    REQ_GONE,   /* close without a word: peer gone, idle, server stopping */
};

/* ---- conn.c ---- */

/* Writes the output buffer out (write progress deadline) and empties it. */
int http_conn_flush(struct http_conn *c);
/* The actor's start after a hibernation (conn_idle.c parks with it). */
void http_conn_resume(void *arg);
/* The actor's terminate callback: every exit path ends here. */
void http_conn_terminate(int reason, void *arg);

/* ---- conn_read.c ---- */

/* Reads and parses the next request's head and looks up its route into m;
 * reads its body only when a handler will run. first says it is the
 * connection's first request. */
enum req_outcome http_conn_read_request(struct http_conn *c, int first, struct http_match *m);
/* Brings the budget's charge in line with what the connection holds,
 * without a check: used after memory was already allocated or freed. */
void http_conn_account(struct http_conn *c);

/* ---- conn_idle.c ---- */

/* The read between requests: may hibernate, and ends when the server stops.
 * Returns bytes, 0 at end of stream, SNOW_ETIMEOUT, SNOW_ECLOSED when the
 * server stops, or an error. */
ssize_t http_conn_read_or_stop(struct http_conn *c, void *buf, size_t n, int64_t deadline);
/* After a response on a kept-alive connection: gives back the room a large
 * request or response needed. */
void http_conn_shrink(struct http_conn *c);
/* Closes the sending side, then reads for a while what the peer still sends. */
void http_conn_linger_close(struct http_conn *c);

/* ---- conn_upgrade.c ---- */

/* Detaches the stream and runs the route's upgrade entry point on this
 * actor, after flushing what is queued. The connection serves no more
 * requests afterwards. */
void http_conn_hand_over(struct http_conn *c, const struct http_match *m);

#endif
