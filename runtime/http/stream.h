/*
 * stream.h: one byte-stream interface over a plain TCP socket or a TLS
 * session, used by the HTTP connection and, after an upgrade, by WebSocket.
 *
 * Every call runs on the owning actor. Nothing blocks a worker: the
 * non-blocking primitives return -EAGAIN, and the parking helpers wait on the
 * poller (actor_wait) until the socket is ready, a message arrives (when
 * asked) or the deadline passes. Deadlines are absolute rt_now_ns() values,
 * < 0 for none.
 */
#ifndef SNOW_HTTP_STREAM_H
#define SNOW_HTTP_STREAM_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "rt.h"

struct http_stream;

/* The vtable. Implementations: plain (stream.c) and TLS (tls.c). */
struct http_stream_ops {
    /* Reads what is available: > 0 bytes, 0 at end of stream, -EAGAIN when
     * nothing is, another negative code on error. */
    ssize_t (*read)(struct http_stream *s, void *buf, size_t n);
    /* Takes what it can without waiting: >= 0 bytes accepted, -EAGAIN or an
     * error. Accepted bytes may still sit in a buffer until flush. */
    ssize_t (*writev)(struct http_stream *s, const struct iovec *iov, int iovcnt);
    /* Pushes buffered output to the socket: 0 when all is out, -EAGAIN, or an
     * error. */
    int (*flush)(struct http_stream *s);
    /* Parks until the stream can make progress in the directions asked
     * (SNOW_WAIT_READABLE / WRITABLE), or the mailbox is non-empty (with
     * SNOW_WAIT_MAILBOX), or the deadline passes. Returns the SNOW_WAIT_* set
     * that holds; readiness means "retry the operation", not a promise. */
    int (*wait)(struct http_stream *s, unsigned events, int64_t deadline);
    /* For parking with the stack given back (actor_hibernate): the socket
     * events to wait for before a read can make progress, or 0 when it can
     * already (bytes decoded and buffered, or the session closed). */
    unsigned (*idle_events)(struct http_stream *s);
    /* Tells the peer we are done (TLS close_notify, TCP FIN); best effort,
     * once: later calls do nothing. */
    void (*shutdown)(struct http_stream *s);
    /* Releases the fd (deregistering it from the poller) and the memory. */
    void (*destroy)(struct http_stream *s);
};

struct http_stream {
    const struct http_stream_ops *ops;
    SnowIo *io;
    /* When set, closing the stream clears *back: the lender (an HTTP
     * connection that detached the stream) learns it is gone. */
    struct http_stream **back;
    /* shutdown has run: closing the stream does not send it again. */
    int shut;
    /* Plain TCP: writes go with MSG_MORE, which holds a last part shorter
     * than a segment until the next write without it, a shutdown or the
     * close. Set for the last bytes before a FIN (a WebSocket's Close
     * reply), so that they and the FIN leave in one segment; the writer
     * shuts the stream down right after them. TLS ignores it. */
    int more;
    /* How many bytes one turn of a busy connection should move each way
     * before it lets other actors run (0: the caller's own default). TLS
     * sets a smaller share than a plain socket's: each byte costs its
     * reader or writer several times as much (AES-GCM and the engine's
     * copies), and a turn of the same size held a connection whose
     * socket had room again behind another's whole 1 MiB message. */
    size_t turn_bytes;
};

/* The per-turn byte budget for s: its turn_bytes, or fallback. */
static inline size_t http_stream_turn_bytes(const struct http_stream *s, size_t fallback)
{
    return s->turn_bytes && s->turn_bytes < fallback ? s->turn_bytes : fallback;
}

/* A plain stream over io (registered by the calling actor). NULL on ENOMEM. */
struct http_stream *http_stream_plain(SnowIo *io);

/* True when s reads straight from its socket (a plain stream): a read that
 * returned fewer bytes than asked then emptied the receive queue, and since
 * the poller registers sockets edge-triggered and latches every edge, the
 * next bytes raise readiness again, so no read is needed to see EAGAIN.
 * False for TLS: the engine may hold decrypted bytes, or the socket records
 * the engine had no room for. */
bool http_stream_reads_whole(const struct http_stream *s);

/* Non-blocking primitives. */
static inline ssize_t http_stream_read_nb(struct http_stream *s, void *buf, size_t n)
{
    return s->ops->read(s, buf, n);
}

/* Reads at least one byte, parking as needed: > 0 bytes, 0 at end of
 * stream, SNOW_ETIMEOUT at the deadline, or an error. */
ssize_t http_stream_read(struct http_stream *s, void *buf, size_t n, int64_t deadline);
/* Writes all of iov[0..iovcnt) and flushes it, parking as needed ("all or
 * park"). Returns 0, SNOW_ETIMEOUT or an error. */
int http_stream_writev(struct http_stream *s, const struct iovec *iov, int iovcnt, int64_t deadline);
int http_stream_write(struct http_stream *s, const void *buf, size_t n, int64_t deadline);
/* Like http_stream_writev, but the time limit is on progress: SNOW_ETIMEOUT
 * only after stall_ms without a byte taken (the deadline moves on each
 * write that makes progress). stall_ms < 0: no limit. */
int http_stream_writev_stall(struct http_stream *s, const struct iovec *iov, int iovcnt, int64_t stall_ms);
/* Bytes written to the socket that the peer has not acknowledged yet
 * (SIOCOUTQ), or -1 when the kernel cannot tell. A queue that shrinks means
 * the peer reads, even while the socket is not reported writable: the test
 * behind every "no write progress" timeout. */
long http_stream_unacked(const struct http_stream *s);
/* Parks until readable / writable / mailbox / deadline (see ops->wait). */
int http_stream_wait(struct http_stream *s, unsigned events, int64_t deadline);
int http_stream_fd(const struct http_stream *s);
/* Sends what shutdown says, closes the fd and frees the stream. */
void http_stream_close(struct http_stream *s);

#endif
