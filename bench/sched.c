/*
 * sched.c: snow-bench-sched, the scheduler benchmark.
 *
 * Every figure is one line "bench <name> <key>=<value> ..." on stdout. The
 * scenarios run one after another inside a single driver actor; see
 * bench/README.md for what each one measures and how to read it.
 *
 *   snow-bench-sched [--quick] [--only NAME]
 *
 * Workers: SNOW_WORKERS when set, else 2 (the cross-worker ping-pong needs
 * two). Exit status 0 when every selected scenario completed, 1 when one
 * failed, 2 on bad usage, 3 when the watchdog fired.
 */
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor.h"
#include "benchutil.h"

/* User message tags of this program (never reserved: top half is zero). */
enum {
    TAG_GO = 1,
    TAG_PING,
    TAG_PONG,
    TAG_STOP,
    TAG_DONE,
    TAG_TOKEN,
    TAG_NEXT,
    TAG_WAKE,
    TAG_TIMER,
};

/* How long the driver waits for a reply before declaring a scenario hung,
 * and how long the whole program may take before the watchdog ends it.
 * The measured loops themselves wait without a deadline: a deadline arms a
 * runtime timer and reads the clock on every receive, which would be part
 * of every figure; the watchdog covers a message that never comes. */
#define REPLY_TIMEOUT_MS 120000
#define WATCHDOG_S 900

/* Children of the spawn scenario alive at once (the peers use the same). */
#define SPAWN_OUTSTANDING 1000
/* Receivers sharing the timers of the timer scenario. */
#define TIMER_RECEIVERS 4

struct counts {
    long switches;   /* raw coroutine switches */
    long yields;     /* yields per actor, two actors */
    long pp_same;    /* round trips, same worker */
    long pp_cross;   /* round trips, across workers */
    long spawns;     /* spawn + exit */
    long parked;     /* actors parked on their mailbox */
    long hibernated; /* actors hibernated */
    long timers;     /* timers per phase */
    long ring_size;  /* actors in the ring */
    long ring_hops;  /* token hops */
    long busy_sleeps; /* 10 ms sleeps next to busy workers */
    long sel_queued; /* messages skipped by each selective receive */
    long sel_calls;  /* selective receives timed */
};

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

/* The program's state: counts, selection, and what the watchdog reports. */
static struct {
    struct counts n;
    int workers;
    const char *only;
    int driver_worker;
    const char *volatile current;
    int failed;
} B;

/* Results go to stdout as soon as they are known so that a later hang still
 * leaves the earlier figures. The write is small and nothing is being timed
 * while it happens, so a short block of the driver's worker is harmless. */
__attribute__((format(printf, 1, 2))) static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "snow-bench-sched: %s: ", B.current ? B.current : "setup");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

static SnowPid spawn_on(SnowActorFn fn, const void *args, size_t size, int worker, bool pinned)
{
    struct actor_spawn_opts opts = {.worker = worker, .pinned = pinned, .link = false};
    return actor_spawn(fn, args, size, &opts);
}

/* Waits for a message with the given tag and copies up to len bytes of its
 * payload into out. Returns 0, or -1 after a timeout. */
static int await(uint64_t tag, void *out, size_t len)
{
    SnowMessage *m = snow_actor_receive_match(&tag, 1, REPLY_TIMEOUT_MS);
    if (!m)
        return fail("no reply (tag %llu) within %d ms", (unsigned long long)tag, REPLY_TIMEOUT_MS);
    if (out)
        memcpy(out, m->data, m->len < len ? m->len : len);
    return 0;
}

/* Parks the driver until *counter reaches target, checking every ms. */
static int await_count(atomic_long *counter, long target, const char *what)
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

/* ---- context switch and yield ------------------------------------------ */

static int run_context_switch(void)
{
    double ns = actor_bench_switch_ns(B.n.switches);
    if (!(ns > 0))
        return fail("actor_bench_switch_ns returned %f", ns);
    emit("bench context_switch ns=%.1f switches=%ld", ns, B.n.switches);
    return 0;
}

struct span {
    int64_t t0, t1;
    int64_t status; /* 0 or a negative error */
};

struct yield_args {
    SnowPid driver;
    long n;
};

static void yielder(void *p)
{
    const struct yield_args *a = p;
    struct span s = {0};
    uint64_t go = TAG_GO;
    if (!snow_actor_receive_match(&go, 1, REPLY_TIMEOUT_MS))
        s.status = SNOW_ETIMEOUT;
    s.t0 = rt_now_ns();
    for (long i = 0; i < a->n && s.status == 0; i++)
        snow_actor_yield();
    s.t1 = rt_now_ns();
    snow_actor_send(a->driver, TAG_DONE, &s, sizeof s);
}

static int run_yield(void)
{
    struct yield_args a = {.driver = snow_actor_self(), .n = B.n.yields};
    SnowPid p[2];
    for (int i = 0; i < 2; i++) {
        p[i] = spawn_on(yielder, &a, sizeof a, 0, true);
        if (!p[i])
            return fail("spawn returned 0");
    }
    for (int i = 0; i < 2; i++)
        snow_actor_send(p[i], TAG_GO, NULL, 0);
    struct span s[2];
    for (int i = 0; i < 2; i++)
        if (await(TAG_DONE, &s[i], sizeof s[i]) < 0)
            return -1;
    if (s[0].status || s[1].status)
        return fail("yielder failed: %s", snow_strerror((int)(s[0].status ? s[0].status : s[1].status)));
    int64_t t0 = s[0].t0 < s[1].t0 ? s[0].t0 : s[1].t0;
    int64_t t1 = s[0].t1 > s[1].t1 ? s[0].t1 : s[1].t1;
    emit("bench yield ns=%.1f yields=%ld", (double)(t1 - t0) / (2.0 * (double)a.n), 2 * a.n);
    return 0;
}

/* ---- ping-pong --------------------------------------------------------- */

struct pp_args {
    SnowPid driver;
    SnowPid peer;
    long n;
};

static void pp_echo(void *p)
{
    (void)p;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (!m || m->tag == TAG_STOP)
            return;
        snow_actor_send(m->from, TAG_PONG, m->data, m->len);
    }
}

static void pp_client(void *p)
{
    const struct pp_args *a = p;
    struct span s = {0};
    uint64_t payload = 0;
    long warm = a->n / 10;
    for (long i = 0; i < warm + a->n; i++) {
        if (i == warm)
            s.t0 = rt_now_ns();
        payload = (uint64_t)i;
        int rc = snow_actor_send(a->peer, TAG_PING, &payload, sizeof payload);
        if (rc < 0) {
            s.status = rc;
            break;
        }
        /* No timeout: a deadline would arm a timer and read the clock on
         * every receive, which is not what this measures. The watchdog
         * catches a lost message. */
        SnowMessage *m = snow_actor_receive(-1);
        if (!m || m->tag != TAG_PONG || m->len != sizeof payload || memcmp(m->data, &payload, sizeof payload)) {
            s.status = SNOW_EPROTOCOL;
            break;
        }
    }
    s.t1 = rt_now_ns();
    snow_actor_send(a->peer, TAG_STOP, NULL, 0);
    snow_actor_send(a->driver, TAG_DONE, &s, sizeof s);
}

/* Worker -1 leaves placement to the runtime (unpinned, may be stolen). */
static int pingpong(const char *name, int worker_a, int worker_b, long n)
{
    struct pp_args a = {.driver = snow_actor_self(), .n = n};
    a.peer = spawn_on(pp_echo, NULL, 0, worker_b, worker_b >= 0);
    if (!a.peer)
        return fail("spawn returned 0");
    if (!spawn_on(pp_client, &a, sizeof a, worker_a, worker_a >= 0))
        return fail("spawn returned 0");
    struct span s;
    if (await(TAG_DONE, &s, sizeof s) < 0)
        return -1;
    if (s.status)
        return fail("client failed: %s", snow_strerror((int)s.status));
    char placement[32] = "runtime";
    if (worker_a >= 0)
        snprintf(placement, sizeof placement, "%d,%d", worker_a, worker_b);
    emit("bench %s rtt_ns=%.1f round_trips=%ld workers=%d pinned=%s", name, (double)(s.t1 - s.t0) / (double)n,
         n, B.workers, placement);
    return 0;
}

static int run_pp_same(void)
{
    return pingpong("pingpong_same_worker", 0, 0, B.n.pp_same);
}

static int run_pp_cross(void)
{
    if (B.workers < 2)
        return fail("needs at least 2 workers, runtime has %d", B.workers);
    return pingpong("pingpong_cross_worker", 0, 1, B.n.pp_cross);
}

static int run_pp_unpinned(void)
{
    return pingpong("pingpong_unpinned", -1, -1, B.n.pp_same);
}

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

static int run_spawn(void)
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

static int run_parked(void)
{
    return park_many("parked", parked_actor, B.n.parked, true);
}

static int run_hibernated(void)
{
    return park_many("hibernated", hibernated_actor, B.n.hibernated, false);
}

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

static int run_timers(void)
{
    long n = B.n.timers - B.n.timers % TIMER_RECEIVERS;
    int64_t *late = malloc((size_t)n * sizeof *late);
    if (!late)
        return fail("out of memory");
    int64_t first, last;
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

static int run_timer_lateness_busy(void)
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

/* ---- selective receive past a long queue ------------------------------- */

struct selective_args {
    SnowPid driver;
    long queued, calls;
};

static void selective_actor(void *p)
{
    const struct selective_args *a = p;
    SnowPid self = snow_actor_self();
    struct span s = {0};
    uint64_t v = 0;
    for (long i = 0; i < a->queued && !s.status; i++)
        if (snow_actor_send(self, TAG_PING, &v, sizeof v) < 0)
            s.status = SNOW_EPROTOCOL;
    uint64_t tag = TAG_WAKE;
    /* The first receive scans the queued messages once; the timed calls
     * each find one new message behind all of them. */
    snow_actor_send(self, TAG_WAKE, &v, sizeof v);
    if (!snow_actor_receive_match(&tag, 1, 0))
        s.status = SNOW_EPROTOCOL;
    s.t0 = rt_now_ns();
    for (long i = 0; i < a->calls && !s.status; i++) {
        v = (uint64_t)i;
        snow_actor_send(self, TAG_WAKE, &v, sizeof v);
        SnowMessage *m = snow_actor_receive_match(&tag, 1, 0);
        if (!m || memcmp(m->data, &v, sizeof v))
            s.status = SNOW_EPROTOCOL;
    }
    s.t1 = rt_now_ns();
    snow_actor_send(a->driver, TAG_DONE, &s, sizeof s);
}

static int run_selective_receive(void)
{
    struct selective_args a = {.driver = snow_actor_self(), .queued = B.n.sel_queued, .calls = B.n.sel_calls};
    if (!spawn_on(selective_actor, &a, sizeof a, -1, false))
        return fail("spawn returned 0");
    struct span s;
    if (await(TAG_DONE, &s, sizeof s) < 0)
        return -1;
    if (s.status)
        return fail("selective receive did not find its message");
    emit("bench selective_receive queued=%ld ns_per_call=%.1f calls=%ld", a.queued,
         (double)(s.t1 - s.t0) / (double)a.calls, a.calls);
    return 0;
}

/* ---- ring -------------------------------------------------------------- */

struct ring_args {
    SnowPid next;
    SnowPid driver;
};

/* Token payload: hops still to go. The node that receives 0 reports the time
 * and sends STOP round the ring; every node forwards it once and exits. */
static void ring_node(void *p)
{
    struct ring_args a = *(const struct ring_args *)p;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (!m)
            return;
        if (m->tag == TAG_NEXT) {
            memcpy(&a.next, m->data, sizeof a.next);
        } else if (m->tag == TAG_TOKEN) {
            int64_t k;
            memcpy(&k, m->data, sizeof k);
            if (k == 0) {
                int64_t t = rt_now_ns();
                snow_actor_send(a.driver, TAG_DONE, &t, sizeof t);
                snow_actor_send(a.next, TAG_STOP, NULL, 0);
                return;
            }
            k--;
            if (snow_actor_send(a.next, TAG_TOKEN, &k, sizeof k) < 0) {
                int64_t t = 0;
                snow_actor_send(a.driver, TAG_DONE, &t, sizeof t);
                return;
            }
        } else if (m->tag == TAG_STOP) {
            snow_actor_send(a.next, TAG_STOP, NULL, 0);
            return;
        }
    }
}

static int run_ring(void)
{
    struct ring_args a = {.next = 0, .driver = snow_actor_self()};
    SnowPid tail = snow_actor_spawn(ring_node, &a, sizeof a);
    if (!tail)
        return fail("spawn returned 0");
    a.next = tail;
    for (long i = 1; i < B.n.ring_size; i++) {
        a.next = snow_actor_spawn(ring_node, &a, sizeof a);
        if (!a.next)
            return fail("spawn returned 0 after %ld actors", i);
    }
    SnowPid head = a.next;
    snow_actor_send(tail, TAG_NEXT, &head, sizeof head);
    int64_t k = B.n.ring_hops;
    int64_t t0 = rt_now_ns();
    snow_actor_send(head, TAG_TOKEN, &k, sizeof k);
    int64_t t1;
    if (await(TAG_DONE, &t1, sizeof t1) < 0)
        return -1;
    if (t1 == 0)
        return fail("token lost: a send failed");
    emit("bench ring hops_per_s=%.0f actors=%ld hops=%ld", (double)k / ((double)(t1 - t0) / 1e9),
         B.n.ring_size, B.n.ring_hops);
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

static void usage(void)
{
    fprintf(stderr, "usage: snow-bench-sched [--quick] [--only NAME]\nscenarios:");
    for (size_t i = 0; i < RT_ARRAY_LEN(scenarios); i++)
        fprintf(stderr, " %s", scenarios[i].name);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    B.n = full_counts;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            B.only = argv[++i];
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
