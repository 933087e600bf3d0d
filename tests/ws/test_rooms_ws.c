/*
 * test_rooms_ws.c: rooms with WebSocket members, over real sockets on
 * 127.0.0.1 (port 0) against an in-process server. The test's clients are
 * blocking sockets on the main thread (the runtime runs on a helper thread),
 * so Check's assertions stay on the main thread.
 *
 * Checked: broadcast and broadcast_except (the sender skipped, same
 * opcode), a connection's room list, that every exit path of a connection
 * removes it from its rooms (Close, protocol error, a panicking handler, a
 * kill, a TCP reset, a heartbeat reap, a refusal after a join in
 * on_connect), that what on_open does (a join, a send) has taken effect
 * before the client reads the 101, that a member over its outbound limit is skipped and counted
 * while the others get everything, and a resumable join replaying exactly
 * the missed frames before live ones.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rooms_test.h"
#include "ws/conn.h"

#define ROOM "wsr"
#define RL(s) (s), strlen(s)

static SnowWsHandler h_main, h_hb, h_small, h_resume, h_late;
static SnowHttpServer *srv;
static int port;
static pthread_t runner;

/* ---- the server's handlers ------------------------------------------------------ */

static int on_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    if (snow_http_req_query(req, "refuse", &n)) {
        /* Joined, then refused: the registry must forget it. */
        snow_ws_join(conn, RL(ROOM), NULL);
        snow_http_res_status(res, 403);
        return SNOW_WS_REFUSE;
    }
    return SNOW_WS_ACCEPT;
}

static _Atomic SnowPid last_open;

static void on_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    atomic_store(&last_open, snow_ws_pid(conn));
    snow_ws_join(conn, RL(ROOM), NULL);
    snow_ws_join(conn, RL("second"), NULL);
}

static void count_room(const char *room, size_t len, void *arg)
{
    (void)room;
    (void)len;
    (*(int *)arg)++;
}

static void adopter(void *arg)
{
    SnowPid pid = *(SnowPid *)arg;
    snow_ws_join(snow_ws_conn(pid), RL("adopted"), NULL);
}

/* A publisher that is no connection (a game loop, a feed). */
static void feed(void *arg)
{
    (void)arg;
    snow_ws_broadcast(RL(ROOM), "tick", 4, 1);
}

static void late_feed(void *arg)
{
    (void)arg;
    snow_ws_broadcast(RL("late"), "tick", 4, 1);
}

static void on_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    const char *s = data;
    if (len == 5 && !memcmp(s, "panic", 5))
        snow_panic("handler panics on purpose");
    if (len == 4 && !memcmp(s, "kill", 4))
        snow_actor_kill(snow_actor_self(), SNOW_EXIT_KILLED);
    if (len == 5 && !memcmp(s, "rooms", 5)) {
        int seen = 0;
        int n = snow_ws_rooms(conn, count_room, &seen);
        char out[32];
        int k = snprintf(out, sizeof out, "rooms %d %d", n, seen);
        snow_ws_send_text(conn, out, (size_t)k);
        return;
    }
    if (len == 5 && !memcmp(s, "adopt", 5)) {
        /* Another actor joins this connection to a room by its handle. */
        SnowPid me = snow_ws_pid(conn);
        snow_actor_spawn(adopter, &me, sizeof me);
        return;
    }
    if (len >= 3 && !memcmp(s, "bx:", 3)) {
        snow_ws_broadcast_except(RL(ROOM), s + 3, len - 3, is_text, conn);
        return;
    }
    if (len >= 2 && !memcmp(s, "b:", 2)) {
        snow_ws_broadcast(RL(ROOM), s + 2, len - 2, is_text);
        return;
    }
}

/* /resume: a resumable join from the position the test sets; refused
 * unless it recovers. */
static uint64_t resume_epoch, resume_seq;

static int resume_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    /* Joining before the 101: what is replayed goes out right after it. */
    int rc = snow_ws_join_since(conn, RL("hist"), resume_epoch, resume_seq, NULL);
    return rc == 1 ? SNOW_WS_ACCEPT : SNOW_WS_REFUSE;
}

/* /late: on_open takes its time (it parks) before it joins and greets. */
static void late_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    snow_sleep(300);
    snow_ws_join(conn, RL("late"), NULL);
    snow_ws_send_text(conn, RL("welcome"));
}

static void *run_rt(void *arg)
{
    (void)arg;
    snow_rt_run();
    return NULL;
}

static void server_up(void)
{
    ck_assert_int_eq(snow_rt_init(2), 0);
    snow_ws_handler_init(&h_main);
    h_main.on_connect = on_connect;
    h_main.on_open = on_open;
    h_main.on_message = on_message;
    h_hb = h_main;
    h_hb.ping_interval_ms = 300;
    h_hb.pong_timeout_ms = 300;
    h_small = h_main;
    h_small.outbound_limit = 4096;
    snow_ws_handler_init(&h_resume);
    h_resume.on_connect = resume_connect;
    snow_ws_handler_init(&h_late);
    h_late.on_open = late_open;
    SnowRouter *r = snow_router_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(snow_router_ws(r, "/r", &h_main), 0);
    ck_assert_int_eq(snow_router_ws(r, "/hb", &h_hb), 0);
    ck_assert_int_eq(snow_router_ws(r, "/small", &h_small), 0);
    ck_assert_int_eq(snow_router_ws(r, "/resume", &h_resume), 0);
    ck_assert_int_eq(snow_router_ws(r, "/late", &h_late), 0);
    int err = 0;
    srv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    snow_router_free(r);
    ck_assert_msg(srv != NULL, "server: %s", snow_strerror(err));
    port = snow_http_server_port(srv);
    ck_assert_int_eq(pthread_create(&runner, NULL, run_rt, NULL), 0);
}

static void server_down(void)
{
    snow_http_server_stop(srv);
    snow_rt_shutdown();
    pthread_join(runner, NULL);
}

/* ---- a small blocking client ------------------------------------------------------ */

int rooms_test_upgrade(int port, const char *path, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    return fd;
}

static int cl_connect(const char *path, int rcvbuf)
{
    return rooms_test_upgrade(port, path, rcvbuf);
}

/* Reads the response head; returns the status. */
static int cl_status(int fd)
{
    char head[2048];
    size_t n = 0;
    while (n + 1 < sizeof head) {
        ssize_t r = read(fd, head + n, 1);
        if (r <= 0)
            return -1;
        n++;
        if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4))
            break;
    }
    head[n] = 0;
    int status = 0;
    sscanf(head, "HTTP/1.1 %d", &status);
    return status;
}

static int ws_open(const char *path)
{
    int fd = cl_connect(path, 0);
    ck_assert_int_eq(cl_status(fd), 101);
    return fd;
}

static void cl_frame(int fd, unsigned b0, const void *p, size_t n, bool mask)
{
    uint8_t buf[16 + 4096];
    ck_assert_uint_le(n, 4096);
    size_t h = 0;
    buf[h++] = (uint8_t)b0;
    uint8_t m = mask ? 0x80 : 0;
    if (n < 126) {
        buf[h++] = m | (uint8_t)n;
    } else {
        buf[h++] = m | 126;
        buf[h++] = (uint8_t)(n >> 8);
        buf[h++] = (uint8_t)n;
    }
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    if (mask) {
        memcpy(buf + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++)
        buf[h + i] = ((const uint8_t *)p)[i] ^ (mask ? key[i & 3] : 0);
    ck_assert_int_eq(write(fd, buf, h + n), (ssize_t)(h + n));
}

static void cl_text(int fd, const char *s)
{
    cl_frame(fd, 0x81, s, strlen(s), true);
}

bool rooms_test_read_all(int fd, void *p, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* Reads one server frame, skipping pings. Returns the opcode (-1 on EOF or
 * timeout); the payload goes to out (NUL-terminated). */
static int cl_read(int fd, char *out, size_t cap, size_t *len)
{
    for (;;) {
        uint8_t h[2];
        if (!rooms_test_read_all(fd, h, 2))
            return -1;
        uint64_t n = h[1] & 0x7f;
        if (n == 126) {
            uint8_t e[2];
            if (!rooms_test_read_all(fd, e, 2))
                return -1;
            n = (uint64_t)e[0] << 8 | e[1];
        } else if (n == 127) {
            uint8_t e[8];
            if (!rooms_test_read_all(fd, e, 8))
                return -1;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | e[i];
        }
        ck_assert_uint_lt(n, cap);
        if (!rooms_test_read_all(fd, out, (size_t)n))
            return -1;
        out[n] = 0;
        if (len)
            *len = (size_t)n;
        if ((h[0] & 0x0f) != 0x9)
            return h[0] & 0x0f;
    }
}

static void expect_text(int fd, const char *want)
{
    char buf[8192];
    int op = cl_read(fd, buf, sizeof buf, NULL);
    ck_assert_int_eq(op, 1);
    ck_assert_str_eq(buf, want);
}

static bool wait_size(const char *room, int64_t n)
{
    for (int i = 0; i < 4000; i++) {
        if (snow_ws_room_size(RL(room)) == n)
            return true;
        usleep(5000);
    }
    return snow_ws_room_size(RL(room)) == n;
}

/* ---- cases ------------------------------------------------------------------------- */

START_TEST(ws_broadcast_and_except)
{
    server_up();
    int a = ws_open("/r"), b = ws_open("/r"), c = ws_open("/r");
    ck_assert(wait_size(ROOM, 3));
    ck_assert(wait_size("second", 3));
    cl_text(a, "rooms");
    expect_text(a, "rooms 2 2");
    cl_text(a, "bx:hello");
    expect_text(b, "hello");
    expect_text(c, "hello");
    /* a was skipped: the next frame it gets is the one after. */
    cl_text(b, "b:mark");
    expect_text(a, "mark");
    expect_text(b, "mark");
    expect_text(c, "mark");
    /* From an actor that is no connection. */
    ck_assert_uint_ne(snow_actor_spawn(feed, NULL, 0), 0);
    expect_text(a, "tick");
    expect_text(b, "tick");
    expect_text(c, "tick");
    /* Joined by another actor through the handle. */
    cl_text(c, "adopt");
    ck_assert(wait_size("adopted", 1));
    cl_text(c, "rooms");
    expect_text(c, "rooms 3 3");
    /* Binary stays binary. */
    cl_frame(c, 0x82, "bx:\x01\x02", 5, true);
    char buf[64];
    size_t n;
    ck_assert_int_eq(cl_read(a, buf, sizeof buf, &n), 2);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(cl_read(b, buf, sizeof buf, &n), 2);
    close(a);
    close(b);
    close(c);
    ck_assert(wait_size(ROOM, 0));
    ck_assert(wait_size("adopted", 0));
    server_down();
}
END_TEST

/* What on_open does has taken effect once the client has the 101, however
 * long on_open takes: the join is there (a broadcast made at once reaches
 * the member) and on_open's own frame is the first after the 101. */
START_TEST(ws_open_done_before_101)
{
    server_up();
    int a = ws_open("/late");
    ck_assert_int_eq(snow_ws_room_size(RL("late")), 1);
    ck_assert_uint_ne(snow_actor_spawn(late_feed, NULL, 0), 0);
    expect_text(a, "welcome");
    expect_text(a, "tick");
    close(a);
    ck_assert(wait_size("late", 0));
    server_down();
}
END_TEST

/* Several connections publishing at once, each a member of the room it
 * publishes to (snow_ws_broadcast includes the sender): every member sees
 * the same single order, which keeps each publisher's order. */
#define ORD_CONNS 4
#define ORD_EACH 150

START_TEST(ws_one_order_for_all_members)
{
    server_up();
    int fd[ORD_CONNS];
    for (int i = 0; i < ORD_CONNS; i++)
        fd[i] = ws_open("/r");
    ck_assert(wait_size(ROOM, ORD_CONNS));
    for (int k = 0; k < ORD_EACH; k++)
        for (int i = 0; i < ORD_CONNS; i++) {
            char m[32];
            snprintf(m, sizeof m, "b:%d:%d", i, k);
            cl_text(fd[i], m);
        }
    static char seen[ORD_CONNS][ORD_CONNS * ORD_EACH][64];
    for (int i = 0; i < ORD_CONNS; i++) {
        int next[ORD_CONNS] = {0};
        for (int n = 0; n < ORD_CONNS * ORD_EACH; n++) {
            char buf[64];
            ck_assert_int_eq(cl_read(fd[i], buf, sizeof buf, NULL), 1);
            int who, k;
            ck_assert_int_eq(sscanf(buf, "%d:%d", &who, &k), 2);
            ck_assert_int_ge(who, 0);
            ck_assert_int_lt(who, ORD_CONNS);
            ck_assert_int_eq(k, next[who]); /* each publisher in order */
            next[who]++;
            memcpy(seen[i][n], buf, sizeof seen[i][n]);
        }
    }
    for (int i = 1; i < ORD_CONNS; i++)
        for (int n = 0; n < ORD_CONNS * ORD_EACH; n++)
            ck_assert_str_eq(seen[i][n], seen[0][n]);
    for (int i = 0; i < ORD_CONNS; i++)
        close(fd[i]);
    ck_assert(wait_size(ROOM, 0));
    server_down();
}
END_TEST

START_TEST(ws_every_exit_path_leaves)
{
    server_up();
    int keep = ws_open("/r");
    ck_assert(wait_size(ROOM, 1));
    /* Close handshake. */
    int fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 2));
    cl_frame(fd, 0x88, "\x03\xe8", 2, true);
    ck_assert_msg(wait_size(ROOM, 1), "after a close");
    close(fd);
    /* Protocol error: an unmasked frame (close 1002). */
    fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 2));
    cl_frame(fd, 0x81, "x", 1, false);
    ck_assert_msg(wait_size(ROOM, 1), "after a protocol error");
    close(fd);
    /* A handler that panics (close 1011). */
    fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 2));
    cl_text(fd, "panic");
    ck_assert_msg(wait_size(ROOM, 1), "after a panic");
    close(fd);
    /* The connection's actor killed. */
    fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 2));
    cl_text(fd, "kill");
    ck_assert_msg(wait_size(ROOM, 1), "after a kill");
    close(fd);
    /* TCP reset. */
    fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 2));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    ck_assert_msg(wait_size(ROOM, 1), "after a reset");
    /* Heartbeat reap: a client that never answers pings (no FIN). */
    fd = cl_connect("/hb", 0);
    ck_assert_int_eq(cl_status(fd), 101);
    ck_assert(wait_size(ROOM, 2));
    ck_assert_msg(wait_size(ROOM, 1), "after a heartbeat reap");
    close(fd);
    /* Joined in on_connect, then refused. */
    fd = cl_connect("/r?refuse=1", 0);
    ck_assert_int_eq(cl_status(fd), 403);
    close(fd);
    ck_assert_msg(wait_size(ROOM, 1), "after a refusal in on_connect");
    /* Still one working member, in both rooms; nothing else anywhere. */
    cl_text(keep, "b:still");
    expect_text(keep, "still");
    close(keep);
    ck_assert(wait_size(ROOM, 0));
    /* A handle of an ended connection joins nothing. */
    fd = ws_open("/r");
    ck_assert(wait_size(ROOM, 1));
    SnowPid gone = atomic_load(&last_open);
    close(fd);
    ck_assert(wait_size(ROOM, 0));
    for (int i = 0; i < 4000 && snow_ws_conn(gone); i++)
        usleep(5000);
    ck_assert_int_eq(snow_ws_join(ws_handle(gone), RL(ROOM), NULL), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_room_size(RL(ROOM)), 0);
    ck_assert(wait_size("second", 0));
    SnowRoomCounters cn;
    for (int i = 0; i < 4000; i++) {
        snow_room_counters(&cn);
        if (cn.rooms == 0 && cn.members == 0)
            break;
        usleep(5000);
    }
    ck_assert_uint_eq(cn.rooms, 0);
    ck_assert_uint_eq(cn.members, 0);
    server_down();
}
END_TEST

START_TEST(ws_slow_member_skipped)
{
    server_up();
    /* A member of /small that never reads, with a tiny receive buffer. */
    int slow = cl_connect("/small", 2048);
    ck_assert_int_eq(cl_status(slow), 101);
    int fast = ws_open("/small");
    ck_assert(wait_size(ROOM, 2));
    char msg[1100] = "b:";
    memset(msg + 2, 'z', 1000);
    msg[1002] = 0;
    /* Each message is read before the next is sent, so the reading
     * member never nears its limit; the other one passes it at once. */
    for (int k = 0; k < 300; k++) {
        snprintf(msg + 2, 8, "%05d", k);
        msg[7] = 'z';
        cl_text(fast, msg);
        char buf[2048];
        ck_assert_int_eq(cl_read(fast, buf, sizeof buf, NULL), 1);
        ck_assert_int_eq(atoi(buf), k);
    }
    SnowRoomCounters cn;
    snow_room_counters(&cn);
    ck_assert_uint_gt(cn.skipped_backpressure, 0);
    ck_assert_uint_ge(cn.deliveries, 300);
    close(slow);
    close(fast);
    ck_assert(wait_size(ROOM, 0));
    server_down();
}
END_TEST

START_TEST(ws_resumable_join)
{
    server_up();
    SnowRoomOpts o = {.history = 16};
    ck_assert_int_eq(snow_room_configure(RL("hist"), &o), 0);
    for (int i = 1; i <= 5; i++) {
        char m[8];
        snprintf(m, sizeof m, "m%d", i);
        ck_assert_int_eq(snow_ws_broadcast(RL("hist"), m, strlen(m), 1), i);
    }
    SnowRoomPos pos;
    ck_assert_int_eq(snow_room_position(RL("hist"), &pos), 1);
    resume_epoch = pos.epoch;
    resume_seq = 2;
    int fd = ws_open("/resume");
    ck_assert(wait_size("hist", 1));
    ck_assert_int_eq(snow_ws_broadcast(RL("hist"), "m6", 2, 1), 6);
    expect_text(fd, "m3");
    expect_text(fd, "m4");
    expect_text(fd, "m5");
    expect_text(fd, "m6");
    /* From another epoch the join is not recovered (refused here). */
    resume_epoch = pos.epoch + 1;
    int fd2 = cl_connect("/resume", 0);
    ck_assert_int_eq(cl_status(fd2), 403);
    close(fd2);
    close(fd);
    ck_assert(wait_size("hist", 0));
    SnowRoomOpts off = {0};
    snow_room_configure(RL("hist"), &off);
    server_down();
}
END_TEST

Suite *rooms_ws_suite(void)
{
    Suite *s = suite_create("rooms-ws");
    TCase *tc = tcase_create("members");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ws_broadcast_and_except);
    tcase_add_test(tc, ws_open_done_before_101);
    tcase_add_test(tc, ws_one_order_for_all_members);
    tcase_add_test(tc, ws_every_exit_path_leaves);
    tcase_add_test(tc, ws_slow_member_skipped);
    tcase_add_test(tc, ws_resumable_join);
    suite_add_tcase(s, tc);
    return s;
}
