/*
 * stream.c: the generic parking helpers over the stream vtable, and the
 * plain TCP implementation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/sock.h"
#include "http/stream.h"

/* ---- generic helpers ---- */

ssize_t http_stream_read(struct http_stream *s, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        ssize_t r = s->ops->read(s, buf, n);
        if (r != -EAGAIN)
            return r;
        int w = s->ops->wait(s, SNOW_WAIT_READABLE, deadline);
        if (w < 0)
            return w;
        if (!(w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP)) && (w & SNOW_WAIT_TIMEOUT))
            return SNOW_ETIMEOUT;
    }
}

long http_stream_unacked(const struct http_stream *s)
{
    int v;
    if (ioctl(snow_io_fd(s->io), SIOCOUTQ, &v) < 0)
        return -1;
    return v;
}

/*
 * Writes all of iov and flushes it. With stall_ms >= 0 the deadline is "no
 * progress for stall_ms", so a slow but steady reader is served to the end
 * and only a stalled one times out. Progress is either side taking a byte:
 * a write that takes some (the deadline moves), or, when the deadline
 * passes while waiting, a send queue that shrank since the last look. The
 * second matters because the kernel reports a full socket writable only
 * once a good part of its queue has drained, which at a slow reader's pace
 * can take longer than stall_ms although bytes move all the time.
 * Otherwise deadline is a fixed end.
 */
static int writev_until(struct http_stream *s, const struct iovec *iov_in, int iovcnt, int64_t deadline,
                        int64_t stall_ms)
{
    struct iovec iov[16];
    if (iovcnt > (int)RT_ARRAY_LEN(iov))
        return -EINVAL;
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof iov[0]);
    struct iovec *v = iov;
    int left = iovcnt;
    while (left > 0 && v->iov_len == 0) {
        v++;
        left--;
    }
    long queued = -1;
    for (;;) {
        int r;
        if (left > 0) {
            ssize_t n = s->ops->writev(s, v, left);
            if (n >= 0) {
                size_t k = (size_t)n;
                while (left > 0 && k >= v->iov_len) {
                    k -= v->iov_len;
                    v++;
                    left--;
                }
                if (left > 0) {
                    v->iov_base = (char *)v->iov_base + k;
                    v->iov_len -= k;
                }
                while (left > 0 && v->iov_len == 0) {
                    v++;
                    left--;
                }
                if (n > 0) {
                    if (stall_ms >= 0)
                        deadline = actor_deadline_after_ms(stall_ms);
                    continue;
                }
                r = -EAGAIN;
            } else {
                r = (int)n;
            }
        } else {
            r = s->ops->flush(s);
            if (r == 0)
                return 0;
        }
        if (r != -EAGAIN)
            return r;
        if (stall_ms >= 0)
            queued = http_stream_unacked(s);
        for (;;) {
            int w = s->ops->wait(s, SNOW_WAIT_WRITABLE, deadline);
            if (w < 0)
                return w;
            if ((w & (SNOW_WAIT_WRITABLE | SNOW_WAIT_HANGUP)) || !(w & SNOW_WAIT_TIMEOUT))
                break;
            long now = stall_ms >= 0 ? http_stream_unacked(s) : -1;
            if (now < 0 || queued < 0 || now >= queued)
                return SNOW_ETIMEOUT;
            /* The peer took bytes meanwhile: not stalled. */
            queued = now;
            deadline = actor_deadline_after_ms(stall_ms);
        }
    }
}

int http_stream_writev(struct http_stream *s, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    return writev_until(s, iov, iovcnt, deadline, -1);
}

int http_stream_writev_stall(struct http_stream *s, const struct iovec *iov, int iovcnt, int64_t stall_ms)
{
    if (stall_ms < 0)
        return writev_until(s, iov, iovcnt, -1, -1);
    return writev_until(s, iov, iovcnt, actor_deadline_after_ms(stall_ms), stall_ms);
}

int http_stream_write(struct http_stream *s, const void *buf, size_t n, int64_t deadline)
{
    struct iovec v = {(void *)buf, n};
    return http_stream_writev(s, &v, 1, deadline);
}

int http_stream_wait(struct http_stream *s, unsigned events, int64_t deadline)
{
    return s->ops->wait(s, events, deadline);
}

int http_stream_fd(const struct http_stream *s)
{
    return snow_io_fd(s->io);
}

void http_stream_close(struct http_stream *s)
{
    if (!s)
        return;
    if (s->back)
        *s->back = NULL;
    /* A plain socket's FIN goes with its close (the fd is its only
     * descriptor): a shutdown first would be a system call for nothing.
     * TLS sends its close_notify first. */
    if (!http_stream_reads_whole(s))
        s->ops->shutdown(s);
    s->ops->destroy(s);
}

/* ---- plain TCP ---- */

/* The socket's fd is kept beside the handle: read and written once or
 * more per message, it is then a load rather than a call into the poller
 * (snow_io_fd). It stays valid for the stream's life: only destroy closes
 * the handle. */
struct plain_stream {
    struct http_stream base;
    int fd;
};

static int plain_fd(const struct http_stream *s)
{
    return ((const struct plain_stream *)s)->fd;
}

static ssize_t plain_read(struct http_stream *s, void *buf, size_t n)
{
    /* recv rather than read: a socket either way, and the file layer
     * that read goes through first costs as much as a small copy. */
    ssize_t r = http_sock_recv(plain_fd(s), buf, n);
    return r == -EWOULDBLOCK ? -EAGAIN : r;
}

static ssize_t plain_writev(struct http_stream *s, const struct iovec *iov, int iovcnt)
{
    /* MSG_NOSIGNAL: a peer that went away must give EPIPE, not SIGPIPE.
     * MSG_MORE: see http_stream.more. One piece (a turn's replies in one
     * buffer) goes by send, which spares the kernel copying in a msghdr
     * and an iovec array. */
    ssize_t r;
    int flags = MSG_NOSIGNAL | (s->more ? MSG_MORE : 0);
    if (iovcnt == 1) {
        r = http_sock_send(plain_fd(s), iov[0].iov_base, iov[0].iov_len, flags);
    } else {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = (struct iovec *)iov;
        m.msg_iovlen = (size_t)iovcnt;
        r = http_sock_sendmsg(plain_fd(s), &m, flags);
    }
    return r == -EWOULDBLOCK ? -EAGAIN : r;
}

static int plain_flush(struct http_stream *s)
{
    (void)s;
    return 0;
}

static int plain_wait(struct http_stream *s, unsigned events, int64_t deadline)
{
    return actor_wait(s->io, events, deadline);
}

static unsigned plain_idle_events(struct http_stream *s)
{
    (void)s;
    return SNOW_WAIT_READABLE;
}

static void plain_shutdown(struct http_stream *s)
{
    if (s->shut)
        return;
    s->shut = 1;
    shutdown(plain_fd(s), SHUT_WR);
}

static void plain_destroy(struct http_stream *s)
{
    snow_io_close(s->io);
    free(s);
}

static const struct http_stream_ops plain_ops = {
    .read = plain_read,
    .writev = plain_writev,
    .flush = plain_flush,
    .wait = plain_wait,
    .idle_events = plain_idle_events,
    .shutdown = plain_shutdown,
    .destroy = plain_destroy,
};

bool http_stream_reads_whole(const struct http_stream *s)
{
    return s->ops == &plain_ops;
}

struct http_stream *http_stream_plain(SnowIo *io)
{
    struct plain_stream *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base.ops = &plain_ops;
    p->base.io = io;
    p->fd = snow_io_fd(io);
    return &p->base;
}
