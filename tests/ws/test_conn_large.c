/*
 * test_conn_large.c: messages larger than the read buffer, whose payload
 * the connection reads straight into the message buffer (conn_large.c,
 * ws_conn_payload_room): echoed intact whole, fragmented (with a ping between two
 * fragments and a UTF-8 sequence split across them) and split into two
 * writes at many offsets (inside the header, at the mask phases, around
 * the read buffer's sizes); a bad UTF-8 byte deep inside fails with 1007;
 * a message over the route's limit fails with 1009. Large sends without a
 * copy into frames (conn_large.c): the message on_message looks at, sent
 * back whole, twice, and in part, from the buffer it came in; a message in
 * the handler's own buffer, written as far as the socket takes it and the
 * rest kept, so the handler may overwrite the buffer at once; the
 * connection's send buffer raised by its first large send; a peer that
 * stops reading while the kernel holds all that is pending closed after
 * the write timeout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_routes.h"
#include "ws/conn.h"

#define BIG 300000
#define LIMITED_MAX 200000
/* Over the limit by less than the server reads (and drops) after its
 * Close, so that its TCP close finds no unread input to reset with. */
#define OVER (LIMITED_MAX + 10000)

static SnowWsHandler h_big, h_limited, h_relay, h_flood_large, h_kstall;

#define KSTALL_LIMIT (1u << 20)
#define KSTALL_MSG (256u * 1024)

/* What kstall_message saw at its first refused send: refusals so far, and
 * whether the connection's queue was empty then (all of pending in the
 * kernel). */
static _Atomic int kstall_refused, kstall_queue_empty = -1;

/* One own KSTALL_MSG-byte message for each message that comes in. */
static void kstall_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    uint8_t *block = calloc(1, KSTALL_MSG);
    if (block && snow_ws_send_binary(conn, block, KSTALL_MSG) == SNOW_EBACKPRESSURE && !kstall_refused++) {
        struct ws_conn *c = ws_conn_current(ws_handle_pid(conn));
        kstall_queue_empty = c && c->lv ? ws_outq_empty(&c->lv->q) : -1;
    }
    free(block);
}

#define FLOOD_LIMIT (4u << 20)
#define FLOOD_MSG (256u * 1024)

/* Sends its own FLOOD_MSG-byte messages (each byte its index's low byte
 * plus the message's number) until one is refused, and records how many
 * went and what was pending then. */
static void flood_large(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)data;
    (void)len;
    (void)is_text;
    (void)arg;
    uint8_t *block = malloc(FLOOD_MSG);
    int r = -ENOMEM, sent = 0;
    while (block && sent < 1000) {
        for (size_t i = 0; i < FLOOD_MSG; i++)
            block[i] = (uint8_t)(i + (size_t)sent);
        if ((r = snow_ws_send_binary(conn, block, FLOOD_MSG)) != 0)
            break;
        sent++;
    }
    free(block);
    record_flood(conn, r, sent);
}

/* The bytes of the relay's own message: a copy of what came in with every
 * byte turned around, so it differs from the message everywhere. */
static void turn(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)~src[i];
}

/* For a message of n bytes: its turned copy from a buffer of the
 * handler's (overwritten and freed right after the send), the message
 * itself twice, all of it but 1,000 bytes at each end, then "end". */
static void relay(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)is_text;
    (void)arg;
    /* A failed send shows as "bad" at the end (no assertion on the
     * server's thread). */
    int bad = 0;
    uint8_t *own = malloc(len);
    if (own) {
        turn(own, data, len);
        bad |= snow_ws_send_binary(conn, own, len);
        memset(own, 0xA5, len);
        free(own);
    }
    bad |= snow_ws_send_binary(conn, data, len);
    bad |= snow_ws_send_binary(conn, data, len);
    bad |= snow_ws_send_binary(conn, (const uint8_t *)data + 1000, len - 2000);
    snow_ws_send_text(conn, bad || !own ? "bad" : "end", 3);
}

static void routes(SnowRouter *r)
{
    SnowWsHandler *all[] = {&h_big, &h_limited, &h_relay, &h_flood_large, &h_kstall};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        snow_ws_handler_init(all[i]);
        all[i]->on_close = record_close;
        all[i]->on_open = record_open;
        all[i]->on_message = echo;
        all[i]->ping_interval_ms = 0;
    }
    h_big.max_message = 1u << 20;
    h_limited.max_message = LIMITED_MAX;
    h_relay.max_message = 1u << 20;
    h_relay.on_message = relay;
    h_relay.outbound_limit = 64u << 20; /* room for all five at once */
    ck_assert_int_eq(snow_router_ws(r, "/big", &h_big), 0);
    ck_assert_int_eq(snow_router_ws(r, "/limited", &h_limited), 0);
    ck_assert_int_eq(snow_router_ws(r, "/relay", &h_relay), 0);
    h_flood_large.on_message = flood_large;
    h_flood_large.outbound_limit = FLOOD_LIMIT;
    ck_assert_int_eq(snow_router_ws(r, "/floodlarge", &h_flood_large), 0);
    h_kstall.on_message = kstall_message;
    h_kstall.outbound_limit = KSTALL_LIMIT;
    h_kstall.write_timeout_ms = 300;
    ck_assert_int_eq(snow_router_ws(r, "/kstall", &h_kstall), 0);
}

/* Binary bytes that differ from their neighbours and from the mask. */
static uint8_t *binary_payload(size_t n)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + (i >> 8) + (i >> 16));
    return p;
}

/* Valid UTF-8 of n bytes made of 1-, 2-, 3- and 4-byte sequences, so that
 * reads end inside sequences; the tail is ASCII. */
static char *text_payload(size_t n)
{
    static const char unit[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀: 10 bytes */
    char *p = malloc(n);
    size_t i = 0;
    for (; i + 10 <= n; i += 10)
        memcpy(p + i, unit, 10);
    for (; i < n; i++)
        p[i] = 'z';
    return p;
}

static void expect_big(struct wsc *c, unsigned op, const void *want, size_t n)
{
    struct wsframe m;
    ck_assert_int_eq(wsc_message(c, &m), 0);
    ck_assert_uint_eq(m.op, op);
    ck_assert_uint_eq(m.len, n);
    ck_assert(memcmp(m.data, want, n) == 0);
    free(m.data);
}

static void close_clean(struct wsc *c)
{
    ck_assert_int_eq(wsc_close_frame(c, 1000, NULL), 0);
    ck_assert_uint_eq(expect_close(c), 1000);
    ck_assert(wsc_eof(c));
    wsc_close(c);
}

START_TEST(large_messages_echo_intact)
{
    server_start(routes);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/big", NULL, NULL, 0), 101);
    uint8_t *bin = binary_payload(BIG);
    char *text = text_payload(BIG);
    ck_assert_int_eq(wsc_frame(&c, 0x82, bin, BIG), 0);
    expect_big(&c, 2, bin, BIG);
    ck_assert_int_eq(wsc_frame(&c, 0x81, text, BIG), 0);
    expect_big(&c, 1, text, BIG);
    /* Three fragments, a ping between the first two; the second starts
     * inside a 4-byte sequence (offset 100,007 is its second byte). */
    ck_assert_int_eq(wsc_frame(&c, 0x01, text, 100007), 0);
    ck_assert_int_eq(wsc_frame(&c, 0x89, "mid", 3), 0);
    ck_assert_int_eq(wsc_frame(&c, 0x00, text + 100007, 20000), 0);
    ck_assert_int_eq(wsc_frame(&c, 0x80, text + 120007, BIG - 120007), 0);
    struct wsframe f;
    ck_assert_int_eq(wsc_read(&c, &f), 0);
    ck_assert_uint_eq(f.op, 10);
    ck_assert_uint_eq(f.len, 3);
    ck_assert(memcmp(f.data, "mid", 3) == 0);
    free(f.data);
    expect_big(&c, 1, text, BIG);
    close_clean(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1000);
    free(bin);
    free(text);
    server_stop();
}
END_TEST

START_TEST(large_message_split_anywhere)
{
    /* The frame in two writes: the server reads the first part (into the
     * read buffer, then straight into the message buffer once the payload
     * left passes the read buffer), then the rest, so the payload read
     * into the message buffer starts at every mask phase and at the read
     * buffer's edges. */
    server_start(routes);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/big", NULL, NULL, 0), 101);
    uint8_t *bin = binary_payload(BIG);
    uint8_t *frame = malloc(BIG + 14);
    size_t flen = ws_client_frame(frame, 0x82, bin, BIG, true);
    static const size_t at[] = {1,     2,     9,     10,    13,    14,    15,    16,    17,    4095,  4096,
                                16383, 16384, 16385, 16397, 16398, 16399, 16400, 65535, 65536, 65537, 65549,
                                65550, 65551, 65552, 131086, 200001, 283614, 283615, BIG + 13};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        ck_assert_int_eq(wsc_send(&c, frame, at[i]), 0);
        usleep(2000); /* lets the server read the first part on its own */
        ck_assert_int_eq(wsc_send(&c, frame + at[i], flen - at[i]), 0);
        expect_big(&c, 2, bin, BIG);
    }
    close_clean(&c);
    wait_closes(1);
    free(frame);
    free(bin);
    server_stop();
}
END_TEST

START_TEST(bad_utf8_deep_in_large_text_fails)
{
    server_start(routes);
    char *text = text_payload(BIG);
    /* One bad byte in a single frame, and one in the last fragment. */
    for (int fragmented = 0; fragmented < 2; fragmented++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/big", NULL, NULL, 0), 101);
        text[200000] = (char)0xff;
        if (fragmented) {
            ck_assert_int_eq(wsc_frame(&c, 0x01, text, 100000), 0);
            ck_assert_int_eq(wsc_frame(&c, 0x80, text + 100000, BIG - 100000), 0);
        } else {
            ck_assert_int_eq(wsc_frame(&c, 0x81, text, BIG), 0);
        }
        ck_assert_uint_eq(expect_close(&c), 1007);
        wsc_close(&c);
        wait_closes(fragmented + 1);
        ck_assert_int_eq(seen().last_code, 1007);
        text[200000] = 'a';
    }
    free(text);
    server_stop();
}
END_TEST

START_TEST(large_message_over_limit_fails)
{
    server_start(routes);
    uint8_t *bin = binary_payload(BIG);
    /* A single frame over the limit, then fragments that pass it together. */
    for (int fragmented = 0; fragmented < 2; fragmented++) {
        struct wsc c;
        ck_assert_int_eq(wsc_open(&c, port, "/limited", NULL, NULL, 0), 101);
        if (fragmented) {
            ck_assert_int_eq(wsc_frame(&c, 0x02, bin, 150000), 0);
            wsc_frame(&c, 0x80, bin + 150000, OVER - 150000); /* the server may have closed already */
        } else {
            wsc_frame(&c, 0x82, bin, OVER);
        }
        ck_assert_uint_eq(expect_close(&c), 1009);
        wsc_close(&c);
        wait_closes(fragmented + 1);
        ck_assert_int_eq(seen().last_code, 1009);
    }
    /* Just under the limit is echoed. */
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/limited", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x02, bin, 150000), 0);
    ck_assert_int_eq(wsc_frame(&c, 0x80, bin + 150000, LIMITED_MAX - 150000), 0);
    expect_big(&c, 2, bin, LIMITED_MAX);
    close_clean(&c);
    wait_closes(3);
    free(bin);
    server_stop();
}
END_TEST

START_TEST(large_sends_without_a_copy_into_frames)
{
    /* Sizes around the large-send threshold and the fragment size, one
     * over the socket's buffers, single frames and fragmented messages
     * (reassembled in the buffer the sends then hand over); each message
     * on the same connection, so every one starts in a new buffer. The
     * client reads only after sending, so the first send meets a socket
     * that takes part of it or none. */
    server_start(routes);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/relay", NULL, NULL, 0), 101);
    static const size_t sizes[] = {WS_SEND_LARGE + 2000 - 1, WS_SEND_LARGE + 2000, 2 * WS_SEND_FRAGMENT,
                                   2 * WS_SEND_FRAGMENT + 1, BIG, 1u << 20};
    uint8_t *bin = binary_payload(1u << 20);
    uint8_t *turned = malloc(1u << 20);
    for (int fragmented = 0; fragmented < 2; fragmented++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            if (fragmented) {
                ck_assert_int_eq(wsc_frame(&c, 0x02, bin, n / 3), 0);
                ck_assert_int_eq(wsc_frame(&c, 0x80, bin + n / 3, n - n / 3), 0);
            } else {
                ck_assert_int_eq(wsc_frame(&c, 0x82, bin, n), 0);
            }
            turn(turned, bin, n);
            expect_big(&c, 2, turned, n);
            expect_big(&c, 2, bin, n);
            expect_big(&c, 2, bin, n);
            expect_big(&c, 2, bin + 1000, n - 2000);
            expect_big(&c, 1, "end", 3);
        }
    }
    close_clean(&c);
    wait_closes(1);
    ck_assert_int_eq(seen().last_code, 1000);
    free(turned);
    free(bin);
    server_stop();
}
END_TEST

/* SO_SNDBUF of the server's end of c's connection (the server runs in
 * this process): the socket whose address is c's peer and whose peer is
 * c's address. -1 when none is found. */
static int server_sndbuf(const struct wsc *c)
{
    struct sockaddr_in me, srv;
    socklen_t l = sizeof me;
    ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&me, &l), 0);
    l = sizeof srv;
    ck_assert_int_eq(getpeername(c->fd, (struct sockaddr *)&srv, &l), 0);
    for (int fd = 0; fd < 4096; fd++) {
        struct sockaddr_in a, b;
        socklen_t la = sizeof a, lb = sizeof b;
        if (fd == c->fd || getsockname(fd, (struct sockaddr *)&a, &la) || getpeername(fd, (struct sockaddr *)&b, &lb))
            continue;
        if (a.sin_family != AF_INET || a.sin_port != srv.sin_port || b.sin_port != me.sin_port)
            continue;
        int v;
        socklen_t lv = sizeof v;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &lv) == 0)
            return v;
    }
    return -1;
}

/* What the kernel reports for SO_SNDBUF set to v: doubled, after capping
 * at net.core.wmem_max. */
static int granted(int v)
{
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
    int max = v;
    if (f) {
        if (fscanf(f, "%d", &max) != 1)
            max = v;
        fclose(f);
    }
    return 2 * (v < max ? v : max);
}

START_TEST(large_send_widens_the_send_buffer)
{
    /* The route's limit is 1 MiB: SO_SNDBUF is half of it capped at
     * 128 KiB until the first large own message, then all of it capped at
     * 1 MiB. A small echo leaves it as it is. */
    server_start(routes);
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/big", NULL, NULL, 0), 101);
    ck_assert_int_eq(server_sndbuf(&c), granted(WS_SNDBUF_MAX));
    uint8_t *bin = binary_payload(BIG);
    ck_assert_int_eq(wsc_frame(&c, 0x82, bin, 1000), 0);
    expect_big(&c, 2, bin, 1000);
    ck_assert_int_eq(server_sndbuf(&c), granted(WS_SNDBUF_MAX));
    ck_assert_int_eq(wsc_frame(&c, 0x82, bin, BIG), 0);
    expect_big(&c, 2, bin, BIG);
    ck_assert_int_eq(server_sndbuf(&c), granted(WS_SNDBUF_LARGE));
    /* And it goes on as before. */
    ck_assert_int_eq(wsc_frame(&c, 0x82, bin, BIG), 0);
    expect_big(&c, 2, bin, BIG);
    close_clean(&c);
    wait_closes(1);
    free(bin);
    server_stop();
}
END_TEST

START_TEST(large_sends_count_the_wider_kernel_share)
{
    /* A peer that takes little and never reads: large sends from the
     * handler's own buffer are taken until what is pending (the queue and
     * the kernel's share, which the wider send buffer lets reach about 2 MiB)
     * reaches the limit; at most the limit, one message and the little
     * the peer's window took were accepted, and all of it arrives intact
     * and in order. */
    server_start(routes);
    wsc_rcvbuf = 4096;
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/floodlarge", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    wait_bp_result();
    ck_assert_int_eq(seen().bp_result, SNOW_EBACKPRESSURE);
    int sent = seen().bp_sent;
    ck_assert_int_ge(seen().bp_buffered, (int64_t)FLOOD_LIMIT);
    ck_assert_int_le((int64_t)sent * FLOOD_MSG, (int64_t)FLOOD_LIMIT + FLOOD_MSG + 64 * 1024);
    ck_assert_int_gt(sent, 0);
    uint8_t *want = malloc(FLOOD_MSG);
    for (int k = 0; k < sent; k++) {
        for (size_t i = 0; i < FLOOD_MSG; i++)
            want[i] = (uint8_t)(i + (size_t)k);
        expect_big(&c, 2, want, FLOOD_MSG);
    }
    free(want);
    SnowWsStats st;
    snow_ws_route_stats(&h_flood_large, &st);
    ck_assert_uint_eq(st.backpressure_refused, 1);
    wsc_close(&c);
    wait_closes(1);
    wsc_rcvbuf = 0;
    server_stop();
}
END_TEST

START_TEST(stall_with_everything_in_the_kernel_closes)
{
    /* A peer that takes little and never reads, on a route whose limit
     * the widened send buffer can hold whole: its answers go to the
     * kernel until what it holds reaches the limit, then are refused with
     * the queue empty. No write waits, yet the connection is stalled, and
     * is closed after write_timeout like one whose queue is stuck. */
    server_start(routes);
    wsc_rcvbuf = 4096;
    kstall_refused = 0;
    kstall_queue_empty = -1;
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/kstall", NULL, NULL, 0), 101);
    for (int i = 0; i < 40 && wsc_frame(&c, 0x81, "go", 2) == 0; i++)
        usleep(20000);
    wait_closes(1);
    SnowWsStats st;
    snow_ws_route_stats(&h_kstall, &st);
    ck_assert_uint_eq(st.closed_write_stall, 1);
    ck_assert_uint_ge(st.backpressure_refused, 1);
    ck_assert_int_ge(kstall_refused, 1);
    /* Where net.core.wmem_max grants the kernel less than the limit the
     * queue holds the rest, and the queue's own clock is what closes. */
    if (granted(WS_SNDBUF_LARGE) >= 2 * (int)KSTALL_LIMIT)
        ck_assert_int_eq(kstall_queue_empty, 1);
    ck_assert_int_eq(snow_ws_connection_count(), 0);
    wsc_close(&c);
    wsc_rcvbuf = 0;
    server_stop();
}
END_TEST

Suite *conn_large_suite(void)
{
    Suite *s = suite_create("ws_conn_large");
    TCase *t = tcase_create("large");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, large_messages_echo_intact);
    tcase_add_test(t, large_message_split_anywhere);
    tcase_add_test(t, bad_utf8_deep_in_large_text_fails);
    tcase_add_test(t, large_message_over_limit_fails);
    tcase_add_test(t, large_sends_without_a_copy_into_frames);
    tcase_add_test(t, large_send_widens_the_send_buffer);
    tcase_add_test(t, large_sends_count_the_wider_kernel_share);
    tcase_add_test(t, stall_with_everything_in_the_kernel_closes);
    suite_add_tcase(s, t);
    return s;
}
