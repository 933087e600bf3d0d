/* Guarded stacks: an actor that overflows its 64 KiB stack is reported and
 * terminated with stack_overflow; the runtime and other actors go on. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

START_TEST(guard_page_hit_terminates_only_that_actor)
{
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

Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("stack");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, guard_page_hit_terminates_only_that_actor);
    tcase_add_test(tc, stack_has_64k_usable);
    tcase_add_test_raise_signal(tc, foreign_segv_still_kills, 11);
    suite_add_tcase(s, tc);
    return s;
}
