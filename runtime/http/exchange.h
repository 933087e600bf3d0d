/*
 * exchange.h: the request and response objects behind the ABI handles
 * SnowHttpReq / SnowHttpRes. One pair lives in each connection object and is
 * reused for every request on that connection; nothing here parks.
 */
#ifndef SNOW_HTTP_EXCHANGE_H
#define SNOW_HTTP_EXCHANGE_H

#include <sys/types.h>

#include "http/request.h"
#include "rt.h"

/* Parameters a route pattern may declare, and query pairs decoded per
 * request (more pairs -> 400). */
#define HTTP_MAX_PARAMS 32
#define HTTP_MAX_QUERY 128

struct http_kv {
    struct http_str key;
    struct http_str val;
};

struct SnowHttpReq {
    struct http_request r;
    struct http_kv params[HTTP_MAX_PARAMS]; /* keys owned by the route, values decoded into scratch */
    size_t nparams;
    struct http_kv query[HTTP_MAX_QUERY];   /* decoded into scratch */
    size_t nquery;
    const char *body;
    size_t body_len;
    char *scratch;      /* decoded params and query; at least r.target.n bytes */
    size_t scratch_len;
};

struct SnowHttpRes {
    int status;
    int close;          /* Connection: close after this response */
    int head_only;      /* HEAD: the body is dropped when serialised */
    char *hdrs;         /* "Name: value\r\n" lines added by the handler */
    size_t hdrs_len, hdrs_cap;
    char *body;
    size_t body_len, body_cap;
    /* When set, the body is body_len bytes here instead of in body: a view
     * of the request's own bytes (an echo), which the connection keeps in
     * place until the response is written. Saves a second copy of what may
     * be a body of max_body bytes. */
    const char *body_view;
    const char *lend;   /* the request body the connection lends for views */
    size_t lend_len;
};

/* The response body, wherever it is. */
static inline const char *http_res_body(const SnowHttpRes *res)
{
    return res->body_view ? res->body_view : res->body;
}

void http_res_init(SnowHttpRes *res);
/* Back to the default 200 / no headers / empty body, keeping the buffers. */
void http_res_reset(SnowHttpRes *res);
void http_res_fini(SnowHttpRes *res);
/* A plain-text answer for statuses the server produces itself. */
void http_res_error(SnowHttpRes *res, int status);
/* Appends a header without the checks snow_http_res_header applies (the
 * server's own Allow, Upgrade, ...). Returns 0 or -ENOMEM. */
int http_res_add_header(SnowHttpRes *res, const char *name, size_t nlen, const char *value, size_t vlen);

/* Reason phrase for a status ("" for unknown ones). */
const char *http_status_reason(int status);

/* Percent-decodes in[0..n) into out (which may equal in). With plus_space a
 * "+" becomes a space (form encoding of queries). Returns the decoded length
 * or -1 on an invalid escape. */
ssize_t http_pct_decode(const char *in, size_t n, char *out, int plus_space);

/* Splits and decodes req->r.query into req->query using req->scratch.
 * Returns 0, or 400 for a bad escape or too many pairs. */
int http_req_parse_query(SnowHttpReq *req);

#endif
