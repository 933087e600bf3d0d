/*
 * conn_read.c: reading one request into the connection's read buffer.
 *
 * A single heap read buffer per connection holds the current request at
 * [start, len). The head is parsed in place; a Content-Length body is read
 * right behind it; a chunked body is decoded in place behind the head, so
 * the handler always sees one contiguous body. When more bytes are needed
 * the unread part is first moved to the buffer's start; a move (or a
 * realloc) invalidates the parsed views, so the head is parsed again after
 * the body has been read if the buffer moved.
 *
 * Memory a peer can make us hold is bounded three ways: a body is read only
 * for a route that will run a handler (404, 405, 426, upgrades and the other
 * built-in answers are given from the head alone); every request has an
 * overall deadline (request_timeout_ms) besides the per-read progress ones;
 * and the read buffer grows only within the server's budget for buffered
 * bytes (max_buffered_bytes, 503 past it), which also counts the responses
 * being written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "http/conn.h"

#define READ_CHUNK_MIN 4096

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

/* ---- the buffering budget ---- */

/* Bytes this connection holds that the budget counts: the read buffer past
 * its fixed initial size, the output buffer and the response body. */
static size_t held_bytes(const struct http_conn *c)
{
    return (c->cap > READ_BUF_INITIAL ? c->cap - READ_BUF_INITIAL : 0) + c->out.cap + c->res.body_cap;
}

void http_conn_account(struct http_conn *c)
{
    size_t now = held_bytes(c);
    if (now > c->k.charged)
        http_server_charge_anyway(c->k.srv, now - c->k.charged);
    else if (now < c->k.charged)
        http_server_uncharge(c->k.srv, c->k.charged - now);
    c->k.charged = now;
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

/* ---- the read buffer ---- */

/*
 * Reads more bytes into the buffer, first flushing pending output and moving
 * the current request to the buffer's start. max is the largest buffer the
 * caller allows; idle says no byte of the next request is here yet.
 */
static enum fill_result fill(struct http_conn *c, int64_t deadline, size_t max, bool idle)
{
    if (http_conn_flush(c) < 0)
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
    ssize_t n = idle ? http_conn_read_or_stop(c, c->buf + c->len, c->cap - c->len, deadline)
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

/* ---- the head ---- */

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
                head = actor_deadline_earliest(first ? idle : actor_deadline_after_ms(lim->header_timeout_ms), c->request_deadline);
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

/* ---- the body ---- */

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
    return actor_deadline_earliest(actor_deadline_after_ms(c->k.srv->lim.body_timeout_ms), c->request_deadline);
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

/* ---- the request ---- */

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
    if (m->kind == HTTP_ROUTE_UPGRADE && http_conn_has_body(&req->r)) {
        /* The bytes after a handshake are frames; a body in front of them
         * would make that boundary a guess. */
        return answer(c, 400);
    }
    c->next = c->start + head_len;
    return REQ_READY;
}

enum req_outcome http_conn_read_request(struct http_conn *c, int first, struct http_match *m)
{
    enum req_outcome o = read_head(c, first);
    return o == REQ_READY ? route_and_read_body(c, m) : o;
}
