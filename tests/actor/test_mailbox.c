/* Mailboxes: ordering, selective receive, timeouts, reserved tags, and the
 * lost-wake-up stress. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static atomic_long result;
static atomic_long errors;

struct seq_msg {
    int sender;
    long seq;
};

#define SENDERS 4
#define PER_SENDER 200000

static SnowPid sink;

static void sender(void *arg)
{
    int id = *(int *)arg;
    for (long i = 0; i < PER_SENDER; i++) {
        struct seq_msg m = {id, i};
        if (snow_actor_send(sink, 7, &m, sizeof m))
            atomic_fetch_add(&errors, 1);
        if ((i & 255) == 0)
            snow_actor_yield(); /* let the receiver drain and park again */
    }
}

static void receiver(void *arg)
{
    (void)arg;
    long next[SENDERS] = {0};
    for (long n = 0; n < (long)SENDERS * PER_SENDER; n++) {
        SnowMessage *m = snow_actor_receive(-1);
        struct seq_msg sm;
        memcpy(&sm, m->data, sizeof sm);
        if (m->tag != 7 || m->len != sizeof sm || sm.sender < 0 || sm.sender >= SENDERS || sm.seq != next[sm.sender])
            atomic_fetch_add(&errors, 1);
        else
            next[sm.sender]++;
    }
    atomic_store(&result, next[0] + next[1] + next[2] + next[3]);
}

static void fifo_root(void *arg)
{
    (void)arg;
    sink = snow_actor_spawn(receiver, NULL, 0);
    for (int i = 0; i < SENDERS; i++)
        snow_actor_spawn(sender, &i, sizeof i);
}

/* Many senders on two workers, a receiver that parks whenever its mailbox
 * runs dry: every message arrives, in per-sender order, none lost. */
START_TEST(fifo_per_sender_stress)
{
    atomic_store(&result, 0);
    atomic_store(&errors, 0);
    RUN_ROOT(2, fifo_root, NULL);
    ck_assert_int_eq(atomic_load(&errors), 0);
    ck_assert_int_eq(atomic_load(&result), (long)SENDERS * PER_SENDER);
}
END_TEST

/* Ping-pong across two pinned workers: each round trip parks and wakes both
 * sides, so a lost wake-up would hang the test (and time out). */
#define ROUNDS 200000

static void ponger(void *arg)
{
    (void)arg;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (m->tag == 2)
            return;
        snow_actor_send(m->from, 1, m->data, m->len);
    }
}

/* Runs rounds round trips with ponger p, counting replies that match. */
static long pingpong(SnowPid p, long rounds)
{
    long ok = 0;
    for (long i = 0; i < rounds; i++) {
        snow_actor_send(p, 1, &i, sizeof i);
        SnowMessage *m = snow_actor_receive(-1);
        long v;
        memcpy(&v, m->data, sizeof v);
        ok += v == i;
    }
    snow_actor_send(p, 2, NULL, 0);
    return ok;
}

static void pinger(void *arg)
{
    (void)arg;
    struct actor_spawn_opts o = {.worker = 1, .pinned = true};
    atomic_store(&result, pingpong(actor_spawn(ponger, NULL, 0, &o), ROUNDS));
}

START_TEST(cross_worker_pingpong_no_lost_wakeup)
{
    atomic_store(&result, 0);
    struct actor_spawn_opts o = {.worker = 0, .pinned = true};
    ck_assert_int_eq(snow_rt_init(2), 0);
    ck_assert(actor_spawn(pinger, NULL, 0, &o));
    snow_rt_run();
    ck_assert_int_eq(atomic_load(&result), ROUNDS);
}
END_TEST

/* Four ping-pong pairs, unpinned on two workers, 500,000 round trips each:
 * four million park/unpark cycles through the mailbox wait. */
#define PAIRS 4
#define PAIR_ROUNDS 500000

static atomic_long pair_ok;

static void pair_pinger(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pair_ok, pingpong(snow_actor_spawn(ponger, NULL, 0), PAIR_ROUNDS));
}

static void pairs_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < PAIRS; i++)
        snow_actor_spawn(pair_pinger, NULL, 0);
}

START_TEST(millions_of_parks_no_lost_wakeup)
{
    atomic_store(&pair_ok, 0);
    RUN_ROOT(2, pairs_root, NULL);
    ck_assert_int_eq(atomic_load(&pair_ok), (long)PAIRS * PAIR_ROUNDS);
}
END_TEST

static char order[16];

static void selective_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    const char *tags = "ABCAD";
    for (int i = 0; tags[i]; i++)
        snow_actor_send(self, (uint64_t)tags[i], &i, sizeof i);
    int n = 0;
    uint64_t want[2] = {'D', 'C'};
    SnowMessage *m = snow_actor_receive_match(want, 2, 0); /* oldest of C and D: C */
    order[n++] = (char)m->tag;
    m = snow_actor_receive_match(want, 2, 0);
    order[n++] = (char)m->tag;
    m = snow_actor_receive_match(want, 2, 0);
    if (m)
        order[n++] = '!';
    while ((m = snow_actor_receive(0)))
        order[n++] = (char)m->tag;
    order[n] = 0;
}

START_TEST(selective_receive_keeps_order)
{
    memset(order, 0, sizeof order);
    RUN_ROOT(1, selective_root, NULL);
    ck_assert_str_eq(order, "CDABA");
}
END_TEST

/* A selective receive that waits: non-matching messages that arrive while
 * it waits are skipped and stay queued. */
static void late_sender(void *arg)
{
    SnowPid to = *(SnowPid *)arg;
    snow_sleep(10);
    snow_actor_send(to, 1, NULL, 0);
    snow_sleep(10);
    snow_actor_send(to, 2, NULL, 0);
}

static void selective_wait_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    snow_actor_spawn(late_sender, &self, sizeof self);
    SnowMessage *m = recv_tag(2, 2000);
    long v = m ? (long)m->tag * 10 : 0;
    m = snow_actor_receive(0);
    v += m ? (long)m->tag : 0;
    atomic_store(&result, v);
}

START_TEST(selective_receive_waits)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, selective_wait_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 21);
}
END_TEST

static void timeout_root(void *arg)
{
    (void)arg;
    int64_t t0 = snow_now_ms();
    SnowMessage *m = snow_actor_receive(0);
    int64_t t1 = snow_now_ms();
    SnowMessage *m2 = snow_actor_receive(60);
    int64_t t2 = snow_now_ms();
    long bad = (m != NULL) + (m2 != NULL);
    if (t1 - t0 > 20)
        bad += 10; /* a poll must not wait */
    if (t2 - t1 < 60)
        bad += 100; /* the timeout must not fire early */
    atomic_store(&result, bad);
}

START_TEST(receive_timeouts)
{
    atomic_store(&result, -1);
    RUN_ROOT(1, timeout_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 0);
}
END_TEST

static void reserved_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    long r = 0;
    r += snow_actor_send(self, SNOW_TAG_EXIT, NULL, 0) == SNOW_ERESERVED_TAG;
    r += snow_actor_send(self, SNOW_TAG_WS_TEXT, "x", 1) == SNOW_ERESERVED_TAG;
    r += snow_actor_send(self, UINT64_C(0xFFFFFFFF12345678), NULL, 0) == SNOW_ERESERVED_TAG;
    r += snow_actor_send(self, UINT64_C(0xFFFFFFFE00000000), NULL, 0) == 0; /* not reserved */
    r += snow_actor_receive(0) != NULL;
    r += snow_actor_receive(0) == NULL; /* the refused ones never arrived */
    atomic_store(&result, r);
}

START_TEST(reserved_tags_refused)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, reserved_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 6);
}
END_TEST

static void exits_at_once(void *arg)
{
    (void)arg;
}

static void noproc_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(exits_at_once, NULL, 0);
    uint64_t ref = snow_actor_monitor(p);
    recv_tag(SNOW_TAG_DOWN, -1);
    long r = ref != 0;
    r += snow_actor_send(p, 1, "x", 1) == SNOW_ENOPROC;
    /* Reuse the freed slot many times: the old pid never reaches a new actor. */
    for (int i = 0; i < 1000; i++) {
        SnowPid q = snow_actor_spawn(exits_at_once, NULL, 0);
        if (q == p)
            r -= 100;
    }
    r += snow_actor_send(p, 1, "x", 1) == SNOW_ENOPROC;
    r += snow_actor_send(0, 1, NULL, 0) == SNOW_ENOPROC;
    atomic_store(&result, r);
}

START_TEST(dead_pid_is_noproc)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, noproc_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 4);
}
END_TEST

/* Messages from a non-actor thread arrive too (sender pid 0). */
static void outside_receiver(void *arg)
{
    (void)arg;
    snow_actor_register("outside", snow_actor_self());
    SnowMessage *m = snow_actor_receive(5000);
    atomic_store(&result, m && m->from == 0 && m->len == 5 && !memcmp(m->data, "hello", 5));
}

START_TEST(send_from_outside)
{
    atomic_store(&result, 0);
    ck_assert_int_eq(snow_rt_init(2), 0);
    snow_actor_spawn(outside_receiver, NULL, 0);
    SnowPid p = 0;
    for (int i = 0; i < 1000 && !p; i++) {
        p = snow_actor_whereis("outside");
        if (!p)
            usleep(1000);
    }
    ck_assert_uint_ne(p, 0);
    ck_assert_int_eq(snow_actor_send(p, 3, "hello", 5), 0);
    snow_rt_run();
    ck_assert_int_eq(atomic_load(&result), 1);
}
END_TEST

/* Plain threads that send, spawn, kill and set timers while the runtime
 * shuts down and frees itself: each call either completes or answers
 * SNOW_ENOT_RUNNING (0 for spawn and timers), never touches freed memory
 * (the sanitizer builds see to that), and after snow_rt_run returned
 * every call says the runtime is not running. */
static void drain_receiver(void *arg)
{
    (void)arg;
    snow_actor_register("drain", snow_actor_self());
    for (;;)
        snow_actor_receive(-1);
}

static void nothing(void *arg)
{
    (void)arg;
}

static atomic_int outside_stop;

static void *outside_caller(void *arg)
{
    SnowPid p = *(SnowPid *)arg;
    long bad = 0;
    for (unsigned i = 0; !atomic_load(&outside_stop); i++) {
        int r = snow_actor_send(p, 5, "x", 1);
        if (r != 0 && r != SNOW_ENOPROC && r != SNOW_ENOT_RUNNING)
            bad++;
        if (i % 64 == 0) {
            snow_actor_spawn(nothing, NULL, 0);
            snow_timer_send_after(p, 10000, 6, NULL, 0);
            r = snow_actor_kill(p + 1000000, SNOW_EXIT_KILLED);
            if (r != SNOW_ENOPROC && r != SNOW_ENOT_RUNNING)
                bad++;
        }
    }
    return (void *)bad;
}

START_TEST(outside_calls_race_teardown)
{
    for (int round = 0; round < 10; round++) {
        ck_assert_int_eq(snow_rt_init(2), 0);
        ck_assert_uint_ne(snow_actor_spawn(drain_receiver, NULL, 0), 0);
        SnowPid p = 0;
        for (int i = 0; i < 1000 && !(p = snow_actor_whereis("drain")); i++)
            usleep(1000);
        ck_assert_uint_ne(p, 0);
        atomic_store(&outside_stop, 0);
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, outside_caller, &p), 0);
        usleep(5000);
        snow_rt_shutdown();
        ck_assert_int_eq(snow_rt_run(), 0);
        /* The runtime is gone while the callers go on for a moment. */
        usleep(2000);
        atomic_store(&outside_stop, 1);
        for (int i = 0; i < 2; i++) {
            void *bad;
            pthread_join(th[i], &bad);
            ck_assert_ptr_null(bad);
        }
        ck_assert_int_eq(snow_actor_send(p, 5, "x", 1), SNOW_ENOT_RUNNING);
        ck_assert_uint_eq(snow_actor_spawn(nothing, NULL, 0), 0);
        ck_assert_int_eq(snow_actor_kill(p, SNOW_EXIT_KILLED), SNOW_ENOT_RUNNING);
        ck_assert_uint_eq(snow_timer_send_after(p, 1, 6, NULL, 0), 0);
    }
}
END_TEST

static void keep_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    snow_actor_send(self, 1, "first", 6);
    snow_actor_send(self, 2, "second", 7);
    SnowMessage *a = snow_actor_receive(0);
    snow_msg_keep(a);
    SnowMessage *b = snow_actor_receive(0);
    /* a is still valid after the next receive because it was kept. */
    atomic_store(&result, !strcmp((char *)a->data, "first") && !strcmp((char *)b->data, "second") &&
                              ((uintptr_t)a->data % 16) == 0);
}

START_TEST(kept_message_survives)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, keep_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 1);
}
END_TEST

/* Payload sizes on both sides of the message-buffer cache's size (64
 * bytes) and a few large ones, sent between actors on two workers so that
 * buffers allocated on one worker are freed on the other and reused:
 * every payload arrives whole, 16-byte aligned, with its length. */
#define SIZES_MAX 300
#define SIZES_ROUNDS 2000

static unsigned char size_byte(long round, size_t len, size_t i)
{
    return (unsigned char)(round * 7 + len * 13 + i * 3 + 1);
}

static void sizes_receiver(void *arg)
{
    SnowPid parent = *(SnowPid *)arg;
    long ok = 0;
    for (long r = 0; r < SIZES_ROUNDS; r++) {
        for (size_t len = 0; len <= SIZES_MAX; len += (len < 80 ? 1 : 37)) {
            SnowMessage *m = snow_actor_receive(-1);
            int good = m->tag == 9 && m->len == len && (uintptr_t)m->data % 16 == 0;
            for (size_t i = 0; good && i < len; i++)
                good = m->data[i] == size_byte(r, len, i);
            ok += good;
            if (!good)
                atomic_fetch_add(&errors, 1);
        }
        /* Answered every round, so that the sender cannot run far ahead. */
        snow_actor_send(parent, 10, NULL, 0);
    }
    atomic_store(&result, ok);
}

static void sizes_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    struct actor_spawn_opts o = {.worker = 1, .pinned = true};
    SnowPid p = actor_spawn(sizes_receiver, &self, sizeof self, &o);
    unsigned char buf[SIZES_MAX];
    for (long r = 0; r < SIZES_ROUNDS; r++) {
        for (size_t len = 0; len <= SIZES_MAX; len += (len < 80 ? 1 : 37)) {
            for (size_t i = 0; i < len; i++)
                buf[i] = size_byte(r, len, i);
            if (snow_actor_send(p, 9, buf, len))
                atomic_fetch_add(&errors, 1);
        }
        recv_tag(10, -1);
    }
}

START_TEST(message_sizes_across_workers)
{
    atomic_store(&result, 0);
    atomic_store(&errors, 0);
    ck_assert_int_eq(snow_rt_init(2), 0);
    struct actor_spawn_opts o = {.worker = 0, .pinned = true};
    ck_assert_uint_ne(actor_spawn(sizes_root, NULL, 0, &o), 0);
    ck_assert_int_eq(snow_rt_run(), 0);
    ck_assert_int_eq(atomic_load(&errors), 0);
    long per_round = 0;
    for (size_t len = 0; len <= SIZES_MAX; len += (len < 80 ? 1 : 37))
        per_round++;
    ck_assert_int_eq(atomic_load(&result), per_round * SIZES_ROUNDS);
}
END_TEST

Suite *mailbox_suite(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fifo_per_sender_stress);
    tcase_add_test(tc, cross_worker_pingpong_no_lost_wakeup);
    tcase_add_test(tc, millions_of_parks_no_lost_wakeup);
    tcase_add_test(tc, selective_receive_keeps_order);
    tcase_add_test(tc, selective_receive_waits);
    tcase_add_test(tc, receive_timeouts);
    tcase_add_test(tc, reserved_tags_refused);
    tcase_add_test(tc, dead_pid_is_noproc);
    tcase_add_test(tc, send_from_outside);
    tcase_add_test(tc, outside_calls_race_teardown);
    tcase_add_test(tc, kept_message_survives);
    tcase_add_test(tc, message_sizes_across_workers);
    suite_add_tcase(s, tc);
    return s;
}
