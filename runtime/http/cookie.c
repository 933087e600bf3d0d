/*
 * cookie.c: reading a request's cookies (RFC 6265 §4.2 and §5.4): the Cookie
 * header is "name=value" pairs separated by "; ". Several Cookie lines (an
 * HTTP/2 habit some proxies keep) are searched in order.
 */
#include <string.h>

#include "http/exchange.h"

static const char *find(struct http_str v, const char *name, size_t nlen, size_t *len)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ';'))
            i++;
        size_t key = i;
        while (i < v.n && v.p[i] != '=' && v.p[i] != ';')
            i++;
        size_t klen = i - key;
        while (klen && (v.p[key + klen - 1] == ' ' || v.p[key + klen - 1] == '\t'))
            klen--;
        if (i >= v.n || v.p[i] != '=') {
            continue; /* a pair without "=" is ignored (§5.2 step 2) */
        }
        size_t val = ++i;
        while (i < v.n && v.p[i] != ';')
            i++;
        size_t vlen = i - val;
        while (vlen && (v.p[val + vlen - 1] == ' ' || v.p[val + vlen - 1] == '\t'))
            vlen--;
        while (vlen && (v.p[val] == ' ' || v.p[val] == '\t')) {
            val++;
            vlen--;
        }
        if (klen == nlen && memcmp(v.p + key, name, nlen) == 0) {
            /* §4.1.1: a value may be wrapped in double quotes. */
            if (vlen >= 2 && v.p[val] == '"' && v.p[val + vlen - 1] == '"') {
                val++;
                vlen -= 2;
            }
            *len = vlen;
            return v.p + val;
        }
    }
    return NULL;
}

const char *snow_http_req_cookie(const SnowHttpReq *req, const char *name, size_t *len)
{
    size_t dummy;
    if (!len)
        len = &dummy;
    *len = 0;
    if (!req || !name)
        return NULL;
    size_t nlen = strlen(name);
    for (size_t k = 0; k < req->r.nheaders; k++) {
        if (!http_str_eq_ci(req->r.headers[k].name, "Cookie"))
            continue;
        const char *p = find(req->r.headers[k].value, name, nlen, len);
        if (p)
            return p;
    }
    return NULL;
}
