/*
 * switching.c: snow-bench-sched scenarios of the raw coroutine switch and of
 * yielding through the scheduler.
 */
#include <stddef.h>

#include "bench_sched.h"

/* ---- context switch and yield ------------------------------------------ */

int run_context_switch(void)
{
    double ns = actor_bench_switch_ns(B.n.switches);
    if (!(ns > 0))
        return fail("actor_bench_switch_ns returned %f", ns);
    emit("bench context_switch ns=%.1f switches=%ld", ns, B.n.switches);
    return 0;
}
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

int run_yield(void)
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
