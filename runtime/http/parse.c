/*
 * parse.c: HTTP/1.1 request-line and header section (RFC 9112 §2-6).
 *
 * Two phases. The scan phase runs on every call and only looks at bytes not
 * scanned before: it finds line ends, rejects bare LF, counts field lines and
 * enforces the size limits, so a peer that trickles or floods a head is cut
 * off as soon as a limit is crossed. The parse phase runs once, when the
 * empty line that ends the header section has arrived, and builds the views.
 * Nothing here allocates or performs I/O.
 */
#include <string.h>

#include "http/parse.h"

void http_limits_default(struct http_limits *lim)
{
    lim->max_request_line = HTTP_DEFAULT_MAX_REQUEST_LINE;
    lim->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    lim->max_headers = HTTP_DEFAULT_MAX_HEADERS;
    lim->max_body = HTTP_DEFAULT_MAX_BODY;
    lim->header_timeout_ms = HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    lim->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    lim->body_timeout_ms = HTTP_DEFAULT_BODY_TIMEOUT_MS;
    lim->request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
}

static ssize_t fail(struct http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return RT_PARSE_ERROR;
}

/* field-vchar / SP / HTAB (RFC 9110 §5.5): everything but CTLs and DEL. */
static int is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Framing facts gathered from the field lines, judged after all are read. */
struct framing {
    int cl_seen;
    int64_t cl;
    int te_seen;
    int te_chunked;     /* times "chunked" was listed */
    int te_last_chunked;/* the last coding listed was chunked */
    int te_other;       /* some coding other than chunked (or with parameters) */
    int conn_close, conn_keep_alive, conn_upgrade;
    int hosts;
    int expect_continue;
};

static int parse_content_length(struct framing *f, struct http_str v)
{
    /* Content-Length = 1*DIGIT. A list of identical values may come from an
     * intermediary joining duplicate lines; any disagreement is fatal because
     * framing would be ambiguous (RFC 9112 §6.3, item 5). */
    size_t pos = 0;
    int any = 0;
    struct http_str e;
    while (http_list_next(v, &pos, &e)) {
        if (e.n > 18)
            return -1;
        int64_t x = 0;
        for (size_t i = 0; i < e.n; i++) {
            unsigned char c = (unsigned char)e.p[i];
            if (c < '0' || c > '9')
                return -1;
            x = x * 10 + (c - '0');
        }
        if (f->cl_seen && f->cl != x)
            return -1;
        f->cl_seen = 1;
        f->cl = x;
        any = 1;
    }
    return any ? 0 : -1;
}

static void parse_transfer_encoding(struct framing *f, struct http_str v)
{
    size_t pos = 0;
    struct http_str e;
    f->te_seen = 1;
    while (http_list_next(v, &pos, &e)) {
        size_t k = 0;
        while (k < e.n && http_is_tchar((unsigned char)e.p[k]))
            k++;
        struct http_str name = {e.p, k};
        if (k == e.n && http_str_eq_ci(name, "chunked")) {
            f->te_chunked++;
            f->te_last_chunked = 1;
        } else {
            /* chunked with parameters is malformed; other codings are not
             * implemented here. Either way chunked is no longer last. */
            if (http_str_eq_ci(name, "chunked"))
                f->te_chunked += 2;
            f->te_other = 1;
            f->te_last_chunked = 0;
        }
    }
}

static void parse_connection(struct framing *f, struct http_str v)
{
    size_t pos = 0;
    struct http_str e;
    while (http_list_next(v, &pos, &e)) {
        if (http_str_eq_ci(e, "close"))
            f->conn_close = 1;
        else if (http_str_eq_ci(e, "keep-alive"))
            f->conn_keep_alive = 1;
        else if (http_str_eq_ci(e, "upgrade"))
            f->conn_upgrade = 1;
    }
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2); checked by character class. */
static int valid_host(struct http_str v)
{
    static const char extra[] = "-._~%!$&'()*+,;=:[]";
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
            continue;
        if (!c || !memchr(extra, c, sizeof extra - 1))
            return 0;
    }
    return 1;
}

static void note_field(struct framing *f, const struct http_header *h, int *bad_cl)
{
    switch (h->name.n) {
    case 4:
        /* An empty Host is invalid for an http(s) target (RFC 9110 §4.2.1:
         * "a recipient ... MUST reject it"), so it counts as a bad one. */
        if (http_str_eq_ci(h->name, "host"))
            f->hosts += h->value.n && valid_host(h->value) ? 1 : 100;
        break;
    case 6:
        if (http_str_eq_ci(h->name, "expect") && http_str_eq_ci(h->value, "100-continue"))
            f->expect_continue = 1;
        break;
    case 10:
        if (http_str_eq_ci(h->name, "connection"))
            parse_connection(f, h->value);
        break;
    case 14:
        if (http_str_eq_ci(h->name, "content-length") && parse_content_length(f, h->value) < 0)
            *bad_cl = 1;
        break;
    case 17:
        if (http_str_eq_ci(h->name, "transfer-encoding"))
            parse_transfer_encoding(f, h->value);
        break;
    default:
        break;
    }
}

/* request-target forms, RFC 9112 §3.2. */
static ssize_t parse_target(struct http_parser *p, struct http_request *req)
{
    struct http_str t = req->target;
    if (t.p[0] == '/') {
        const char *q = memchr(t.p, '?', t.n);
        req->path = (struct http_str){t.p, q ? (size_t)(q - t.p) : t.n};
        req->query = q ? (struct http_str){q + 1, t.n - (size_t)(q + 1 - t.p)} : (struct http_str){q, 0};
        return 0;
    }
    if (t.n == 1 && t.p[0] == '*') {
        /* asterisk-form is only for a server-wide OPTIONS (RFC 9112 §3.2.4). */
        if (req->method.n != 7 || memcmp(req->method.p, "OPTIONS", 7) != 0)
            return fail(p, 400, "asterisk-form outside OPTIONS");
        req->path = t;
        return 0;
    }
    if (req->method.n == 7 && memcmp(req->method.p, "CONNECT", 7) == 0) {
        /* authority-form: routed as an opaque path; no route will match. */
        req->path = t;
        return 0;
    }
    /* absolute-form: scheme "://" authority path-abempty [ "?" query ].
     * A server must accept it (RFC 9112 §3.2.2); the authority is ignored for
     * routing because the server has a single origin. */
    size_t i = 0;
    while (i < t.n && t.p[i] != ':')
        i++;
    struct http_str scheme = {t.p, i};
    if (!(http_str_eq_ci(scheme, "http") || http_str_eq_ci(scheme, "https")) || t.n - i < 3 ||
        memcmp(t.p + i, "://", 3) != 0)
        return fail(p, 400, "malformed request-target");
    i += 3;
    size_t auth = i;
    while (i < t.n && t.p[i] != '/' && t.p[i] != '?')
        i++;
    if (i == auth)
        return fail(p, 400, "empty authority");
    size_t pstart = i;
    while (i < t.n && t.p[i] != '?')
        i++;
    if (i == pstart)
        req->path = (struct http_str){"/", 1};
    else
        req->path = (struct http_str){t.p + pstart, i - pstart};
    req->query = i < t.n ? (struct http_str){t.p + i + 1, t.n - i - 1} : (struct http_str){t.p + i, 0};
    return 0;
}

static ssize_t parse_request_line(struct http_parser *p, const char *buf, size_t start, size_t end,
                                  struct http_request *req)
{
    size_t i = start;
    while (i < end && http_is_tchar((unsigned char)buf[i]))
        i++;
    if (i == start || i >= end || buf[i] != ' ')
        return fail(p, 400, "malformed method");
    req->method = (struct http_str){buf + start, i - start};
    size_t t0 = ++i;
    /* The target is visible ASCII; no fragment is ever sent (RFC 9112 §3.2). */
    while (i < end && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f && buf[i] != '#')
        i++;
    if (i == t0 || i >= end || buf[i] != ' ')
        return fail(p, 400, "malformed request-target");
    req->target = (struct http_str){buf + t0, i - t0};
    i++;
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
    if (end - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 6] != '.')
        return fail(p, 400, "malformed HTTP-version");
    unsigned char major = (unsigned char)buf[i + 5], minor = (unsigned char)buf[i + 7];
    if (major < '0' || major > '9' || minor < '0' || minor > '9')
        return fail(p, 400, "malformed HTTP-version");
    if (major != '1')
        return fail(p, 505, "HTTP version not supported");
    /* A higher minor version of a major version we implement is handled as
     * the highest we know (RFC 9110 §6.2). */
    req->minor_version = minor == '0' ? 0 : 1;
    return parse_target(p, req);
}

static ssize_t parse_head(struct http_parser *p, const char *buf, size_t head_len, struct http_request *req,
                          struct http_header *hdrs, size_t max_hdrs, const struct http_limits *lim)
{
    size_t start = 0;
    while (start + 1 < head_len && buf[start] == '\r' && buf[start + 1] == '\n')
        start += 2;
    memset(req, 0, sizeof *req);
    req->headers = hdrs;
    req->content_length = -1;
    req->head_len = head_len;
    ssize_t r = parse_request_line(p, buf, start, p->first_line_end, req);
    if (r < 0)
        return r;

    size_t cap = max_hdrs < lim->max_headers ? max_hdrs : lim->max_headers;
    struct framing f;
    memset(&f, 0, sizeof f);
    int bad_cl = 0;
    size_t i = p->first_line_end + 2;
    const size_t end = head_len - 2; /* the final empty line's CR */
    while (i < end) {
        const char *cr = memchr(buf + i, '\r', end - i);
        size_t le = (size_t)(cr - buf); /* the scan phase guarantees a CRLF */
        if (buf[le + 1] != '\n')
            return fail(p, 400, "bare CR");
        /* obs-fold: a line starting with whitespace continues the previous
         * one; a server may reject it with 400 (RFC 9112 §5.2). */
        if (http_is_ows((unsigned char)buf[i]))
            return fail(p, 400, "obsolete line folding");
        size_t k = i;
        while (k < le && http_is_tchar((unsigned char)buf[k]))
            k++;
        /* No whitespace is allowed between field name and colon
         * (RFC 9112 §5.1): it has been used for request smuggling. */
        if (k == i || k >= le || buf[k] != ':')
            return fail(p, 400, "malformed field line");
        struct http_header h;
        h.name = (struct http_str){buf + i, k - i};
        k++;
        while (k < le && http_is_ows((unsigned char)buf[k]))
            k++;
        size_t vs = k;
        for (; k < le; k++)
            if (!is_field_char((unsigned char)buf[k]))
                return fail(p, 400, "invalid character in field value");
        size_t ve = le;
        while (ve > vs && http_is_ows((unsigned char)buf[ve - 1]))
            ve--;
        h.value = (struct http_str){buf + vs, ve - vs};
        if (req->nheaders >= cap)
            return fail(p, 431, "too many header fields");
        hdrs[req->nheaders++] = h;
        note_field(&f, &h, &bad_cl);
        i = le + 2;
    }

    /* Host: exactly one, required in HTTP/1.1 (RFC 9112 §3.2). */
    if (f.hosts > 1 || (req->minor_version == 1 && f.hosts == 0))
        return fail(p, 400, "missing, duplicate or invalid Host");
    if (bad_cl)
        return fail(p, 400, "invalid Content-Length");
    if (f.te_seen) {
        /* Transfer-Encoding with Content-Length is a smuggling vector; reject
         * rather than pick one (RFC 9112 §6.1 and 6.3). HTTP/1.0 has no
         * transfer codings, so the framing is faulty there too. */
        if (f.cl_seen)
            return fail(p, 400, "both Content-Length and Transfer-Encoding");
        if (req->minor_version == 0)
            return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
        if (f.te_chunked > 1 || (f.te_chunked && !f.te_last_chunked) || (!f.te_chunked && !f.te_other))
            return fail(p, 400, "chunked is not the final transfer coding");
        if (f.te_other)
            return fail(p, 501, "transfer coding not implemented");
        req->chunked = 1;
    } else if (f.cl_seen) {
        if ((uint64_t)f.cl > lim->max_body)
            return fail(p, 413, "Content-Length over the body limit");
        req->content_length = f.cl;
    }
    req->keep_alive = req->minor_version == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
    req->upgrade = f.conn_upgrade;
    req->expect_continue = req->minor_version == 1 && f.expect_continue;
    return (ssize_t)head_len;
}

ssize_t http_parse_request(struct http_parser *p, const char *buf, size_t len, struct http_request *req,
                           struct http_header *hdrs, size_t max_hdrs, const struct http_limits *lim)
{
    if (p->status)
        return RT_PARSE_ERROR;
    size_t i = p->scanned;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl) {
            i = len;
            break;
        }
        size_t pos = (size_t)(nl - buf);
        /* Lines end with CRLF. A bare LF may be accepted (RFC 9112 §2.2), but
         * accepting it lets two parsers disagree on where a line ends, so it
         * is rejected like a bare CR. */
        if (pos == p->line_start || buf[pos - 1] != '\r')
            return fail(p, 400, "bare LF");
        size_t line_len = pos - 1 - p->line_start;
        if (!p->first_line_end) {
            if (pos - 1 > lim->max_request_line)
                return fail(p, 414, "request-line too long");
            /* Empty lines before the request-line are ignored (RFC 9112 §2.2);
             * they count against the request-line limit. */
            if (line_len) {
                p->first_line_end = pos - 1;
                struct http_request rl;
                memset(&rl, 0, sizeof rl);
                if (parse_request_line(p, buf, p->line_start, pos - 1, &rl) < 0)
                    return RT_PARSE_ERROR;
                p->is_head = rl.method.n == 4 && memcmp(rl.method.p, "HEAD", 4) == 0;
            }
        } else if (line_len == 0) {
            p->scanned = pos + 1;
            ssize_t r = parse_head(p, buf, pos + 1, req, hdrs, max_hdrs, lim);
            return r;
        } else {
            if (++p->nlines > lim->max_headers)
                return fail(p, 431, "too many header fields");
            if (pos + 1 - (p->first_line_end + 2) > lim->max_header_bytes)
                return fail(p, 431, "header section too large");
        }
        p->line_start = pos + 1;
        i = pos + 1;
    }
    p->scanned = i;
    if (!p->first_line_end) {
        if (len > lim->max_request_line + 1)
            return fail(p, 414, "request-line too long");
    } else if (len - (p->first_line_end + 2) > lim->max_header_bytes + 1) {
        return fail(p, 431, "header section too large");
    }
    return RT_PARSE_INCOMPLETE;
}
