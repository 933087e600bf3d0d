/*
 * router_test.c: route priority, 404 vs 405 with Allow, parameters,
 * wildcards, query strings, percent-decoding, middleware order and the
 * WebSocket route answers (426 / 501 / hand-over).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/parse.h"
#include "http/router.h"

static char called[64];

static void h_named(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    snprintf(called, sizeof called, "%s", (const char *)arg);
    snow_http_res_send(res, 200, "text/plain", arg, strlen(arg));
}

/* A request built from a raw head, parsed for real. */
struct treq {
    char raw[2048];
    struct http_header hdrs[32];
    char scratch[2048];
    SnowHttpReq req;
    SnowHttpRes res;
    struct http_match m;
};

static void mkreq(struct treq *t, const char *method, const char *target, const char *extra)
{
    snprintf(t->raw, sizeof t->raw, "%s %s HTTP/1.1\r\nHost: h\r\n%s\r\n", method, target, extra ? extra : "");
    struct http_parser p;
    struct http_limits lim;
    http_limits_default(&lim);
    http_parser_init(&p);
    memset(&t->req, 0, sizeof t->req);
    ssize_t r = http_parse_request(&p, t->raw, strlen(t->raw), &t->req.r, t->hdrs, 32, &lim);
    ck_assert_msg(r > 0, "parse %s %s: %d", method, target, p.status);
    t->req.scratch = t->scratch;
    http_res_fini(&t->res);
    http_res_init(&t->res);
}

/* Looks up and runs; returns the status and leaves the response in t. */
static int run(SnowRouter *r, struct treq *t, const char *method, const char *target, const char *extra)
{
    mkreq(t, method, target, extra);
    called[0] = 0;
    http_router_lookup(r, &t->req, &t->m);
    if (t->m.kind == HTTP_ROUTE_UPGRADE)
        return 101;
    http_router_run(r, &t->m, &t->req, &t->res, 0);
    return t->res.status;
}

static int has_header(const SnowHttpRes *res, const char *line)
{
    size_t n = strlen(line);
    for (size_t i = 0; i + n <= res->hdrs_len; i++)
        if (memcmp(res->hdrs + i, line, n) == 0)
            return 1;
    return 0;
}

static const char *param(const struct treq *t, const char *name)
{
    static char buf[256];
    size_t n;
    const char *v = snow_http_req_param(&t->req, name, &n);
    if (!v)
        return NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)n, v);
    return buf;
}

static const char *query(const struct treq *t, const char *name)
{
    static char buf[256];
    size_t n;
    const char *v = snow_http_req_query(&t->req, name, &n);
    if (!v)
        return NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)n, v);
    return buf;
}

START_TEST(priority)
{
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_route(r, "GET", "/users/me", h_named, "exact"), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/users/:id", h_named, "param"), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/users/*", h_named, "wild"), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/users/:id/posts", h_named, "posts"), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/", h_named, "root"), 0);
    ck_assert_int_eq(snow_router_route(r, "GET", "/users/me", h_named, "dup"), SNOW_EHTTP_ROUTE_EXISTS);
    ck_assert_int_eq(snow_router_route(r, "GET", "users", h_named, "x"), -EINVAL);
    ck_assert_int_eq(snow_router_route(r, "GET", "/a/*/b", h_named, "x"), -EINVAL);
    ck_assert_int_eq(snow_router_route(r, "G T", "/a", h_named, "x"), -EINVAL);
    ck_assert_int_eq(snow_router_route(r, "GET", "/a/:", h_named, "x"), -EINVAL);
    static struct treq t;
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(run(r, &t, "GET", "/users/me", NULL), 200);
    ck_assert_str_eq(called, "exact");
    ck_assert_int_eq(run(r, &t, "GET", "/users/42", NULL), 200);
    ck_assert_str_eq(called, "param");
    ck_assert_str_eq(param(&t, "id"), "42");
    ck_assert_int_eq(run(r, &t, "GET", "/users/42/posts", NULL), 200);
    ck_assert_str_eq(called, "posts");
    ck_assert_int_eq(run(r, &t, "GET", "/users/42/other", NULL), 200);
    ck_assert_str_eq(called, "wild");
    ck_assert_str_eq(param(&t, "*"), "42/other");
    ck_assert_int_eq(run(r, &t, "GET", "/users/me/posts", NULL), 200); /* backtracks from "me" to :id */
    ck_assert_str_eq(called, "posts");
    ck_assert_str_eq(param(&t, "id"), "me");
    ck_assert_int_eq(run(r, &t, "GET", "/", NULL), 200);
    ck_assert_str_eq(called, "root");
    ck_assert_int_eq(run(r, &t, "HEAD", "/users/me", NULL), 200); /* GET answers HEAD */
    ck_assert_str_eq(called, "exact");
    ck_assert_int_eq(run(r, &t, "GET", "/users", NULL), 404);
    ck_assert_int_eq(run(r, &t, "GET", "/nope", NULL), 404);
    ck_assert_int_eq(run(r, &t, "GET", "/users//posts", NULL), 200); /* empty segment is no :id */
    ck_assert_str_eq(called, "wild");
    http_res_fini(&t.res);
    snow_router_free(r);
}
END_TEST

START_TEST(not_allowed)
{
    SnowRouter *r = snow_router_new();
    snow_router_route(r, "GET", "/items/:id", h_named, "get");
    snow_router_route(r, "DELETE", "/items/:id", h_named, "del");
    snow_router_route(r, "POST", "/items/special", h_named, "post");
    static struct treq t;
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(run(r, &t, "PUT", "/items/1", NULL), 405);
    ck_assert(has_header(&t.res, "Allow: GET, HEAD, DELETE\r\n"));
    ck_assert_int_eq(run(r, &t, "PUT", "/items/special", NULL), 405);
    ck_assert(has_header(&t.res, "Allow: POST, GET, HEAD, DELETE\r\n"));
    ck_assert_int_eq(run(r, &t, "GET", "/items/special", NULL), 200);
    ck_assert_str_eq(called, "get");
    ck_assert_int_eq(run(r, &t, "POST", "/items/special", NULL), 200);
    ck_assert_str_eq(called, "post");
    ck_assert_int_eq(run(r, &t, "PUT", "/other", NULL), 404);
    ck_assert_int_eq(run(r, &t, "OPTIONS", "/items/1", NULL), 204);
    ck_assert(has_header(&t.res, "Allow: GET, HEAD, DELETE\r\n"));
    ck_assert_int_eq(run(r, &t, "get", "/items/1", NULL), 405); /* methods are case-sensitive */
    http_res_fini(&t.res);
    snow_router_free(r);
}
END_TEST

START_TEST(decoding)
{
    SnowRouter *r = snow_router_new();
    snow_router_route(r, "GET", "/files/:name", h_named, "file");
    snow_router_route(r, "GET", "/static/*", h_named, "static");
    static struct treq t;
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(run(r, &t, "GET", "/files/a%20b%2Fc?x=1&y=hello+world&z=%41%42&empty=&flag&x=2", NULL), 200);
    ck_assert_str_eq(param(&t, "name"), "a b/c");
    ck_assert_str_eq(query(&t, "x"), "1");
    ck_assert_str_eq(query(&t, "y"), "hello world");
    ck_assert_str_eq(query(&t, "z"), "AB");
    ck_assert_str_eq(query(&t, "empty"), "");
    ck_assert_str_eq(query(&t, "flag"), "");
    ck_assert_ptr_null(query(&t, "nope"));
    ck_assert_ptr_null(param(&t, "nope"));
    ck_assert_int_eq(run(r, &t, "GET", "/files/a%2", NULL), 400);
    ck_assert_int_eq(run(r, &t, "GET", "/files/a%zz", NULL), 400);
    ck_assert_int_eq(run(r, &t, "GET", "/files/ok?q=%g1", NULL), 400);
    ck_assert_int_eq(run(r, &t, "GET", "/static/css/site%20x.css", NULL), 200);
    ck_assert_str_eq(param(&t, "*"), "css/site x.css");
    ck_assert_int_eq(run(r, &t, "GET", "/static/", NULL), 200);
    ck_assert_str_eq(param(&t, "*"), "");
    ck_assert_int_eq(run(r, &t, "GET", "/static", NULL), 404);
    /* Request accessors. */
    ck_assert_int_eq(run(r, &t, "GET", "/files/x?k=v", "X-Thing:  val  \r\n"), 200);
    size_t n;
    const char *v = snow_http_req_header(&t.req, "x-thing", &n);
    ck_assert(v && n == 3 && memcmp(v, "val", 3) == 0);
    ck_assert_ptr_null(snow_http_req_header(&t.req, "absent", &n));
    ck_assert_uint_eq(n, 0);
    v = snow_http_req_method(&t.req, &n);
    ck_assert(n == 3 && memcmp(v, "GET", 3) == 0);
    v = snow_http_req_path(&t.req, &n);
    ck_assert(n == 8 && memcmp(v, "/files/x", 8) == 0);
    snow_http_req_body(&t.req, &n);
    ck_assert_uint_eq(n, 0);
    http_res_fini(&t.res);
    snow_router_free(r);
}
END_TEST

static char trace[128];

static int mw_before(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    strcat(trace, (const char *)arg);
    if (strcmp(arg, "S") == 0) {
        snow_http_res_send(res, 401, "text/plain", "no", 2);
        return SNOW_HTTP_STOP;
    }
    return SNOW_HTTP_NEXT;
}

static int mw_after(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)res;
    strcat(trace, "/");
    strcat(trace, (const char *)arg);
    return SNOW_HTTP_NEXT;
}

static void h_trace(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    strcat(trace, "H");
}

static int mw_stop_on_secret(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    snow_http_req_path(req, &n);
    if (snow_http_req_header(req, "x-secret", NULL) == NULL) {
        strcat(trace, "S");
        snow_http_res_send(res, 401, "text/plain", "no", 2);
        return SNOW_HTTP_STOP;
    }
    return SNOW_HTTP_NEXT;
}

START_TEST(middleware)
{
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_use(r, NULL, NULL, NULL), -EINVAL);
    snow_router_use(r, mw_before, mw_after, "A");
    snow_router_use(r, mw_before, mw_after, "B");
    snow_router_use(r, mw_stop_on_secret, mw_after, "C");
    snow_router_route(r, "GET", "/t", h_trace, NULL);
    static struct treq t;
    memset(&t, 0, sizeof t);
    trace[0] = 0;
    ck_assert_int_eq(run(r, &t, "GET", "/t", "X-Secret: 1\r\n"), 200);
    ck_assert_str_eq(trace, "ABH/C/B/A");
    trace[0] = 0;
    ck_assert_int_eq(run(r, &t, "GET", "/t", NULL), 401);
    ck_assert_str_eq(trace, "ABS/C/B/A");
    trace[0] = 0;
    /* Middleware sees built-in answers too. */
    ck_assert_int_eq(run(r, &t, "GET", "/missing", "X-Secret: 1\r\n"), 404);
    ck_assert_str_eq(trace, "AB/C/B/A");
    http_res_fini(&t.res);
    snow_router_free(r);
}
END_TEST

static int fake_upgrade(struct http_upgrade *up)
{
    (void)up;
    return 0;
}

START_TEST(websocket_routes)
{
    static const int ws_handler_storage = 7;
    const SnowWsHandler *wh = (const SnowWsHandler *)(const void *)&ws_handler_storage;
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_ws(r, "/chat/:room", wh), 0);
    ck_assert_int_eq(snow_router_ws(r, "/chat/:room", wh), SNOW_EHTTP_ROUTE_EXISTS);
    ck_assert_int_eq(snow_router_route(r, "GET", "/plain", h_named, "plain"), 0);
    const char *upg = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    static struct treq t;
    memset(&t, 0, sizeof t);
    /* No upgrade entry point registered: 501. */
    http_set_upgrade_hook(NULL);
    ck_assert_int_eq(run(r, &t, "GET", "/chat/lobby", upg), 501);
    /* A plain GET to a WebSocket route: 426 naming the protocol. */
    ck_assert_int_eq(run(r, &t, "GET", "/chat/lobby", NULL), 426);
    ck_assert(has_header(&t.res, "Upgrade: websocket\r\n"));
    ck_assert_int_eq(run(r, &t, "POST", "/chat/lobby", upg), 405);
    ck_assert(has_header(&t.res, "Allow: GET, HEAD\r\n"));
    /* With the hook, the request is handed over with the handler and params. */
    http_set_upgrade_hook(fake_upgrade);
    ck_assert_int_eq(run(r, &t, "GET", "/chat/lob%20by", upg), 101);
    ck_assert_ptr_eq(t.m.ws, wh);
    ck_assert_ptr_eq(t.m.upgrade, fake_upgrade);
    ck_assert_str_eq(param(&t, "room"), "lob by");
    /* An upgrade request to an HTTP route is just a request. */
    ck_assert_int_eq(run(r, &t, "GET", "/plain", upg), 200);
    /* Upgrade to another protocol on the ws route: 426. */
    ck_assert_int_eq(run(r, &t, "GET", "/chat/x", "Connection: upgrade\r\nUpgrade: h2c\r\n"), 426);
    http_set_upgrade_hook(NULL);
    http_res_fini(&t.res);
    snow_router_free(r);
}
END_TEST

START_TEST(response_builders)
{
    SnowHttpRes res;
    http_res_init(&res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_int_eq(snow_http_res_status(&res, 99), -EINVAL);
    ck_assert_int_eq(snow_http_res_status(&res, 600), -EINVAL);
    ck_assert_int_eq(snow_http_res_status(&res, 201), 0);
    ck_assert_int_eq(snow_http_res_header(&res, "X-A", "1"), 0);
    ck_assert_int_eq(snow_http_res_header(&res, "X-B", "a\r\nInjected: 1"), -EINVAL);
    ck_assert_int_eq(snow_http_res_header(&res, "Bad Name", "1"), -EINVAL);
    ck_assert_int_eq(snow_http_res_header(&res, "content-length", "1"), -EINVAL);
    ck_assert_int_eq(snow_http_res_header(&res, "Connection", "close"), -EINVAL);
    ck_assert_int_eq(snow_http_res_body(&res, "abc", 3), 0);
    ck_assert_int_eq(snow_http_res_write(&res, "def", 3), 0);
    ck_assert_uint_eq(res.body_len, 6);
    ck_assert(memcmp(res.body, "abcdef", 6) == 0);
    ck_assert_int_eq(snow_http_res_body(&res, "x", 1), 0);
    ck_assert_uint_eq(res.body_len, 1);
    ck_assert_uint_eq(res.hdrs_len, strlen("X-A: 1\r\n"));
    http_res_fini(&res);
}
END_TEST

Suite *router_suite(void)
{
    Suite *s = suite_create("http_router");
    TCase *tc = tcase_create("router");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, priority);
    tcase_add_test(tc, not_allowed);
    tcase_add_test(tc, decoding);
    tcase_add_test(tc, middleware);
    tcase_add_test(tc, websocket_routes);
    tcase_add_test(tc, response_builders);
    suite_add_tcase(s, tc);
    return s;
}
