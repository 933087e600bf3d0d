/*
 * ws_handshake.c: libFuzzer target for the opening-handshake validator
 * (ws_handshake_check over a request parsed by http_parse_request) and its
 * two response writers (RFC 6455 §4.2).
 *
 * Input: one configuration byte (origin policy, require_origin, secure,
 * which subprotocols the server offers, the callback's answer), then the
 * request bytes. The request is parsed whole; when it parses, the verdict
 * is compared with a reference model of §4.2.1 written here from the RFC:
 * the checks in the documented order, each from the header values alone.
 * Same-origin is compared as normalised host:port pairs. Then:
 *   - an accepted handshake has the reference Sec-WebSocket-Accept
 *     (SHA-1 from BearSSL, base64 written here), a key that is the
 *     request's only Sec-WebSocket-Key, the first server subprotocol the
 *     client offered; its 101 is a well-formed response carrying exactly
 *     those values; no refusal can be written for it;
 *   - a refused one has the status its reason maps to; its refusal is a
 *     complete response with that status, Connection: close, Allow: GET
 *     for 405, Upgrade and Sec-WebSocket-Version: 13 for 426, and a body
 *     of Content-Length bytes; no 101 can be written for it;
 *   - the extension offers recorded are views into the request.
 */
#include <bearssl.h>
#include <errno.h>
#include <string.h>

#include "fuzz_ref.h"
#include "http/parse.h"
#include "http/request.h"
#include "rt.h"
#include "ws/handshake.h"

#define MAX_HDRS 64

static const char *const server_protocols[][3] = {
    {NULL},
    {"chat", NULL},
    {"v2.chat", "chat", NULL},
    {"superchat", "CHAT", "chat"},
};

static const char *const allowed_origins[] = {"https://example.com", "http://localhost:8080"};

struct cb_arg {
    bool answer;
    int calls;
    struct http_str seen;
};

static bool origin_cb(void *arg, struct http_str origin, const struct http_request *req)
{
    (void)req;
    struct cb_arg *c = arg;
    c->calls++;
    c->seen = origin;
    return c->answer;
}

/* ---- reference pieces -------------------------------------------------- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static size_t count(const struct http_request *r, const char *name, const struct http_header **first)
{
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (eq_ci(r->headers[i].name.p, r->headers[i].name.n, name, strlen(name))) {
            if (!n)
                *first = &r->headers[i];
            n++;
        }
    return n;
}

/* Calls fn on every non-empty element of the comma lists (RFC 9110 §5.6.1)
 * of every field line called name; stops when fn returns true. */
static bool each_item(const struct http_request *r, const char *name, bool (*fn)(const char *, size_t, void *),
                      void *arg)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!eq_ci(r->headers[i].name.p, r->headers[i].name.n, name, strlen(name)))
            continue;
        const char *v = r->headers[i].value.p;
        size_t n = r->headers[i].value.n, a = 0;
        while (a <= n) {
            size_t b = a;
            while (b < n && v[b] != ',')
                b++;
            size_t s = a, e = b;
            while (s < e && is_ows(v[s]))
                s++;
            while (e > s && is_ows(v[e - 1]))
                e--;
            if (e > s && fn(v + s, e - s, arg))
                return true;
            a = b + 1;
        }
    }
    return false;
}

static bool item_is(const char *p, size_t n, void *want)
{
    return eq_ci(p, n, want, strlen(want));
}

static bool item_not_token(const char *p, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i]))
            return true;
    return false;
}

static bool item_exact(const char *p, size_t n, void *want)
{
    return strlen(want) == n && memcmp(p, want, n) == 0;
}

/* §4.1: the key is base64 of 16 bytes: 22 significant characters, the
 * last of which carries 2 zero bits (A, Q, g or w), then "==". */
static bool key_ok(struct http_str k)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!k.p[i] || !strchr(b64, k.p[i]))
            return false;
    return strchr("AQgw", k.p[21]) != NULL;
}

/* §9.1, one character class at a time:
 *   list  = [elem] *( OWS "," OWS [elem] )
 *   elem  = token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted ) ] ) */
static bool extensions_ok(const char *v, size_t n)
{
    size_t i = 0;
    enum { LIST, NAME_DONE, PARAM, PARAM_DONE, VALUE, VALUE_DONE } st = LIST;
    while (i < n) {
        char c = v[i];
        switch (st) {
        case LIST:
            if (c == ',' || is_ows(c)) {
                i++;
            } else if (is_tchar((unsigned char)c)) {
                while (i < n && is_tchar((unsigned char)v[i]))
                    i++;
                st = NAME_DONE;
            } else {
                return false;
            }
            break;
        case NAME_DONE:
        case PARAM_DONE:
        case VALUE_DONE:
            if (is_ows(c))
                i++;
            else if (c == ',')
                st = LIST, i++;
            else if (c == ';')
                st = PARAM, i++;
            else if (c == '=' && st == PARAM_DONE)
                st = VALUE, i++;
            else
                return false;
            break;
        case PARAM:
            if (is_ows(c)) {
                i++;
            } else if (is_tchar((unsigned char)c)) {
                while (i < n && is_tchar((unsigned char)v[i]))
                    i++;
                st = PARAM_DONE;
            } else {
                return false;
            }
            break;
        case VALUE:
            if (is_ows(c)) {
                i++;
            } else if (c == '"') {
                for (i++;; i++) {
                    if (i >= n)
                        return false;
                    if (v[i] == '\\')
                        i++;
                    else if (v[i] == '"')
                        break;
                }
                i++;
                st = VALUE_DONE;
            } else if (is_tchar((unsigned char)c)) {
                while (i < n && is_tchar((unsigned char)v[i]))
                    i++;
                st = VALUE_DONE;
            } else {
                return false;
            }
            break;
        }
    }
    return st != PARAM && st != VALUE;
}

/* "host[:port]" -> the host and a port (dflt when absent); false when it
 * is not of that shape. */
static bool hostport(const char *p, size_t n, long dflt, struct http_str *host, long *port)
{
    size_t end;
    if (n && p[0] == '[') {
        const char *c = memchr(p, ']', n);
        if (!c)
            return false;
        end = (size_t)(c - p) + 1;
    } else {
        for (end = 0; end < n && p[end] != ':'; end++)
            if (p[end] == '/' || p[end] == '@' || p[end] == '?' || p[end] == '#')
                return false;
    }
    if (end == 0)
        return false;
    *host = (struct http_str){p, end};
    *port = dflt;
    if (end == n)
        return true;
    if (p[end] != ':' || n - end - 1 == 0 || n - end - 1 > 5)
        return false;
    long v = 0;
    for (size_t i = end + 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = v;
    return true;
}

/* RFC 6454 §5: same scheme-default-normalised host and port. */
static bool same_origin(struct http_str origin, struct http_str host, bool secure)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= origin.n && !sep; i++)
        if (memcmp(origin.p + i, "://", 3) == 0)
            sep = origin.p + i;
    if (!sep)
        return false;
    size_t sn = (size_t)(sep - origin.p);
    long dflt = -1;
    if (eq_ci(origin.p, sn, "http", 4) || eq_ci(origin.p, sn, "ws", 2))
        dflt = 80;
    if (eq_ci(origin.p, sn, "https", 5) || eq_ci(origin.p, sn, "wss", 3))
        dflt = 443;
    struct http_str oh, hh;
    long op, hp;
    if (!hostport(sep + 3, origin.n - sn - 3, dflt, &oh, &op) || !hostport(host.p, host.n, secure ? 443 : 80, &hh, &hp))
        return false;
    return op >= 0 && op == hp && eq_ci(oh.p, oh.n, hh.p, hh.n);
}

struct model {
    enum ws_reject reject;
    const char *protocol; /* the subprotocol to choose */
};

static struct model reference(const struct http_request *r, const struct ws_handshake_config *cfg,
                              struct cb_arg *cb)
{
    struct model m = {WS_ACCEPTED, NULL};
    const struct http_header *h;
    if (!(r->method.n == 3 && memcmp(r->method.p, "GET", 3) == 0))
        return m.reject = WS_REJECT_METHOD, m;
    if (r->minor_version < 1)
        return m.reject = WS_REJECT_HTTP_VERSION, m;
    if (count(r, "Host", &h) != 1 || h->value.n == 0)
        return m.reject = WS_REJECT_HOST, m;
    struct http_str host = h->value;
    if (!each_item(r, "Upgrade", item_is, "websocket"))
        return m.reject = WS_REJECT_UPGRADE, m;
    if (!each_item(r, "Connection", item_is, "upgrade"))
        return m.reject = WS_REJECT_CONNECTION, m;
    size_t nv = count(r, "Sec-WebSocket-Version", &h);
    if (nv > 1)
        return m.reject = WS_REJECT_VERSION_DUP, m;
    if (nv == 0 || h->value.n != 2 || memcmp(h->value.p, "13", 2) != 0)
        return m.reject = WS_REJECT_VERSION, m;
    if (count(r, "Sec-WebSocket-Key", &h) != 1 || !key_ok(h->value))
        return m.reject = WS_REJECT_KEY, m;
    if (each_item(r, "Sec-WebSocket-Protocol", item_not_token, NULL))
        return m.reject = WS_REJECT_PROTOCOL, m;
    for (size_t k = 0; k < cfg->nprotocols && !m.protocol; k++)
        if (each_item(r, "Sec-WebSocket-Protocol", item_exact, (void *)cfg->protocols[k]))
            m.protocol = cfg->protocols[k];
    for (size_t i = 0; i < r->nheaders; i++)
        if (eq_ci(r->headers[i].name.p, r->headers[i].name.n, "Sec-WebSocket-Extensions", 24) &&
            !extensions_ok(r->headers[i].value.p, r->headers[i].value.n))
            return m.reject = WS_REJECT_EXTENSIONS, m;
    size_t no = count(r, "Origin", &h);
    if (no > 1)
        return m.reject = WS_REJECT_ORIGIN, m;
    struct http_str origin = no ? h->value : (struct http_str){NULL, 0};
    bool ok;
    switch (cfg->origin_policy) {
    case WS_ORIGIN_ANY:
        ok = true;
        break;
    case WS_ORIGIN_CALLBACK:
        ok = cb->answer;
        break;
    case WS_ORIGIN_LIST:
        ok = !no ? !cfg->require_origin : false;
        for (size_t i = 0; no && i < cfg->norigins; i++)
            ok |= eq_ci(origin.p, origin.n, cfg->origins[i], strlen(cfg->origins[i]));
        break;
    default:
        ok = !no ? !cfg->require_origin : same_origin(origin, host, cfg->secure);
        break;
    }
    if (!ok)
        m.reject = WS_REJECT_ORIGIN;
    return m;
}

static void ref_accept(struct http_str key, char out[WS_ACCEPT_LEN + 1])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* §1.3 */
    uint8_t d[21] = {0};
    br_sha1_context c;
    br_sha1_init(&c);
    br_sha1_update(&c, key.p, key.n);
    br_sha1_update(&c, guid, sizeof guid - 1);
    br_sha1_out(&c, d);
    for (int i = 0, o = 0; i < 21; i += 3, o += 4) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o] = b64[v >> 18];
        out[o + 1] = b64[(v >> 12) & 63];
        out[o + 2] = b64[(v >> 6) & 63];
        out[o + 3] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    out[WS_ACCEPT_LEN] = '\0';
}

static bool has_line(const char *resp, size_t n, const char *line)
{
    size_t k = strlen(line);
    for (size_t i = 0; i + k <= n; i++)
        if ((i == 0 || resp[i - 1] == '\n') && memcmp(resp + i, line, k) == 0)
            return true;
    return false;
}

static bool inside(struct http_str s, const char *buf, size_t n)
{
    return s.n == 0 || (s.p >= buf && s.p + s.n <= buf + n);
}

static void check_101(const struct ws_handshake *hs)
{
    char resp[WS_HANDSHAKE_RESPONSE_MAX];
    int len = ws_handshake_write_101(hs, resp, sizeof resp);
    CHECK(len > 0 && (size_t)len < sizeof resp);
    size_t n = (size_t)len;
    CHECK(memcmp(resp, "HTTP/1.1 101 ", 13) == 0);
    CHECK(n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0);
    CHECK(memmem(resp, n, "\r\n\r\n", 4) == resp + n - 4);
    char want[64];
    snprintf(want, sizeof want, "Sec-WebSocket-Accept: %s\r\n", hs->accept);
    CHECK(has_line(resp, n, want));
    CHECK(has_line(resp, n, "Upgrade: websocket\r\n"));
    CHECK(has_line(resp, n, "Connection: Upgrade\r\n"));
    bool proto = memmem(resp, n, "Sec-WebSocket-Protocol: ", 24) != NULL;
    CHECK(proto == (hs->protocol.n > 0));
    CHECK(!memmem(resp, n, "Sec-WebSocket-Extensions", 24));
    char small[16];
    CHECK(ws_handshake_write_101(hs, small, sizeof small) == -ENOBUFS);
    CHECK(ws_handshake_write_reject(hs, resp, sizeof resp) == -EINVAL);
}

static void check_reject(const struct ws_handshake *hs)
{
    static const int status[] = {
        [WS_REJECT_METHOD] = 405,       [WS_REJECT_HTTP_VERSION] = 400, [WS_REJECT_HOST] = 400,
        [WS_REJECT_UPGRADE] = 426,      [WS_REJECT_CONNECTION] = 426,   [WS_REJECT_VERSION] = 426,
        [WS_REJECT_VERSION_DUP] = 400,  [WS_REJECT_KEY] = 400,          [WS_REJECT_PROTOCOL] = 400,
        [WS_REJECT_EXTENSIONS] = 400,   [WS_REJECT_ORIGIN] = 403,
    };
    CHECK(hs->status == status[hs->reject]);
    char resp[WS_HANDSHAKE_RESPONSE_MAX];
    int len = ws_handshake_write_reject(hs, resp, sizeof resp);
    CHECK(len > 0);
    size_t n = (size_t)len;
    char line[32];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", hs->status);
    CHECK(memcmp(resp, line, strlen(line)) == 0);
    const char *end = memmem(resp, n, "\r\n\r\n", 4);
    CHECK(end);
    size_t head = (size_t)(end - resp) + 4;
    const char *cl = memmem(resp, head, "\r\nContent-Length: ", 18);
    CHECK(cl);
    CHECK((size_t)strtoul(cl + 18, NULL, 10) == n - head);
    if (hs->status == 426) {
        CHECK(has_line(resp, head, "Sec-WebSocket-Version: 13\r\n"));
        CHECK(has_line(resp, head, "Upgrade: websocket\r\n"));
        CHECK(memmem(resp, head, "close\r\n", 7));
    } else {
        CHECK(has_line(resp, head, "Connection: close\r\n"));
    }
    CHECK(has_line(resp, head, "Allow: GET\r\n") == (hs->status == 405));
    CHECK(ws_handshake_write_101(hs, resp, sizeof resp) == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t c = data[0];
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    memcpy(buf, data + 1, n);

    struct http_limits lim;
    http_limits_default(&lim);
    struct http_header hdrs[MAX_HDRS];
    struct http_request req;
    struct http_parser p;
    http_parser_init(&p);
    ssize_t r = http_parse_request(&p, buf, n, &req, hdrs, MAX_HDRS, &lim);
    if (r <= 0) {
        free(buf);
        return 0;
    }

    struct cb_arg cb = {.answer = (c & 0x80) != 0};
    const char *const *protos = server_protocols[(c >> 4) & 3];
    size_t nprotos = 0;
    while (nprotos < 3 && protos[nprotos])
        nprotos++;
    struct ws_handshake_config cfg = {
        .protocols = protos,
        .nprotocols = nprotos,
        .origin_policy = (enum ws_origin_policy)(c & 3),
        .origins = allowed_origins,
        .norigins = 2,
        .origin_fn = origin_cb,
        .origin_arg = &cb,
        .require_origin = (c & 4) != 0,
        .secure = (c & 8) != 0,
    };

    struct ws_handshake hs;
    int rc = ws_handshake_check(&req, &cfg, &hs);
    struct model m = reference(&req, &cfg, &cb);
    CHECK(hs.reject == m.reject);
    CHECK((rc == 0) == (m.reject == WS_ACCEPTED));
    CHECK(rc == 0 || rc == SNOW_EPROTOCOL);

    if (rc == 0) {
        CHECK(hs.status == 101);
        const struct http_header *k;
        CHECK(count(&req, "Sec-WebSocket-Key", &k) == 1);
        CHECK(hs.key.p == k->value.p && hs.key.n == k->value.n);
        char want[WS_ACCEPT_LEN + 1];
        ref_accept(hs.key, want);
        CHECK(strcmp(hs.accept, want) == 0);
        if (m.protocol)
            CHECK(hs.protocol.n == strlen(m.protocol) && memcmp(hs.protocol.p, m.protocol, hs.protocol.n) == 0);
        else
            CHECK(hs.protocol.n == 0);
        CHECK(inside(hs.origin, buf, n));
        if (cfg.origin_policy == WS_ORIGIN_CALLBACK) {
            CHECK(cb.calls == 1);
            CHECK(cb.seen.n == hs.origin.n && cb.seen.p == hs.origin.p);
        }
        CHECK(hs.next <= WS_MAX_EXT_OFFERS && hs.nparams <= WS_MAX_EXT_PARAMS);
        for (unsigned i = 0; i < hs.next; i++) {
            CHECK(hs.ext[i].name.n > 0 && inside(hs.ext[i].name, buf, n));
            CHECK(hs.ext[i].first + hs.ext[i].nparams <= hs.nparams);
        }
        for (unsigned i = 0; i < hs.nparams; i++)
            CHECK(inside(hs.ext_params[i].name, buf, n) && inside(hs.ext_params[i].value, buf, n));
        check_101(&hs);
    } else {
        check_reject(&hs);
    }
    free(buf);
    return 0;
}
