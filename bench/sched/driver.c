/*
 * driver.c: snow-bench-sched, the scheduler benchmark.
 *
 * Every figure is one line "bench <name> <key>=<value> ..." on stdout. The
 * scenarios (switching.c, messages.c, actors.c, timers.c) run one after
 * another inside a single driver actor; see bench/README.md for what each
 * one measures and how to read it.
 *
 *   snow-bench-sched [--quick] [--only NAME] [--ring-size N] [--ring-hops N]
 *
 * Workers: SNOW_WORKERS when set, else 2 (the cross-worker ping-pong needs
 * two). Exit status 0 when every selected scenario completed, 1 when one
 * failed, 2 on bad usage, 3 when the watchdog fired.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "bench_sched.h"

/* How long the whole program may take before the watchdog ends it. */
#define WATCHDOG_S 900

static const struct counts full_counts = {
    .switches = 10000000,
    .yields = 2000000,
    .pp_same = 1000000,
    .pp_cross = 20000,
    .spawns = 1000000,
    .parked = 100000,
    .hibernated = 100000,
    .timers = 100000,
    .ring_size = 10000,
    .ring_hops = 1000000,
    .busy_sleeps = 100,
    .sel_queued = 100000,
    .sel_calls = 2000,
};

struct scenario {
    const char *name;
    int (*run)(void);
};

struct bench_state B;

/* Results go to stdout as soon as they are known so that a later hang still
 * leaves the earlier figures. The write is small and nothing is being timed
 * while it happens, so a short block of the driver's worker is harmless. */
void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "snow-bench-sched: %s: ", B.current ? B.current : "setup");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

SnowPid spawn_on(SnowActorFn fn, const void *args, size_t size, int worker, bool pinned)
{
    struct actor_spawn_opts opts = {.worker = worker, .pinned = pinned, .link = false};
    return actor_spawn(fn, args, size, &opts);
}

int await(uint64_t tag, void *out, size_t len)
{
    SnowMessage *m = snow_actor_receive_match(&tag, 1, REPLY_TIMEOUT_MS);
    if (!m)
        return fail("no reply (tag %llu) within %d ms", (unsigned long long)tag, REPLY_TIMEOUT_MS);
    if (out)
        memcpy(out, m->data, m->len < len ? m->len : len);
    return 0;
}

int await_count(atomic_long *counter, long target, const char *what)
{
    int64_t deadline = rt_now_ns() + (int64_t)REPLY_TIMEOUT_MS * 1000000;
    while (atomic_load_explicit(counter, memory_order_acquire) < target) {
        if (rt_now_ns() > deadline)
            return fail("%ld of %ld actors %s after %d ms", atomic_load(counter), target, what,
                        REPLY_TIMEOUT_MS);
        snow_sleep(1);
    }
    return 0;
}

/* ---- driver ------------------------------------------------------------ */

static const struct scenario scenarios[] = {
    {"context_switch", run_context_switch},
    {"yield", run_yield},
    {"pingpong_same_worker", run_pp_same},
    {"pingpong_cross_worker", run_pp_cross},
    {"pingpong_unpinned", run_pp_unpinned},
    {"spawn", run_spawn},
    {"ring", run_ring},
    {"timers", run_timers},
    {"timer_lateness_busy", run_timer_lateness_busy},
    {"selective_receive", run_selective_receive},
    {"parked", run_parked},
    {"hibernated", run_hibernated},
};

static void driver(void *p)
{
    (void)p;
    for (size_t i = 0; i < RT_ARRAY_LEN(scenarios); i++) {
        if (B.only && strcmp(B.only, scenarios[i].name) != 0)
            continue;
        B.current = scenarios[i].name;
        if (scenarios[i].run() < 0) {
            B.failed = 1;
            break;
        }
    }
    B.current = NULL;
    /* After a failure, actors of the failed scenario may still be parked;
     * shutdown kills them so that snow_rt_run returns. */
    if (B.failed)
        snow_rt_shutdown();
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char head[] = "snow-bench-sched: watchdog: scenario ";
    const char *name = B.current ? B.current : "(none)";
    static const char tail[] = " did not finish in time\n";
    ssize_t r = write(2, head, sizeof head - 1);
    r = write(2, name, strlen(name));
    r = write(2, tail, sizeof tail - 1);
    (void)r;
    _exit(3);
}

/* Makes room for n actors with a stack and guard mapping each; returns how
 * many actors fit (n, or fewer when the limit cannot be raised). */
static long fit_map_count(long n)
{
    long limit = bench_max_map_count();
    long used = bench_map_count();
    if (limit < 0 || used < 0)
        return n;
    /* Two mappings per actor, plus room for the runtime's own and the
     * stack cache. */
    long need = used + 2 * n + 4096;
    if (limit >= need)
        return n;
    long want = need > 262144 ? need : 262144;
    if (bench_set_max_map_count(want) == 0 && bench_max_map_count() >= need)
        return n;
    long fit = (limit - used - 4096) / 2;
    fprintf(stderr, "snow-bench-sched: vm.max_map_count is %ld and cannot be raised: %ld actors instead of %ld\n",
            limit, fit > 0 ? fit : 0, n);
    return fit > 0 ? fit : 1;
}

static void scale_down(struct counts *c, long by)
{
    c->switches /= by;
    c->yields /= by;
    c->pp_same /= by;
    c->pp_cross /= by;
    c->spawns /= by;
    c->parked /= by;
    c->hibernated /= by;
    c->timers /= by;
    c->ring_size /= by;
    c->ring_hops /= by;
    c->busy_sleeps /= by;
    c->sel_queued /= by;
    c->sel_calls /= by;
}

/* A positive decimal count, or -1. */
static long count_arg(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 ? v : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: snow-bench-sched [--quick] [--only NAME] [--ring-size N] [--ring-hops N]\nscenarios:");
    for (size_t i = 0; i < RT_ARRAY_LEN(scenarios); i++)
        fprintf(stderr, " %s", scenarios[i].name);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    B.n = full_counts;
    bool quick = false;
    long ring_size = 0, ring_hops = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            B.only = argv[++i];
        } else if (strcmp(argv[i], "--ring-size") == 0 && i + 1 < argc && (ring_size = count_arg(argv[++i])) >= 2) {
            continue;
        } else if (strcmp(argv[i], "--ring-hops") == 0 && i + 1 < argc && (ring_hops = count_arg(argv[++i])) >= 1) {
            continue;
        } else {
            usage();
            return 2;
        }
    }
    if (B.only) {
        bool known = false;
        for (size_t i = 0; i < RT_ARRAY_LEN(scenarios); i++)
            known |= strcmp(B.only, scenarios[i].name) == 0;
        if (!known) {
            usage();
            return 2;
        }
    }
    if (quick)
        scale_down(&B.n, 10);
    /* Set after --quick: a profile of the ring at its full size (or at
     * two hop counts, whose difference is the cost of a hop alone) needs
     * no other scenario's counts. */
    if (ring_size)
        B.n.ring_size = ring_size;
    if (ring_hops)
        B.n.ring_hops = ring_hops;
    B.n.parked = fit_map_count(B.n.parked);

    /* Two workers unless told otherwise: enough for the cross-worker
     * ping-pong and no more than the machines this is meant for. */
    const char *env = getenv("SNOW_WORKERS");
    int rc = snow_rt_init(env && *env ? 0 : 2);
    if (rc < 0) {
        fprintf(stderr, "snow-bench-sched: snow_rt_init: %s\n", snow_strerror(rc));
        return 1;
    }
    B.workers = snow_rt_workers();
    emit("bench config workers=%d quick=%d", B.workers, quick ? 1 : 0);

    signal(SIGALRM, on_alarm);
    alarm(WATCHDOG_S);

    /* The driver lives on the last worker, out of the way of the pinned
     * actors of the yield and same-worker scenarios on worker 0. */
    B.driver_worker = B.workers - 1;
    if (!spawn_on(driver, NULL, 0, B.driver_worker, true)) {
        fprintf(stderr, "snow-bench-sched: could not spawn the driver\n");
        return 1;
    }
    snow_rt_run();
    if (B.failed)
        return 1;
    return 0;
}
