/*
 * test_conn_outbound.c: the outbound side: sends refused over the
 * outbound limit (which counts what the kernel holds), the connection
 * closed for it when the route says so, a write stall closed after
 * write_timeout, and reading paused so a fast sender loses nothing.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_routes.h"

START_TEST(backpressure_refuses)
{
    conn_start();
    wsc_rcvbuf = 4096; /* a peer that takes little and never reads */
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/flood", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    wait_opens(1);
    wait_bp_result();
    ck_assert_int_eq(seen().bp_result, SNOW_EBACKPRESSURE);
    /* The limit (64 KiB) counts what the kernel holds too: at most the
     * limit plus the message that went over is pending. */
    ck_assert_int_le(seen().bp_buffered, 64 * 1024 + 8192 + 16);
    ck_assert_int_gt(seen().bp_sent, 0);
    /* Bounded by the limit plus what the peer's small window took. */
    ck_assert_int_lt(seen().bp_sent, 20);
    /* Everything accepted arrives. */
    for (int i = 0, n = seen().bp_sent; i < n; i++) {
        struct wsframe m;
        ck_assert_int_eq(wsc_message(&c, &m), 0);
        ck_assert_uint_eq(m.len, 8192);
        free(m.data);
    }
    SnowWsStats s;
    snow_ws_route_stats(&h_flood, &s);
    ck_assert_uint_eq(s.backpressure_refused, 1);
    ck_assert_uint_eq(s.closed_backpressure, 0);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

START_TEST(backpressure_closes)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/floodclose", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    ck_assert_uint_eq(expect_close(&c), 1008);
    wsc_close_frame(&c, 1008, NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().bp_result, SNOW_EBACKPRESSURE);
    SnowWsStats s;
    snow_ws_route_stats(&h_floodclose, &s);
    ck_assert_uint_eq(s.closed_backpressure, 1);
    ck_assert_uint_eq(s.closed_1008, 1);
    conn_stop();
}
END_TEST

START_TEST(write_stall_closes)
{
    conn_start();
    wsc_rcvbuf = 4096;
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/stall", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    /* The client never reads: the server gives up after write_timeout. */
    wait_closes(1);
    SnowWsStats s;
    snow_ws_route_stats(&h_stall, &s);
    ck_assert_uint_eq(s.closed_write_stall, 1);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    wsc_close(&c);
    conn_stop();
}
END_TEST

struct burst {
    struct wsc *c;
    int n;
    size_t size;
};

static void *burst_sender(void *arg)
{
    struct burst *b = arg;
    char *p = malloc(b->size);
    for (int i = 0; i < b->n; i++) {
        memset(p, 'a' + i % 26, b->size);
        if (wsc_frame(b->c, 0x82, p, b->size) < 0)
            break;
    }
    free(p);
    return NULL;
}

START_TEST(flow_control_loses_nothing)
{
    /* A peer that sends far more than the outbound limit before reading
     * any answer: reading pauses while half the limit is queued, so every
     * echo is accepted and arrives, in order. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    struct burst b = {&c, 300, 20000};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, burst_sender, &b), 0);
    usleep(100000); /* let the sender run ahead */
    for (int i = 0; i < b.n; i++) {
        struct wsframe m;
        ck_assert_int_eq(wsc_message(&c, &m), 0);
        ck_assert_uint_eq(m.op, 2);
        ck_assert_uint_eq(m.len, b.size);
        ck_assert_int_eq(m.data[0], 'a' + i % 26);
        ck_assert_int_eq(m.data[b.size - 1], 'a' + i % 26);
        free(m.data);
    }
    pthread_join(t, NULL);
    SnowWsStats s;
    snow_ws_route_stats(&h_echo, &s);
    ck_assert_uint_eq(s.backpressure_refused, 0);
    ck_assert_uint_eq(s.msgs_out, (uint64_t)b.n);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

Suite *conn_outbound_suite(void)
{
    Suite *s = suite_create("ws_conn_outbound");
    TCase *t = tcase_create("outbound");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, backpressure_refuses);
    tcase_add_test(t, backpressure_closes);
    tcase_add_test(t, write_stall_closes);
    tcase_add_test(t, flow_control_loses_nothing);
    suite_add_tcase(s, t);
    return s;
}
