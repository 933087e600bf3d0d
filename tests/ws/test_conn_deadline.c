/*
 * test_conn_deadline.c: deadlines and drain: heartbeat reaping of a
 * silent peer with its round-trip time, the close 1001 and 503 answers of
 * a draining server, its port closing when the last connection ends, and
 * a drain spread over a window.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_routes.h"

START_TEST(heartbeat_reaps_silent_peer)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/hb", NULL, NULL, 0), 101);
    /* A peer that answers: one ping, one pong, a round-trip time. */
    struct wsframe f;
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 9);
    ck_assert_int_eq(wsc_frame(&c, 0x8A, f.data, f.len), 0);
    free(f.data);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    for (int i = 0; i < 500 && snow_ws_rtt_ms(h) == -ENODATA; i++)
        usleep(2000);
    ck_assert_int_ge(snow_ws_rtt_ms(h), 0);
    /* Then it goes silent: the next ping is never answered -> 1001. */
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 9);
    free(f.data);
    ck_assert_uint_eq(expect_close(&c), 1001);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1001);
    SnowWsStats s;
    snow_ws_route_stats(&h_hb, &s);
    ck_assert_uint_eq(s.closed_heartbeat, 1);
    ck_assert_uint_eq(s.closed_1001, 1);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    conn_stop();
}
END_TEST

START_TEST(drain_on_stop)
{
    conn_start();
    struct wsc c[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/echo", NULL, NULL, 0), 101);
    wait_opens(5);
    /* An upgrade request in flight when the server stops gets 503. */
    struct wsc late;
    ck_assert_int_eq(wsc_connect(&late, port), 0);
    char req[512];
    int n = wsc_request(req, sizeof req, "/echo", NULL);
    ck_assert_int_eq(wsc_send(&late, req, 10), 0);
    usleep(50000);
    snow_http_server_stop(srv);
    srv = NULL;
    ck_assert_int_eq(wsc_send(&late, req + 10, (size_t)n - 10), 0);
    ck_assert_int_eq(wsc_read_head(&late), 503);
    wsc_close(&late);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(5);
    ck_assert_int_eq(seen().last_code, 1001);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.closed_1001, 5);
    conn_stop();
}
END_TEST

/* A new connection sends req; returns the status of the answer, with the
 * head in c->head. */
static int ask(struct wsc *c, const char *req)
{
    ck_assert_int_eq(wsc_connect(c, port), 0);
    ck_assert_int_eq(wsc_send(c, req, strlen(req)), 0);
    return wsc_read_head(c);
}

/* Connects until the port refuses (bounded: a failure guard only). */
static int connect_until_refused(void)
{
    int r = 0;
    for (int i = 0; i < 1000; i++) {
        struct wsc c;
        r = wsc_connect(&c, port);
        if (r == -ECONNREFUSED)
            break;
        if (r == 0)
            wsc_close(&c);
        usleep(10000);
    }
    return r;
}

START_TEST(drain_answers_503_until_closed)
{
    /* With WebSocket connections open, a stopped server keeps its port
     * through the drain and refuses every new request with 503; the port
     * closes once the last connection has ended. */
    conn_start();
    static const char get_plain[] = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n";
    struct wsc h;
    ck_assert_int_eq(ask(&h, get_plain), 200);
    wsc_close(&h);
    struct wsc c[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/echo", NULL, NULL, 0), 101);
    wait_opens(2);
    snow_http_server_stop(srv);
    srv = NULL;
    /* The clients hold their answers back: the drain goes on. */
    for (int i = 0; i < 2; i++)
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
    for (int k = 0; k < 2; k++) {
        /* A plain request, twice in one write: one 503 that closes. */
        char two[2 * sizeof get_plain];
        snprintf(two, sizeof two, "%s%s", get_plain, get_plain);
        ck_assert_int_eq(ask(&h, two), 503);
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nConnection: close\r\n"));
        const char *ra = strcasestr(h.head, "\r\nRetry-After: ");
        ck_assert_ptr_nonnull(ra);
        ck_assert_int_ge(atoi(ra + 15), 1);
        ck_assert(wsc_eof(&h));
        wsc_close(&h);
        /* An upgrade. */
        ck_assert_int_eq(wsc_open(&h, port, "/echo", NULL, NULL, 0), 503);
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nConnection: close\r\n"));
        ck_assert_ptr_nonnull(strcasestr(h.head, "\r\nRetry-After: "));
        ck_assert(wsc_eof(&h));
        wsc_close(&h);
    }
    /* A connection made during the drain that has sent nothing yet. */
    struct wsc quiet;
    ck_assert_int_eq(wsc_connect(&quiet, port), 0);
    ck_assert_int_eq(snow_ws_connection_count(), 2);
    for (int i = 0; i < 2; i++) {
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(2);
    /* The drain is over: the quiet connection is let go, the port closes. */
    ck_assert(wsc_eof(&quiet));
    wsc_close(&quiet);
    ck_assert_int_eq(connect_until_refused(), -ECONNREFUSED);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.refused, 2);
    ck_assert_uint_eq(s.closed_1001, 2);
    conn_stop();
}
END_TEST

START_TEST(stop_without_ws_closes_port)
{
    /* A server whose WebSocket connections have all ended stops like an
     * HTTP-only one: its port closes at once, nothing is drained. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wsc_close_frame(&c, 1000, NULL);
    ck_assert_uint_eq(expect_close(&c), 1000);
    wsc_close(&c);
    wait_closes(1);
    /* The connection actor may linger a moment after on_close. */
    for (int i = 0; i < 1000 && snow_ws_connection_count() > 0; i++)
        usleep(1000);
    snow_http_server_stop(srv);
    srv = NULL;
    ck_assert_int_eq(connect_until_refused(), -ECONNREFUSED);
    conn_stop();
}
END_TEST

START_TEST(drain_spread)
{
    conn_start();
    struct wsc c[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(wsc_open(&c[i], port, "/spread", NULL, NULL, 0), 101);
    wait_opens(4);
    snow_http_server_stop(srv);
    srv = NULL;
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(expect_close(&c[i]), 1001);
        wsc_close_frame(&c[i], 1001, NULL);
        ck_assert(wsc_eof(&c[i]));
        wsc_close(&c[i]);
    }
    wait_closes(4);
    conn_stop();
}
END_TEST

Suite *conn_deadline_suite(void)
{
    Suite *s = suite_create("ws_conn_deadline");
    TCase *t = tcase_create("deadline");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, heartbeat_reaps_silent_peer);
    tcase_add_test(t, drain_on_stop);
    tcase_add_test(t, drain_answers_503_until_closed);
    tcase_add_test(t, stop_without_ws_closes_port);
    tcase_add_test(t, drain_spread);
    suite_add_tcase(s, t);
    return s;
}
