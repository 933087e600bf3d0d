/*
 * http_parser.c: libFuzzer target for the request parser, the chunked
 * decoder and the router lookup (percent-decoding, query splitting).
 *
 * Input: byte 0 picks a split offset, the rest is the request. The request
 * is copied into an allocation of exactly its size so that any read past the
 * end trips AddressSanitizer. Parsing whole and in two pieces must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "http/router.h"

static SnowRouter *router;

static void nop(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
}

static void build_router(void)
{
    static const int ws;
    router = snow_router_new();
    snow_router_route(router, "GET", "/", nop, NULL);
    snow_router_route(router, "GET", "/users/:id", nop, NULL);
    snow_router_route(router, "POST", "/users/:id/posts/:post", nop, NULL);
    snow_router_route(router, "GET", "/users/me", nop, NULL);
    snow_router_route(router, "GET", "/static/*", nop, NULL);
    snow_router_route(router, "DELETE", "/a/:b/c", nop, NULL);
    snow_router_ws(router, "/ws/:room", (const SnowWsHandler *)(const void *)&ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!router)
        build_router();
    size_t split = data[0];
    data++;
    size--;
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body = 1 << 16;
    lim.max_headers = 32;
    struct http_header hdrs[32], hdrs2[32];
    struct http_request req, req2;
    struct http_parser p;
    http_parser_init(&p);
    ssize_t whole = http_parse_request(&p, buf, size, &req, hdrs, 32, &lim);
    int status = p.status;

    if (split && split < size) {
        struct http_parser p2;
        http_parser_init(&p2);
        ssize_t r = http_parse_request(&p2, buf, split, &req2, hdrs2, 32, &lim);
        if (r == RT_PARSE_INCOMPLETE)
            r = http_parse_request(&p2, buf, size, &req2, hdrs2, 32, &lim);
        else if (r > 0 && whole != r)
            abort();
        if (r == RT_PARSE_ERROR ? (whole != r || p2.status != status) : (r > 0 && r != whole))
            abort();
    }

    if (whole > 0) {
        if ((size_t)whole > size || req.nheaders > 32)
            abort();
        for (size_t i = 0; i < req.nheaders; i++)
            if (hdrs[i].name.p < buf || hdrs[i].value.p + hdrs[i].value.n > buf + size)
                abort();
        /* The router on the parsed request. */
        SnowHttpReq hr;
        memset(&hr, 0, sizeof hr);
        hr.r = req;
        hr.scratch = malloc(req.target.n ? req.target.n : 1);
        struct http_match m;
        http_router_lookup(router, &hr, &m);
        free(hr.scratch);
        /* A chunked body, decoded in place in two pieces. */
        if (req.chunked) {
            struct http_chunked c;
            http_chunked_init(&c);
            char *body = buf + whole;
            size_t n = size - (size_t)whole, cut = split % (n + 1), out, dec = 0;
            ssize_t d = http_chunked_decode(&c, body, cut, body, &out, &lim);
            dec += out;
            if (d >= 0 && (size_t)d > cut)
                abort();
            if (d == RT_PARSE_INCOMPLETE) {
                d = http_chunked_decode(&c, body + cut, n - cut, body + dec, &out, &lim);
                dec += out;
                if (d >= 0 && (size_t)d > n - cut)
                    abort();
            }
            if (dec > n || c.total > lim.max_body)
                abort();
        }
    }
    free(buf);
    return 0;
}
