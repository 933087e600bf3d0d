/*
 * test_conn_life.c: a connection's life over real sockets on 127.0.0.1:
 * the upgrade and leftover bytes, frames split at every offset, on_connect
 * (refusal, subprotocol, cookies, user data) and Origin, bad upgrades,
 * protocol errors and UTF-8 failing fast, every close path with on_close
 * exactly once and its real code (handler close, panic, abrupt drops,
 * kill, shutdown), the Close reply leaving with the FIN.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_routes.h"

START_TEST(upgrade_echo_close)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    /* RFC 6455 §1.3: the sample nonce and its accept value. */
    ck_assert(strstr(c.head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    ck_assert(strcasestr(c.head, "\r\nUpgrade: websocket\r\n") != NULL);
    ck_assert_int_eq(snow_ws_connection_count(), 1);
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *p = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            p[k] = (char)('a' + k % 26);
        ck_assert_int_eq(wsc_frame(&c, 0x81, p, n), 0);
        expect_message(&c, 1, p, n);
        ck_assert_int_eq(wsc_frame(&c, 0x82, p, n), 0);
        expect_message(&c, 2, p, n);
        free(p);
    }
    ck_assert_int_eq(wsc_close_frame(&c, 1000, "done"), 0);
    ck_assert_uint_eq(expect_close(&c), 1000);
    /* §7.1.1: the server closes TCP after the close handshake. */
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    struct seen v = seen();
    ck_assert_int_eq(v.last_code, 1000);
    ck_assert_str_eq(v.last_reason, "done");
    ck_assert_int_eq(v.after_end, SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    SnowWsStats s;
    ck_assert_int_eq(snow_ws_route_stats(&h_echo, &s), 0);
    ck_assert_uint_eq(s.opened, 1);
    ck_assert_uint_eq(s.closed, 1);
    ck_assert_uint_eq(s.closed_1000, 1);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_uint_eq(s.msgs_in, 14);
    ck_assert_uint_eq(s.msgs_out, 14);
    ck_assert_uint_eq(s.bytes_in, s.bytes_out);
    conn_stop();
}
END_TEST

START_TEST(leftover_bytes)
{
    /* Frames sent in the same write as the request are not lost. */
    conn_start();
    uint8_t f[64];
    size_t n = ws_client_frame(f, 0x81, "early", 5, true);
    n += ws_client_frame(f + n, 0x82, "bird", 4, true);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, f, n), 101);
    expect_message(&c, 1, "early", 5);
    expect_message(&c, 2, "bird", 4);
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1006);
    conn_stop();
}
END_TEST

START_TEST(split_everywhere)
{
    /* A fragmented text message with a ping between its fragments, a
     * binary message and a Close, fed split at every byte offset: the same
     * answers each time. */
    conn_start();
    uint8_t in[256];
    size_t n = 0;
    n += ws_client_frame(in + n, 0x01, "frag", 4, true);
    n += ws_client_frame(in + n, 0x89, "pp", 2, true);
    n += ws_client_frame(in + n, 0x80, "mented", 6, true);
    n += ws_client_frame(in + n, 0x82, "\x00\x01\x02", 3, true);
    n += ws_client_frame(in + n, 0x88, "\x03\xe8", 2, true);
    for (size_t cut = 0; cut <= n; cut++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
        ck_assert_int_eq(wsc_send(&c, in, cut), 0);
        usleep(2000);
        ck_assert_int_eq(wsc_send(&c, in + cut, n - cut), 0);
        struct wsframe f;
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        ck_assert_uint_eq(f.op, 10); /* the pong comes first: control lane */
        ck_assert_str_eq((char *)f.data, "pp");
        free(f.data);
        expect_message(&c, 1, "fragmented", 10);
        expect_message(&c, 2, "\x00\x01\x02", 3);
        ck_assert_uint_eq(expect_close(&c), 1000);
        ck_assert(wsc_eof(&c));
        wsc_close(&c);
        wait_closes((int)cut + 1);
        ck_assert_int_eq(seen().last_code, 1000);
    }
    conn_stop();
}
END_TEST

START_TEST(on_connect_refuses)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/auth/lobby?name=ann", "Cookie: a=1; token=bad\r\n", NULL, 0), 401);
    ck_assert(strstr(c.head, "\r\nWWW-Authenticate: Cookie realm=\"chat\"\r\n") != NULL);
    ck_assert(strstr(c.head, "\r\nConnection: close\r\n") != NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    /* Accepted: user data, params, query and the chosen subprotocol. */
    ck_assert_int_eq(wsc_open(&c, port, "/auth/lobby?name=ann",
                              "Cookie: a=1; token=\"good\"\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n", NULL, 0),
                     101);
    ck_assert(strstr(c.head, "\r\nSec-WebSocket-Protocol: chat.v2\r\n") != NULL);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "?", 1), 0);
    expect_message(&c, 1, "lobby/ann|chat.v2", 17);
    /* Without the on_connect choice the server's preference wins. */
    struct wsc d;
    ck_assert_int_eq(wsc_open(&d, port, "/auth/x?name=y", "Cookie: token=good\r\nSec-WebSocket-Protocol: chat.v1\r\n",
                              NULL, 0),
                     101);
    ck_assert(strstr(d.head, "\r\nSec-WebSocket-Protocol: chat.v1\r\n") != NULL);
    wsc_close(&c);
    wsc_close(&d);
    wait_closes(2); /* the refused one never opened: no on_close */
    SnowWsStats s;
    snow_ws_route_stats(&h_auth, &s);
    ck_assert_uint_eq(s.refused, 1);
    ck_assert_uint_eq(s.opened, 2);
    conn_stop();
}
END_TEST

START_TEST(bad_upgrades)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/origin", "Origin: https://evil.example\r\n", NULL, 0), 403);
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/origin", "Origin: https://good.example\r\n", NULL, 0), 101);
    wsc_close(&c);
    /* Same-origin by default: a browser page from elsewhere is refused. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", "Origin: http://elsewhere.example\r\n", NULL, 0), 403);
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/echo", "Origin: http://127.0.0.1\r\n", NULL, 0), 101);
    wsc_close(&c);
    /* Wrong version: 426 naming the one we speak. */
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *v8 = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, v8, strlen(v8)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 426);
    ck_assert(strstr(c.head, "Sec-WebSocket-Version: 13\r\n") != NULL);
    wsc_close(&c);
    /* A bad key: 400. A plain GET on a ws route: 426. */
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *bk = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, bk, strlen(bk)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 400);
    wsc_close(&c);
    ck_assert_int_eq(wsc_connect(&c, port), 0);
    const char *plain = "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(wsc_send(&c, plain, strlen(plain)), 0);
    ck_assert_int_eq(wsc_read_head(&c), 426);
    wsc_close(&c);
    wait_closes(2);
    conn_stop();
}
END_TEST

struct bad_case {
    const char *path;
    uint8_t b0;
    const char *payload;
    size_t n;
    bool mask;
    unsigned code;
};

START_TEST(protocol_errors)
{
    static char big[1001];
    static const struct bad_case cases[] = {
        {"/echo", 0x81, "x", 1, false, 1002},         /* unmasked client frame (§5.1) */
        {"/echo", 0x81, "\xce\xba\xff", 3, true, 1007}, /* not UTF-8 */
        {"/echo", 0xC1, "x", 1, true, 1002},         /* RSV1 without an extension */
        {"/echo", 0x83, "x", 1, true, 1002},         /* reserved opcode */
        {"/echo", 0x80, "x", 1, true, 1002},         /* continuation with no message */
        {"/echo", 0x09, "x", 1, true, 1002},         /* fragmented ping */
        {"/echo", 0x88, "\x03\xe7", 2, true, 1002},  /* close code 999 */
        {"/echo", 0x88, "\x03", 1, true, 1002},      /* one-byte close payload */
        {"/small", 0x82, big, sizeof big, true, 1009}, /* over max_message */
    };
    conn_start();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *k = &cases[i];
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, k->path, NULL, NULL, 0), 101);
        /* A good frame first, in the same write: its answer is already
         * queued when the bad one fails the connection, and goes first. */
        uint8_t f[1200];
        size_t n = ws_client_frame(f, 0x81, "ok", 2, true);
        n += ws_client_frame(f + n, k->b0, k->payload, k->n, k->mask);
        ck_assert_int_eq(wsc_send(&c, f, n), 0);
        expect_message(&c, 1, "ok", 2);
        ck_assert_uint_eq(expect_close(&c), k->code);
        wsc_close_frame(&c, k->code, NULL);
        ck_assert(wsc_eof(&c));
        wsc_close(&c);
        wait_closes((int)i + 1);
        ck_assert_int_eq(seen().last_code, (int)k->code);
    }
    conn_stop();
}
END_TEST

START_TEST(utf8_fails_fast)
{
    /* A text frame that declares 100 bytes and brings one bad one: 1007
     * at once, without waiting for the other 99. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    uint8_t f[128];
    char payload[100];
    memset(payload, 'a', sizeof payload);
    payload[0] = (char)0xff;
    size_t n = ws_client_frame(f, 0x81, payload, sizeof payload, true);
    ck_assert_int_eq(wsc_send(&c, f, 2 + 4 + 1), 0); /* header, key, the bad byte */
    ck_assert_uint_eq(expect_close(&c), 1007);
    (void)n;
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

START_TEST(close_from_handler)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/close", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "hello", 5), 0);
    expect_message(&c, 1, "hello", 5);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "bye", 3), 0);
    expect_message(&c, 1, "bye", 3); /* queued before the Close: goes first */
    struct wsframe f;
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 8);
    ck_assert_uint_eq(wsframe_code(&f), 4000);
    ck_assert(f.len == 9 && memcmp(f.data + 2, "bye now", 7) == 0);
    free(f.data);
    ck_assert_int_eq(wsc_close_frame(&c, 4000, "ok"), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    /* The peer's Close is what on_close reports (§7.1.5). */
    struct seen v = seen();
    ck_assert_int_eq(v.last_code, 4000);
    ck_assert_str_eq(v.last_reason, "ok");
    conn_stop();
}
END_TEST

START_TEST(panic_closes_1011)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/panic", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "boom", 4), 0);
    ck_assert_uint_eq(expect_close(&c), 1011);
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1011);
    /* The next connection is served. */
    ck_assert_int_eq(wsc_open(&c, port, "/panic", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "fine", 4), 0);
    expect_message(&c, 1, "fine", 4);
    wsc_close(&c);
    wait_closes(2);
    conn_stop();
}
END_TEST

START_TEST(abrupt_drops_report_1006)
{
    /* Peers that vanish (FIN without Close, or RST) end their connections
     * with 1006, and everything is counted back. */
    conn_start();
    for (int i = 0; i < 20; i++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
        ck_assert_int_eq(wsc_frame(&c, 0x81, "x", 1), 0);
        expect_message(&c, 1, "x", 1);
        if (i % 2) {
            struct linger lg = {1, 0}; /* close with RST */
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        wsc_close(&c);
    }
    wait_closes(20);
    ck_assert_int_eq(seen().last_code, 1006);
    SnowWsStats s;
    snow_ws_route_stats(NULL, &s);
    ck_assert_uint_eq(s.closed_1006, 20);
    ck_assert_uint_eq(s.open, 0);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    conn_stop();
}
END_TEST

START_TEST(end_of_stream_behind_last_bytes)
{
    /* A peer that sends its last frames and shuts its side at once: the
     * end of the stream may arrive with the bytes, raising no edge of its
     * own after the read that takes them. The server must still see it
     * (no heartbeat here to reap the connection otherwise). */
    conn_start();
    enum { N = 50 };
    for (int i = 0; i < N; i++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
        ck_assert_int_eq(wsc_frame(&c, 0x81, "last", 4), 0);
        ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
        expect_message(&c, 1, "last", 4);
        ck_assert(wsc_eof(&c));
        wsc_close(&c);
    }
    wait_closes(N);
    ck_assert_int_eq(seen().last_code, 1006);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    conn_stop();
}
END_TEST

START_TEST(close_reply_leaves_with_fin)
{
    /* §7.1.1: once both Closes are exchanged the server closes TCP. Over
     * plain TCP its Close and its FIN leave in one segment (one packet
     * fewer per connection), and both before on_close runs: a handler
     * that takes its time (this one sleeps a second) does not hold them. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/slowclose", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_close_frame(&c, 1000, "bye"), 0);
    ck_assert_uint_eq(expect_close(&c), 1000);
    ck_assert_uint_eq(c.len, 0);
    /* The end of the stream came with the Close: there to read, no wait. */
    char b;
    ck_assert_int_eq(recv(c.fd, &b, 1, MSG_DONTWAIT), 0);
    ck_assert_int_eq(seen().closes, 0);
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1000);
    conn_stop();
}
END_TEST

START_TEST(on_connect_panic_500)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/pconnect", NULL, NULL, 0), 500);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

START_TEST(kill_reports_1006_once)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    ck_assert_uint_eq(wait_hibernated(1), 1); /* idle: killed while hibernating */
    ck_assert_int_eq(snow_actor_kill(snow_ws_pid(h), SNOW_EXIT_KILLED), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1006);
    ck_assert_int_eq(snow_ws_send_text(h, "x", 1), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    /* Killed while awake, inside nothing in particular: the same. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(2);
    ck_assert_int_eq(snow_actor_kill(snow_ws_pid(seen().last_conn), SNOW_EXIT_KILLED), 0);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(2);
    ck_assert_int_eq(seen().last_code, 1006);
    /* The runtime shutting down with a connection open: on_close too. */
    ck_assert_int_eq(wsc_open(&c, port, "/echo", NULL, NULL, 0), 101);
    wait_opens(3);
    conn_stop();
    ck_assert_int_eq(seen().closes, 3);
    wsc_close(&c);
}
END_TEST

Suite *conn_life_suite(void)
{
    Suite *s = suite_create("ws_conn_life");
    TCase *t = tcase_create("life");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, upgrade_echo_close);
    tcase_add_test(t, leftover_bytes);
    tcase_add_test(t, split_everywhere);
    tcase_add_test(t, on_connect_refuses);
    tcase_add_test(t, bad_upgrades);
    tcase_add_test(t, protocol_errors);
    tcase_add_test(t, utf8_fails_fast);
    tcase_add_test(t, close_from_handler);
    tcase_add_test(t, panic_closes_1011);
    tcase_add_test(t, abrupt_drops_report_1006);
    tcase_add_test(t, end_of_stream_behind_last_bytes);
    tcase_add_test(t, close_reply_leaves_with_fin);
    tcase_add_test(t, on_connect_panic_500);
    tcase_add_test(t, kill_reports_1006_once);
    suite_add_tcase(s, t);
    return s;
}
