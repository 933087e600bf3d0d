#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "base64.h"
#include "rt.h"
#include "util.h"
#include "ws/handshake.h"

/* A request built from (name, value) pairs whose strings each sit right
 * before a PROT_NONE page, so that reading past any view crashes. */
#define MAX_H 24

struct req {
    struct http_request r;
    struct http_header h[MAX_H];
    const char *names[MAX_H];
    const char *values[MAX_H];
    size_t n;
    const char *method;
    int minor;
    struct guard g[2 * MAX_H + 1];
};

static void req_init(struct req *q)
{
    memset(q, 0, sizeof *q);
    q->method = "GET";
    q->minor = 1;
    /* §1.2's example request. */
    static const char *base[][2] = {
        {"Host", "server.example.com"},
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Version", "13"},
    };
    for (size_t i = 0; i < 5; i++) {
        q->names[q->n] = base[i][0];
        q->values[q->n++] = base[i][1];
    }
}

static void req_add(struct req *q, const char *name, const char *value)
{
    ck_assert_uint_lt(q->n, MAX_H);
    q->names[q->n] = name;
    q->values[q->n++] = value;
}

static void req_del(struct req *q, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (strcasecmp(q->names[i], name) == 0)
            continue;
        q->names[k] = q->names[i];
        q->values[k++] = q->values[i];
    }
    q->n = k;
}

static void req_set(struct req *q, const char *name, const char *value)
{
    req_del(q, name);
    req_add(q, name, value);
}

static struct http_str guarded(struct guard *g, const char *s)
{
    size_t n = strlen(s);
    return (struct http_str){(const char *)guard_place(g, s, n), n};
}

static const struct http_request *req_build(struct req *q)
{
    for (size_t i = 0; i < q->n; i++) {
        q->h[i].name = guarded(&q->g[2 * i], q->names[i]);
        q->h[i].value = guarded(&q->g[2 * i + 1], q->values[i]);
    }
    q->r.method = guarded(&q->g[2 * MAX_H], q->method);
    q->r.target = q->r.path = (struct http_str){"/chat", 5};
    q->r.minor_version = q->minor;
    q->r.headers = q->h;
    q->r.nheaders = q->n;
    q->r.content_length = -1;
    return &q->r;
}

static void req_free(struct req *q)
{
    for (size_t i = 0; i < 2 * MAX_H + 1; i++)
        guard_free(&q->g[i]);
}

static int check(struct req *q, const struct ws_handshake_config *cfg, struct ws_handshake *hs)
{
    int rc = ws_handshake_check(req_build(q), cfg, hs);
    ck_assert_int_eq(rc, hs->status == 101 ? 0 : SNOW_EPROTOCOL);
    return hs->status;
}

/* Writes the refusal and checks its shape: status line, Connection, a
 * Content-Length that matches the body. */
static void check_refusal(const struct ws_handshake *hs, int status, const char *must_have)
{
    char buf[WS_HANDSHAKE_RESPONSE_MAX + 1];
    int n = ws_handshake_write_reject(hs, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    char line[64];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    ck_assert(strncmp(buf, line, strlen(line)) == 0);
    ck_assert_ptr_nonnull(strstr(buf, "\r\nConnection: "));
    ck_assert_ptr_nonnull(strstr(buf, "close\r\n"));
    if (must_have)
        ck_assert_msg(strstr(buf, must_have) != NULL, "%s lacks %s", buf, must_have);
    const char *body = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    body += 4;
    size_t clen = 0;
    ck_assert_int_eq(sscanf(strstr(buf, "Content-Length: "), "Content-Length: %zu", &clen), 1);
    ck_assert_uint_eq(clen, strlen(body));
    ck_assert_uint_gt(clen, 1);
    ck_assert_ptr_null(strstr(buf, "Sec-WebSocket-Accept"));
    /* A buffer one byte short is refused whole. */
    ck_assert_int_eq(ws_handshake_write_reject(hs, buf, (size_t)n - 1), -ENOBUFS);
    ck_assert_int_eq(ws_handshake_write_101(hs, buf, sizeof buf), -EINVAL);
}

START_TEST(test_accept_vector)
{
    char out[WS_ACCEPT_LEN + 1];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/* The accept key against BearSSL's portable SHA-1 for keys of every
 * length the one-shot path takes (0..83 bytes: one or two blocks) and past
 * it, with varied bytes: the hardware path, where the CPU has it, must give
 * the same digest. */
START_TEST(test_accept_matches_portable_sha1)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char key[140];
    uint32_t x = 2463534242u;
    for (size_t n = 0; n < sizeof key; n++) {
        for (int round = 0; round < 8; round++) {
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                key[i] = (char)(33 + x % 94);
            }
            br_sha1_context h;
            unsigned char d[br_sha1_SIZE];
            br_sha1_init(&h);
            br_sha1_update(&h, key, n);
            br_sha1_update(&h, guid, sizeof guid - 1);
            br_sha1_out(&h, d);
            char want[WS_ACCEPT_LEN + 1], got[WS_ACCEPT_LEN + 1];
            want[rt_base64_encode(want, d, sizeof d)] = '\0';
            ws_accept_key(key, n, got);
            ck_assert_msg(strcmp(got, want) == 0, "key of %zu bytes: %s, want %s", n, got, want);
        }
    }
}
END_TEST

START_TEST(test_rfc_request_accepted)
{
    struct req q;
    struct ws_handshake hs;
    char buf[WS_HANDSHAKE_RESPONSE_MAX];
    req_init(&q);
    ck_assert_int_eq(check(&q, NULL, &hs), 101);
    ck_assert_str_eq(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_uint_eq(hs.protocol.n, 0);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";
    int n = ws_handshake_write_101(&hs, buf, sizeof buf);
    ck_assert_int_eq(n, (int)strlen(want));
    ck_assert(memcmp(buf, want, (size_t)n) == 0);
    ck_assert_int_eq(ws_handshake_write_101(&hs, buf, (size_t)n - 1), -ENOBUFS);
    ck_assert_int_eq(ws_handshake_write_reject(&hs, buf, sizeof buf), -EINVAL);
    req_free(&q);
}
END_TEST

/* One row per line of the table in handshake.c. */
enum edit { SET, DEL, ADD };
static const struct {
    const char *name;
    enum edit edit;
    const char *header;
    const char *value;
    int status;
    enum ws_reject why;
    const char *must_have;
} rows[] = {
    {"POST", SET, NULL, "POST", 405, WS_REJECT_METHOD, "Allow: GET\r\n"},
    {"lowercase get", SET, NULL, "get", 405, WS_REJECT_METHOD, "Allow: GET\r\n"},
    {"HTTP/1.0", SET, NULL, NULL, 400, WS_REJECT_HTTP_VERSION, NULL},
    {"no Host", DEL, "Host", NULL, 400, WS_REJECT_HOST, NULL},
    {"empty Host", SET, "Host", "", 400, WS_REJECT_HOST, NULL},
    {"two Hosts", ADD, "Host", "other.example.com", 400, WS_REJECT_HOST, NULL},
    {"no Upgrade", DEL, "Upgrade", NULL, 426, WS_REJECT_UPGRADE, "Upgrade: websocket\r\n"},
    {"Upgrade h2c", SET, "Upgrade", "h2c", 426, WS_REJECT_UPGRADE, "Sec-WebSocket-Version: 13\r\n"},
    {"Upgrade websocketx", SET, "Upgrade", "websocketx", 426, WS_REJECT_UPGRADE, NULL},
    {"no Connection", DEL, "Connection", NULL, 426, WS_REJECT_CONNECTION, "Connection: Upgrade, close\r\n"},
    {"Connection keep-alive", SET, "Connection", "keep-alive", 426, WS_REJECT_CONNECTION, NULL},
    {"Connection upgrades", SET, "Connection", "upgrades", 426, WS_REJECT_CONNECTION, NULL},
    {"no version", DEL, "Sec-WebSocket-Version", NULL, 426, WS_REJECT_VERSION, "Sec-WebSocket-Version: 13\r\n"},
    {"version 8", SET, "Sec-WebSocket-Version", "8", 426, WS_REJECT_VERSION, "Sec-WebSocket-Version: 13\r\n"},
    {"version 13, 8", SET, "Sec-WebSocket-Version", "13, 8", 426, WS_REJECT_VERSION, NULL},
    {"version 130", SET, "Sec-WebSocket-Version", "130", 426, WS_REJECT_VERSION, NULL},
    {"two versions", ADD, "Sec-WebSocket-Version", "13", 400, WS_REJECT_VERSION_DUP, NULL},
    {"no key", DEL, "Sec-WebSocket-Key", NULL, 400, WS_REJECT_KEY, NULL},
    {"two keys", ADD, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==", 400, WS_REJECT_KEY, NULL},
    {"key not base64", SET, "Sec-WebSocket-Key", "not base64 at all!!!!!==", 400, WS_REJECT_KEY, NULL},
    {"key of 15 bytes", SET, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA", 400, WS_REJECT_KEY, NULL},
    {"key of 17 bytes", SET, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=", 400, WS_REJECT_KEY, NULL},
    {"key unpadded", SET, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ", 400, WS_REJECT_KEY, NULL},
    {"key pad bits", SET, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==", 400, WS_REJECT_KEY, NULL},
    {"protocol not a token", ADD, "Sec-WebSocket-Protocol", "chat, sup er", 400, WS_REJECT_PROTOCOL, NULL},
    {"protocol with slash", ADD, "Sec-WebSocket-Protocol", "a/b", 400, WS_REJECT_PROTOCOL, NULL},
    {"extension no name", ADD, "Sec-WebSocket-Extensions", "; x", 400, WS_REJECT_EXTENSIONS, NULL},
    {"extension empty param", ADD, "Sec-WebSocket-Extensions", "permessage-deflate;", 400, WS_REJECT_EXTENSIONS, NULL},
    {"extension open quote", ADD, "Sec-WebSocket-Extensions", "x; a=\"b", 400, WS_REJECT_EXTENSIONS, NULL},
    {"extension empty value", ADD, "Sec-WebSocket-Extensions", "x; a=", 400, WS_REJECT_EXTENSIONS, NULL},
    {"extension junk", ADD, "Sec-WebSocket-Extensions", "x y", 400, WS_REJECT_EXTENSIONS, NULL},
    {"cross origin", ADD, "Origin", "http://evil.example.com", 403, WS_REJECT_ORIGIN, "Connection: close\r\n"},
    {"two origins", ADD, "Origin", "http://server.example.com\0", 403, WS_REJECT_ORIGIN, NULL},
};

START_TEST(test_refusal_rows)
{
    struct req q;
    struct ws_handshake hs;
    req_init(&q);
    if (!rows[_i].header) {
        if (rows[_i].value)
            q.method = rows[_i].value;
        else
            q.minor = 0;
    } else if (rows[_i].edit == DEL) {
        req_del(&q, rows[_i].header);
    } else if (rows[_i].edit == SET) {
        req_set(&q, rows[_i].header, rows[_i].value);
    } else {
        req_add(&q, rows[_i].header, rows[_i].value);
    }
    if (rows[_i].why == WS_REJECT_ORIGIN && strcmp(rows[_i].name, "two origins") == 0)
        req_add(&q, "Origin", "http://server.example.com");
    ck_assert_msg(check(&q, NULL, &hs) == rows[_i].status, "%s: got %d", rows[_i].name, hs.status);
    ck_assert_int_eq(hs.reject, rows[_i].why);
    check_refusal(&hs, rows[_i].status, rows[_i].must_have);
    req_free(&q);
}
END_TEST

START_TEST(test_header_lists_accepted)
{
    struct req q;
    struct ws_handshake hs;
    req_init(&q);
    req_set(&q, "Upgrade", "foo/2, WebSocket");
    req_set(&q, "Connection", "keep-alive,  UPGRADE ");
    ck_assert_int_eq(check(&q, NULL, &hs), 101);

    /* Connection split over two lines (RFC 9110 §5.3). */
    req_set(&q, "Connection", "keep-alive");
    req_add(&q, "connection", "Upgrade");
    req_set(&q, "upgrade", "websocket");
    ck_assert_int_eq(check(&q, NULL, &hs), 101);
    req_free(&q);
}
END_TEST

START_TEST(test_subprotocols)
{
    static const char *const prefs[] = {"chat", "superchat"};
    struct ws_handshake_config cfg = {.protocols = prefs, .nprotocols = 2};
    struct ws_handshake hs;
    struct req q;
    char buf[WS_HANDSHAKE_RESPONSE_MAX];

    /* The server's preference wins over the client's order. */
    req_init(&q);
    req_add(&q, "Sec-WebSocket-Protocol", "superchat, chat");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert(hs.protocol.n == 4 && memcmp(hs.protocol.p, "chat", 4) == 0);
    int n = ws_handshake_write_101(&hs, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert(memmem(buf, (size_t)n, "\r\nSec-WebSocket-Protocol: chat\r\n\r\n", 34) != NULL);

    /* Offers over two header lines. */
    req_set(&q, "Sec-WebSocket-Protocol", "v1.json");
    req_add(&q, "Sec-WebSocket-Protocol", "superchat");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert(hs.protocol.n == 9 && memcmp(hs.protocol.p, "superchat", 9) == 0);

    /* Names compare exactly. */
    req_del(&q, "Sec-WebSocket-Protocol");
    req_add(&q, "Sec-WebSocket-Protocol", "Chat, SUPERCHAT");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert_uint_eq(hs.protocol.n, 0);
    n = ws_handshake_write_101(&hs, buf, sizeof buf);
    ck_assert(memmem(buf, (size_t)n, "Sec-WebSocket-Protocol", 22) == NULL);

    /* No common protocol, or none configured: accepted without one. */
    req_set(&q, "Sec-WebSocket-Protocol", "mqtt");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert_uint_eq(hs.protocol.n, 0);
    req_set(&q, "Sec-WebSocket-Protocol", "chat");
    ck_assert_int_eq(check(&q, NULL, &hs), 101);
    ck_assert_uint_eq(hs.protocol.n, 0);
    req_free(&q);
}
END_TEST

static bool param_is(const struct ws_handshake *hs, size_t offer, size_t k, const char *name, const char *value)
{
    const struct ws_ext_offer *o = &hs->ext[offer];
    if (k >= o->nparams)
        return false;
    const struct ws_ext_param *p = &hs->ext_params[o->first + k];
    if (p->name.n != strlen(name) || memcmp(p->name.p, name, p->name.n) != 0)
        return false;
    if (!value)
        return p->value.p == NULL;
    return p->value.n == strlen(value) && memcmp(p->value.p, value, p->value.n) == 0;
}

START_TEST(test_extension_offers)
{
    struct ws_handshake hs;
    struct req q;
    char buf[WS_HANDSHAKE_RESPONSE_MAX];
    req_init(&q);
    req_add(&q, "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits, permessage-deflate ;server_no_context_takeover; "
            "client_max_window_bits=10");
    req_add(&q, "Sec-WebSocket-Extensions", "x-custom; q=\"a,b;c\"");
    ck_assert_int_eq(check(&q, NULL, &hs), 101);
    ck_assert_uint_eq(hs.next, 3);
    ck_assert(!hs.ext_truncated);
    ck_assert(hs.ext[0].name.n == 18 && memcmp(hs.ext[0].name.p, "permessage-deflate", 18) == 0);
    ck_assert_uint_eq(hs.ext[0].nparams, 1);
    ck_assert(param_is(&hs, 0, 0, "client_max_window_bits", NULL));
    ck_assert_uint_eq(hs.ext[1].nparams, 2);
    ck_assert(param_is(&hs, 1, 0, "server_no_context_takeover", NULL));
    ck_assert(param_is(&hs, 1, 1, "client_max_window_bits", "10"));
    ck_assert(hs.ext[2].name.n == 8 && memcmp(hs.ext[2].name.p, "x-custom", 8) == 0);
    ck_assert(param_is(&hs, 2, 0, "q", "a,b;c"));
    /* Nothing is accepted, so the 101 names no extension. */
    int n = ws_handshake_write_101(&hs, buf, sizeof buf);
    ck_assert(memmem(buf, (size_t)n, "Extensions", 10) == NULL);

    /* More offers than recorded: noted, still accepted. */
    req_set(&q, "Sec-WebSocket-Extensions", "a, b, c, d, e, f, g, h, i; x=1, j");
    ck_assert_int_eq(check(&q, NULL, &hs), 101);
    ck_assert_uint_eq(hs.next, WS_MAX_EXT_OFFERS);
    ck_assert(hs.ext_truncated);
    req_free(&q);
}
END_TEST

static const struct {
    const char *host;
    const char *origin; /* NULL: none sent */
    bool secure;
    bool ok;
} same_origin_rows[] = {
    {"server.example.com", NULL, false, true},
    {"server.example.com", "http://server.example.com", false, true},
    {"server.example.com", "HTTP://Server.Example.COM", false, true},
    {"server.example.com", "https://server.example.com", true, true},
    {"server.example.com:80", "http://server.example.com", false, true},
    {"server.example.com", "http://server.example.com:80", false, true},
    {"server.example.com:8080", "http://server.example.com:8080", false, true},
    {"[::1]:9000", "http://[::1]:9000", false, true},
    {"server.example.com", "http://evil.example.com", false, false},
    {"server.example.com", "http://server.example.com.evil.com", false, false},
    {"server.example.com", "http://server.example.com:8080", false, false},
    {"server.example.com:8080", "http://server.example.com", false, false},
    {"server.example.com", "https://server.example.com", false, false},
    {"server.example.com", "null", false, false},
    {"server.example.com", "", false, false},
    {"server.example.com", "http://", false, false},
    {"server.example.com", "http://server.example.com/path", false, false},
    {"server.example.com", "http://user@server.example.com", false, false},
    {"server.example.com", "http://server.example.com:99999", false, false},
    {"server.example.com", "foo://server.example.com", false, false},
};

START_TEST(test_origin_same)
{
    struct ws_handshake_config cfg = {.secure = same_origin_rows[_i].secure};
    struct ws_handshake hs;
    struct req q;
    req_init(&q);
    req_set(&q, "Host", same_origin_rows[_i].host);
    if (same_origin_rows[_i].origin)
        req_add(&q, "Origin", same_origin_rows[_i].origin);
    int status = check(&q, &cfg, &hs);
    ck_assert_msg(status == (same_origin_rows[_i].ok ? 101 : 403), "Host %s Origin %s: %d",
                  same_origin_rows[_i].host, same_origin_rows[_i].origin, status);
    if (!same_origin_rows[_i].ok)
        check_refusal(&hs, 403, NULL);
    req_free(&q);
}
END_TEST

START_TEST(test_origin_require)
{
    struct ws_handshake_config cfg = {.require_origin = true};
    struct ws_handshake hs;
    struct req q;
    req_init(&q);
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    req_add(&q, "Origin", "http://server.example.com");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert(hs.origin.n == 25);
    req_free(&q);
}
END_TEST

START_TEST(test_origin_any)
{
    struct ws_handshake_config cfg = {.origin_policy = WS_ORIGIN_ANY};
    struct ws_handshake hs;
    struct req q;
    req_init(&q);
    req_add(&q, "Origin", "http://evil.example.com");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    req_free(&q);
}
END_TEST

START_TEST(test_origin_list)
{
    static const char *const allowed[] = {"https://app.example.com", "http://localhost:3000"};
    struct ws_handshake_config cfg = {.origin_policy = WS_ORIGIN_LIST, .origins = allowed, .norigins = 2};
    struct ws_handshake hs;
    struct req q;
    req_init(&q);
    ck_assert_int_eq(check(&q, &cfg, &hs), 101); /* no Origin: not a browser */
    req_set(&q, "Origin", "https://APP.example.com");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    req_set(&q, "Origin", "http://localhost:3000");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    req_set(&q, "Origin", "http://localhost:3001");
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    /* The list replaces same-origin: Host's own origin is not implied. */
    req_set(&q, "Origin", "http://server.example.com");
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    cfg.require_origin = true;
    req_del(&q, "Origin");
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    req_free(&q);
}
END_TEST

struct seen {
    int calls;
    char origin[64];
};

static bool decide(void *arg, struct http_str origin, const struct http_request *req)
{
    struct seen *s = arg;
    s->calls++;
    ck_assert_ptr_nonnull(req);
    snprintf(s->origin, sizeof s->origin, "%.*s", (int)origin.n, origin.p ? origin.p : "");
    return origin.n > 0 && memcmp(origin.p, "https://ok.", 11) == 0;
}

START_TEST(test_origin_callback)
{
    struct seen seen = {0};
    struct ws_handshake_config cfg = {.origin_policy = WS_ORIGIN_CALLBACK, .origin_fn = decide, .origin_arg = &seen};
    struct ws_handshake hs;
    struct req q;
    req_init(&q);
    req_add(&q, "Origin", "https://ok.example");
    ck_assert_int_eq(check(&q, &cfg, &hs), 101);
    ck_assert_str_eq(seen.origin, "https://ok.example");
    req_set(&q, "Origin", "https://no.example");
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    req_del(&q, "Origin");
    ck_assert_int_eq(check(&q, &cfg, &hs), 403);
    ck_assert_str_eq(seen.origin, "");
    ck_assert_int_eq(seen.calls, 3);
    /* The callback runs last: a bad request never reaches it. */
    req_set(&q, "Sec-WebSocket-Version", "8");
    ck_assert_int_eq(check(&q, &cfg, &hs), 426);
    ck_assert_int_eq(seen.calls, 3);
    req_free(&q);
}
END_TEST

Suite *handshake_suite(void)
{
    Suite *s = suite_create("handshake");
    TCase *tc = tcase_create("validate");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_accept_vector);
    tcase_add_test(tc, test_accept_matches_portable_sha1);
    tcase_add_test(tc, test_rfc_request_accepted);
    tcase_add_loop_test(tc, test_refusal_rows, 0, (int)(sizeof rows / sizeof rows[0]));
    tcase_add_test(tc, test_header_lists_accepted);
    suite_add_tcase(s, tc);

    tc = tcase_create("negotiate");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_subprotocols);
    tcase_add_test(tc, test_extension_offers);
    suite_add_tcase(s, tc);

    tc = tcase_create("origin");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_loop_test(tc, test_origin_same, 0, (int)(sizeof same_origin_rows / sizeof same_origin_rows[0]));
    tcase_add_test(tc, test_origin_require);
    tcase_add_test(tc, test_origin_any);
    tcase_add_test(tc, test_origin_list);
    tcase_add_test(tc, test_origin_callback);
    suite_add_tcase(s, tc);
    return s;
}
