/* Timers: send_after, cancel, sleep, and accuracy bounds. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static atomic_long result;
static atomic_long late_ms[3];

static void send_after_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    int64_t t0 = snow_now_ms();
    uint64_t t1 = snow_timer_send_after(self, 80, 5, "late", 4);
    uint64_t t2 = snow_timer_send_after(self, 20, 6, "soon", 4);
    long r = t1 && t2 && t1 != t2;
    SnowMessage *m = snow_actor_receive(2000);
    r += m && m->tag == 6 && m->len == 4 && !memcmp(m->data, "soon", 4) && m->from == self;
    atomic_store(&late_ms[0], snow_now_ms() - t0 - 20);
    m = snow_actor_receive(2000);
    r += m && m->tag == 5;
    atomic_store(&late_ms[1], snow_now_ms() - t0 - 80);
    r += snow_timer_cancel(t1) == SNOW_ENOPROC; /* already fired */
    atomic_store(&result, r);
}

START_TEST(send_after_fires_in_order)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, send_after_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 4);
    /* Never early; late by less than a generous bound on a loaded machine. */
    ck_assert_int_ge(atomic_load(&late_ms[0]), 0);
    ck_assert_int_ge(atomic_load(&late_ms[1]), 0);
    ck_assert_int_lt(atomic_load(&late_ms[0]), 200);
    ck_assert_int_lt(atomic_load(&late_ms[1]), 200);
}
END_TEST

static void cancel_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    uint64_t refs[1000];
    for (int i = 0; i < 1000; i++)
        refs[i] = snow_timer_send_after(self, 30 + i % 20, 9, &i, sizeof i);
    long cancelled = 0;
    for (int i = 0; i < 1000; i += 2)
        cancelled += snow_timer_cancel(refs[i]) == 0;
    long got = 0, odd = 0;
    SnowMessage *m;
    while ((m = snow_actor_receive(200))) {
        int v;
        memcpy(&v, m->data, sizeof v);
        got++;
        odd += v % 2;
    }
    atomic_store(&result, cancelled * 1000000 + got * 1000 + (odd == got));
}

START_TEST(cancelled_timers_never_fire)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, cancel_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 500L * 1000000 + 500 * 1000 + 1);
}
END_TEST

static void sleep_root(void *arg)
{
    (void)arg;
    int64_t t0 = snow_now_ms();
    snow_sleep(50);
    atomic_store(&late_ms[2], snow_now_ms() - t0);
}

START_TEST(sleep_parks_for_its_time)
{
    RUN_ROOT(1, sleep_root, NULL);
    ck_assert_int_ge(atomic_load(&late_ms[2]), 50);
    ck_assert_int_lt(atomic_load(&late_ms[2]), 300);
}
END_TEST

/* Many timers to many actors: every one fires, none early. */
#define SLEEPERS 2000

static atomic_long fired, early;

static void sleeper(void *arg)
{
    int ms = *(int *)arg;
    int64_t t0 = snow_now_ms();
    snow_sleep(ms);
    if (snow_now_ms() - t0 < ms)
        atomic_fetch_add(&early, 1);
    atomic_fetch_add(&fired, 1);
}

static void many_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < SLEEPERS; i++) {
        int ms = (i * 7919) % 200;
        snow_actor_spawn(sleeper, &ms, sizeof ms);
    }
}

START_TEST(many_timers_all_fire)
{
    atomic_store(&fired, 0);
    atomic_store(&early, 0);
    RUN_ROOT(2, many_root, NULL);
    ck_assert_int_eq(atomic_load(&fired), SLEEPERS);
    ck_assert_int_eq(atomic_load(&early), 0);
}
END_TEST

static void to_dead_root(void *arg)
{
    (void)arg;
    /* A timer whose target is gone is dropped without harm. */
    snow_timer_send_after(UINT64_C(123456789), 5, 1, "x", 1);
    snow_sleep(30);
    atomic_store(&result, 1);
}

START_TEST(timer_to_dead_pid_is_dropped)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, to_dead_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 1);
}
END_TEST

Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, send_after_fires_in_order);
    tcase_add_test(tc, cancelled_timers_never_fire);
    tcase_add_test(tc, sleep_parks_for_its_time);
    tcase_add_test(tc, many_timers_all_fire);
    tcase_add_test(tc, timer_to_dead_pid_is_dropped);
    suite_add_tcase(s, tc);
    return s;
}
