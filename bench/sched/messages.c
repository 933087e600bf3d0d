/*
 * messages.c: snow-bench-sched scenarios of message passing: ping-pong on one
 * worker, across workers and unpinned, the 10,000-actor ring, and selective
 * receive past a long queue.
 */
#include <stdio.h>
#include <string.h>

#include "bench_sched.h"

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

int run_pp_same(void)
{
    return pingpong("pingpong_same_worker", 0, 0, B.n.pp_same);
}

int run_pp_cross(void)
{
    if (B.workers < 2)
        return fail("needs at least 2 workers, runtime has %d", B.workers);
    return pingpong("pingpong_cross_worker", 0, 1, B.n.pp_cross);
}

int run_pp_unpinned(void)
{
    return pingpong("pingpong_unpinned", -1, -1, B.n.pp_same);
}

/* ---- ring -------------------------------------------------------------- */

struct ring_args {
    SnowPid next;
    SnowPid driver;
    int64_t lap_k; /* the token's count after one lap: that node notes the time */
};

/* When the token finished its first lap (0: not yet). The first lap
 * starts every node that had not run yet (a fresh stack each), so it is
 * reported apart from the laps after it. */
static _Atomic int64_t ring_lap_ns;

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
            if (k == a.lap_k)
                atomic_store_explicit(&ring_lap_ns, rt_now_ns(), memory_order_relaxed);
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

int run_ring(void)
{
    int64_t k = B.n.ring_hops;
    struct ring_args a = {.next = 0, .driver = snow_actor_self(), .lap_k = k > B.n.ring_size ? k - B.n.ring_size : -1};
    atomic_store_explicit(&ring_lap_ns, 0, memory_order_relaxed);
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
    int64_t t0 = rt_now_ns();
    snow_actor_send(head, TAG_TOKEN, &k, sizeof k);
    int64_t t1;
    if (await(TAG_DONE, &t1, sizeof t1) < 0)
        return -1;
    if (t1 == 0)
        return fail("token lost: a send failed");
    /* relaxed: the node stored it before its sends that led to TAG_DONE,
     * and the mailbox's locks order those */
    int64_t lap = atomic_load_explicit(&ring_lap_ns, memory_order_relaxed);
    double rest = lap > t0 && t1 > lap ? (double)(k - B.n.ring_size) / ((double)(t1 - lap) / 1e9) : 0;
    emit("bench ring hops_per_s=%.0f actors=%ld hops=%ld first_lap_us=%.0f after_first_lap_hops_per_s=%.0f",
         (double)k / ((double)(t1 - t0) / 1e9), B.n.ring_size, B.n.ring_hops,
         lap > t0 ? (double)(lap - t0) / 1e3 : 0.0, rest);
    return 0;
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

int run_selective_receive(void)
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
