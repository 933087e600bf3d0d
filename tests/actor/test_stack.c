/* Guarded stacks: an actor that overflows its 64 KiB stack is reported and
 * terminated with stack_overflow; the runtime and other actors go on. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor.h"
#include "harness.h"

static atomic_long result;
static atomic_long survivors;

__attribute__((noinline)) static int deep(int depth)
{
    volatile char buf[1000];
    buf[depth % 1000] = (char)depth;
    if (depth > 100000000)
        return 0; /* never: 64 KiB runs out long before */
    return deep(depth + 1) + buf[0];
}

static void overflower(void *arg)
{
    (void)arg;
    snow_actor_receive(-1); /* wait until monitored */
    deep(0);
}

static void bystander(void *arg)
{
    (void)arg;
    /* Parked across the overflows, then does ordinary work afterwards. */
    SnowMessage *m = snow_actor_receive(-1);
    char *p = snow_gc_alloc(4096);
    if (m && p)
        atomic_fetch_add(&survivors, 1);
}

static void overflow_root(void *arg)
{
    (void)arg;
    SnowPid b[10];
    for (int i = 0; i < 10; i++)
        b[i] = snow_actor_spawn(bystander, NULL, 0);
    long r = 0;
    /* Many times over, so pooled stacks that overflowed are reused. */
    for (int i = 0; i < 40; i++) {
        SnowPid p = snow_actor_spawn(overflower, NULL, 0);
        uint64_t ref = snow_actor_monitor(p);
        snow_actor_send(p, 1, NULL, 0);
        SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 5000);
        SnowDownMsg dm;
        if (m) {
            memcpy(&dm, m->data, sizeof dm);
            r += dm.ref == ref && dm.reason == SNOW_EXIT_STACK_OVERFLOW;
        }
    }
    for (int i = 0; i < 10; i++)
        snow_actor_send(b[i], 1, NULL, 0);
    atomic_store(&result, r);
}

/* _i 0: the stacks' guards come from one process_madvise per batch of
 * stacks; 1: from one madvise per stack. */
START_TEST(guard_page_hit_terminates_only_that_actor)
{
    atomic_store(&actor_stack_batch_advice, _i == 0);
    /* Capture stderr to check the report. */
    char path[] = "/tmp/snow-overflow-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    atomic_store(&result, 0);
    atomic_store(&survivors, 0);
    RUN_ROOT(2, overflow_root, NULL);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = {0};
    ck_assert_int_gt(pread(fd, buf, sizeof buf - 1, 0), 0);
    close(fd);
    ck_assert_int_eq(atomic_load(&result), 40);
    ck_assert_int_eq(atomic_load(&survivors), 10);
    ck_assert_ptr_nonnull(strstr(buf, "overflowed its 64 KiB stack"));
    ck_assert_ptr_nonnull(strstr(buf, "stack_overflow"));
    atomic_store(&actor_stack_batch_advice, 1);
}
END_TEST

static void usable_probe(void *arg)
{
    (void)arg;
    /* At least 64 KiB minus what the trampoline uses is available. */
    atomic_store(&result, (long)actor_stack_remaining());
}

START_TEST(stack_has_64k_usable)
{
    RUN_ROOT(1, usable_probe, NULL);
    ck_assert_int_gt(atomic_load(&result), 64 * 1024 - 1024);
    ck_assert_int_le(atomic_load(&result), 64 * 1024 + 4096);
}
END_TEST

/* Overflow in a thread that is not an actor is not swallowed: the default
 * SIGSEGV action still ends the process. */
START_TEST(foreign_segv_still_kills)
{
    ck_assert_int_eq(snow_rt_init(1), 0);
    /* A fault at an address no actor stack owns. */
    volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
}
END_TEST

/* ---- record and stack caches ------------------------------------------------
 *
 * Records are taken on the spawning worker and freed where the actor
 * exits; stacks are taken and given back where it runs. The root spawns
 * rounds of children homed (pinned) on the other worker, all alive and
 * parked at once, more than a worker's caches hold, so that every round
 * moves records from worker 1's cache to the shared pool and back to
 * worker 0's, and stacks between worker 1's cache, the shared pool and
 * the system. A record or stack handed to two live actors would show as a
 * child answering with another's argument or finding its stack pattern
 * overwritten; one lost on the way shows as a leak under ASan's leak
 * check; and overflows after the churn show the guard page kept. */

#define CACHE_ROUNDS 6
#define CACHE_CHILDREN 300
#define CACHE_OVERFLOWS 8

struct cache_child {
    SnowPid root;
    long id;
};

struct cache_reply {
    long id;
    SnowPid pid;
    int intact;
};

static atomic_long cache_bad, cache_ok, cache_overflowed;

__attribute__((noinline)) static int pattern_holds(volatile unsigned char *buf, size_t n, long id)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)(id * 31 + (long)i))
            return 0;
    return 1;
}

static void cache_child(void *arg)
{
    struct cache_child c;
    memcpy(&c, arg, sizeof c);
    volatile unsigned char buf[2048];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(c.id * 31 + (long)i);
    snow_actor_send(c.root, 6, NULL, 0);
    /* Parked here until every child of the round has started. */
    SnowMessage *m = snow_actor_receive(10000);
    struct cache_reply r = {.id = c.id, .pid = snow_actor_self(), .intact = m && pattern_holds(buf, sizeof buf, c.id)};
    snow_actor_send(c.root, 7, &r, sizeof r);
}

static void cache_overflower(void *arg)
{
    (void)arg;
    /* After the parent's monitor (a child already gone is NOPROC). */
    snow_actor_receive(10000);
    deep(0);
}

static void cache_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    static SnowPid pids[CACHE_CHILDREN];
    for (int round = 0; round < CACHE_ROUNDS; round++) {
        struct actor_spawn_opts o = {.worker = 1, .pinned = true};
        for (long i = 0; i < CACHE_CHILDREN; i++) {
            struct cache_child c = {.root = self, .id = round * CACHE_CHILDREN + i};
            pids[i] = actor_spawn(cache_child, &c, sizeof c, &o);
            if (!pids[i])
                atomic_fetch_add(&cache_bad, 1);
        }
        for (long i = 0; i < CACHE_CHILDREN; i++)
            if (!recv_tag(6, 10000))
                atomic_fetch_add(&cache_bad, 1);
        for (long i = 0; i < CACHE_CHILDREN; i++)
            snow_actor_send(pids[i], 1, NULL, 0);
        for (long i = 0; i < CACHE_CHILDREN; i++) {
            SnowMessage *m = recv_tag(7, 10000);
            struct cache_reply r;
            if (!m || m->len != sizeof r) {
                atomic_fetch_add(&cache_bad, 1);
                continue;
            }
            memcpy(&r, m->data, sizeof r);
            long k = r.id - (long)round * CACHE_CHILDREN;
            if (k < 0 || k >= CACHE_CHILDREN || pids[k] != r.pid || r.pid != m->from || !r.intact)
                atomic_fetch_add(&cache_bad, 1);
            else
                atomic_fetch_add(&cache_ok, 1);
        }
    }
    /* Stacks that went through the caches and the pool still fault on
     * their guard page, on either worker. */
    for (int i = 0; i < CACHE_OVERFLOWS; i++) {
        struct actor_spawn_opts o = {.worker = i % 2, .pinned = true};
        SnowPid p = actor_spawn(cache_overflower, NULL, 0, &o);
        uint64_t ref = snow_actor_monitor(p);
        snow_actor_send(p, 1, NULL, 0);
        SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 10000);
        SnowDownMsg dm;
        if (m) {
            memcpy(&dm, m->data, sizeof dm);
            if (dm.ref == ref && dm.reason == SNOW_EXIT_STACK_OVERFLOW)
                atomic_fetch_add(&cache_overflowed, 1);
        }
    }
}

START_TEST(caches_never_share_a_live_record_or_stack)
{
    char path[] = "/tmp/snow-cache-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2); /* the overflow reports */
    atomic_store(&cache_bad, 0);
    atomic_store(&cache_ok, 0);
    atomic_store(&cache_overflowed, 0);
    RUN_ROOT(2, cache_root, NULL);
    dup2(saved, 2);
    close(saved);
    close(fd);
    ck_assert_int_eq(atomic_load(&cache_bad), 0);
    ck_assert_int_eq(atomic_load(&cache_ok), CACHE_ROUNDS * CACHE_CHILDREN);
    ck_assert_int_eq(atomic_load(&cache_overflowed), CACHE_OVERFLOWS);
}
END_TEST

Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("stack");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, guard_page_hit_terminates_only_that_actor, 0, 2);
    tcase_add_test(tc, stack_has_64k_usable);
    tcase_add_test(tc, caches_never_share_a_live_record_or_stack);
    tcase_add_test_raise_signal(tc, foreign_segv_still_kills, 11);
    suite_add_tcase(s, tc);
    return s;
}
