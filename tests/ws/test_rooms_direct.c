/*
 * test_rooms_direct.c: direct delivery (runtime/ws/deliver.c). Broadcasts
 * to a WebSocket member that hibernates with nothing queued are written by
 * the deliverer itself, a batch of them in one writev, without waking the
 * member; when the socket takes only part of a frame the member's actor
 * writes the rest, then the frames behind it, before anything else.
 * Checked over real sockets: a member that does not read while frames pile
 * up in its socket receives every delivered frame whole, byte for byte and
 * in order, then a frame sent when it caught up; a batch goes out in one
 * write with its sequence numbers (stamped into the payload) consecutive;
 * a batch the deliverer laid out once for the members that take all of
 * it, and the frames of a member that skips some, each arrive exactly; a
 * batch cut short keeps its order; a member that is awake in a handler
 * gets nothing written behind its back; members publishing and reading on
 * two workers all see the room's frames whole and in sequence order. The
 * deliveries, the direct writes and the partial ones are counted.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* Starts the test server on r (freed here) and the runtime's thread. */
static void d_serve(SnowRouter *r)
{
    int err = 0;
    dsrv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    snow_router_free(r);
    ck_assert_ptr_nonnull(dsrv);
    dport = snow_http_server_port(dsrv);
    ck_assert_int_eq(pthread_create(&drunner, NULL, d_run, NULL), 0);
}

static int d_connect_to(const char *path, int rcvbuf)
{
    int fd = rooms_test_upgrade(dport, path, rcvbuf);
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

static int d_connect(int rcvbuf)
{
    return d_connect_to("/d", rcvbuf);
}

/* One binary frame of DSIZE bytes: returns its tag byte, -1 when the
 * stream is not exactly such a frame with the pattern of its tag. */
static int d_frame(int fd)
{
    uint8_t h[4], p[DSIZE];
    if (!rooms_test_read_all(fd, h, 4) || h[0] != 0x82 || h[1] != 126 || ((h[2] << 8) | h[3]) != DSIZE ||
        !rooms_test_read_all(fd, p, DSIZE))
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
    d_serve(r);

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

/* ---- batches: several frames for one member in one writev ---------------------- */

/*
 * A member publishes (text "go N S": N binary frames of S bytes), so the
 * broadcasts go to the room's deliverer actor (a publisher does not deliver
 * to itself), queued behind each other: the deliverer takes them as one
 * batch. The publisher is a second member, on /p (default limits, a peer
 * that reads nothing): it has just had its peer's bytes, so it stays awake
 * for a moment and usually takes its copies through its mailbox, but may
 * have hibernated too by the time the deliverer runs. The member under
 * test, on /d, has sent nothing for long enough to hibernate, so the batch
 * meets it parked. Each payload starts with its sequence number stamped by
 * the runtime (20 digits), then its index in the batch, then a pattern of
 * that index.
 */
#define BROOM "batch"

static SnowWsHandler h_batch, h_pub;

/* The pid of the last member that opened on /d (its handler's arg). */
static _Atomic SnowPid b_member;

static void b_open(SnowWsConn *conn, void *arg)
{
    if (arg)
        atomic_store((_Atomic SnowPid *)arg, snow_ws_pid(conn));
    snow_ws_join(conn, BROOM, strlen(BROOM), NULL);
}

static atomic_int b_held, b_release;

static void b_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)conn;
    (void)arg;
    char cmd[64];
    unsigned n, size;
    if (!is_text || len >= sizeof cmd)
        return;
    memcpy(cmd, data, len);
    cmd[len] = 0;
    if (!strcmp(cmd, "hold")) {
        /* Stays awake (in its handler, on its worker) until released. */
        atomic_store(&b_held, 1);
        while (!atomic_load(&b_release))
            usleep(1000);
        return;
    }
    /* "go N S": N frames of S bytes to everyone; "alt N S": the same, but
     * the member on /d skips every odd one. */
    bool alt = sscanf(cmd, "alt %u %u", &n, &size) == 2;
    if ((!alt && sscanf(cmd, "go %u %u", &n, &size) != 2) || size < 22 || size > 8192)
        return;
    uint8_t p[8192];
    SnowRoomPublish o;
    snow_room_publish_init(&o);
    o.seq_at = 0;
    for (unsigned k = 0; k < n; k++) {
        o.except = alt && k % 2 ? atomic_load(&b_member) : 0;
        memset(p, '0', 20);
        p[20] = (uint8_t)k;
        for (unsigned i = 21; i < size; i++)
            p[i] = (uint8_t)(k + i);
        ck_assert_int_gt(snow_room_publish(BROOM, strlen(BROOM), p, size, &o), 0);
    }
}

static void b_send_text(int fd, const char *t)
{
    /* A masked client text frame (key 0: the payload as is). */
    size_t n = strlen(t);
    uint8_t f[2 + 4 + 64] = {0x81, (uint8_t)(0x80 | n)};
    ck_assert_uint_lt(n, 64);
    memcpy(f + 6, t, n);
    ck_assert_int_eq(write(fd, f, 6 + n), (ssize_t)(6 + n));
}

/* One binary frame as b_message builds them: its sequence number, or 0
 * when the stream is not exactly such a frame of size bytes. */
static uint64_t b_frame(int fd, unsigned size)
{
    uint8_t h[4], p[8192];
    if (!rooms_test_read_all(fd, h, 2) || h[0] != 0x82)
        return 0;
    size_t len = h[1];
    if (len == 126) {
        if (!rooms_test_read_all(fd, h + 2, 2))
            return 0;
        len = (size_t)(h[2] << 8) | h[3];
    }
    if (len != size || !rooms_test_read_all(fd, p, len))
        return 0;
    uint64_t seq = 0;
    for (int i = 0; i < 20; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        seq = seq * 10 + (uint64_t)(p[i] - '0');
    }
    for (unsigned i = 21; i < size; i++)
        if (p[i] != (uint8_t)(p[20] + i))
            return 0;
    return seq;
}

static void b_start_limit(int workers, size_t limit)
{
    ck_assert_int_eq(snow_rt_init(workers), 0);
    snow_ws_handler_init(&h_batch);
    h_batch.on_open = b_open;
    h_batch.arg = (void *)&b_member;
    h_batch.on_message = b_message;
    h_batch.outbound_limit = limit;
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_ws(r, "/d", &h_batch), 0);
    snow_ws_handler_init(&h_pub);
    h_pub.on_open = b_open;
    h_pub.on_message = b_message;
    ck_assert_int_eq(snow_router_ws(r, "/p", &h_pub), 0);
    d_serve(r);
}

/* SO_SNDBUF is capped at half of the limit: a batch of 32 KiB fills the
 * socket of a peer that does not read. */
static void b_start(int workers)
{
    b_start_limit(workers, 32 * 1024);
}

static void b_stop(void)
{
    for (int i = 0; i < 4000 && snow_ws_room_size(BROOM, strlen(BROOM)) != 0; i++)
        usleep(5000);
    snow_http_server_stop(dsrv);
    snow_rt_shutdown();
    pthread_join(drunner, NULL);
}

static void b_wait_members(int64_t n)
{
    for (int i = 0; i < 4000 && snow_ws_room_size(BROOM, strlen(BROOM)) != n; i++)
        usleep(5000);
    ck_assert_int_eq(snow_ws_room_size(BROOM, strlen(BROOM)), n);
}

/* Waits until the counters account for want more frames than at d0/s0. */
static void b_wait_accounted(uint64_t d0, uint64_t s0, uint64_t want)
{
    for (int i = 0; i < 4000; i++) {
        if (counter(&rooms_stats.deliveries) - d0 + counter(&rooms_stats.skipped_backpressure) - s0 >= want)
            return;
        usleep(5000);
    }
    ck_abort_msg("the deliverer did not account for %llu frames", (unsigned long long)want);
}

/* The direct counters over one round of n frames to each of the two
 * members: the parked member's n frames in one write, and the publisher's
 * n in one more only if it had hibernated by then. */
static void b_check_direct(uint64_t frames, uint64_t writes, uint64_t n)
{
    ck_assert_msg((frames == n && writes == 1) || (frames == 2 * n && writes == 2),
                  "%llu frames written directly in %llu writes", (unsigned long long)frames,
                  (unsigned long long)writes);
}

START_TEST(direct_batch_in_one_write)
{
    b_start(1);
    int fd = d_connect(256 * 1024), pub = d_connect_to("/p", 256 * 1024);
    b_wait_members(2);
    usleep(200000); /* the member hibernates */
    uint64_t d0 = counter(&rooms_stats.deliveries), w0 = counter(&rooms_stats.direct);
    uint64_t x0 = counter(&rooms_stats.direct_writes), s0 = counter(&rooms_stats.skipped_backpressure);
    b_send_text(pub, "go 64 100");
    b_wait_accounted(d0, s0, 128);
    /* 64 frames of 102 bytes to each member: all of the parked member's in
     * one write of the deliverer (and the publisher's likewise if it had
     * hibernated too). */
    ck_assert_uint_eq(counter(&rooms_stats.deliveries) - d0, 128);
    b_check_direct(counter(&rooms_stats.direct) - w0, counter(&rooms_stats.direct_writes) - x0, 64);
    uint64_t first = b_frame(fd, 100);
    ck_assert_uint_gt(first, 0);
    for (uint64_t i = 1; i < 64; i++)
        ck_assert_uint_eq(b_frame(fd, 100), first + i);
    /* Again, after it hibernated once more: the sequence goes on. */
    usleep(200000);
    x0 = counter(&rooms_stats.direct_writes);
    d0 = counter(&rooms_stats.deliveries);
    s0 = counter(&rooms_stats.skipped_backpressure);
    b_send_text(pub, "go 8 30");
    for (uint64_t i = 0; i < 8; i++)
        ck_assert_uint_eq(b_frame(fd, 30), first + 64 + i);
    /* The frames can reach us before the deliverer counts them. */
    b_wait_accounted(d0, s0, 16);
    uint64_t dw = counter(&rooms_stats.direct_writes) - x0;
    ck_assert(dw == 1 || dw == 2);
    close(pub);
    close(fd);
    b_stop();
}
END_TEST

/*
 * The deliverer lays a batch's frames out once for every member that takes
 * all of them; a member that skips some (here the parked member, excepted
 * from every odd one, written by the deliverer) gets its own. Both get
 * exactly theirs, whole and in order.
 */
START_TEST(direct_batch_laid_out_and_per_member)
{
    b_start(1);
    int fd = d_connect(256 * 1024), pub = d_connect_to("/p", 256 * 1024);
    b_wait_members(2);
    usleep(200000); /* the member hibernates */
    uint64_t d0 = counter(&rooms_stats.deliveries), s0 = counter(&rooms_stats.skipped_backpressure);
    b_send_text(pub, "alt 32 100");
    uint64_t first = b_frame(pub, 100);
    ck_assert_uint_gt(first, 0);
    for (uint64_t i = 1; i < 32; i++)
        ck_assert_uint_eq(b_frame(pub, 100), first + i);
    for (uint64_t i = 0; i < 16; i++)
        ck_assert_uint_eq(b_frame(fd, 100), first + 2 * i);
    b_wait_accounted(d0, s0, 48);
    ck_assert_uint_eq(counter(&rooms_stats.deliveries) - d0, 48);
    close(pub);
    close(fd);
    b_stop();
}
END_TEST

START_TEST(direct_batch_cut_short_keeps_order)
{
    b_start(1);
    /* The peer reads nothing until the end: a batch larger than what the
     * socket can hold is cut inside a frame; its rest and the frames
     * behind it go to the member's actor, which writes them in order. */
    int fd = d_connect(4096), pub = d_connect_to("/p", 256 * 1024);
    b_wait_members(2);
    usleep(200000);
    uint64_t d0 = counter(&rooms_stats.deliveries), s0 = counter(&rooms_stats.skipped_backpressure);
    uint64_t p0 = counter(&rooms_stats.direct_partial), x0 = counter(&rooms_stats.direct_writes);
    b_send_text(pub, "go 64 1000");
    b_wait_accounted(d0, s0, 128);
    /* The publisher's peer has room for all 64 of its copies. */
    uint64_t delivered = counter(&rooms_stats.deliveries) - d0 - 64;
    uint64_t parts = counter(&rooms_stats.direct_partial) - p0, dw = counter(&rooms_stats.direct_writes) - x0;
    ck_assert(parts == 1 || parts == 2);
    ck_assert(dw == 1 || dw == 2);
    ck_assert_uint_ge(delivered, 2);
    /* Every delivered frame whole, in sequence order; only the refused
     * ones (over the outbound limit, counted) are missing. */
    uint64_t last = 0;
    for (uint64_t i = 0; i < delivered; i++) {
        uint64_t seq = b_frame(fd, 1000);
        ck_assert_uint_gt(seq, last);
        last = seq;
    }
    /* Caught up: the member hibernates again, and the next batch comes
     * right after the last frame published. */
    usleep(200000);
    b_send_text(pub, "go 4 50");
    uint64_t base = b_frame(fd, 50);
    ck_assert_uint_gt(base, last);
    for (uint64_t i = 1; i < 4; i++)
        ck_assert_uint_eq(b_frame(fd, 50), base + i);
    close(pub);
    close(fd);
    b_stop();
}
END_TEST

/*
 * An awake owner keeps its socket: frames published (from a thread that is
 * no actor, so the publisher delivers them itself) while the member runs a
 * handler go through its mailbox, and none of their bytes reach the peer
 * before the handler returns.
 */
START_TEST(direct_never_while_owner_awake)
{
    b_start(2);
    int fd = d_connect(256 * 1024);
    b_wait_members(1);
    usleep(200000);
    atomic_store(&b_held, 0);
    atomic_store(&b_release, 0);
    b_send_text(fd, "hold");
    for (int i = 0; i < 4000 && !atomic_load(&b_held); i++)
        usleep(5000);
    ck_assert_int_eq(atomic_load(&b_held), 1);
    uint64_t d0 = counter(&rooms_stats.deliveries), w0 = counter(&rooms_stats.direct);
    uint8_t p[40];
    memset(p, '0', 20);
    for (int k = 0; k < 3; k++) {
        p[20] = (uint8_t)k;
        for (int i = 21; i < 40; i++)
            p[i] = (uint8_t)(k + i);
        SnowRoomPublish o;
        snow_room_publish_init(&o);
        o.seq_at = 0;
        ck_assert_int_gt(snow_room_publish(BROOM, strlen(BROOM), p, sizeof p, &o), 0);
    }
    /* Delivered (counted after the frames are handed over), not written. */
    ck_assert_uint_eq(counter(&rooms_stats.deliveries) - d0, 3);
    ck_assert_uint_eq(counter(&rooms_stats.direct) - w0, 0);
    uint8_t probe;
    ck_assert_int_eq(recv(fd, &probe, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    atomic_store(&b_release, 1);
    uint64_t first = b_frame(fd, 40);
    ck_assert_uint_gt(first, 0);
    ck_assert_uint_eq(b_frame(fd, 40), first + 1);
    ck_assert_uint_eq(b_frame(fd, 40), first + 2);
    close(fd);
    b_stop();
}
END_TEST

/*
 * Several members on two workers, each publishing batches while reading:
 * deliverers write to parked members while other members wake, write,
 * hibernate and publish. Every member must see every frame of the room
 * whole and in sequence order (no frame lost: the whole run fits in every
 * member's limit, so a reader thread the machine starves for a while
 * still misses nothing), which fails if a deliverer wrote while the
 * owner was awake (frames overtaken or torn) or an owner wrote a batch's
 * mailbox frames before what a deliverer had written.
 */
#define BCLIENTS 4
#define BROUNDS 40
#define BPER 16

struct b_reader {
    int fd;
    uint64_t got, first, bad;
    pthread_t t;
};

static void *b_read_all(void *arg)
{
    struct b_reader *r = arg;
    uint64_t last = 0;
    while (r->got < (uint64_t)BCLIENTS * BROUNDS * BPER) {
        uint64_t seq = b_frame(r->fd, 40);
        if (!seq || (last && seq != last + 1)) {
            r->bad = seq ? seq : UINT64_MAX;
            break;
        }
        if (!last)
            r->first = seq;
        last = seq;
        r->got++;
    }
    return NULL;
}

START_TEST(direct_batches_concurrent_in_order)
{
    b_start_limit(2, 1 << 20);
    struct b_reader rd[BCLIENTS];
    for (int i = 0; i < BCLIENTS; i++)
        rd[i] = (struct b_reader){.fd = d_connect(256 * 1024)};
    b_wait_members(BCLIENTS);
    usleep(100000);
    uint64_t s0 = counter(&rooms_stats.skipped_backpressure);
    for (int i = 0; i < BCLIENTS; i++)
        ck_assert_int_eq(pthread_create(&rd[i].t, NULL, b_read_all, &rd[i]), 0);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "go %d 40", BPER);
    for (int round = 0; round < BROUNDS; round++) {
        for (int i = 0; i < BCLIENTS; i++)
            b_send_text(rd[i].fd, cmd);
        usleep(2000);
    }
    for (int i = 0; i < BCLIENTS; i++) {
        pthread_join(rd[i].t, NULL);
        ck_assert_msg(rd[i].bad == 0, "reader %d: seq %llu after %llu frames (%llu skipped for backpressure)", i,
                      (unsigned long long)rd[i].bad, (unsigned long long)rd[i].got,
                      (unsigned long long)(counter(&rooms_stats.skipped_backpressure) - s0));
        ck_assert_uint_eq(rd[i].got, (uint64_t)BCLIENTS * BROUNDS * BPER);
        ck_assert_uint_eq(rd[i].first, rd[0].first);
    }
    ck_assert_uint_eq(counter(&rooms_stats.skipped_backpressure) - s0, 0);
    for (int i = 0; i < BCLIENTS; i++)
        close(rd[i].fd);
    b_stop();
}
END_TEST

Suite *rooms_direct_suite(void)
{
    Suite *s = suite_create("rooms-direct");
    TCase *tc = tcase_create("direct");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, direct_delivery_keeps_frames_whole);
    tcase_add_test(tc, direct_batch_in_one_write);
    tcase_add_test(tc, direct_batch_laid_out_and_per_member);
    tcase_add_test(tc, direct_batch_cut_short_keeps_order);
    tcase_add_test(tc, direct_never_while_owner_awake);
    tcase_add_test(tc, direct_batches_concurrent_in_order);
    suite_add_tcase(s, tc);
    return s;
}
