/*
 * request.h: a parsed HTTP/1.1 request as views into the connection's read
 * buffer. Produced by http_parse_request (parse.c), read by the router, the
 * handlers' accessors and the WebSocket handshake. Views stay valid until the
 * buffer is compacted; never hold one across a park.
 */
#ifndef SNOW_HTTP_REQUEST_H
#define SNOW_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/token.h"

struct http_header {
    struct http_str name;
    struct http_str value; /* leading and trailing whitespace removed */
};

struct http_request {
    struct http_str method;
    struct http_str target; /* request-target as sent */
    struct http_str path;   /* target up to '?' (still percent-encoded) */
    struct http_str query;  /* after '?', without it; n == 0 when absent */
    int minor_version;      /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    struct http_header *headers; /* caller-owned array */
    size_t nheaders;
    int64_t content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding: chunked */
    int keep_alive;         /* after Connection and version rules */
    int upgrade;            /* Connection lists "upgrade" */
    int expect_continue;    /* Expect: 100-continue (HTTP/1.1 only) */
    size_t head_len;        /* bytes of request-line + header section */
};

/* The first header named name (case-insensitive), or NULL. */
static inline const struct http_header *http_request_header(const struct http_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (http_str_eq_ci(r->headers[i].name, name))
            return &r->headers[i];
    return NULL;
}

#endif
