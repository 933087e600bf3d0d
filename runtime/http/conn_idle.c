/*
 * conn_idle.c: a connection between requests. The read that waits for the
 * next request also ends the connection when its server stops, and gives
 * the actor's stack back (hibernation) while nothing is buffered; after a
 * response the room a large request needed is given back; and a connection
 * that will serve no more requests closes lingering, so that its last
 * response reaches the peer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "http/conn.h"

#define LINGER_MS 1000
#define LINGER_BYTES (256 * 1024)
/* Response buffers larger than this are given back after their response,
 * so a kept-alive connection does not hold (and charge) them while idle. */
#define KEEP_RES_BUF_MAX (64 * 1024)

/*
 * Between requests nobody reads this actor's mailbox: a handler receives
 * only while it runs. SNOW_TAG_STOP means the server stops, which the
 * stopping flag also says; any other message was meant for a handler that
 * has finished (a late reply, a timer it set) and has no reader, and left
 * queued it would end every wait below at once. So everything is taken
 * out, and what is not a stop is logged as dropped.
 */
static void drop_mail_between_requests(void)
{
    SnowMessage *m;
    while ((m = snow_actor_receive(0)) != NULL)
        if (m->tag != SNOW_TAG_STOP)
            rt_log(RT_LOG_DEBUG, "http: dropped a message (tag %#llx, %zu bytes) that arrived between requests",
                   (unsigned long long)m->tag, m->len);
}

/* A stopping server ends its idle connections, except during a drain
 * (server.c) the ones that have not sent their first request yet: they
 * came to ask for something and get their 503. */
static bool stop_reading(const struct http_conn *c)
{
    return atomic_load(&c->k.srv->stopping) && !(c->reading_first && atomic_load(&c->k.srv->draining));
}

/*
 * Idle between requests with nothing buffered: park with the stack given
 * back (actor_hibernate) and the per-request buffers freed, so that an idle
 * kept-alive connection costs its small struct instead of a stack and a
 * 16 KiB read buffer. When it hibernates this call does not return: the
 * stack it ran on is gone, and http_conn_resume starts on a fresh one when
 * the socket, the mailbox (SNOW_TAG_STOP) or the idle deadline calls. It
 * returns only when hibernating is not possible (TLS bytes already decoded,
 * a request in progress, or output still queued), and the caller parks
 * normally.
 */
static void hibernate_or_return(struct http_conn *c, int64_t deadline)
{
    if (c->len != c->start || c->out.len)
        return;
    unsigned ev = c->k.stream->ops->idle_events(c->k.stream);
    if (!ev)
        return;
    http_conn_release(c);
    http_conn_account(c);
    c->idle_until = deadline;
    actor_hibernate(c->k.stream->io, ev | SNOW_WAIT_MAILBOX, deadline, http_conn_resume, c);
}

/*
 * Reads like http_stream_read, but also parks on the mailbox, so that a
 * stopping server (SNOW_TAG_STOP) ends the connection at once instead of
 * at its idle timeout. May hibernate (and then not return: the next call
 * is http_conn_resume on a fresh stack).
 */
ssize_t http_conn_read_or_stop(struct http_conn *c, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        if (stop_reading(c))
            return SNOW_ECLOSED;
        ssize_t r = http_stream_read_nb(c->k.stream, buf, n);
        if (r != -EAGAIN)
            return r;
        drop_mail_between_requests();
        if (stop_reading(c))
            return SNOW_ECLOSED;
        if (deadline >= 0 && rt_now_ns() >= deadline)
            return SNOW_ETIMEOUT;
        hibernate_or_return(c, deadline);
        int w = http_stream_wait(c->k.stream, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, deadline);
        if (w < 0)
            return w;
        if ((w & SNOW_WAIT_TIMEOUT) && !(w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP)))
            return SNOW_ETIMEOUT;
    }
}

/* ---- giving buffers back ---- */

/* Takes the read buffer back to its initial size, moving the current
 * request's bytes (which must fit) to its start. */
static void shrink_read_buf(struct http_conn *c)
{
    memmove(c->buf, c->buf + c->start, c->len - c->start);
    c->len -= c->start;
    c->start = c->next = 0;
    char *p = realloc(c->buf, READ_BUF_INITIAL);
    if (p) {
        c->buf = p;
        c->cap = READ_BUF_INITIAL;
    }
}

/* Frees the response body and the (empty) output buffer where they are
 * larger than keep bytes; they are allocated again when needed. */
static void give_back_output(struct http_conn *c, size_t keep)
{
    if (c->res.body_cap > keep) {
        free(c->res.body);
        c->res.body = NULL;
        c->res.body_cap = c->res.body_len = 0;
    }
    if (c->out.cap > keep && !c->out.len) {
        free(c->out.p);
        c->out = (struct http_outbuf){0};
    }
}

void http_conn_shrink(struct http_conn *c)
{
    if (c->cap > 4 * READ_BUF_INITIAL && c->len - c->start <= READ_BUF_INITIAL)
        shrink_read_buf(c);
    give_back_output(c, KEEP_RES_BUF_MAX);
    http_conn_account(c);
}

/*
 * Closes the sending side and reads what the peer still sends, so that our
 * last response is not destroyed by a reset caused by unread input. The
 * buffers a request needed are given back first (its bytes are of no use
 * any more, and everything was flushed): lingering takes up to LINGER_MS,
 * and the budget should not count it.
 */
void http_conn_linger_close(struct http_conn *c)
{
    if (!c->k.stream)
        return;
    c->start = c->len = c->next = 0;
    if (c->cap > READ_BUF_INITIAL)
        shrink_read_buf(c);
    give_back_output(c, 0);
    http_conn_account(c);
    c->k.stream->ops->shutdown(c->k.stream);
    int64_t deadline = actor_deadline_after_ms(LINGER_MS);
    size_t total = 0;
    while (total < LINGER_BYTES && c->buf) {
        ssize_t n = http_stream_read(c->k.stream, c->buf, c->cap, deadline);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}
