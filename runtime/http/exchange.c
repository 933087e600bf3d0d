/*
 * exchange.c: request accessors and response construction behind the ABI
 * (snow_http_req_*, snow_http_res_*), percent-decoding and query splitting.
 * Pure: no I/O, only the response buffers grow with realloc.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/exchange.h"
#include "http/parse.h"

/* ---- decoding ---- */

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

ssize_t http_pct_decode(const char *in, size_t n, char *out, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            /* pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 §2.1) */
            if (n - i < 3)
                return -1;
            int a = hex((unsigned char)in[i + 1]), b = hex((unsigned char)in[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            out[o++] = (char)(a << 4 | b);
            i += 2;
        } else if (c == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    return (ssize_t)o;
}

int http_req_parse_query(SnowHttpReq *req)
{
    const char *q = req->r.query.p;
    size_t n = req->r.query.n, i = 0;
    req->nquery = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && q[i] != '&')
            i++;
        size_t end = i++;
        if (end == st)
            continue;
        if (req->nquery >= HTTP_MAX_QUERY)
            return 400;
        const char *eq = memchr(q + st, '=', end - st);
        size_t klen = eq ? (size_t)(eq - (q + st)) : end - st;
        char *k = req->scratch + req->scratch_len;
        ssize_t kd = http_pct_decode(q + st, klen, k, 1);
        if (kd < 0)
            return 400;
        req->scratch_len += (size_t)kd;
        char *v = req->scratch + req->scratch_len;
        ssize_t vd = 0;
        if (eq && (vd = http_pct_decode(eq + 1, end - st - klen - 1, v, 1)) < 0)
            return 400;
        req->scratch_len += (size_t)vd;
        req->query[req->nquery].key = (struct http_str){k, (size_t)kd};
        req->query[req->nquery].val = (struct http_str){v, (size_t)vd};
        req->nquery++;
    }
    return 0;
}

/* ---- request accessors ---- */

static const char *out_str(struct http_str s, size_t *len)
{
    if (len)
        *len = s.n;
    return s.p;
}

const char *snow_http_req_method(const SnowHttpReq *req, size_t *len)
{
    return out_str(req->r.method, len);
}

const char *snow_http_req_path(const SnowHttpReq *req, size_t *len)
{
    return out_str(req->r.path, len);
}

const char *snow_http_req_header(const SnowHttpReq *req, const char *name, size_t *len)
{
    const struct http_header *h = name ? http_request_header(&req->r, name) : NULL;
    if (!h)
        return out_str((struct http_str){NULL, 0}, len);
    /* A present but empty value must still be told apart from absence. */
    return out_str((struct http_str){h->value.p ? h->value.p : "", h->value.n}, len);
}

static const char *kv_find(const struct http_kv *kv, size_t n, const char *name, size_t *len)
{
    size_t nl = name ? strlen(name) : 0;
    for (size_t i = 0; name && i < n; i++)
        if (kv[i].key.n == nl && memcmp(kv[i].key.p, name, nl) == 0)
            return out_str((struct http_str){kv[i].val.p ? kv[i].val.p : "", kv[i].val.n}, len);
    return out_str((struct http_str){NULL, 0}, len);
}

const char *snow_http_req_param(const SnowHttpReq *req, const char *name, size_t *len)
{
    return kv_find(req->params, req->nparams, name, len);
}

const char *snow_http_req_query(const SnowHttpReq *req, const char *name, size_t *len)
{
    return kv_find(req->query, req->nquery, name, len);
}

const void *snow_http_req_body(const SnowHttpReq *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

/* ---- response ---- */

void http_res_init(SnowHttpRes *res)
{
    memset(res, 0, sizeof *res);
    res->status = 200;
}

void http_res_reset(SnowHttpRes *res)
{
    res->status = 200;
    res->close = 0;
    res->head_only = 0;
    res->hdrs_len = 0;
    res->body_len = 0;
    res->body_view = NULL;
}

void http_res_fini(SnowHttpRes *res)
{
    free(res->hdrs);
    free(res->body);
    memset(res, 0, sizeof *res);
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = c;
    return 0;
}

int http_res_add_header(SnowHttpRes *res, const char *name, size_t nlen, const char *value, size_t vlen)
{
    size_t need = res->hdrs_len + nlen + vlen + 4;
    if (reserve(&res->hdrs, &res->hdrs_cap, need) < 0)
        return -ENOMEM;
    char *p = res->hdrs + res->hdrs_len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    res->hdrs_len = need;
    return 0;
}

int snow_http_res_status(SnowHttpRes *res, int status)
{
    if (!res || status < 200 || status > 599)
        return -EINVAL;
    res->status = status;
    return 0;
}

static int server_owned(const char *name, size_t n)
{
    static const char *const owned[] = {"content-length", "transfer-encoding", "connection", "date", "server"};
    for (size_t i = 0; i < RT_ARRAY_LEN(owned); i++)
        if (http_str_eq_ci((struct http_str){name, n}, owned[i]))
            return 1;
    return 0;
}

int snow_http_res_header(SnowHttpRes *res, const char *name, const char *value)
{
    if (!res || !name || !value)
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0)
        return -EINVAL;
    for (size_t i = 0; i < nl; i++)
        if (!http_is_tchar((unsigned char)name[i]))
            return -EINVAL;
    /* CR or LF in a value would let a handler split the response. */
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return -EINVAL;
    }
    if (server_owned(name, nl))
        return -EINVAL;
    return http_res_add_header(res, name, nl, value, vl);
}

int snow_http_res_body(SnowHttpRes *res, const void *data, size_t len)
{
    if (!res || (!data && len))
        return -EINVAL;
    res->body_len = 0;
    res->body_view = NULL;
    uintptr_t at = (uintptr_t)data, lend = (uintptr_t)res->lend;
    if (len && res->lend && at >= lend && at - lend <= res->lend_len && len <= res->lend_len - (at - lend)) {
        /* Part of the request body: point at it instead of copying. */
        res->body_view = data;
        res->body_len = len;
        return 0;
    }
    return snow_http_res_write(res, data, len);
}

int snow_http_res_write(SnowHttpRes *res, const void *data, size_t len)
{
    if (!res || (!data && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (res->body_view) {
        /* Appending to a view: the body becomes the response's own. */
        const char *v = res->body_view;
        size_t n = res->body_len;
        if (reserve(&res->body, &res->body_cap, n + len) < 0)
            return -ENOMEM;
        memcpy(res->body, v, n);
        res->body_view = NULL;
    }
    if (reserve(&res->body, &res->body_cap, res->body_len + len) < 0)
        return -ENOMEM;
    memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    return 0;
}

int snow_http_res_send(SnowHttpRes *res, int status, const char *content_type, const void *body, size_t len)
{
    int r = snow_http_res_status(res, status);
    if (r == 0 && content_type)
        r = snow_http_res_header(res, "Content-Type", content_type);
    if (r == 0)
        r = snow_http_res_body(res, body, len);
    return r;
}

void snow_http_res_close(SnowHttpRes *res)
{
    if (res)
        res->close = 1;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

void http_res_error(SnowHttpRes *res, int status)
{
    int head_only = res->head_only, close = res->close;
    http_res_reset(res);
    res->head_only = head_only;
    res->close = close;
    res->status = status;
    const char *reason = http_status_reason(status);
    http_res_add_header(res, "Content-Type", 12, "text/plain; charset=utf-8", 25);
    snow_http_res_write(res, reason, strlen(reason));
    snow_http_res_write(res, "\n", 1);
}
