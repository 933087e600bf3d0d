/* Parking on I/O: readiness, mailbox and deadline in one wait; 10,000
 * actors parked on socketpairs all woken. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static atomic_long result;

static void wait_kinds_root(void *arg)
{
    (void)arg;
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int err;
    SnowIo *io = snow_io_open(sv[0], &err);
    long r = (long)(io != NULL && err == 0) << 15;
    /* Nothing to read: the deadline ends the wait. */
    int got = snow_wait(io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, 30);
    r |= (long)(got == SNOW_WAIT_TIMEOUT) << 0;
    /* A message ends it. */
    snow_actor_send(snow_actor_self(), 1, NULL, 0);
    got = snow_wait(io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, 1000);
    r |= (long)((got & SNOW_WAIT_MAILBOX) && !(got & SNOW_WAIT_READABLE)) << 1;
    snow_actor_receive(0);
    /* Data ends it. */
    ssize_t w = write(sv[1], "ping", 4);
    got = snow_wait(io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, 1000);
    r |= (long)(w == 4 && (got & SNOW_WAIT_READABLE) && !(got & SNOW_WAIT_MAILBOX)) << 2;
    char buf[8];
    r |= (long)(read(sv[0], buf, sizeof buf) == 4) << 3;
    r |= (long)(read(sv[0], buf, sizeof buf) < 0 && errno == EAGAIN) << 4;
    /* Readiness was consumed: waiting again parks until the deadline. */
    got = snow_wait(io, SNOW_WAIT_READABLE, 20);
    r |= (long)(got == SNOW_WAIT_TIMEOUT) << 5;
    /* Writable right away on an empty socket buffer. */
    got = snow_wait(io, SNOW_WAIT_WRITABLE, 1000);
    r |= (long)((got & SNOW_WAIT_WRITABLE) != 0) << 6;
    /* The peer hangs up: readable with HANGUP, read returns 0. */
    close(sv[1]);
    got = snow_wait(io, SNOW_WAIT_READABLE, 1000);
    r |= (long)((got & SNOW_WAIT_READABLE) && read(sv[0], buf, sizeof buf) == 0) << 7;
    snow_io_close(io);
    /* A message a selective receive skipped is still unread: waiting on the
     * mailbox returns at once, not at the deadline. */
    SnowPid self = snow_actor_self();
    snow_actor_send(self, 1, NULL, 0);
    snow_actor_send(self, 2, NULL, 0);
    uint64_t two = 2;
    snow_actor_receive_match(&two, 1, 0);
    int64_t t0 = snow_now_ms();
    got = snow_wait(NULL, SNOW_WAIT_MAILBOX, 2000);
    r |= (long)(got == SNOW_WAIT_MAILBOX && snow_now_ms() - t0 < 1000) << 8;
    atomic_store(&result, r);
}

START_TEST(wait_reports_what_happened)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, wait_kinds_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 0x81ff);
}
END_TEST

/* 10,000 actors, each parked on one end of a socketpair (5,000 pairs, so
 * 10,000 fds under the 20,000 open-file limit); the writer wakes them all. */
#define PARKED 10000

static int fds[PARKED];
static atomic_long woken, bad, idle_cpu_us;

static void parked_reader(void *arg)
{
    int i = *(int *)arg;
    int err;
    SnowIo *io = snow_io_open(fds[i], &err);
    if (!io) {
        atomic_fetch_add(&bad, 1);
        return;
    }
    atomic_fetch_add(&result, 1);
    char c;
    for (;;) {
        ssize_t n = read(fds[i], &c, 1);
        if (n == 1) {
            if (c != (char)('a' + i % 26))
                atomic_fetch_add(&bad, 1);
            break;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            atomic_fetch_add(&bad, 1);
            break;
        }
        snow_wait(io, SNOW_WAIT_READABLE, -1);
    }
    atomic_fetch_add(&woken, 1);
    /* Stay until every reader was woken, so no peer end closes early;
     * the fd is closed at exit. */
    snow_actor_receive(-1);
}

static SnowPid readers[PARKED];

static void parked_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < PARKED; i++)
        readers[i] = snow_actor_spawn(parked_reader, &i, sizeof i);
    while (atomic_load(&result) < PARKED && !atomic_load(&bad))
        snow_sleep(5);
    snow_sleep(20); /* let them all park */
    /* 10,000 actors parked on sockets cost no CPU: process CPU time over
     * 300 ms of waiting (a polling design would burn most of it). */
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    snow_sleep(300);
    getrusage(RUSAGE_SELF, &r1);
    long us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
              (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    atomic_store(&idle_cpu_us, us);
    for (int i = 0; i < PARKED; i++) {
        char c = (char)('a' + i % 26);
        if (write(fds[i ^ 1], &c, 1) != 1) /* fds[i ^ 1] is the peer of fds[i] */
            atomic_fetch_add(&bad, 1);
    }
    for (int t = 0; t < 2000 && atomic_load(&woken) + atomic_load(&bad) < PARKED; t++)
        snow_sleep(5);
    for (int i = 0; i < PARKED; i++)
        snow_actor_send(readers[i], 1, NULL, 0);
}

START_TEST(ten_thousand_parked_on_sockets)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ck_assert_int_ge((long)rl.rlim_cur, PARKED + 100);
    for (int i = 0; i < PARKED; i += 2) {
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        fds[i] = sv[0];
        fds[i + 1] = sv[1];
    }
    atomic_store(&result, 0);
    atomic_store(&woken, 0);
    atomic_store(&bad, 0);
    RUN_ROOT(2, parked_root, NULL);
    ck_assert_int_eq(atomic_load(&bad), 0);
    ck_assert_int_eq(atomic_load(&woken), PARKED);
    /* Less than 10% of one core over the idle window. */
    ck_assert_int_lt(atomic_load(&idle_cpu_us), 30000);
}
END_TEST

static void hib_io_writer(void *arg)
{
    struct { SnowPid to; int fd; } *w = arg;
    snow_sleep(20);
    if (write(w->fd, "wake", 4) != 4)
        return;
    snow_sleep(100); /* past the 30 ms deadline of the second hibernation */
    snow_actor_send(w->to, 1, NULL, 0);
    close(w->fd);
}

/* An fd left open by an actor that exits is closed and deregistered. */
static int leaked_fd = -1;

static void opener(void *arg)
{
    (void)arg;
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    leaked_fd = sv[0];
    snow_io_open(sv[0], NULL);
    close(sv[1]);
}

START_TEST(exit_closes_owned_fds)
{
    RUN_ROOT(1, opener, NULL);
    ck_assert_int_ge(leaked_fd, 0);
    ck_assert_int_eq(fcntl(leaked_fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* Hibernating on a socket (the WebSocket loop's idle state): the
 * continuation starts on a fresh stack when data arrives, and again when
 * only the deadline passes. */
struct hib_io {
    SnowIo *io;
    int fd, peer;
    int step;
    long seen;
};

static void hib_io_step(void *arg)
{
    struct hib_io *h = arg;
    char buf[8];
    ssize_t n = read(h->fd, buf, sizeof buf);
    int got = snow_wait(h->io, SNOW_WAIT_READABLE, 0); /* what holds now, without parking */
    (void)got;
    h->step++;
    if (h->step == 1) {
        /* Woken by data. */
        h->seen += n == 4 && !memcmp(buf, "wake", 4);
        actor_hibernate(h->io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, actor_deadline_after_ms(30), hib_io_step, h);
    }
    if (h->step == 2) {
        /* Woken by the deadline alone: nothing to read. */
        h->seen += (n < 0 && errno == EAGAIN) * 10;
        actor_hibernate(h->io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, -1, hib_io_step, h);
    }
    /* Step 3: woken by a message. */
    h->seen += (snow_actor_receive(0) != NULL) * 100;
    atomic_store(&result, h->seen);
}

static void hib_io_root(void *arg)
{
    (void)arg;
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct hib_io *h = snow_gc_alloc(sizeof *h);
    h->fd = sv[0];
    h->peer = sv[1];
    h->io = snow_io_open(sv[0], NULL);
    SnowPid self = snow_actor_self();
    /* A helper writes after we hibernated, then sends a message later. */
    struct { SnowPid to; int fd; } w = {self, sv[1]};
    snow_actor_spawn(hib_io_writer, &w, sizeof w);
    actor_hibernate(h->io, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, -1, hib_io_step, h);
}

START_TEST(hibernate_on_socket)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, hib_io_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 111);
}
END_TEST

/* The owners of handles that one poll finds ready run in the order the
 * kernel reported them (the order the data arrived), on one worker. */
#define ORDER_N 8
static int order_fds[ORDER_N];
static TraceLog order_log;

static void order_reader(void *arg)
{
    int i = *(const int *)arg;
    SnowIo *io = snow_io_open(order_fds[i], NULL);
    int got = snow_wait(io, SNOW_WAIT_READABLE, 5000);
    trace_mark(&order_log, (char)(got == SNOW_WAIT_READABLE ? '0' + i : '?'));
    snow_io_close(io);
}

static void order_root(void *arg)
{
    (void)arg;
    int peers[ORDER_N];
    for (int i = 0; i < ORDER_N; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
            return;
        order_fds[i] = sv[0];
        peers[i] = sv[1];
        snow_actor_spawn(order_reader, &i, sizeof i);
    }
    snow_actor_yield(); /* every reader opens its handle and parks */
    /* The worker polls while this sleeps: the sockets' first (writable)
     * events are taken, so the writes below decide the order. */
    snow_sleep(50);
    for (int i = 0; i < ORDER_N; i++)
        if (write(peers[i], "x", 1) != 1)
            return;
    /* Parked here, the worker polls and finds all eight ready at once. */
    snow_sleep(200);
    for (int i = 0; i < ORDER_N; i++)
        close(peers[i]);
}

START_TEST(woken_owners_run_in_event_order)
{
    trace_reset(&order_log);
    RUN_ROOT(1, order_root, NULL);
    ck_assert_int_eq(atomic_load(&order_log.n), ORDER_N);
    ck_assert_str_eq(order_log.s, "01234567");
}
END_TEST

/* A handle that becomes ready while the worker is busy with queued actors
 * waits its turn behind them: the poll after a slice finds it and it
 * joins the queue's tail. When it took the worker's runnext slot, the
 * owner the last poll found ran ahead of the whole queue, slice after
 * slice (the queue's turn came only after a streak of 64). Three spinners
 * whose slices each outlast the poll interval; the first to run makes the
 * reader's socket readable. */
#define FAIR_SPINNERS 3
#define FAIR_ROUNDS 3
static int fair_fd, fair_peer;
static TraceLog fair_log;
static atomic_int fair_written;

static void fair_reader(void *arg)
{
    (void)arg;
    SnowIo *io = snow_io_open(fair_fd, NULL);
    int got = snow_wait(io, SNOW_WAIT_READABLE, 5000);
    trace_mark(&fair_log, got == SNOW_WAIT_READABLE ? 'R' : '?');
    snow_io_close(io);
}

static void fair_spinner(void *arg)
{
    int i = *(const int *)arg;
    for (int round = 0; round < FAIR_ROUNDS; round++) {
        if (atomic_exchange(&fair_written, 1) == 0 && write(fair_peer, "x", 1) != 1)
            trace_mark(&fair_log, '!');
        /* 300 µs of work: longer than the 100 µs between the polls a
         * busy worker makes after its slices. */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000);
        trace_mark(&fair_log, (char)('0' + i));
        snow_actor_yield();
    }
}

static void fair_root(void *arg)
{
    (void)arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return;
    fair_fd = sv[0];
    fair_peer = sv[1];
    snow_actor_spawn(fair_reader, NULL, 0);
    snow_actor_yield(); /* the reader opens its handle and parks */
    snow_sleep(50);     /* the socket's first (writable) event is taken */
    for (int i = 0; i < FAIR_SPINNERS; i++)
        snow_actor_spawn(fair_spinner, &i, sizeof i);
    snow_sleep(500);
    close(fair_peer);
}

START_TEST(ready_owner_waits_behind_busy_queue)
{
    trace_reset(&fair_log);
    atomic_store(&fair_written, 0);
    RUN_ROOT(1, fair_root, NULL);
    ck_assert_int_eq(atomic_load(&fair_log.n), FAIR_SPINNERS * FAIR_ROUNDS + 1);
    /* The first mark is the writer's; every other spinner runs once
     * before the reader does. */
    const char *r = strchr(fair_log.s, 'R');
    ck_assert_msg(r != NULL, "log %s", fair_log.s);
    for (int i = 0; i < FAIR_SPINNERS; i++)
        ck_assert_msg(memchr(fair_log.s, '0' + i, (size_t)(r - fair_log.s)) != NULL,
                      "spinner %d had no turn before the reader: log %s", i, fair_log.s);
}
END_TEST

Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wait_reports_what_happened);
    tcase_add_test(tc, ten_thousand_parked_on_sockets);
    tcase_add_test(tc, exit_closes_owned_fds);
    tcase_add_test(tc, hibernate_on_socket);
    tcase_add_test(tc, woken_owners_run_in_event_order);
    tcase_add_test(tc, ready_owner_waits_behind_busy_queue);
    suite_add_tcase(s, tc);
    return s;
}
