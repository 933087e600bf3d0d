/*
 * conn.c: the connection actor. One per accepted socket, on its own 64 KiB
 * stack; it reads and parses requests, looks up their route, reads their
 * bodies, runs the router and writes responses, keeping the connection alive
 * between requests.
 *
 * Buffering: a single heap read buffer per connection holds the current
 * request at [start, len). The head is parsed in place; a Content-Length
 * body is read right behind it; a chunked body is decoded in place behind
 * the head, so the handler always sees one contiguous body. When more bytes
 * are needed the unread part is first moved to the buffer's start; a move (or
 * a realloc) invalidates the parsed views, so the head is parsed again after
 * the body has been read if the buffer moved.
 *
 * Memory a peer can make us hold is bounded three ways: a body is read only
 * for a route that will run a handler (404, 405, 426, upgrades and the other
 * built-in answers are given from the head alone); every request has an
 * overall deadline (request_timeout_ms) besides the per-read progress ones;
 * and the read buffer grows only within the server's budget for buffered
 * bytes (max_buffered_bytes, 503 past it), which also counts the responses
 * being written.
 *
 * Responses go to an output buffer. While pipelined requests are already
 * buffered, responses accumulate and are written together; the buffer is
 * always flushed before the actor parks to read, so an answer is never held
 * back waiting for the peer. Writes time out only when no byte moves for
 * write_timeout_ms. Serialising a response is response.c's part.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/server.h"
#include "http/tls.h"

#define READ_BUF_INITIAL (16 * 1024)
#define READ_CHUNK_MIN 4096
#define FLUSH_AT (64 * 1024)
#define COPY_BODY_MAX (16 * 1024)
#define LINGER_MS 1000
#define LINGER_BYTES (256 * 1024)
/* Response buffers larger than this are given back after their response,
 * so a kept-alive connection does not hold (and charge) them while idle. */
#define KEEP_RES_BUF_MAX (64 * 1024)

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

/* What reading a request (head, then body) came to. */
enum req_outcome {
    REQ_READY,  /* the head (after read_body: and the body) is here */
    REQ_ANSWER, /* answer c->status, then close */
    REQ_GONE,   /* close without a word: peer gone, idle, server stopping */
};

/* What to do with the connection after a response. */
enum after_response {
    AFTER_KEEP,   /* serve the next request */
    AFTER_LINGER, /* close after a lingering close */
    AFTER_GONE,   /* nothing more to do here: peer gone, or the stream detached */
};

/* What one fill() came to. */
enum fill_result {
    FILL_READ,      /* bytes were added at buf[len..) (c->len is updated) */
    FILL_EOF,       /* the peer closed */
    FILL_TIMEOUT,   /* the deadline passed */
    FILL_FULL,      /* the buffer is at the caller's maximum */
    FILL_NO_BUDGET, /* growing it would pass the server's buffering budget */
    FILL_STOPPING,  /* the server stops (only while idle) */
    FILL_ERROR,     /* a socket or TLS error, or no memory */
};

static void conn_loop(struct http_conn *c, int first);
static void conn_terminate(int reason, void *arg);
static void conn_hibernate_or_return(struct http_conn *c, int64_t deadline);

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

/* ---- the buffering budget ---- */

/* Bytes this connection holds that the budget counts: the read buffer past
 * its fixed initial size, the output buffer and the response body. */
static size_t held_bytes(const struct http_conn *c)
{
    return (c->cap > READ_BUF_INITIAL ? c->cap - READ_BUF_INITIAL : 0) + c->out.cap + c->res.body_cap;
}

/* Brings the charge in line with what is held, without a check: used after
 * memory was already allocated or freed (responses, shrinking). */
static void account(struct http_conn *c)
{
    size_t now = held_bytes(c);
    if (now > c->k.charged)
        http_server_charge_anyway(c->k.srv, now - c->k.charged);
    else if (now < c->k.charged)
        http_server_uncharge(c->k.srv, c->k.charged - now);
    c->k.charged = now;
}

static int flush_out(struct http_conn *c)
{
    if (!c->out.len)
        return 0;
    struct iovec v = {c->out.p, c->out.len};
    int r = http_stream_writev_stall(c->k.stream, &v, 1, c->k.srv->write_timeout_ms);
    c->out.len = 0;
    return r;
}

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
 * Between requests: reads like http_stream_read, but also parks on the
 * mailbox, so that a stopping server (SNOW_TAG_STOP) ends the connection
 * at once instead of at its idle timeout. May hibernate (and then not
 * return: the next call is conn_resume on a fresh stack). Returns bytes, 0
 * at end of stream, SNOW_ETIMEOUT, SNOW_ECLOSED when the server stops, or
 * an error.
 */
static ssize_t read_or_stop(struct http_conn *c, void *buf, size_t n, int64_t deadline)
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
        conn_hibernate_or_return(c, deadline);
        int w = http_stream_wait(c->k.stream, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, deadline);
        if (w < 0)
            return w;
        if ((w & SNOW_WAIT_TIMEOUT) && !(w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP)))
            return SNOW_ETIMEOUT;
    }
}

/* Grows the read buffer to nc bytes within the budget. */
static enum fill_result grow(struct http_conn *c, size_t nc)
{
    size_t before = c->cap > READ_BUF_INITIAL ? c->cap - READ_BUF_INITIAL : 0;
    size_t after = nc > READ_BUF_INITIAL ? nc - READ_BUF_INITIAL : 0;
    size_t more = after > before ? after - before : 0;
    if (more && http_server_charge(c->k.srv, more) < 0)
        return FILL_NO_BUDGET;
    char *p = realloc(c->buf, nc);
    if (!p) {
        http_server_uncharge(c->k.srv, more);
        return FILL_ERROR;
    }
    c->k.charged += more;
    c->buf = p;
    c->cap = nc;
    return FILL_READ;
}

/*
 * Reads more bytes into the buffer, first flushing pending output and moving
 * the current request to the buffer's start. max is the largest buffer the
 * caller allows; idle says no byte of the next request is here yet.
 */
static enum fill_result fill(struct http_conn *c, int64_t deadline, size_t max, bool idle)
{
    if (flush_out(c) < 0)
        return FILL_ERROR;
    if (c->start) {
        memmove(c->buf, c->buf + c->start, c->len - c->start);
        c->len -= c->start;
        c->next -= c->next >= c->start ? c->start : c->next;
        c->start = 0;
    }
    if (c->cap - c->len < READ_CHUNK_MIN && c->cap < max) {
        size_t nc = c->cap * 2;
        while (nc - c->len < READ_CHUNK_MIN)
            nc *= 2;
        if (nc > max)
            nc = max;
        enum fill_result g = grow(c, nc);
        if (g != FILL_READ)
            return g;
    }
    if (c->len == c->cap)
        return FILL_FULL;
    ssize_t n = idle ? read_or_stop(c, c->buf + c->len, c->cap - c->len, deadline)
                     : http_stream_read(c->k.stream, c->buf + c->len, c->cap - c->len, deadline);
    if (n > 0) {
        c->len += (size_t)n;
        return FILL_READ;
    }
    if (n == 0)
        return FILL_EOF;
    if (n == SNOW_ETIMEOUT)
        return FILL_TIMEOUT;
    if (n == SNOW_ECLOSED)
        return FILL_STOPPING;
    return FILL_ERROR;
}

static int64_t earlier(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static ssize_t parse_head(struct http_conn *c)
{
    return http_parse_request(&c->parser, c->buf + c->start, c->len - c->start, &c->req->r, c->hdrs, c->nhdrs,
                              &c->k.srv->lim);
}

static enum req_outcome answer(struct http_conn *c, int status)
{
    c->status = status;
    return REQ_ANSWER;
}

/* Reads and parses a head. REQ_ANSWER for a bad or late one; REQ_GONE when
 * the peer leaves or idles out before sending a byte. */
static enum req_outcome read_head(struct http_conn *c, int first)
{
    const struct http_limits *lim = &c->k.srv->lim;
    /* The first request's head must arrive within the header timeout of the
     * accept; later ones may idle first, then get the header timeout from
     * their first byte. */
    int64_t idle = first ? c->accepted_ns + lim->header_timeout_ms * 1000000
                         : actor_deadline_after_ms(lim->idle_timeout_ms);
    if (c->idle_until) {
        /* Resumed from hibernation: the idle period started before it. */
        idle = c->idle_until;
        c->idle_until = 0;
    }
    int64_t head = -1;
    /* The request's overall clock starts at the accept for the first one,
     * at its first byte for the others. */
    c->request_deadline = first ? c->accepted_ns + lim->request_timeout_ms * 1000000 : -1;
    size_t max = lim->max_request_line + lim->max_header_bytes + 8;
    http_parser_init(&c->parser);
    c->reading_first = first;
    for (;;) {
        size_t avail = c->len - c->start;
        if (avail) {
            if (c->request_deadline < 0)
                c->request_deadline = actor_deadline_after_ms(lim->request_timeout_ms);
            ssize_t r = parse_head(c);
            if (r > 0) {
                c->head_at = c->buf + c->start;
                return REQ_READY;
            }
            if (r == RT_PARSE_ERROR)
                return answer(c, c->parser.status);
            if (head < 0)
                head = earlier(first ? idle : actor_deadline_after_ms(lim->header_timeout_ms), c->request_deadline);
        }
        switch (fill(c, avail ? head : idle, max, !avail)) {
        case FILL_READ:
            break;
        case FILL_TIMEOUT:
            return avail ? answer(c, 408) : REQ_GONE;
        case FILL_FULL:
            return answer(c, 431);
        case FILL_NO_BUDGET:
            return answer(c, 503);
        case FILL_EOF:
        case FILL_STOPPING:
        case FILL_ERROR:
        default:
            return REQ_GONE;
        }
    }
}

static int send_continue(struct http_conn *c)
{
    /* RFC 9110 §10.1.1: tell a client waiting on Expect: 100-continue to send
     * the body; useless once body bytes are already here. */
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (http_outbuf_reserve(&c->out, sizeof line - 1) < 0)
        return -ENOMEM;
    memcpy(c->out.p + c->out.len, line, sizeof line - 1);
    c->out.len += sizeof line - 1;
    return 0;
}

/* The deadline of one body read: no progress for body_timeout_ms, and the
 * request's overall deadline. */
static int64_t body_deadline(struct http_conn *c)
{
    return earlier(actor_deadline_after_ms(c->k.srv->lim.body_timeout_ms), c->request_deadline);
}

static enum req_outcome body_fill_failed(struct http_conn *c, enum fill_result f)
{
    switch (f) {
    case FILL_TIMEOUT:
        return answer(c, 408);
    case FILL_FULL:
        return answer(c, 413);
    case FILL_NO_BUDGET:
        return answer(c, 503);
    default:
        return REQ_GONE;
    }
}

static enum req_outcome read_body(struct http_conn *c)
{
    const struct http_limits *lim = &c->k.srv->lim;
    struct http_request *r = &c->req->r;
    size_t head_len = r->head_len;
    if (r->chunked) {
        struct http_chunked ch;
        http_chunked_init(&ch);
        size_t dec = head_len, raw = head_len; /* relative to start */
        if (r->expect_continue && c->len - c->start == raw && send_continue(c) < 0)
            return REQ_GONE;
        for (;;) {
            size_t out;
            char *base = c->buf + c->start;
            ssize_t d = http_chunked_decode(&ch, base + raw, c->len - c->start - raw, base + dec, &out, lim);
            dec += out;
            if (d >= 0) {
                raw += (size_t)d;
                size_t rest = c->len - c->start - raw;
                memmove(base + dec, base + raw, rest);
                c->len = c->start + dec + rest;
                c->req->body_len = dec - head_len;
                c->next = c->start + dec;
                break;
            }
            if (d == RT_PARSE_ERROR)
                return answer(c, ch.status);
            /* Everything was consumed: reclaim the framing bytes. */
            c->len = c->start + dec;
            enum fill_result f = fill(c, body_deadline(c), head_len + lim->max_body + 64 * 1024, false);
            if (f != FILL_READ)
                return body_fill_failed(c, f);
            raw = dec;
        }
    } else {
        size_t cl = r->content_length > 0 ? (size_t)r->content_length : 0;
        if (cl && r->expect_continue && c->len - c->start == head_len && send_continue(c) < 0)
            return REQ_GONE;
        while (c->len - c->start < head_len + cl) {
            enum fill_result f = fill(c, body_deadline(c), head_len + cl + 64 * 1024, false);
            if (f != FILL_READ)
                return body_fill_failed(c, f);
        }
        c->req->body_len = cl;
        c->next = c->start + head_len + cl;
    }
    if (c->buf + c->start != c->head_at) {
        /* The buffer moved under the views: parse the head again. */
        http_parser_init(&c->parser);
        ssize_t again = parse_head(c);
        if (again != (ssize_t)head_len) {
            rt_log(RT_LOG_ERROR, "http: head changed while reading its body");
            return answer(c, 400);
        }
        c->head_at = c->buf + c->start;
    }
    c->req->body = c->buf + c->start + head_len;
    return REQ_READY;
}

/* Closes the sending side and reads what the peer still sends, so that our
 * last response is not destroyed by a reset caused by unread input. The
 * buffers a request needed are given back first: lingering takes up to
 * LINGER_MS, and the budget should not count it. */
static void linger_close(struct http_conn *c)
{
    if (!c->k.stream)
        return;
    if (c->cap > READ_BUF_INITIAL) {
        char *p = realloc(c->buf, READ_BUF_INITIAL);
        if (p) {
            c->buf = p;
            c->cap = READ_BUF_INITIAL;
        }
    }
    free(c->res.body);
    c->res.body = NULL;
    c->res.body_cap = c->res.body_len = 0;
    free(c->out.p);
    c->out = (struct http_outbuf){0};
    account(c);
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

static int queue_response(struct http_conn *c, int keep_alive)
{
    SnowHttpRes *res = &c->res;
    int with_body = !res->head_only && res->body_len <= COPY_BODY_MAX;
    int r = http_format_response(&c->out, res, c->req->r.minor_version, keep_alive, with_body);
    account(c);
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
    if (queue_response(c, 0) == 0 && flush_out(c) == 0)
        linger_close(c);
}

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

static int upgrade(struct http_conn *c, const struct http_match *m)
{
    if (run_caught(c, m, 1))
        return 0; /* a before hook answered instead */
    if (flush_out(c) < 0)
        return -1;
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
    return -1;
}

static bool has_body(const struct http_request *r)
{
    return r->chunked || r->content_length > 0;
}

/* Answers the parsed request whose route is m; its body, when the route
 * runs a handler, has been read. */
static enum after_response handle(struct http_conn *c, const struct http_match *m)
{
    SnowHttpReq *req = c->req;
    SnowHttpRes *res = &c->res;
    if (m->kind == HTTP_ROUTE_UPGRADE) {
        if (upgrade(c, m) < 0)
            return AFTER_GONE;
    } else {
        /* The handler may answer with the request's own body without a
         * copy (snow_http_res_body); it stays in place until written. */
        res->lend = req->body;
        res->lend_len = req->body_len;
        run_caught(c, m, 0);
    }
    /* A body left unread (a built-in answer) still sits on the wire ahead
     * of any next request: the connection cannot go on. */
    int unread_body = m->kind != HTTP_ROUTE_HANDLER && has_body(&req->r);
    int keep = req->r.keep_alive && !res->close && !unread_body &&
               !atomic_load_explicit(&c->k.srv->stopping, memory_order_relaxed);
    int q = queue_response(c, keep);
    res->lend = NULL;
    res->lend_len = 0;
    if (q < 0)
        return AFTER_GONE;
    /* Pipelined requests already here: answer them in the same write. */
    if (!keep || c->len == c->next || c->out.len >= FLUSH_AT)
        if (flush_out(c) < 0)
            return AFTER_GONE;
    return keep ? AFTER_KEEP : AFTER_LINGER;
}

/* Looks the route up from the head alone and reads the body only when a
 * handler will run. */
static enum req_outcome route_and_read_body(struct http_conn *c, struct http_match *m)
{
    SnowHttpReq *req = c->req;
    SnowHttpRes *res = &c->res;
    http_res_reset(res);
    res->head_only = c->parser.is_head;
    if (req->r.target.n > c->scratch_cap) {
        char *p = realloc(req->scratch, req->r.target.n);
        if (!p)
            return REQ_GONE;
        req->scratch = p;
        c->scratch_cap = req->r.target.n;
    }
    req->body = NULL;
    req->body_len = 0;
    http_router_lookup(c->k.srv->router, req, m);
    /* During a drain every new request is refused; an upgrade is refused
     * by its entry point, which counts it for its route. */
    if (m->kind != HTTP_ROUTE_UPGRADE && atomic_load(&c->k.srv->draining))
        return answer(c, 503);
    if (m->kind == HTTP_ROUTE_HANDLER)
        return read_body(c);
    size_t head_len = req->r.head_len;
    if (m->kind == HTTP_ROUTE_UPGRADE && has_body(&req->r)) {
        /* The bytes after a handshake are frames; a body in front of them
         * would make that boundary a guess. */
        return answer(c, 400);
    }
    c->next = c->start + head_len;
    return REQ_READY;
}

static void shrink_buffers(struct http_conn *c)
{
    if (c->cap > 4 * READ_BUF_INITIAL && c->len - c->start <= READ_BUF_INITIAL) {
        /* Give back the room a large body needed. */
        memmove(c->buf, c->buf + c->start, c->len - c->start);
        c->len -= c->start;
        c->start = c->next = 0;
        char *p = realloc(c->buf, READ_BUF_INITIAL);
        if (p) {
            c->buf = p;
            c->cap = READ_BUF_INITIAL;
        }
    }
    if (c->res.body_cap > KEEP_RES_BUF_MAX) {
        free(c->res.body);
        c->res.body = NULL;
        c->res.body_cap = 0;
    }
    if (c->out.cap > KEEP_RES_BUF_MAX && !c->out.len) {
        free(c->out.p);
        c->out = (struct http_outbuf){0};
    }
    account(c);
}

static void conn_loop(struct http_conn *c, int first)
{
    for (;; first = 0) {
        struct http_match m;
        enum req_outcome o = read_head(c, first);
        if (o == REQ_READY)
            o = route_and_read_body(c, &m);
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
            linger_close(c);
            return;
        case AFTER_GONE:
        default:
            return;
        }
        c->start = c->next;
        if (c->start == c->len)
            c->start = c->len = c->next = 0;
        shrink_buffers(c);
        snow_reduction_check();
    }
}

/*
 * Idle between requests with nothing buffered: park with the stack given
 * back (actor_hibernate) and the per-request buffers freed, so that an idle
 * kept-alive connection costs its small struct instead of a stack and a
 * 16 KiB read buffer. When it hibernates this call does not return: the
 * stack it ran on is gone, and conn_resume starts on a fresh one when the
 * socket, the mailbox (SNOW_TAG_STOP) or the idle deadline calls. It returns
 * only when hibernating is not possible (TLS bytes already decoded, a
 * request in progress, or output still queued), and the caller parks
 * normally.
 */
static void conn_resume(void *arg);

static void conn_hibernate_or_return(struct http_conn *c, int64_t deadline)
{
    if (c->len != c->start || c->out.len)
        return;
    unsigned ev = c->k.stream->ops->idle_events(c->k.stream);
    if (!ev)
        return;
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = c->start = c->next = 0;
    free(c->hdrs);
    c->hdrs = NULL;
    free(c->req->scratch);
    free(c->req);
    c->req = NULL;
    c->scratch_cap = 0;
    free(c->out.p);
    c->out = (struct http_outbuf){0};
    http_res_fini(&c->res);
    http_res_init(&c->res);
    account(c);
    c->idle_until = deadline;
    actor_hibernate(c->k.stream->io, ev | SNOW_WAIT_MAILBOX, deadline, conn_resume, c);
}

static void conn_resume(void *arg)
{
    struct http_conn *c = arg;
    c->cap = READ_BUF_INITIAL;
    c->buf = malloc(c->cap);
    c->hdrs = malloc(c->nhdrs * sizeof *c->hdrs);
    c->req = req_new();
    if (!c->buf || !c->hdrs || !c->req)
        return; /* the terminate callback closes and frees */
    /* The first request keeps its deadline from the accept (slowloris). */
    conn_loop(c, c->reading_first);
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

void http_conn_upgraded(struct http_conn *c, int drain_timeout_ms)
{
    if (c->k.upgraded)
        return;
    c->k.upgraded = 1;
    http_server_upgraded(c->k.srv, drain_timeout_ms);
}

/* The core of a full or a compact record: a compact one is a core only,
 * so whatever may meet one goes through this. */
static struct http_conn_core *core_of(struct http_conn *c)
{
    return (struct http_conn_core *)(void *)c;
}

void http_conn_on_exit(struct http_conn *c, void (*fn)(int reason, void *arg), void *arg)
{
    struct http_conn_core *k = core_of(c);
    k->on_exit = fn;
    k->on_exit_arg = arg;
}

static void conn_free(struct http_conn *c)
{
    struct http_conn_core *k = core_of(c);
    struct SnowHttpServer *srv = k->srv;
    http_server_conn_unlink(srv, &k->link);
    http_server_uncharge(srv, k->charged);
    if (!k->compact) {
        free(c->buf);
        free(c->hdrs);
        if (c->req) {
            free(c->req->scratch);
            free(c->req);
        }
        free(c->out.p);
        http_res_fini(&c->res);
    }
    int upgraded = k->upgraded;
    free(c);
    if (upgraded)
        http_server_upgraded_done(srv);
    http_server_conn_done(srv);
    http_server_unref(srv);
}

size_t http_conn_bytes(struct http_conn *c)
{
    size_t n = malloc_usable_size(c);
    if (core_of(c)->compact)
        return n;
    n += c->buf ? malloc_usable_size(c->buf) : 0;
    n += c->hdrs ? malloc_usable_size(c->hdrs) : 0;
    n += c->req ? malloc_usable_size(c->req) + (c->req->scratch ? malloc_usable_size(c->req->scratch) : 0) : 0;
    n += c->out.p ? malloc_usable_size(c->out.p) : 0;
    return n + c->res.body_cap;
}

struct http_conn *http_conn_compact(struct http_conn *c)
{
    if (core_of(c)->compact || c->k.stream || c->buf || c->req || c->out.p || c->res.body_cap)
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
    snow_actor_set_terminate(conn_terminate, r);
    return r;
}

/* Every exit path of the actor ends here: return, panic, kill, shutdown. */
static void conn_terminate(int reason, void *arg)
{
    struct http_conn *c = arg;
    struct http_conn_core *k = core_of(c);
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
        c->cap = READ_BUF_INITIAL;
        c->buf = malloc(c->cap);
        c->hdrs = malloc(c->nhdrs * sizeof *c->hdrs);
        c->req = req_new();
        http_res_init(&c->res);
    }
    if (!c || !c->buf || !c->hdrs || !c->req) {
        close(a.fd);
        if (c)
            conn_free(c);
        else {
            http_server_conn_done(srv);
            http_server_unref(srv);
        }
        return;
    }
    snow_actor_set_terminate(conn_terminate, c);
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
