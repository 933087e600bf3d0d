/*
 * parse.h: the pure HTTP/1.1 request parser and chunked body decoder.
 *
 * Neither does I/O or allocates. The request parser works over the caller's
 * buffer and returns views into it (struct http_request); the chunked decoder
 * moves decoded body bytes down inside the caller's buffer. Both keep a small
 * state so that feeding more bytes never rescans what was already examined.
 */
#ifndef SNOW_HTTP_PARSE_H
#define SNOW_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/request.h"
#include "rt.h"

/* Limits, with the defaults http_limits_default() fills in. */
struct http_limits {
    size_t max_request_line;   /* 8 KiB: longer request-line -> 414 */
    size_t max_header_bytes;   /* 16 KiB for all field lines -> 431 */
    size_t max_headers;        /* 100 field lines -> 431 */
    size_t max_body;           /* 8 MiB decoded body -> 413 */
    int64_t header_timeout_ms; /* 10 s to receive a whole header section -> 408 */
    int64_t idle_timeout_ms;   /* 60 s idle between keep-alive requests -> close */
    int64_t body_timeout_ms;   /* 10 s without body progress -> 408 */
    int64_t request_timeout_ms;/* 60 s for head + body of one request -> 408 */
};

#define HTTP_DEFAULT_MAX_REQUEST_LINE (8u * 1024)
#define HTTP_DEFAULT_MAX_HEADER_BYTES (16u * 1024)
#define HTTP_DEFAULT_MAX_HEADERS 100u
#define HTTP_DEFAULT_MAX_BODY (8u * 1024 * 1024)
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_BODY_TIMEOUT_MS 10000
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 60000
#define HTTP_DEFAULT_MAX_BUFFERED ((size_t)256 << 20)
#define HTTP_DEFAULT_WRITE_TIMEOUT_MS 30000

void http_limits_default(struct http_limits *lim);

/*
 * Resumable state of one request parse. Zero it (http_parser_init) before
 * the first byte of each request. After an error, status holds the HTTP
 * status to answer with (400, 413, 414, 431, 501, 505) and reason a short
 * static text for logs.
 */
struct http_parser {
    size_t scanned;   /* bytes already searched for the end of the header section */
    size_t line_start;/* start of the line being scanned */
    size_t first_line_end; /* end of the request-line (its CR), 0 while unknown */
    size_t nlines;    /* field lines seen so far */
    int status;
    const char *reason;
    int is_head;      /* the request-line, once judged valid, names HEAD */
};

static inline void http_parser_init(struct http_parser *p)
{
    p->scanned = 0;
    p->line_start = 0;
    p->first_line_end = 0;
    p->nlines = 0;
    p->status = 0;
    p->reason = "";
    p->is_head = 0;
}

/*
 * Parses the request-line and header section at buf[0..len). On success
 * fills *req (views into buf; headers go to hdrs[0..max_hdrs)) and returns
 * the length of the head (> 0); the body, if any, starts there. Returns
 * RT_PARSE_INCOMPLETE when more bytes are needed (call again with the
 * same buf prefix plus the new bytes), or RT_PARSE_ERROR with p->status
 * (the convention of all parsers, rt.h). The request-line is judged as
 * soon as its CRLF is here, so a malformed one (HTTP/0.9's "GET /" among
 * them) fails at once instead of after a header section that never comes.
 * Limits are enforced on incomplete input too, so a peer cannot make the
 * caller buffer an unbounded head.
 */
ssize_t http_parse_request(struct http_parser *p, const char *buf, size_t len, struct http_request *req,
                           struct http_header *hdrs, size_t max_hdrs, const struct http_limits *lim);

/* Incremental chunked body decoder (RFC 9112 §7.1). */
struct http_chunked {
    int state;
    int status;         /* HTTP status after an error */
    const char *reason;
    uint64_t remaining; /* data bytes left in the current chunk */
    uint64_t total;     /* decoded body bytes so far */
    size_t ndigits;     /* hex digits in the current chunk-size */
    size_t line_bytes;  /* bytes of the current chunk line, extensions or trailer section */
    size_t ntrailers;
};

static inline void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof *c);
}

/*
 * Decodes src[0..n): body data is written to dst (which may alias src as
 * long as dst <= src) and *out receives the number of data bytes written,
 * on every return. Returns the number of input bytes consumed (>= 0) when
 * the last chunk and the trailer section are complete (the next request
 * starts at src + that), RT_PARSE_INCOMPLETE when all n bytes were consumed
 * and more are needed, or RT_PARSE_ERROR with c->status (400, 413 or 431).
 * Trailer fields are checked and dropped, as RFC 9112 §7.1.2 allows.
 */
ssize_t http_chunked_decode(struct http_chunked *c, const char *src, size_t n, char *dst, size_t *out,
                            const struct http_limits *lim);

#endif
