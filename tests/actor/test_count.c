/* snow_actor_count: the process table's size follows spawns and ends. */
#include "harness.h"

static atomic_int counts[4];

static void waiter(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
}

/* Polls (bounded, as a failure guard) until the count is want: an actor
 * is freed just after its monitors are told it ended. */
static int count_reaches(int want)
{
    for (int i = 0; i < 5000 && snow_actor_count() != want; i++)
        snow_sleep(1);
    return snow_actor_count();
}

static void count_root(void *arg)
{
    (void)arg;
    SnowPid pids[10];
    atomic_store(&counts[0], snow_actor_count());
    for (int i = 0; i < 10; i++)
        pids[i] = snow_actor_spawn(waiter, NULL, 0);
    atomic_store(&counts[1], snow_actor_count());
    for (int i = 0; i < 10; i++) {
        snow_actor_monitor(pids[i]);
        snow_actor_send(pids[i], 1, NULL, 0);
    }
    for (int i = 0; i < 10; i++)
        if (!recv_tag(SNOW_TAG_DOWN, 10000))
            atomic_fetch_add(&counts[3], 1);
    atomic_store(&counts[2], count_reaches(1));
}

START_TEST(count_follows_spawns_and_ends)
{
    ck_assert_int_eq(snow_actor_count(), 0);
    RUN_ROOT(2, count_root, NULL);
    ck_assert_int_eq(atomic_load(&counts[0]), 1);
    ck_assert_int_eq(atomic_load(&counts[1]), 11);
    ck_assert_int_eq(atomic_load(&counts[2]), 1);
    ck_assert_int_eq(atomic_load(&counts[3]), 0); /* every DOWN came */
    ck_assert_int_eq(snow_actor_count(), 0);
}
END_TEST

Suite *count_suite(void)
{
    Suite *s = suite_create("count");
    TCase *tc = tcase_create("count");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, count_follows_spawns_and_ends);
    suite_add_tcase(s, tc);
    return s;
}
