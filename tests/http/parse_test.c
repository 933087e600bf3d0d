/*
 * parse_test.c: the request parser, whole and split at every byte offset,
 * each input placed right before a PROT_NONE page.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_util.h"

#define MAXH 128

struct result {
    ssize_t r;
    int status;
    struct http_request req;
    struct http_header hdrs[MAXH];
};

/* Parses s in one call. The views in out point into the guard buffer. */
static void parse_once(const char *s, size_t n, const struct http_limits *lim, struct result *out)
{
    struct http_parser p;
    http_parser_init(&p);
    char *b = guard_place(&parse_guard, s, n);
    out->r = http_parse_request(&p, b, n, &out->req, out->hdrs, MAXH, lim);
    out->status = p.status;
}

/*
 * Feeds s as a prefix of length k and then whole (for every k), and one byte
 * at a time, checking every path agrees with the one-call result. Each call
 * sees the buffer moved so that its end touches the guard page. Returns the
 * one-call result.
 */
static void parse_split(const char *s, size_t n, const struct http_limits *lim, struct result *out)
{
    struct result whole;
    parse_once(s, n, lim, &whole);
    for (size_t k = 1; k < n; k++) {
        struct http_parser p;
        http_parser_init(&p);
        struct http_request req;
        struct http_header hdrs[MAXH];
        ssize_t r1 = http_parse_request(&p, guard_place(&parse_guard, s, k), k, &req, hdrs, MAXH, lim);
        if (r1 == RT_PARSE_ERROR) {
            /* An error may show up early, but it must be the same error. */
            ck_assert_int_eq(whole.r, RT_PARSE_ERROR);
            ck_assert_int_eq(p.status, whole.status);
            continue;
        }
        ck_assert_msg(r1 == RT_PARSE_INCOMPLETE || r1 == whole.r, "prefix %zu of %zu gave %zd", k, n, r1);
        if (r1 > 0)
            continue;
        ssize_t r2 = http_parse_request(&p, guard_place(&parse_guard, s, n), n, &req, hdrs, MAXH, lim);
        ck_assert_int_eq(r2, whole.r);
        if (r2 == RT_PARSE_ERROR)
            ck_assert_int_eq(p.status, whole.status);
        else if (r2 > 0)
            ck_assert_uint_eq(req.nheaders, whole.req.nheaders);
    }
    struct http_parser p;
    http_parser_init(&p);
    ssize_t r = RT_PARSE_INCOMPLETE;
    for (size_t k = 1; k <= n && r == RT_PARSE_INCOMPLETE; k++)
        r = http_parse_request(&p, guard_place(&parse_guard, s, k), k, &out->req, out->hdrs, MAXH, lim);
    ck_assert_int_eq(r, whole.r);
    if (r == RT_PARSE_ERROR)
        ck_assert_int_eq(p.status, whole.status);
    /* Leave the one-call result (and a buffer holding s) for the caller. */
    parse_once(s, n, lim, out);
}

static int streq(struct http_str s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

START_TEST(simple_get)
{
    const char *s = "GET /hello/world?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  t/1 \r\n"
                    "Accept: */*\r\n\r\nNEXT";
    struct http_limits lim = parse_default_limits();
    struct result res;
    parse_split(s, strlen(s), &lim, &res);
    ck_assert_int_eq(res.r, (ssize_t)strlen(s) - 4);
    ck_assert(streq(res.req.method, "GET"));
    ck_assert(streq(res.req.target, "/hello/world?x=1&y=2"));
    ck_assert(streq(res.req.path, "/hello/world"));
    ck_assert(streq(res.req.query, "x=1&y=2"));
    ck_assert_int_eq(res.req.minor_version, 1);
    ck_assert_uint_eq(res.req.nheaders, 3);
    ck_assert(streq(res.req.headers[1].name, "User-Agent"));
    ck_assert(streq(res.req.headers[1].value, "t/1"));
    ck_assert(http_request_header(&res.req, "user-agent") == &res.req.headers[1]);
    ck_assert(http_request_header(&res.req, "HOST") == &res.req.headers[0]);
    ck_assert(http_request_header(&res.req, "missing") == NULL);
    ck_assert_int_eq(res.req.content_length, -1);
    ck_assert_int_eq(res.req.chunked, 0);
    ck_assert_int_eq(res.req.keep_alive, 1);
}
END_TEST

START_TEST(versions_and_connection)
{
    struct http_limits lim = parse_default_limits();
    struct result res;
    const char *a = "GET / HTTP/1.0\r\n\r\n";
    parse_split(a, strlen(a), &lim, &res);
    ck_assert_int_eq(res.req.minor_version, 0);
    ck_assert_int_eq(res.req.keep_alive, 0);
    const char *b = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    parse_split(b, strlen(b), &lim, &res);
    ck_assert_int_eq(res.req.keep_alive, 1);
    const char *c = "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n";
    parse_split(c, strlen(c), &lim, &res);
    ck_assert_int_eq(res.req.keep_alive, 0);
    const char *d = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
    parse_split(d, strlen(d), &lim, &res);
    ck_assert_int_eq(res.req.upgrade, 1);
    ck_assert_int_eq(res.req.keep_alive, 1);
    /* A higher minor version is handled as HTTP/1.1 (RFC 9110 §6.2). */
    const char *e = "GET / HTTP/1.7\r\nHost: h\r\n\r\n";
    parse_split(e, strlen(e), &lim, &res);
    ck_assert_int_gt(res.r, 0);
    ck_assert_int_eq(res.req.minor_version, 1);
    const char *f = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    parse_split(f, strlen(f), &lim, &res);
    ck_assert_int_eq(res.r, (ssize_t)strlen(f));
    ck_assert(streq(res.req.method, "GET"));
    const char *x = "POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    parse_split(x, strlen(x), &lim, &res);
    ck_assert_int_eq(res.req.expect_continue, 1);
    ck_assert_int_eq(res.req.content_length, 3);
}
END_TEST

START_TEST(framing)
{
    struct http_limits lim = parse_default_limits();
    struct result res;
    const char *a = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0042\r\n\r\n";
    parse_split(a, strlen(a), &lim, &res);
    ck_assert_int_eq(res.req.content_length, 42);
    const char *b = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n";
    parse_split(b, strlen(b), &lim, &res);
    ck_assert_int_eq(res.req.content_length, 7);
    const char *c = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
    parse_split(c, strlen(c), &lim, &res);
    ck_assert_int_eq(res.req.chunked, 1);
    ck_assert_int_eq(res.req.content_length, -1);
}
END_TEST

START_TEST(target_forms)
{
    struct http_limits lim = parse_default_limits();
    struct result res;
    const char *a = "GET http://example.com/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    parse_split(a, strlen(a), &lim, &res);
    ck_assert(streq(res.req.path, "/a/b"));
    ck_assert(streq(res.req.query, "q=1"));
    const char *b = "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    parse_split(b, strlen(b), &lim, &res);
    ck_assert(streq(res.req.path, "/"));
    const char *c = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    parse_split(c, strlen(c), &lim, &res);
    ck_assert(streq(res.req.path, "*"));
    const char *d = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    parse_split(d, strlen(d), &lim, &res);
    ck_assert(streq(res.req.path, "example.com:443"));
}
END_TEST

/* Malformed requests and the status each one must get. */
#define B(str, st) {str, sizeof(str) - 1, st}
static const struct bad {
    const char *in;
    size_t len;
    int status;
} bad_table[] = {
    B("GET / HTTP/1.1\nHost: h\r\n\r\n", 400),                 /* bare LF after request-line */
    B("GET / HTTP/1.1\r\nHost: h\n\r\n", 400),                 /* bare LF in field line */
    B("GET / HTTP/1.1\r\nHost: h\r\n\n", 400),                 /* bare LF as the empty line */
    B("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),             /* bare LF before request */
    B("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),         /* bare CR in field line */
    B("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400),             /* bare CR in request-line */
    B("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),              /* two spaces */
    B("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),              /* trailing space */
    B("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),              /* tab separator */
    B(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),              /* leading space */
    B("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),               /* non-token method */
    B("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0),                 /* control: valid */
    B("GET / http/1.1\r\nHost: h\r\n\r\n", 400),               /* version is case-sensitive */
    B("GET / HTTP/1\r\nHost: h\r\n\r\n", 400),
    B("GET / HTTP/1.1.1\r\nHost: h\r\n\r\n", 400),
    B("GET / HTTP/a.1\r\nHost: h\r\n\r\n", 400),
    B("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    B("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
    B("GET / HTTP/3.0\r\n\r\n", 505),
    B("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400),           /* DEL in target */
    B("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400),       /* non-ASCII target */
    B("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400),         /* fragment */
    B("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),             /* not origin-form */
    B("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),               /* asterisk outside OPTIONS */
    B("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    B("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),       /* empty authority */
    B("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),    /* obs-fold */
    B("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400),/* obs-fold with tab */
    B("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),              /* space before colon */
    B("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", 400),              /* non-token name */
    B("GET / HTTP/1.1\r\n: h\r\n\r\n", 400),                   /* empty name */
    B("GET / HTTP/1.1\r\nHost h\r\n\r\n", 400),                /* no colon */
    B("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400),  /* CTL in value */
    B("GET / HTTP/1.1\r\nHost: h\r\nX: a\0z\r\n\r\n", 400),    /* NUL in value */
    B("GET / HTTP/1.1\r\n\r\n", 400),                          /* no Host in 1.1 */
    B("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),    /* two Hosts */
    B("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),             /* invalid Host */
    B("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    B("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),               /* empty Host */
    B("GET / HTTP/1.1\r\nHost:  \t \r\n\r\n", 400),          /* Host of whitespace only */
    B("GET / HTTP/1.0\r\nHost:\r\n\r\n", 400),               /* empty Host in 1.0 */
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551617\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9000000000\r\n\r\n", 413),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8388609\r\n\r\n", 413),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8388608\r\n\r\n", 0),
    B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400),
    B("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
};

START_TEST(malformed_table)
{
    struct http_limits lim = parse_default_limits();
    const struct bad *b = &bad_table[_i];
    size_t n = b->len;
    struct result res;
    parse_split(b->in, n, &lim, &res);
    if (b->status == 0) {
        ck_assert_msg(res.r == (ssize_t)n, "row %d: expected success, got %zd (%d)", _i, res.r, res.status);
    } else {
        ck_assert_msg(res.r == RT_PARSE_ERROR, "row %d: expected %d, got %zd", _i, b->status, res.r);
        ck_assert_msg(res.status == b->status, "row %d: expected %d, got %d", _i, b->status, res.status);
    }
}
END_TEST

static void build(char *buf, size_t cap, size_t line_len, size_t nfields, size_t field_len)
{
    /* "GET /aaaa... HTTP/1.1" padded to line_len, then nfields of field_len bytes each (with CRLF). */
    size_t n = 0;
    memcpy(buf, "GET /", 5);
    n = 5;
    while (n < line_len - 9)
        buf[n++] = 'a';
    memcpy(buf + n, " HTTP/1.1\r\n", 11);
    n += 11;
    for (size_t i = 0; i < nfields; i++) {
        int k = snprintf(buf + n, cap - n, "H%04zu: ", i);
        size_t start = n;
        n += (size_t)k;
        while (n - start < field_len - 2)
            buf[n++] = 'v';
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    memcpy(buf + n, "Host: h\r\n\r\n", 12);
}

/* Builds a request (see build) and parses it whole and split at every
 * offset (split) or whole only; want 0 means it must parse, else the status. */
static void expect_limit(const struct http_limits *lim, int split, size_t line_len, size_t nfields,
                         size_t field_len, int want)
{
    static char buf[20000];
    struct result res;
    build(buf, sizeof buf, line_len, nfields, field_len);
    if (split)
        parse_split(buf, strlen(buf), lim, &res);
    else
        parse_once(buf, strlen(buf), lim, &res);
    if (want)
        ck_assert_int_eq(res.status, want);
    else
        ck_assert_int_gt(res.r, 0);
}

START_TEST(limits)
{
    struct http_limits lim = parse_default_limits();
    lim.max_request_line = 100;
    lim.max_header_bytes = 400;
    lim.max_headers = 10;
    static char buf[8192];
    struct result res;
    /* Request-line of exactly the limit passes; one more byte is 414. */
    expect_limit(&lim, 1, 100, 0, 0, 0);
    expect_limit(&lim, 1, 101, 0, 0, 414);
    /* 9 fields + Host = 10 pass; 10 + Host = 11 is 431. */
    expect_limit(&lim, 1, 30, 9, 20, 0);
    expect_limit(&lim, 1, 30, 10, 20, 431);
    /* Header bytes: 8 fields of 48 bytes + Host (9) = 393 pass; 49 bytes each = 401 fail. */
    expect_limit(&lim, 1, 30, 8, 48, 0);
    expect_limit(&lim, 1, 30, 8, 49, 431);
    /* An endless request-line is refused before its end arrives. */
    memset(buf, 'a', 4096);
    memcpy(buf, "GET /", 5);
    struct http_parser p;
    http_parser_init(&p);
    struct http_header h[4];
    ck_assert_int_eq(http_parse_request(&p, guard_place(&parse_guard, buf, 4096), 4096, &res.req, h, 4, &lim), RT_PARSE_ERROR);
    ck_assert_int_eq(p.status, 414);
    /* So is an endless header section. */
    build(buf, sizeof buf, 30, 0, 0);
    size_t n = strlen(buf) - 2;
    memset(buf + n, 'x', 1000);
    buf[n + 1] = ':';
    http_parser_init(&p);
    ck_assert_int_eq(http_parse_request(&p, guard_place(&parse_guard, buf, n + 1000), n + 1000, &res.req, h, 4, &lim),
                     RT_PARSE_ERROR);
    ck_assert_int_eq(p.status, 431);
    /* The caller's array caps the count too. */
    lim = parse_default_limits();
    build(buf, sizeof buf, 30, 5, 20);
    http_parser_init(&p);
    ck_assert_int_eq(http_parse_request(&p, guard_place(&parse_guard, buf, strlen(buf)), strlen(buf), &res.req, h, 4, &lim),
                     RT_PARSE_ERROR);
    ck_assert_int_eq(p.status, 431);
}
END_TEST

START_TEST(default_limits)
{
    struct http_limits lim = parse_default_limits();
    ck_assert_uint_eq(lim.max_request_line, 8192);
    ck_assert_uint_eq(lim.max_header_bytes, 16384);
    ck_assert_uint_eq(lim.max_headers, 100);
    ck_assert_uint_eq(lim.max_body, 8u << 20);
    ck_assert_int_eq(lim.header_timeout_ms, 10000);
    ck_assert_int_eq(lim.idle_timeout_ms, 60000);
    expect_limit(&lim, 0, 8192, 0, 0, 0);
    expect_limit(&lim, 0, 8193, 0, 0, 414);
    expect_limit(&lim, 0, 40, 100, 20, 431);
    expect_limit(&lim, 0, 40, 99, 20, 0);
}
END_TEST

START_TEST(pipelined_resume)
{
    /* Two requests in one buffer: the second parses from where the first ended. */
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_limits lim = parse_default_limits();
    struct http_parser p;
    struct http_request req;
    struct http_header h[8];
    char *b = guard_place(&parse_guard, s, strlen(s));
    http_parser_init(&p);
    ssize_t r = http_parse_request(&p, b, strlen(s), &req, h, 8, &lim);
    ck_assert_int_eq(r, (ssize_t)strlen(s) / 2);
    ck_assert(streq(req.path, "/a"));
    http_parser_init(&p);
    ssize_t r2 = http_parse_request(&p, b + r, strlen(s) - (size_t)r, &req, h, 8, &lim);
    ck_assert_int_eq(r2, r);
    ck_assert(streq(req.path, "/b"));
}
END_TEST

/* A bad request-line fails as soon as its CRLF is here: the rest of the
 * head never comes (HTTP/0.9, garbage), and each must not wait for it. */
static const struct bad early_table[] = {
    B("GET /\r\n", 400),                                   /* HTTP/0.9 simple request */
    B("garbage\r\n", 400),
    B("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n", 400), /* TLS on the plain port */
    B("GET / HTTP/2.0\r\n", 505),
    B("\r\nGET /a b HTTP/1.1\r\n", 400),
    B("GET / HTTP/1.1\r\n", 0),                             /* control: incomplete */
};

START_TEST(early_request_line)
{
    struct http_limits lim = parse_default_limits();
    const struct bad *b = &early_table[_i];
    struct result res;
    parse_split(b->in, b->len, &lim, &res);
    if (b->status == 0) {
        ck_assert_msg(res.r == RT_PARSE_INCOMPLETE, "row %d: expected incomplete, got %zd", _i, res.r);
    } else {
        ck_assert_msg(res.r == RT_PARSE_ERROR, "row %d: expected %d, got %zd", _i, b->status, res.r);
        ck_assert_msg(res.status == b->status, "row %d: expected %d, got %d", _i, b->status, res.status);
    }
}
END_TEST

/* The parser knows a HEAD request from its request-line, before the head is
 * complete or valid, so an error answer can leave its body out. */
START_TEST(head_known_early)
{
    static const struct {
        const char *in;
        int is_head;
    } rows[] = {
        {"HEAD / HTTP/1.1\r\nHost: h\r\nBad Field: x\r\n", 1},
        {"GET / HTTP/1.1\r\n", 0},
    };
    struct http_limits lim = parse_default_limits();
    struct result res;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct http_parser p;
        size_t n = strlen(rows[i].in);
        http_parser_init(&p);
        char *b = guard_place(&parse_guard, rows[i].in, n);
        ck_assert_int_eq(http_parse_request(&p, b, n, &res.req, res.hdrs, MAXH, &lim), RT_PARSE_INCOMPLETE);
        ck_assert_int_eq(p.is_head, rows[i].is_head);
    }
}
END_TEST

Suite *parse_suite(void)
{
    Suite *s = suite_create("http_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, parse_guard_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, simple_get);
    tcase_add_test(tc, versions_and_connection);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, target_forms);
    tcase_add_loop_test(tc, malformed_table, 0, (int)(sizeof bad_table / sizeof bad_table[0]));
    tcase_add_loop_test(tc, early_request_line, 0, (int)(sizeof early_table / sizeof early_table[0]));
    tcase_add_test(tc, head_known_early);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, default_limits);
    tcase_add_test(tc, pipelined_resume);
    suite_add_tcase(s, tc);
    return s;
}
