/*
 * actors.c: snow-bench-sched scenarios of an actor's life: spawn and exit
 * of a million children, and the memory of parked and hibernated actors.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_sched.h"
#include "benchutil.h"

/* Children of the spawn scenario alive at once (the peers use the same). */
#define SPAWN_OUTSTANDING 1000

/* ---- spawn ------------------------------------------------------------- */

struct spawner_args {
    SnowPid driver;
    long n;
};

static void spawn_child(void *p)
{
    snow_actor_send(*(const SnowPid *)p, TAG_DONE, NULL, 0);
}

/* Spawns n children, at most SPAWN_OUTSTANDING alive at once; each child
 * sends one message and returns. */
static void spawner(void *p)
{
    const struct spawner_args *a = p;
    SnowPid self = snow_actor_self();
    struct span s = {.t0 = rt_now_ns()};
    long outstanding = 0;
    uint64_t done = TAG_DONE;
    for (long i = 0; i < a->n; i++) {
        if (outstanding == SPAWN_OUTSTANDING) {
            if (!snow_actor_receive_match(&done, 1, -1)) {
                s.status = SNOW_ETIMEOUT;
                break;
            }
            outstanding--;
        }
        if (!snow_actor_spawn(spawn_child, &self, sizeof self)) {
            s.status = SNOW_ELIMIT;
            break;
        }
        outstanding++;
    }
    while (outstanding > 0 && s.status == 0) {
        if (!snow_actor_receive_match(&done, 1, -1))
            s.status = SNOW_ETIMEOUT;
        outstanding--;
    }
    s.t1 = rt_now_ns();
    snow_actor_send(a->driver, TAG_DONE, &s, sizeof s);
}

int run_spawn(void)
{
    /* The peak is measured from here, not from the start of the program, so
     * that earlier scenarios do not count; a kernel without clear_refs
     * support gives the process-lifetime peak instead. */
    bool reset = bench_reset_peak_rss() == 0;
    struct spawner_args a = {.driver = snow_actor_self(), .n = B.n.spawns};
    if (!snow_actor_spawn(spawner, &a, sizeof a))
        return fail("spawn returned 0");
    struct span s;
    if (await(TAG_DONE, &s, sizeof s) < 0)
        return -1;
    if (s.status)
        return fail("spawner failed: %s", snow_strerror((int)s.status));
    double secs = (double)(s.t1 - s.t0) / 1e9;
    emit("bench spawn actors_per_s=%.0f peak_rss_kib=%ld actors=%ld peak_since=%s", (double)a.n / secs,
         bench_peak_rss_kib(), a.n, reset ? "scenario" : "start");
    return 0;
}

/* ---- parked and hibernated actors -------------------------------------- */

struct park_ctl {
    atomic_long parked; /* about to park (incremented just before) */
    atomic_long woken;  /* received the wake-up message */
};

static void parked_actor(void *p)
{
    struct park_ctl *c = *(struct park_ctl *const *)p;
    atomic_fetch_add_explicit(&c->parked, 1, memory_order_release);
    snow_actor_receive(-1);
    atomic_fetch_add_explicit(&c->woken, 1, memory_order_release);
}

static void hibernated_wake(void *arg)
{
    struct park_ctl *c = arg;
    snow_actor_receive(0);
    atomic_fetch_add_explicit(&c->woken, 1, memory_order_release);
}

static void hibernated_actor(void *p)
{
    struct park_ctl *c = *(struct park_ctl *const *)p;
    atomic_fetch_add_explicit(&c->parked, 1, memory_order_release);
    snow_actor_hibernate(hibernated_wake, c);
}

/* Spawns n actors running fn, waits until all are parked, reports the
 * resident memory they added, then wakes them and waits for all of them. */
static int park_many(const char *name, SnowActorFn fn, long n, bool idle_cpu)
{
    struct park_ctl ctl = {0};
    struct park_ctl *cp = &ctl;
    SnowPid *pids = malloc((size_t)n * sizeof *pids);
    if (!pids)
        return fail("out of memory");
    /* Touch the array now so that its pages are not counted as the actors'. */
    memset(pids, 0, (size_t)n * sizeof *pids);
    /* Let stragglers of earlier scenarios finish exiting, then hand the
     * memory they freed back to the kernel: otherwise the new actors would
     * reuse resident free blocks and look cheaper than they are. */
    snow_sleep(100);
    malloc_trim(0);
    long rss0 = bench_rss_kib();
    int rc = 0;
    long spawned = 0;
    for (; spawned < n; spawned++) {
        pids[spawned] = spawn_on(fn, &cp, sizeof cp, -1, false);
        if (!pids[spawned]) {
            rc = fail("spawn returned 0 after %ld actors", spawned);
            break;
        }
    }
    if (rc == 0)
        rc = await_count(&ctl.parked, n, "parked");
    if (rc == 0) {
        /* The counter moves just before each actor parks; give the last
         * ones time to finish parking. */
        snow_sleep(200);
        long rss1 = bench_rss_kib();
        double per = (double)(rss1 - rss0) / (double)n;
        if (idle_cpu) {
            int64_t w0 = rt_now_ns();
            double c0 = bench_cpu_seconds();
            snow_sleep(2000);
            double c1 = bench_cpu_seconds();
            int64_t w1 = rt_now_ns();
            emit("bench %s actors=%ld rss_per_actor_kib=%.2f cpu_pct=%.2f", name, n, per,
                 100.0 * (c1 - c0) / ((double)(w1 - w0) / 1e9));
        } else {
            emit("bench %s actors=%ld rss_per_actor_kib=%.2f", name, n, per);
        }
    }
    for (long i = 0; i < spawned; i++)
        snow_actor_send(pids[i], TAG_WAKE, NULL, 0);
    if (await_count(&ctl.woken, spawned, "woke") < 0)
        rc = -1;
    free(pids);
    return rc;
}

int run_parked(void)
{
    return park_many("parked", parked_actor, B.n.parked, true);
}

int run_hibernated(void)
{
    return park_many("hibernated", hibernated_actor, B.n.hibernated, false);
}
