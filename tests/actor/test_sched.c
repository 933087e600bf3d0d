/* Scheduler: spawning, yielding, reductions, work stealing, shutdown. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actor/internal.h"
#include "harness.h"

static atomic_long counter;
static atomic_int on_worker[8];

static void count_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
}

static void spawn_many(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (!snow_actor_spawn(count_child, NULL, 0))
            atomic_fetch_sub(&counter, 1000000);
}

START_TEST(spawn_and_exit_100k)
{
    atomic_store(&counter, 0);
    RUN_ROOT(2, spawn_many, (void *)(intptr_t)100000);
    ck_assert_int_eq(atomic_load(&counter), 100000);
}
END_TEST

static void copy_args_child(void *arg)
{
    const char *s = arg;
    if (!strcmp(s, "hello actor") && ((uintptr_t)arg % 16) == 0)
        atomic_fetch_add(&counter, 1);
}

static void copy_args_root(void *arg)
{
    (void)arg;
    char buf[32] = "hello actor";
    snow_actor_spawn(copy_args_child, buf, sizeof buf);
    memset(buf, 'x', sizeof buf); /* the child must have its own copy */
}

START_TEST(spawn_copies_args)
{
    atomic_store(&counter, 0);
    RUN_ROOT(1, copy_args_root, NULL);
    ck_assert_int_eq(atomic_load(&counter), 1);
}
END_TEST

/* Arguments of every size up to 200 bytes, on both sides of the 48 bytes
 * kept in the actor record: each child gets its own copy, whole and
 * 16-byte aligned. */
#define ARG_SIZES 200

static unsigned char arg_byte(size_t len, size_t i)
{
    return (unsigned char)(len * 31 + i * 7 + 3);
}

struct sized_arg {
    size_t len;
    unsigned char bytes[ARG_SIZES];
};

static void sized_child(void *arg)
{
    const unsigned char *p = arg;
    size_t len;
    memcpy(&len, p, sizeof len);
    int good = (uintptr_t)arg % 16 == 0;
    for (size_t i = 0; good && i < len; i++)
        good = p[sizeof len + i] == arg_byte(len, i);
    if (good)
        atomic_fetch_add(&counter, 1);
}

static void sized_root(void *arg)
{
    (void)arg;
    struct sized_arg a;
    for (size_t len = 0; len <= ARG_SIZES; len++) {
        a.len = len;
        for (size_t i = 0; i < len; i++)
            a.bytes[i] = arg_byte(len, i);
        snow_actor_spawn(sized_child, &a, sizeof a.len + len);
        memset(a.bytes, 0xEE, sizeof a.bytes); /* the child must have its own copy */
    }
}

START_TEST(spawn_copies_args_of_every_size)
{
    atomic_store(&counter, 0);
    RUN_ROOT(2, sized_root, NULL);
    ck_assert_int_eq(atomic_load(&counter), ARG_SIZES + 1);
}
END_TEST

/* Free process-table slots are cached per worker: a spawner on worker 0
 * whose children all exit on worker 1 reuses slots that went through both
 * workers' lists and the shared one. Every PID handed out is distinct, and
 * once its actor is gone none reaches a newer one. */
#define PID_ROUNDS 20000

static SnowPid seen_pids[PID_ROUNDS];

static void pid_child(void *arg)
{
    snow_actor_send(*(SnowPid *)arg, 5, NULL, 0);
}

static int pid_cmp(const void *a, const void *b)
{
    SnowPid x = *(const SnowPid *)a, y = *(const SnowPid *)b;
    return x < y ? -1 : x > y;
}

static void pid_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    struct actor_spawn_opts o = {.worker = 1, .pinned = true};
    for (long i = 0; i < PID_ROUNDS; i++) {
        seen_pids[i] = actor_spawn(pid_child, &self, sizeof self, &o);
        if (!seen_pids[i])
            atomic_fetch_add(&counter, 1000000);
        if (i % 100 == 99)
            for (int k = 0; k < 100; k++)
                recv_tag(5, -1);
    }
    /* Every child has reported; wait until each is gone, then none answers. */
    for (long i = 0; i < PID_ROUNDS; i++) {
        while (snow_actor_send(seen_pids[i], 6, NULL, 0) != SNOW_ENOPROC)
            snow_actor_yield();
    }
    qsort(seen_pids, PID_ROUNDS, sizeof seen_pids[0], pid_cmp);
    for (long i = 1; i < PID_ROUNDS; i++)
        if (seen_pids[i] == seen_pids[i - 1])
            atomic_fetch_add(&counter, 1);
}

START_TEST(pids_stay_unique_with_cached_slots)
{
    atomic_store(&counter, 0);
    ck_assert_int_eq(snow_rt_init(2), 0);
    struct actor_spawn_opts o = {.worker = 0, .pinned = true};
    ck_assert_uint_ne(actor_spawn(pid_root, NULL, 0, &o), 0);
    ck_assert_int_eq(snow_rt_run(), 0);
    ck_assert_int_eq(atomic_load(&counter), 0);
}
END_TEST

/* Two actors on one worker alternate strictly when they yield. */
static TraceLog trace;

static void yielder(void *arg)
{
    char c = *(char *)arg;
    for (int i = 0; i < 5; i++) {
        trace_mark(&trace, c);
        snow_actor_yield();
    }
}

static void yield_root(void *arg)
{
    (void)arg;
    char a = 'a', b = 'b';
    snow_actor_spawn(yielder, &a, 1);
    snow_actor_spawn(yielder, &b, 1);
}

START_TEST(yield_alternates)
{
    trace_reset(&trace);
    RUN_ROOT(1, yield_root, NULL);
    ck_assert_int_eq(atomic_load(&trace.n), 10);
    ck_assert_str_eq(trace.s, "ababababab");
}
END_TEST

/* Where a woken actor runs. On one worker, a collector parked in a receive
 * is woken by each of WAKERS children in turn, all queued before it: the
 * first wakes run it right after each waker (runnext), then, woken by
 * ever-different actors, it waits at the tail of the queue and takes the
 * later children's messages in one go. A partner that keeps waking it
 * gets it back first within a few wakes: it spawns a marker actor before
 * each send, so the marker runs first only while the collector is queued
 * behind it. */
#define WAKERS 12

static void wake_collector(void *arg)
{
    (void)arg;
    for (int i = 0; i < WAKERS + 4; i++) {
        if (!snow_actor_receive(10000))
            return;
        trace_mark(&trace, 'C');
    }
}

static void wake_child(void *arg)
{
    trace_mark(&trace, 'w');
    snow_actor_send(*(const SnowPid *)arg, 1, NULL, 0);
}

static void wake_marker(void *arg)
{
    (void)arg;
    trace_mark(&trace, 'm');
}

static void wake_partner(void *arg)
{
    SnowPid c = *(const SnowPid *)arg;
    for (int i = 0; i < 4; i++) {
        trace_mark(&trace, 'p');
        snow_actor_spawn(wake_marker, NULL, 0);
        snow_actor_send(c, 1, NULL, 0);
        snow_actor_yield();
    }
}

static void wake_root(void *arg)
{
    (void)arg;
    SnowPid c = snow_actor_spawn(wake_collector, NULL, 0);
    snow_actor_yield(); /* the collector parks in its receive */
    for (int i = 0; i < WAKERS; i++)
        snow_actor_spawn(wake_child, &c, sizeof c);
    snow_actor_yield(); /* the children run */
    snow_actor_spawn(wake_partner, &c, sizeof c);
}

START_TEST(woken_by_many_waits_its_turn)
{
    trace_reset(&trace);
    RUN_ROOT(1, wake_root, NULL);
    ck_assert_int_eq(atomic_load(&trace.n), 2 * WAKERS + 12);
    /* The fourth different waker marks the collector: it waits behind the
     * other eight children and then takes their nine messages at once.
     * The partner's first wake is one more change (the marker runs
     * first); its later ones halve the mark and the collector runs next. */
    ck_assert_str_eq(trace.s, "wCwCwCw"
                            "wwwwwwww"
                            "CCCCCCCCC"
                            "pmC"
                            "pCmpCmpCm");
}
END_TEST

/* A busy actor calling snow_reduction_check lets another actor run on the
 * same single worker: without preemption the flag would never be seen. */
static atomic_int flag;

static void spinner(void *arg)
{
    (void)arg;
    long spins = 0;
    while (!atomic_load(&flag)) {
        snow_reduction_check();
        if (++spins > 2000000000L)
            return;
    }
    atomic_fetch_add(&counter, 1);
}

static void setter(void *arg)
{
    (void)arg;
    atomic_store(&flag, 1);
}

static void reduction_root(void *arg)
{
    (void)arg;
    snow_actor_spawn(spinner, NULL, 0);
    snow_actor_spawn(setter, NULL, 0);
}

START_TEST(reductions_preempt)
{
    atomic_store(&flag, 0);
    atomic_store(&counter, 0);
    RUN_ROOT(1, reduction_root, NULL);
    ck_assert_int_eq(atomic_load(&counter), 1);
}
END_TEST

/* Work stealing: actors spawned by one actor on worker 0 end up running on
 * both workers. Each burns CPU without parking, so only stealing can move
 * them. */
static void busy_child(void *arg)
{
    (void)arg;
    volatile unsigned x = 0;
    for (int i = 0; i < 200000; i++) {
        x += (unsigned)i;
        if ((i & 1023) == 0)
            snow_reduction_check();
    }
    int w = actor_worker_index() + (int)(x & 0); /* x must be computed */
    if (w >= 0 && w < 8)
        atomic_fetch_add(&on_worker[w], 1);
}

static void steal_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 400; i++)
        snow_actor_spawn(busy_child, NULL, 0);
}

START_TEST(work_stealing_moves_work)
{
    for (int i = 0; i < 8; i++)
        atomic_store(&on_worker[i], 0);
    struct actor_spawn_opts o = {.worker = 0, .pinned = true};
    ck_assert_int_eq(snow_rt_init(2), 0);
    ck_assert(actor_spawn(steal_root, NULL, 0, &o));
    snow_rt_run();
    ck_assert_int_eq(atomic_load(&on_worker[0]) + atomic_load(&on_worker[1]), 400);
    ck_assert_int_gt(atomic_load(&on_worker[0]), 0);
    ck_assert_int_gt(atomic_load(&on_worker[1]), 0);
}
END_TEST

/* The stealing policy's verdict on a queue (steal.c): a worker whose
 * actors are short keeps a queue that adds up to little; long actors, a
 * long backlog, and a worker that started and spawned nothing are taken
 * from. Windows of 100 us as an idle worker's looks give them. */
START_TEST(steal_policy_verdicts)
{
    int64_t us100 = 100000;
    ck_assert(!sched_steal_worth(0, us100, 0));           /* nothing queued */
    ck_assert(sched_steal_worth(1, us100, 0));            /* one slice all along */
    ck_assert(!sched_steal_worth(1000, us100, 1000));     /* 100 ns a child, 100 us queued */
    ck_assert(!sched_steal_worth(5000, us100, 1000));     /* 0.5 ms queued */
    ck_assert(sched_steal_worth(20000, us100, 1000));     /* 2 ms queued */
    ck_assert(sched_steal_worth(2, us100, 10));           /* 10 us a slice */
    ck_assert(sched_steal_worth(1, 2000 * 7, 7));         /* 2 us a slice, the bound */
    ck_assert(!sched_steal_worth(1, 2000 * 7 - 1, 7));
    ck_assert(sched_steal_worth(1000, 1000000, 1000));    /* 1 ms queued at 1 us each */
    ck_assert(!sched_steal_worth(999, 1000000, 1000));
}
END_TEST

/* A worker that never leaves one slice (an actor in a long loop without
 * reduction checks) keeps the actors queued behind it only until the idle
 * worker, watching that queue, finds it made no progress and takes them:
 * the setter can only run on the other worker, and the hog only ends once
 * it has. No wake-up arrives for this (pushes into a queue that holds
 * actors wake nobody): the watcher's own deadline brings it back. */
static atomic_int hog_on, setter_on;

static void hog(void *arg)
{
    (void)arg;
    atomic_store(&hog_on, actor_worker_index());
    for (long i = 0; i < 20000000000L && !atomic_load(&flag); i++)
        __builtin_ia32_pause();
}

static void hog_setter(void *arg)
{
    (void)arg;
    atomic_store(&setter_on, actor_worker_index());
    atomic_store(&flag, 1);
}

static void hog_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        snow_actor_spawn(count_child, NULL, 0);
    snow_actor_spawn(hog, NULL, 0);
    snow_actor_spawn(hog_setter, NULL, 0);
}

START_TEST(stuck_worker_queue_is_taken)
{
    atomic_store(&flag, 0);
    atomic_store(&counter, 0);
    atomic_store(&hog_on, -1);
    atomic_store(&setter_on, -1);
    struct actor_spawn_opts o = {.worker = 0, .pinned = true};
    ck_assert_int_eq(snow_rt_init(2), 0);
    ck_assert(actor_spawn(hog_root, NULL, 0, &o));
    ck_assert_int_eq(snow_rt_run(), 0);
    ck_assert_int_eq(atomic_load(&flag), 1);
    ck_assert_int_eq(atomic_load(&counter), 8);
    ck_assert_int_ge(atomic_load(&hog_on), 0);
    ck_assert_int_ge(atomic_load(&setter_on), 0);
    ck_assert_int_ne(atomic_load(&hog_on), atomic_load(&setter_on));
}
END_TEST

/* Pinned actors stay on their worker. */
static void pinned_child(void *arg)
{
    int want = *(int *)arg;
    for (int i = 0; i < 50; i++) {
        if (actor_worker_index() != want)
            return;
        snow_actor_yield();
        snow_sleep(0);
    }
    atomic_fetch_add(&counter, 1);
}

static void pinned_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        int w = i % 2;
        struct actor_spawn_opts o = {.worker = w, .pinned = true};
        actor_spawn(pinned_child, &w, sizeof w, &o);
    }
}

START_TEST(pinned_actors_stay_home)
{
    atomic_store(&counter, 0);
    RUN_ROOT(2, pinned_root, NULL);
    ck_assert_int_eq(atomic_load(&counter), 20);
}
END_TEST

/* Shutdown kills parked actors with SNOW_EXIT_SHUTDOWN and runs their
 * terminate callbacks; snow_rt_run returns. */
static atomic_int shutdown_seen;
static atomic_int shutdown_armed; /* actors that set their terminate callback */

static void on_term(int reason, void *arg)
{
    (void)arg;
    if (reason == SNOW_EXIT_SHUTDOWN)
        atomic_fetch_add(&shutdown_seen, 1);
}

static void parked_forever(void *arg)
{
    (void)arg;
    snow_actor_set_terminate(on_term, NULL);
    snow_actor_trap_exit(1); /* shutdown cannot be trapped */
    atomic_fetch_add(&shutdown_armed, 1);
    for (;;)
        snow_actor_receive(-1);
}

static void shutdown_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        snow_actor_spawn(parked_forever, NULL, 0);
    /* Every child has its terminate callback before the shutdown (a child
     * killed before its first run has none to call); no fixed delay, which
     * a loaded machine or a sanitizer build may outlast. */
    while (atomic_load(&shutdown_armed) < 100)
        snow_sleep(1);
    snow_rt_shutdown();
    parked_forever(NULL);
}

START_TEST(shutdown_is_clean)
{
    atomic_store(&shutdown_seen, 0);
    atomic_store(&shutdown_armed, 0);
    RUN_ROOT(2, shutdown_root, NULL);
    ck_assert_int_eq(atomic_load(&shutdown_seen), 101);
    ck_assert_int_eq(snow_rt_workers(), 0);
    /* The runtime can start again after a clean stop. */
    atomic_store(&counter, 0);
    RUN_ROOT(2, spawn_many, (void *)(intptr_t)10);
    ck_assert_int_eq(atomic_load(&counter), 10);
}
END_TEST

START_TEST(workers_from_env)
{
    setenv("SNOW_WORKERS", "3", 1);
    ck_assert_int_eq(snow_rt_init(0), 0);
    ck_assert_int_eq(snow_rt_workers(), 3);
    ck_assert_int_eq(snow_rt_run(), 0);
    unsetenv("SNOW_WORKERS");
}
END_TEST

/* An idle runtime (actors parked, nothing to do) burns no CPU. */
static void idle_root(void *arg)
{
    (void)arg;
    atomic_store(&shutdown_armed, 0);
    for (int i = 0; i < 1000; i++)
        snow_actor_spawn(parked_forever, NULL, 0);
    /* Every child has run up to its receive (on a busy machine that can
     * take longer than any fixed pause), then the runtime settles. */
    while (atomic_load(&shutdown_armed) < 1000)
        snow_sleep(1);
    snow_sleep(50);
    clock_t c0 = clock();
    snow_sleep(500);
    clock_t c1 = clock();
    /* CPU time of the whole process over half a second of idleness. */
    atomic_store(&counter, (long)((c1 - c0) * 1000 / CLOCKS_PER_SEC));
    snow_rt_shutdown();
}

START_TEST(idle_costs_no_cpu)
{
    atomic_store(&counter, -1);
    RUN_ROOT(2, idle_root, NULL);
    /* Spinning workers would use ~1000 ms of CPU here; allow 50 ms. */
    ck_assert_int_ge(atomic_load(&counter), 0);
    ck_assert_int_lt(atomic_load(&counter), 50);
}
END_TEST

/* When no stack can be mapped (memory or vm.max_map_count exhausted), the
 * actors that cannot start wait without spinning, and start once stacks are
 * given back. */
#define HOLDERS 40
#define WAITERS 300

static atomic_long started, cpu_us_starved;

static void holder(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
}

static void waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
}

static long cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void starve_root(void *arg)
{
    (void)arg;
    SnowPid h[HOLDERS];
    for (int i = 0; i < HOLDERS; i++)
        h[i] = snow_actor_spawn(holder, NULL, 0);
    snow_sleep(20); /* all holders run and keep their stacks */
    atomic_store(&actor_fail_stack_maps, 1 << 30);
    for (int i = 0; i < WAITERS; i++)
        snow_actor_spawn(waiter, NULL, 0);
    snow_sleep(50);
    long c0 = cpu_us();
    snow_sleep(300);
    atomic_store(&cpu_us_starved, cpu_us() - c0);
    atomic_store(&counter, atomic_load(&started)); /* how many ran while starved */
    /* Give the holders' stacks back: the waiters run on them, one after
     * another, although no new stack can still be mapped. */
    for (int i = 0; i < HOLDERS; i++)
        snow_actor_send(h[i], 1, NULL, 0);
    for (int i = 0; i < 500 && atomic_load(&started) < WAITERS; i++)
        snow_sleep(10);
    atomic_store(&actor_fail_stack_maps, 0);
}

START_TEST(no_stack_waits_without_spinning)
{
    atomic_store(&started, 0);
    atomic_store(&counter, -1);
    RUN_ROOT(2, starve_root, NULL);
    ck_assert_int_eq(atomic_load(&started), WAITERS);
    /* Some waiters could not start while every stack was taken... */
    ck_assert_int_lt(atomic_load(&counter), WAITERS);
    /* ...and waiting for stacks cost little CPU: under 25% of one core. */
    ck_assert_int_lt(atomic_load(&cpu_us_starved), 75000);
}
END_TEST

/* ---- the hop path: runnext, the mailbox-only park ----------------------- */

/* Two actors that wake each other run through the worker's runnext slot
 * without ever going back to its run queue. A third actor, queued behind
 * them on the only worker, must still get its turn (find_work bounds the
 * streak): it sets the flag that stops the pair. Starved, it never would,
 * and the pair would give up after PAIR_MAX_ROUNDS with the flag unset. */
#define PAIR_MAX_ROUNDS 5000000L

static atomic_int pair_stop;
static atomic_long pair_rounds;

struct pair_args {
    SnowPid peer; /* 0: wait for the peer's pid in the first message */
};

static void pair_actor(void *arg)
{
    SnowPid peer = ((const struct pair_args *)arg)->peer;
    if (peer) {
        SnowPid self = snow_actor_self();
        snow_actor_send(peer, 1, &self, sizeof self);
    }
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (!m)
            return;
        if (!peer)
            memcpy(&peer, m->data, sizeof peer);
        if (m->tag == 2)
            return; /* the peer stopped */
        if (atomic_load(&pair_stop) || atomic_fetch_add(&pair_rounds, 1) >= PAIR_MAX_ROUNDS) {
            snow_actor_send(peer, 2, NULL, 0);
            return;
        }
        snow_actor_send(peer, 3, NULL, 0);
    }
}

static void pair_stopper(void *arg)
{
    (void)arg;
    atomic_store(&pair_stop, 1);
}

static void pair_root(void *arg)
{
    (void)arg;
    struct pair_args a = {0};
    SnowPid first = snow_actor_spawn(pair_actor, &a, sizeof a);
    a.peer = first;
    snow_actor_spawn(pair_actor, &a, sizeof a);
    /* Let the pair start: from here on they only wake each other. */
    while (atomic_load(&pair_rounds) < 1000)
        snow_actor_yield();
    snow_actor_spawn(pair_stopper, NULL, 0);
}

START_TEST(runnext_pair_does_not_starve_the_queue)
{
    atomic_store(&pair_stop, 0);
    atomic_store(&pair_rounds, 0);
    RUN_ROOT(1, pair_root, NULL);
    ck_assert_int_eq(atomic_load(&pair_stop), 1);
    ck_assert_int_lt(atomic_load(&pair_rounds), PAIR_MAX_ROUNDS);
}
END_TEST

/* A ring of actors with several tokens going round at once, on two
 * workers: a node is woken parked (runnext), or finds the next token
 * already queued, or is stolen by the other worker. Every link must keep
 * its order (each message carries the link's sequence number) and every
 * token must come back exactly one lap further each time (none lost or
 * duplicated). */
#define RING_NODES 500
#define RING_TOKENS 4
#define RING_LAPS 40

enum { RING_NEXT = 1, RING_TOKEN, RING_STOP, RING_DONE };

struct ring_tok {
    uint64_t link_seq; /* sequence number on the link it travels (0: from the root) */
    int id;
    long left; /* hops still to go */
};

static atomic_long ring_errors, ring_hops;

struct ring_node_args {
    SnowPid root;
};

static void ring_member(void *arg)
{
    SnowPid root = ((const struct ring_node_args *)arg)->root, next = 0;
    uint64_t in_seq = 0, out_seq = 0;
    long seen[RING_TOKENS];
    for (int i = 0; i < RING_TOKENS; i++)
        seen[i] = -1;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (!m)
            return;
        if (m->tag == RING_NEXT) {
            memcpy(&next, m->data, sizeof next);
        } else if (m->tag == RING_TOKEN) {
            struct ring_tok t;
            memcpy(&t, m->data, sizeof t);
            if ((t.link_seq && t.link_seq != ++in_seq) || t.id < 0 || t.id >= RING_TOKENS ||
                (seen[t.id] >= 0 && seen[t.id] - t.left != RING_NODES))
                atomic_fetch_add(&ring_errors, 1);
            seen[t.id] = t.left;
            atomic_fetch_add(&ring_hops, 1);
            if (t.left == 0) {
                snow_actor_send(root, RING_DONE, &t.id, sizeof t.id);
                continue;
            }
            t.left--;
            t.link_seq = ++out_seq;
            if (snow_actor_send(next, RING_TOKEN, &t, sizeof t) < 0)
                atomic_fetch_add(&ring_errors, 1);
        } else if (m->tag == RING_STOP) {
            snow_actor_send(next, RING_STOP, NULL, 0);
            return;
        }
    }
}

static void ring_root(void *arg)
{
    (void)arg;
    struct ring_node_args a = {.root = snow_actor_self()};
    SnowPid nodes[RING_NODES];
    for (int i = 0; i < RING_NODES; i++)
        nodes[i] = snow_actor_spawn(ring_member, &a, sizeof a);
    for (int i = 0; i < RING_NODES; i++)
        snow_actor_send(nodes[i], RING_NEXT, &nodes[(i + 1) % RING_NODES], sizeof(SnowPid));
    /* Every token starts at node 0, from the root (link_seq 0: not on a
     * link of the ring, so not checked). */
    for (int i = 0; i < RING_TOKENS; i++) {
        struct ring_tok t = {.link_seq = 0, .id = i, .left = (long)RING_LAPS * RING_NODES - i};
        snow_actor_send(nodes[0], RING_TOKEN, &t, sizeof t);
    }
    for (int i = 0; i < RING_TOKENS; i++)
        if (!recv_tag(RING_DONE, 60000))
            atomic_fetch_add(&ring_errors, 1000);
    snow_actor_send(nodes[0], RING_STOP, NULL, 0);
}

START_TEST(ring_tokens_keep_order_and_count)
{
    atomic_store(&ring_errors, 0);
    atomic_store(&ring_hops, 0);
    RUN_ROOT(2, ring_root, NULL);
    ck_assert_int_eq(atomic_load(&ring_errors), 0);
    long want = 0;
    for (int i = 0; i < RING_TOKENS; i++)
        want += (long)RING_LAPS * RING_NODES - i + 1;
    ck_assert_int_eq(atomic_load(&ring_hops), want);
}
END_TEST

Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, spawn_and_exit_100k);
    tcase_add_test(tc, spawn_copies_args);
    tcase_add_test(tc, spawn_copies_args_of_every_size);
    tcase_add_test(tc, pids_stay_unique_with_cached_slots);
    tcase_add_test(tc, yield_alternates);
    tcase_add_test(tc, woken_by_many_waits_its_turn);
    tcase_add_test(tc, reductions_preempt);
    tcase_add_test(tc, work_stealing_moves_work);
    tcase_add_test(tc, steal_policy_verdicts);
    tcase_add_test(tc, stuck_worker_queue_is_taken);
    tcase_add_test(tc, pinned_actors_stay_home);
    tcase_add_test(tc, shutdown_is_clean);
    tcase_add_test(tc, workers_from_env);
    tcase_add_test(tc, idle_costs_no_cpu);
    tcase_add_test(tc, no_stack_waits_without_spinning);
    tcase_add_test(tc, runnext_pair_does_not_starve_the_queue);
    tcase_add_test(tc, ring_tokens_keep_order_and_count);
    suite_add_tcase(s, tc);
    return s;
}
