/*
 * test_rooms_direct.c: direct delivery (runtime/ws/conn.c). A lone
 * broadcast to a WebSocket member that hibernates with nothing queued is
 * written by the deliverer itself, without waking the member; when the
 * socket takes only part of the frame the member's actor writes the rest
 * before anything else. Checked over a real socket: a member that does not
 * read while frames pile up in its socket receives every delivered frame
 * whole, byte for byte and in order, then a frame sent when it caught up;
 * the deliveries, the direct writes and the partial ones are counted.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rooms_test.h"
#include "ws/rooms.h"

#define DROOM "direct"
#define DSIZE 6000
#define DMAX 60

static SnowWsHandler h_direct;
static SnowHttpServer *dsrv;
static int dport;
static pthread_t drunner;

static void d_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    snow_ws_join(conn, DROOM, strlen(DROOM), NULL);
}

static void *d_run(void *arg)
{
    (void)arg;
    snow_rt_run();
    return NULL;
}

static int d_connect(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dport)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char req[] = "GET /d HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ck_assert_int_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char head[1024];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4)) {
        ck_assert_uint_lt(n, sizeof head);
        ck_assert_int_eq(read(fd, head + n, 1), 1);
        n++;
    }
    ck_assert_int_eq(memcmp(head, "HTTP/1.1 101", 12), 0);
    return fd;
}

static bool d_read_all(int fd, void *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* One binary frame of DSIZE bytes: returns its tag byte, -1 when the
 * stream is not exactly such a frame with the pattern of its tag. */
static int d_frame(int fd)
{
    uint8_t h[4], p[DSIZE];
    if (!d_read_all(fd, h, 4) || h[0] != 0x82 || h[1] != 126 || ((h[2] << 8) | h[3]) != DSIZE ||
        !d_read_all(fd, p, DSIZE))
        return -1;
    for (int i = 0; i < DSIZE; i++)
        if (p[i] != (uint8_t)(p[0] + i))
            return -1;
    return p[0];
}

static void d_publish(int k)
{
    uint8_t p[DSIZE];
    for (int i = 0; i < DSIZE; i++)
        p[i] = (uint8_t)(k + i);
    ck_assert_int_gt(snow_ws_broadcast(DROOM, strlen(DROOM), p, sizeof p, 0), 0);
}

static uint64_t counter(atomic_uint_fast64_t *c)
{
    return atomic_load(c);
}

START_TEST(direct_delivery_keeps_frames_whole)
{
    ck_assert_int_eq(snow_rt_init(2), 0);
    snow_ws_handler_init(&h_direct);
    h_direct.on_open = d_open;
    /* A small limit means a small SO_SNDBUF: the socket fills after a few
     * frames, so a direct write meets a socket with room for only part. */
    h_direct.outbound_limit = 16 * 1024;
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_ws(r, "/d", &h_direct), 0);
    int err = 0;
    dsrv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    snow_router_free(r);
    ck_assert_ptr_nonnull(dsrv);
    dport = snow_http_server_port(dsrv);
    ck_assert_int_eq(pthread_create(&drunner, NULL, d_run, NULL), 0);

    int fd = d_connect(4096);
    for (int i = 0; i < 4000 && snow_ws_room_size(DROOM, strlen(DROOM)) != 1; i++)
        usleep(5000);
    ck_assert_int_eq(snow_ws_room_size(DROOM, strlen(DROOM)), 1);
    /* Let the member finish its turn and hibernate. */
    usleep(200000);
    uint64_t d0 = counter(&rooms_stats.deliveries), s0 = counter(&rooms_stats.skipped_backpressure);
    uint64_t w0 = counter(&rooms_stats.direct), p0 = counter(&rooms_stats.direct_partial);
    /* Publish without reading until a direct write was cut short (or
     * DMAX frames: the assertion below says so). Each publish waits a
     * little, so the member can take a rest and hibernate again. */
    int published = 0;
    while (published < DMAX && counter(&rooms_stats.direct_partial) == p0) {
        d_publish(published++);
        usleep(20000);
    }
    uint64_t delivered = counter(&rooms_stats.deliveries) - d0;
    uint64_t skipped = counter(&rooms_stats.skipped_backpressure) - s0;
    ck_assert_uint_eq(delivered + skipped, (uint64_t)published);
    ck_assert_uint_ge(counter(&rooms_stats.direct) - w0, 1);
    ck_assert_uint_ge(counter(&rooms_stats.direct_partial) - p0, 1);
    /* Every delivered frame arrives whole and in order. */
    int last = -1;
    for (uint64_t i = 0; i < delivered; i++) {
        int tag = d_frame(fd);
        ck_assert_int_ge(tag, 0);
        ck_assert_int_gt(tag, last);
        last = tag;
    }
    /* Caught up: the member hibernates again and the next one arrives. */
    usleep(200000);
    d_publish(200);
    ck_assert_int_eq(d_frame(fd), 200);
    close(fd);
    for (int i = 0; i < 4000 && snow_ws_room_size(DROOM, strlen(DROOM)) != 0; i++)
        usleep(5000);
    snow_http_server_stop(dsrv);
    snow_rt_shutdown();
    pthread_join(drunner, NULL);
}
END_TEST

Suite *rooms_direct_suite(void)
{
    Suite *s = suite_create("rooms-direct");
    TCase *tc = tcase_create("direct");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, direct_delivery_keeps_frames_whole);
    suite_add_tcase(s, tc);
    return s;
}
