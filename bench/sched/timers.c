/*
 * timers.c: snow-bench-sched scenarios of timers: lateness and burst
 * throughput of snow_timer_send_after, and sleeps next to busy workers.
 */
#include <stdlib.h>
#include <string.h>

#include "bench_sched.h"
#include "benchutil.h"

/* Receivers sharing the timers of the timer scenario. */
#define TIMER_RECEIVERS 4

/* ---- timers ------------------------------------------------------------ */

struct timer_rx {
    SnowPid driver;
    long expect;
    int64_t *late; /* expect slots, ns past the due time */
    int64_t first, last;
    int64_t status;
};

/* Timer payload: the absolute rt_now_ns() at which it is due. */
static void timer_receiver(void *p)
{
    struct timer_rx *rx = *(struct timer_rx *const *)p;
    uint64_t tag = TAG_TIMER;
    for (long i = 0; i < rx->expect; i++) {
        SnowMessage *m = snow_actor_receive_match(&tag, 1, -1);
        int64_t now = rt_now_ns();
        if (!m || m->len != sizeof(int64_t)) {
            rx->status = m ? SNOW_EPROTOCOL : SNOW_ETIMEOUT;
            break;
        }
        int64_t due;
        memcpy(&due, m->data, sizeof due);
        rx->late[i] = now - due;
        if (i == 0)
            rx->first = now;
        rx->last = now;
    }
    snow_actor_send(rx->driver, TAG_DONE, NULL, 0);
}

/* One phase: n timers; ms_of(i) gives timer i's delay. Fills late[0..n). */
static int timer_phase(long n, int64_t *late, int64_t (*ms_of)(long i, long n), int64_t *first,
                       int64_t *last)
{
    struct timer_rx rx[TIMER_RECEIVERS];
    SnowPid pid[TIMER_RECEIVERS];
    long per = n / TIMER_RECEIVERS;
    for (int r = 0; r < TIMER_RECEIVERS; r++) {
        rx[r] = (struct timer_rx){.driver = snow_actor_self(), .expect = per, .late = late + r * per};
        struct timer_rx *rp = &rx[r];
        pid[r] = spawn_on(timer_receiver, &rp, sizeof rp, -1, false);
        if (!pid[r])
            return fail("spawn returned 0");
    }
    for (long i = 0; i < per * TIMER_RECEIVERS; i++) {
        int64_t ms = ms_of(i, n);
        if (ms < 0)
            return fail("setting the timers took longer than their delay");
        int64_t due = rt_now_ns() + ms * 1000000;
        if (!snow_timer_send_after(pid[i % TIMER_RECEIVERS], ms, TAG_TIMER, &due, sizeof due))
            return fail("snow_timer_send_after returned 0 at timer %ld", i);
    }
    for (int r = 0; r < TIMER_RECEIVERS; r++)
        if (await(TAG_DONE, NULL, 0) < 0)
            return -1;
    *first = INT64_MAX;
    *last = INT64_MIN;
    for (int r = 0; r < TIMER_RECEIVERS; r++) {
        if (rx[r].status)
            return fail("receiver failed: %s", snow_strerror((int)rx[r].status));
        if (rx[r].first < *first)
            *first = rx[r].first;
        if (rx[r].last > *last)
            *last = rx[r].last;
    }
    return 0;
}

/* Spread: delays 100..1099 ms in a scrambled order, so that setting them all
 * is over before the first one fires and the timer store sees out-of-order
 * inserts. */
static int64_t spread_ms(long i, long n)
{
    (void)n;
    return 100 + (int64_t)((i * 7919L) % 1000);
}

/* Burst: all due at the same millisecond, 500 ms from the first call. */
static int64_t burst_due_ms;
static int64_t burst_ms(long i, long n)
{
    (void)i;
    (void)n;
    return burst_due_ms - snow_now_ms();
}

int run_timers(void)
{
    long n = B.n.timers - B.n.timers % TIMER_RECEIVERS;
    int64_t *late = malloc((size_t)n * sizeof *late);
    if (!late)
        return fail("out of memory");
    int64_t first = 0, last = 0;
    int rc = timer_phase(n, late, spread_ms, &first, &last);
    if (rc == 0) {
        int64_t p50 = bench_percentile(late, (size_t)n, 0.50);
        int64_t p99 = bench_percentile(late, (size_t)n, 0.99);
        int64_t max = late[n - 1];
        int64_t min = late[0];
        burst_due_ms = snow_now_ms() + 500;
        rc = timer_phase(n, late, burst_ms, &first, &last);
        if (rc == 0 && snow_now_ms() < burst_due_ms)
            rc = fail("burst timers fired early");
        if (rc == 0) {
            int64_t span = last - first > 0 ? last - first : 1;
            int64_t bp99 = bench_percentile(late, (size_t)n, 0.99);
            emit("bench timers fires_per_s=%.0f late_p99_us=%.1f late_p50_us=%.1f late_min_us=%.1f "
                 "late_max_us=%.1f burst_late_p99_us=%.1f timers=%ld",
                 (double)n / ((double)span / 1e9), p99 / 1e3, p50 / 1e3, min / 1e3, max / 1e3, bp99 / 1e3, n);
        }
    }
    free(late);
    return rc;
}

/* ---- timers next to busy workers ---------------------------------------- */

/* Busy actors, as many as workers and placed by the runtime, that never
 * block: each does about a microsecond of work between reduction checks, as
 * compiled CPU-bound code would, until told to stop. */
static atomic_int busy_stop;
static atomic_long busy_done;

static void busy_actor(void *p)
{
    (void)p;
    volatile uint64_t x = 1;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed)) {
        for (int i = 0; i < 300; i++)
            x = x * 6364136223846793005ULL + 1;
        snow_reduction_check();
    }
    atomic_fetch_add_explicit(&busy_done, 1, memory_order_release);
}

struct busy_sleeper_args {
    SnowPid driver;
    long n;
    int64_t *late;
};

static void busy_sleeper(void *p)
{
    const struct busy_sleeper_args *a = p;
    for (long i = 0; i < a->n; i++) {
        int64_t due = rt_now_ns() + 10 * 1000000;
        snow_sleep(10);
        a->late[i] = rt_now_ns() - due;
    }
    snow_actor_send(a->driver, TAG_DONE, NULL, 0);
}

int run_timer_lateness_busy(void)
{
    long n = B.n.busy_sleeps;
    int64_t *late = malloc((size_t)n * sizeof *late);
    if (!late)
        return fail("out of memory");
    atomic_store(&busy_stop, 0);
    atomic_store(&busy_done, 0);
    for (int w = 0; w < B.workers; w++)
        if (!spawn_on(busy_actor, NULL, 0, -1, false)) {
            free(late);
            return fail("spawn returned 0");
        }
    struct busy_sleeper_args a = {.driver = snow_actor_self(), .n = n, .late = late};
    int rc = spawn_on(busy_sleeper, &a, sizeof a, -1, false) ? await(TAG_DONE, NULL, 0) : fail("spawn returned 0");
    atomic_store(&busy_stop, 1);
    if (await_count(&busy_done, B.workers, "busy actors stopped") < 0)
        rc = -1;
    if (rc == 0) {
        int64_t p50 = bench_percentile(late, (size_t)n, 0.50);
        int64_t p99 = bench_percentile(late, (size_t)n, 0.99);
        emit("bench timer_lateness_busy late_p99_us=%.1f late_p50_us=%.1f late_max_us=%.1f sleeps=%ld "
             "busy_actors=%d",
             p99 / 1e3, p50 / 1e3, late[n - 1] / 1e3, n, B.workers);
    }
    free(late);
    return rc;
}
