/*
 * response_test.c: response serialisation (response.c): the exact head for
 * each kind of response, the Date format, and heads whose handler fields
 * and bodies are far larger than the fixed part of the bound.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/response.h"

/* The formatted response with its Date value replaced by "D". */
static char *format(const SnowHttpRes *res, int minor, int keep, int with_body, size_t *len)
{
    struct http_outbuf o = {0};
    ck_assert_int_eq(http_format_response(&o, res, minor, keep, with_body), 0);
    char *d = memmem(o.p, o.len, "\r\nDate: ", 8);
    ck_assert_ptr_nonnull(d);
    d += 8;
    size_t rest = o.len - (size_t)(d - o.p) - HTTP_DATE_LEN;
    memmove(d + 1, d + HTTP_DATE_LEN, rest);
    *d = 'D';
    *len = o.len - HTTP_DATE_LEN + 1;
    o.p[*len] = 0;
    return o.p;
}

START_TEST(heads)
{
    SnowHttpRes res;
    http_res_init(&res);
    size_t n;
    snow_http_res_send(&res, 200, "text/plain", "hi", 2);
    char *s = format(&res, 1, 1, 1, &n);
    ck_assert_str_eq(s, "HTTP/1.1 200 OK\r\nServer: snow-rt\r\nDate: D\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 2\r\n\r\nhi");
    free(s);
    s = format(&res, 0, 1, 0, &n); /* HTTP/1.0 kept alive, body sent apart */
    ck_assert_str_eq(s, "HTTP/1.1 200 OK\r\nServer: snow-rt\r\nDate: D\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n");
    free(s);
    http_res_reset(&res);
    res.status = 204;
    s = format(&res, 1, 0, 1, &n);
    ck_assert_str_eq(s, "HTTP/1.1 204 No Content\r\nServer: snow-rt\r\nDate: D\r\nConnection: close\r\n\r\n");
    free(s);
    http_res_reset(&res);
    res.status = 299; /* no reason phrase known */
    s = format(&res, 1, 1, 1, &n);
    ck_assert_str_eq(s, "HTTP/1.1 299 \r\nServer: snow-rt\r\nDate: D\r\nContent-Length: 0\r\n\r\n");
    free(s);
    http_res_fini(&res);
}
END_TEST

START_TEST(date_format)
{
    for (int tries = 0; tries < 5; tries++) {
        time_t before = time(NULL);
        char got[HTTP_DATE_LEN + 1];
        http_date_now(got);
        got[HTTP_DATE_LEN] = 0;
        time_t after = time(NULL);
        if (before != after)
            continue; /* a second boundary passed; the cache may lag it */
        struct tm tm;
        gmtime_r(&before, &tm);
        char want[64];
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ck_assert_str_eq(got, want);
        return;
    }
    ck_abort_msg("no stable second in five tries");
}
END_TEST

/* Large handler fields and a large body: the reservation covers them and
 * every byte lands where it should. */
START_TEST(large_fields)
{
    SnowHttpRes res;
    http_res_init(&res);
    static char v[9000];
    memset(v, 'v', sizeof v - 1);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(snow_http_res_header(&res, "X-Long", v), 0);
    static char body[100000];
    memset(body, 'b', sizeof body);
    ck_assert_int_eq(snow_http_res_body(&res, body, sizeof body), 0);
    struct http_outbuf o = {0};
    o.p = malloc(10);
    memcpy(o.p, "previous", 8); /* output already queued stays in front */
    o.len = 8;
    o.cap = 10;
    ck_assert_int_eq(http_format_response(&o, &res, 1, 1, 1), 0);
    ck_assert(memcmp(o.p, "previousHTTP/1.1 200 OK\r\n", 25) == 0);
    size_t hdrs = 20 * (8 + sizeof v - 1 + 2);
    ck_assert(memmem(o.p, o.len, "Content-Length: 100000\r\n\r\n", 26) != NULL);
    ck_assert(memcmp(o.p + o.len - sizeof body, body, sizeof body) == 0);
    ck_assert_uint_gt(o.len, 8 + hdrs + sizeof body);
    ck_assert_uint_le(o.len, o.cap);
    free(o.p);
    http_res_fini(&res);
}
END_TEST

/* snow_http_res_body refers to the lent request body instead of copying
 * it, copies anything else, and turns a view into an owned copy before an
 * append. */
START_TEST(body_views)
{
    SnowHttpRes res;
    http_res_init(&res);
    /* The connection lends the first 1000 bytes of this buffer. */
    static char req_body[2000];
    memset(req_body, 'r', sizeof req_body);
    res.lend = req_body;
    res.lend_len = 1000;
    ck_assert_int_eq(snow_http_res_body(&res, req_body + 10, 500), 0);
    ck_assert_ptr_eq(http_res_body(&res), req_body + 10);
    ck_assert_uint_eq(res.body_cap, 0);
    ck_assert_int_eq(snow_http_res_write(&res, "!", 1), 0); /* now owned */
    ck_assert_ptr_ne(http_res_body(&res), req_body + 10);
    ck_assert_uint_eq(res.body_len, 501);
    ck_assert(memcmp(http_res_body(&res), req_body, 500) == 0 && http_res_body(&res)[500] == '!');
    /* Reaching past the lent bytes, or outside them: copied. */
    ck_assert_int_eq(snow_http_res_body(&res, req_body + 900, 101), 0);
    ck_assert_ptr_ne(http_res_body(&res), req_body + 900);
    ck_assert_uint_eq(res.body_len, 101);
    static char other[50];
    ck_assert_int_eq(snow_http_res_body(&res, other, sizeof other), 0);
    ck_assert_ptr_ne(http_res_body(&res), other);
    /* The whole lent body, then a reset: no view is left behind. */
    ck_assert_int_eq(snow_http_res_body(&res, req_body, 1000), 0);
    ck_assert_ptr_eq(http_res_body(&res), req_body);
    http_res_reset(&res);
    ck_assert_ptr_null(res.body_view);
    ck_assert_uint_eq(res.body_len, 0);
    http_res_fini(&res);
}
END_TEST

Suite *response_suite(void)
{
    Suite *s = suite_create("http_response");
    TCase *tc = tcase_create("response");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, heads);
    tcase_add_test(tc, date_format);
    tcase_add_test(tc, large_fields);
    tcase_add_test(tc, body_views);
    suite_add_tcase(s, tc);
    return s;
}
