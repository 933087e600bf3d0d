/*
 * conn.c: the connection actor. One per accepted socket, on its own 64 KiB
 * stack; it reads and parses requests, reads their bodies, runs the router
 * and writes responses, keeping the connection alive between requests.
 *
 * Buffering: a single heap read buffer per connection holds the current
 * request at [start, len). The head is parsed in place; a Content-Length
 * body is read right behind it; a chunked body is decoded in place behind
 * the head, so the handler always sees one contiguous body. When more bytes
 * are needed the unread part is first moved to the buffer's start; a move (or
 * a realloc) invalidates the parsed views, so the head is parsed again after
 * the body has been read if the buffer moved.
 *
 * Responses go to an output buffer. While pipelined requests are already
 * buffered, responses accumulate and are written together; the buffer is
 * always flushed before the actor parks to read, so an answer is never held
 * back waiting for the peer.
 */
#include <errno.h>
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

struct http_conn {
    struct SnowHttpServer *srv;
    struct http_stream *stream; /* NULL once detached */
    struct http_stream *lent;   /* the detached stream until it is closed */
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
    void (*on_exit)(int reason, void *arg);
    void *on_exit_arg;
    struct http_conn_link link; /* in the server's list of connections */
    int64_t idle_until;         /* idle deadline carried across a hibernation */
    int reading_first;          /* read_head is waiting for the first request */
};

static void conn_loop(struct http_conn *c, int first);
static void conn_hibernate(struct http_conn *c, int64_t deadline);

static int out_reserve(struct http_outbuf *o, size_t more)
{
    if (o->len + more <= o->cap)
        return 0;
    size_t c = o->cap ? o->cap : 4096;
    while (c < o->len + more)
        c *= 2;
    char *p = realloc(o->p, c);
    if (!p)
        return -ENOMEM;
    o->p = p;
    o->cap = c;
    return 0;
}

static int flush_out(struct http_conn *c)
{
    if (!c->out.len)
        return 0;
    int64_t deadline = actor_deadline_after_ms(c->srv->write_timeout_ms);
    int r = http_stream_write(c->stream, c->out.p, c->out.len, deadline);
    c->out.len = 0;
    return r;
}

/*
 * Between requests: reads like http_stream_read, but also parks on the
 * mailbox, so that a stopping server (SNOW_TAG_STOP) ends the connection
 * at once instead of at its idle timeout. Returns SNOW_ECLOSED when the
 * server stops.
 */
static ssize_t read_or_stop(struct http_conn *c, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        if (atomic_load(&c->srv->stopping))
            return SNOW_ECLOSED;
        ssize_t r = http_stream_read_nb(c->stream, buf, n);
        if (r != -EAGAIN)
            return r;
        /* The mailbox is read by handlers while they run; between requests
         * only SNOW_TAG_STOP means anything, and a stale message would keep
         * waking the wait below. */
        while (snow_actor_receive(0))
            ;
        if (atomic_load(&c->srv->stopping))
            return SNOW_ECLOSED;
        if (deadline >= 0 && rt_now_ns() >= deadline)
            return SNOW_ETIMEOUT;
        conn_hibernate(c, deadline); /* returns only when it cannot */
        int w = http_stream_wait(c->stream, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, deadline);
        if (w < 0)
            return w;
        if ((w & SNOW_WAIT_TIMEOUT) && !(w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP)))
            return SNOW_ETIMEOUT;
    }
}

/*
 * Reads more bytes into the buffer, first flushing pending output and moving
 * the current request to the buffer's start. max is the largest buffer the
 * caller allows; idle says no byte of the next request is here yet. Returns
 * bytes read (> 0), 0 at end of stream, SNOW_ETIMEOUT, SNOW_ELIMIT when the
 * buffer is full at max, SNOW_ECLOSED when the server stops, or an error.
 */
static ssize_t fill(struct http_conn *c, int64_t deadline, size_t max, bool idle)
{
    int r = flush_out(c);
    if (r < 0)
        return r;
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
        char *p = realloc(c->buf, nc);
        if (!p)
            return -ENOMEM;
        c->buf = p;
        c->cap = nc;
    }
    if (c->len == c->cap)
        return SNOW_ELIMIT;
    if (idle)
        return read_or_stop(c, c->buf + c->len, c->cap - c->len, deadline);
    return http_stream_read(c->stream, c->buf + c->len, c->cap - c->len, deadline);
}

static ssize_t parse_head(struct http_conn *c)
{
    return http_parse_request(&c->parser, c->buf + c->start, c->len - c->start, &c->req->r, c->hdrs, c->nhdrs,
                              &c->srv->lim);
}

/* Returns 0 with a parsed head, an HTTP status to answer with, or -1 to
 * close without answering (peer gone, idle timeout). */
static int read_head(struct http_conn *c, int first)
{
    const struct http_limits *lim = &c->srv->lim;
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
    size_t max = lim->max_request_line + lim->max_header_bytes + 8;
    http_parser_init(&c->parser);
    c->reading_first = first;
    for (;;) {
        size_t avail = c->len - c->start;
        if (avail) {
            ssize_t r = parse_head(c);
            if (r > 0) {
                c->head_at = c->buf + c->start;
                return 0;
            }
            if (r == HTTP_PARSE_ERROR)
                return c->parser.status;
            if (head < 0)
                head = first ? idle : actor_deadline_after_ms(lim->header_timeout_ms);
        }
        ssize_t n = fill(c, avail ? head : idle, max, !avail);
        if (n == SNOW_ETIMEOUT)
            return avail ? 408 : -1;
        if (n == SNOW_ELIMIT)
            return 431;
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
}

static int send_continue(struct http_conn *c)
{
    /* RFC 9110 10.1.1: tell a client waiting on Expect: 100-continue to send
     * the body; useless once body bytes are already here. */
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (out_reserve(&c->out, sizeof line - 1) < 0)
        return -ENOMEM;
    memcpy(c->out.p + c->out.len, line, sizeof line - 1);
    c->out.len += sizeof line - 1;
    return 0;
}

static int read_body(struct http_conn *c)
{
    const struct http_limits *lim = &c->srv->lim;
    struct http_request *r = &c->req->r;
    size_t head_len = r->head_len;
    if (r->chunked) {
        struct http_chunked ch;
        http_chunked_init(&ch);
        size_t dec = head_len, raw = head_len; /* relative to start */
        if (r->expect_continue && c->len - c->start == raw && send_continue(c) < 0)
            return -1;
        for (;;) {
            size_t out, used;
            char *base = c->buf + c->start;
            int d = http_chunked_decode(&ch, base + raw, c->len - c->start - raw, base + dec, &out, &used, lim);
            dec += out;
            raw += used;
            if (d == 1) {
                size_t rest = c->len - c->start - raw;
                memmove(base + dec, base + raw, rest);
                c->len = c->start + dec + rest;
                c->req->body_len = dec - head_len;
                c->next = c->start + dec;
                break;
            }
            if (d < 0)
                return ch.status;
            /* Everything was consumed: reclaim the framing bytes. */
            c->len = c->start + dec;
            ssize_t n = fill(c, actor_deadline_after_ms(lim->body_timeout_ms),
                             head_len + lim->max_body + 64 * 1024, false);
            if (n == SNOW_ETIMEOUT)
                return 408;
            if (n == SNOW_ELIMIT)
                return 413;
            if (n <= 0)
                return -1;
            c->len += (size_t)n;
            raw = dec;
        }
    } else {
        size_t cl = r->content_length > 0 ? (size_t)r->content_length : 0;
        if (cl && r->expect_continue && c->len - c->start == head_len && send_continue(c) < 0)
            return -1;
        while (c->len - c->start < head_len + cl) {
            ssize_t n = fill(c, actor_deadline_after_ms(lim->body_timeout_ms), head_len + cl + 64 * 1024, false);
            if (n == SNOW_ETIMEOUT)
                return 408;
            if (n <= 0)
                return -1;
            c->len += (size_t)n;
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
            return 400;
        }
        c->head_at = c->buf + c->start;
    }
    c->req->body = c->buf + c->start + head_len;
    return 0;
}

/* Closes the sending side and reads what the peer still sends, so that our
 * last response is not destroyed by a reset caused by unread input. */
static void linger_close(struct http_conn *c)
{
    if (!c->stream)
        return;
    c->stream->ops->shutdown(c->stream);
    int64_t deadline = actor_deadline_after_ms(LINGER_MS);
    size_t total = 0;
    while (total < LINGER_BYTES) {
        ssize_t n = http_stream_read(c->stream, c->buf, c->cap, deadline);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}

static int queue_response(struct http_conn *c, int keep_alive)
{
    SnowHttpRes *res = &c->res;
    int with_body = !res->head_only && res->body_len <= COPY_BODY_MAX;
    if (http_format_response(&c->out, res, c->req->r.minor_version, keep_alive, with_body) < 0)
        return -ENOMEM;
    if (!with_body && !res->head_only && res->body_len) {
        /* A large body goes out straight from the response buffer, in the
         * same writev as the head. */
        struct iovec v[2] = {{c->out.p, c->out.len}, {res->body, res->body_len}};
        c->out.len = 0;
        return http_stream_writev(c->stream, v, 2, actor_deadline_after_ms(c->srv->write_timeout_ms));
    }
    return 0;
}

static void send_error(struct http_conn *c, int status)
{
    http_res_reset(&c->res);
    c->res.close = 1;
    http_res_error(&c->res, status);
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
    struct chain ch = {c->srv->router, m, c->req, &c->res, before_only, 0};
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
    up.secure = c->srv->tls != NULL;
    up.stopping = atomic_load(&c->srv->stopping);
    http_conn_detach(c, &up.stream, &up.leftover);
    int r = m->upgrade(&up);
    if (r < 0)
        rt_log(RT_LOG_DEBUG, "http: upgrade ended with %s", snow_strerror(r));
    return -1;
}

/* Answers the parsed request. Returns 1 to keep the connection, 0 to close
 * it after a lingering close, -1 when it is over (peer gone, detached). */
static int handle(struct http_conn *c)
{
    SnowHttpReq *req = c->req;
    SnowHttpRes *res = &c->res;
    http_res_reset(res);
    res->head_only = req->r.method.n == 4 && memcmp(req->r.method.p, "HEAD", 4) == 0;
    if (req->r.target.n > c->scratch_cap) {
        char *p = realloc(req->scratch, req->r.target.n);
        if (!p)
            return -1;
        req->scratch = p;
        c->scratch_cap = req->r.target.n;
    }
    struct http_match m;
    http_router_lookup(c->srv->router, req, &m);
    if (m.kind == HTTP_ROUTE_UPGRADE) {
        int u = upgrade(c, &m);
        if (u < 0)
            return -1;
    } else {
        run_caught(c, &m, 0);
    }
    int keep = req->r.keep_alive && !res->close && !atomic_load_explicit(&c->srv->stopping, memory_order_relaxed);
    if (queue_response(c, keep) < 0)
        return -1;
    /* Pipelined requests already here: answer them in the same write. */
    if (!keep || c->len == c->next || c->out.len >= FLUSH_AT)
        if (flush_out(c) < 0)
            return -1;
    return keep;
}

static void conn_loop(struct http_conn *c, int first)
{
    for (;; first = 0) {
        int st = read_head(c, first);
        if (st == 0)
            st = read_body(c);
        if (st < 0)
            return;
        if (st > 0) {
            send_error(c, st);
            return;
        }
        int keep = handle(c);
        if (keep < 0)
            return;
        if (keep == 0) {
            linger_close(c);
            return;
        }
        c->start = c->next;
        if (c->start == c->len)
            c->start = c->len = c->next = 0;
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
        snow_reduction_check();
    }
}

/*
 * Idle between requests with nothing buffered: park with the stack given
 * back (actor_hibernate) and the per-request buffers freed, so that an idle
 * kept-alive connection costs its small struct instead of a stack and a
 * 16 KiB read buffer. conn_resume starts on a fresh stack when the socket,
 * the mailbox (SNOW_TAG_STOP) or the idle deadline calls. Returns only when
 * hibernating is not possible (TLS bytes already decoded, a request in
 * progress, or output still queued).
 */
static void conn_resume(void *arg);

static void conn_hibernate(struct http_conn *c, int64_t deadline)
{
    if (c->len != c->start || c->out.len)
        return;
    unsigned ev = c->stream->ops->idle_events(c->stream);
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
    c->idle_until = deadline;
    actor_hibernate(c->stream->io, ev | SNOW_WAIT_MAILBOX, deadline, conn_resume, c);
}

static void conn_resume(void *arg)
{
    struct http_conn *c = arg;
    c->cap = READ_BUF_INITIAL;
    c->buf = malloc(c->cap);
    c->hdrs = malloc(c->nhdrs * sizeof *c->hdrs);
    c->req = calloc(1, sizeof *c->req);
    if (!c->buf || !c->hdrs || !c->req)
        return; /* the terminate callback closes and frees */
    /* The first request keeps its deadline from the accept (slowloris). */
    conn_loop(c, c->reading_first);
}

int http_conn_detach(struct http_conn *c, struct http_stream **stream, struct http_str *leftover)
{
    if (!c->stream)
        return SNOW_EHTTP_DETACHED;
    *stream = c->stream;
    c->stream = NULL;
    c->lent = *stream;
    (*stream)->back = &c->lent;
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

void http_conn_on_exit(struct http_conn *c, void (*fn)(int reason, void *arg), void *arg)
{
    c->on_exit = fn;
    c->on_exit_arg = arg;
}

static void conn_free(struct http_conn *c)
{
    struct SnowHttpServer *srv = c->srv;
    http_server_conn_unlink(srv, &c->link);
    free(c->buf);
    free(c->hdrs);
    if (c->req) {
        free(c->req->scratch);
        free(c->req);
    }
    free(c->out.p);
    http_res_fini(&c->res);
    free(c);
    http_server_conn_done(srv);
    http_server_unref(srv);
}

/* Every exit path of the actor ends here: return, panic, kill, shutdown. */
static void conn_terminate(int reason, void *arg)
{
    struct http_conn *c = arg;
    if (c->on_exit)
        c->on_exit(reason, c->on_exit_arg);
    if (c->stream)
        http_stream_close(c->stream);
    if (c->lent)
        http_stream_close(c->lent);
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
        c->srv = srv;
        c->accepted_ns = a.accepted_ns;
        c->nhdrs = srv->lim.max_headers;
        c->cap = READ_BUF_INITIAL;
        c->buf = malloc(c->cap);
        c->hdrs = malloc(c->nhdrs * sizeof *c->hdrs);
        c->req = calloc(1, sizeof *c->req);
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
    c->link.pid = snow_actor_self();
    http_server_conn_link(srv, &c->link);
    int err;
    SnowIo *io = snow_io_open(a.fd, &err);
    if (!io) {
        close(a.fd);
        return;
    }
    c->stream = srv->tls ? http_stream_tls(io, srv->tls) : http_stream_plain(io);
    if (!c->stream) {
        snow_io_close(io);
        return;
    }
    conn_loop(c, 1);
}

/* ---- response serialisation ---- */

static _Thread_local struct {
    time_t sec;
    char s[29];
} date_cache = {-1, ""};

static void format_date(time_t t, char out[29])
{
    static const char days[] = "ThuFriSatSunMonTueWed"; /* 1970-01-01 was a Thursday */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t d = t / 86400, s = t % 86400;
    /* Civil date from days since the epoch (proleptic Gregorian). */
    int64_t z = d + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, day = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    int wd = (int)(d % 7);
    char *p = out;
    memcpy(p, days + wd * 3, 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    *p++ = (char)('0' + day / 10);
    *p++ = (char)('0' + day % 10);
    *p++ = ' ';
    memcpy(p, months + (m - 1) * 3, 3);
    p += 3;
    *p++ = ' ';
    *p++ = (char)('0' + y / 1000 % 10);
    *p++ = (char)('0' + y / 100 % 10);
    *p++ = (char)('0' + y / 10 % 10);
    *p++ = (char)('0' + y % 10);
    *p++ = ' ';
    int h = (int)(s / 3600), mi = (int)(s / 60 % 60), se = (int)(s % 60);
    *p++ = (char)('0' + h / 10);
    *p++ = (char)('0' + h % 10);
    *p++ = ':';
    *p++ = (char)('0' + mi / 10);
    *p++ = (char)('0' + mi % 10);
    *p++ = ':';
    *p++ = (char)('0' + se / 10);
    *p++ = (char)('0' + se % 10);
    memcpy(p, " GMT", 4);
}

/* Never inlined: date_cache is thread-local, and a connection actor may
 * resume on another worker after any park, so its address must be computed
 * afresh on every call, never cached in a caller's frame across a park. */
RT_NOINLINE void http_date_now(char out[29])
{
    /* The date only changes once a second: format it once per second per
     * worker thread. No park happens in here, so the thread-local stays the
     * calling thread's. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_cache.sec) {
        format_date(ts.tv_sec, date_cache.s);
        date_cache.sec = ts.tv_sec;
    }
    memcpy(out, date_cache.s, 29);
}

static char *put(char *p, const char *s, size_t n)
{
    if (n)
        memcpy(p, s, n);
    return p + n;
}

int http_format_response(struct http_outbuf *o, const SnowHttpRes *res, int minor_version, int keep_alive,
                         int with_body)
{
    int status = res->status;
    const char *reason = http_status_reason(status);
    size_t rlen = strlen(reason);
    /* RFC 9110 8.6 and 6.4.1: no Content-Length and no content in 1xx, 204
     * and 304 responses. */
    int bodyless = status < 200 || status == 204 || status == 304;
    size_t need = 64 + rlen + 50 + res->hdrs_len + 40 + 30 + (with_body && !bodyless ? res->body_len : 0);
    if (out_reserve(o, need) < 0)
        return -ENOMEM;
    char *p = o->p + o->len;
    p = put(p, "HTTP/1.1 ", 9);
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = put(p, "\r\nServer: snow-rt\r\nDate: ", 25);
    http_date_now(p);
    p += 29;
    p = put(p, "\r\n", 2);
    p = put(p, res->hdrs, res->hdrs_len);
    if (!bodyless) {
        char num[24];
        int k = 0;
        size_t v = res->body_len;
        do {
            num[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        p = put(p, "Content-Length: ", 16);
        while (k)
            *p++ = num[--k];
        p = put(p, "\r\n", 2);
    }
    if (!keep_alive)
        p = put(p, "Connection: close\r\n", 19);
    else if (minor_version == 0)
        p = put(p, "Connection: keep-alive\r\n", 24);
    p = put(p, "\r\n", 2);
    if (with_body && !bodyless)
        p = put(p, res->body, res->body_len);
    o->len = (size_t)(p - o->p);
    return 0;
}
