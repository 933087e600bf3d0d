/*
 * sched.c: worker threads, run queues, work stealing, idle sleeping, and the
 * park/notify protocol that makes lost wake-ups impossible.
 *
 * Park/notify protocol. An actor that wants to wait:
 *   1. publishes what it waits for (wait_events, wait_io, deadline),
 *   2. stores state = WAITING (seq_cst),
 *   3. checks every condition (mailbox count, io readiness bits, clock,
 *      pending exit signal); if one holds it goes back to RUNNING,
 *   4. otherwise switches to its worker, which CASes WAITING -> PARKED
 *      only after the actor's stack is no longer in use.
 * A notifier first makes its condition true (seq_cst), then loads state:
 * WAITING -> CAS to NOTIFIED (the worker's CAS in step 4 then fails and the
 * actor resumes at once); PARKED -> CAS to RUNNABLE and enqueue. Because
 * both sides write before they read with seq_cst, at least one of them sees
 * the other: either the actor sees the condition in step 3, or the
 * notifier sees WAITING/PARKED. No actor is ever resumed while its stack is
 * still live on another worker, because only PARKED actors are enqueued.
 *
 * Idle workers: one idle worker holds the poll role and blocks in
 * epoll_pwait2 until the next timer; the others sleep on a private futex.
 * Whoever makes work stealable wakes a sleeper (or interrupts the poller),
 * again with the store-then-load pairing: the pusher stores the queue then
 * loads `sleeping`; the sleeper stores `sleeping` then rechecks the queues.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/internal.h"
#include "actor/tsan.h"

#ifdef RT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct runtime rt;

static __thread struct worker *tls_worker;

RT_NOINLINE struct worker *worker_self(void)
{
    return tls_worker;
}

RT_NOINLINE struct actor *actor_self(void)
{
    struct worker *w = tls_worker;
    return w ? w->current : NULL;
}

bool actor_in_actor(void)
{
    return actor_self() != NULL;
}

int actor_worker_index(void)
{
    struct worker *w = worker_self();
    return w ? w->index : -1;
}

int snow_rt_workers(void)
{
    return atomic_load(&rt.running) ? rt.nworkers : 0;
}

/* ---- run queues ----------------------------------------------------------- */

static void rq_push(struct runq *q, struct actor *a)
{
    a->next = NULL;
    rt_spin_lock(&q->lock);
    if (q->tail)
        q->tail->next = a;
    else
        q->head = a;
    q->tail = a;
    atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) + 1, memory_order_relaxed);
    rt_spin_unlock(&q->lock);
}

static uint32_t rq_len(struct runq *q)
{
    return atomic_load_explicit(&q->n, memory_order_relaxed);
}

static struct actor *rq_pop(struct runq *q)
{
    if (!rq_len(q))
        return NULL;
    rt_spin_lock(&q->lock);
    struct actor *a = q->head;
    if (a) {
        q->head = a->next;
        if (!q->head)
            q->tail = NULL;
        atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) - 1, memory_order_relaxed);
    }
    rt_spin_unlock(&q->lock);
    return a;
}

/* Moves half of victim's stealable queue to w; returns one to run. */
static struct actor *rq_steal(struct worker *w, struct worker *victim)
{
    if (!rq_len(&victim->q) || !rt_spin_trylock(&victim->q.lock))
        return NULL;
    uint32_t n = atomic_load_explicit(&victim->q.n, memory_order_relaxed);
    uint32_t take = n - n / 2;
    struct actor *first = victim->q.head, *last = first;
    if (!first) {
        rt_spin_unlock(&victim->q.lock);
        return NULL;
    }
    for (uint32_t i = 1; i < take; i++)
        last = last->next;
    victim->q.head = last->next;
    if (!victim->q.head)
        victim->q.tail = NULL;
    atomic_store_explicit(&victim->q.n, n - take, memory_order_relaxed);
    rt_spin_unlock(&victim->q.lock);
    last->next = NULL;
    struct actor *run = first;
    for (struct actor *a = first->next, *nx; a; a = nx) {
        nx = a->next;
        rq_push(&w->q, a);
    }
    return run;
}

/* ---- waking idle workers --------------------------------------------------- */

static bool wake_worker(struct worker *w)
{
    if (atomic_load(&w->sleeping) && atomic_exchange(&w->sleeping, 0)) {
        rt_futex_wake(&w->sleeping, 1);
        return true;
    }
    return false;
}

/* Somebody made stealable work: make sure an idle worker looks at it. */
static void wake_idle(struct worker *self)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *v = &rt.workers[i];
        if (v != self && wake_worker(v))
            return;
    }
    if (atomic_load(&rt.poll_blocked))
        poller_interrupt();
}

void sched_kick_idle(void)
{
    wake_idle(worker_self());
}

void sched_enqueue(struct actor *a, bool from_waker)
{
    struct worker *w = worker_self();
    if (a->pinned) {
        struct worker *home = &rt.workers[a->home];
        if (home == w && from_waker && !w->runnext) {
            w->runnext = a;
            return;
        }
        rq_push(&home->pq, a);
        if (home != w) {
            atomic_thread_fence(memory_order_seq_cst);
            if (!wake_worker(home) && atomic_load(&rt.poll_blocked))
                poller_interrupt();
        }
        return;
    }
    if (w) {
        if (from_waker) {
            /* The woken actor runs next on this worker: the waker usually
             * parks soon (request/response), so this keeps the pair on one
             * core's cache and needs no cross-thread wake-up. */
            struct actor *old = w->runnext;
            w->runnext = a;
            if (!old)
                return;
            a = old;
        }
        rq_push(&w->q, a);
        wake_idle(w);
        return;
    }
    unsigned i = atomic_fetch_add(&rt.rr, 1) % (unsigned)rt.nworkers;
    rq_push(&rt.workers[i].q, a);
    wake_idle(NULL);
}

bool actor_notify_begin(struct actor *a, unsigned mask)
{
    int s = atomic_load(&a->state);
    for (;;) {
        if (s != A_WAITING && s != A_PARKED)
            return false;
        if (mask && !(atomic_load_explicit(&a->wait_events, memory_order_relaxed) & mask))
            return false;
        if (s == A_WAITING) {
            if (atomic_compare_exchange_weak(&a->state, &s, A_NOTIFIED))
                return false;
            continue;
        }
        if (atomic_compare_exchange_weak(&a->state, &s, A_RUNNABLE))
            return true;
    }
}

/* ---- switching -------------------------------------------------------------- */

static void switch_to_actor(struct worker *w, struct stack *s)
{
#ifdef RT_ASAN
    __sanitizer_start_switch_fiber(&w->asan_fake, s->lo, s->usable);
#endif
    actor_tsan_enter(&s->tsan_back, s->tsan_fiber);
    rt_ctx_switch(&w->sched_ctx, &s->ctx);
#ifdef RT_ASAN
    __sanitizer_finish_switch_fiber(w->asan_fake, NULL, NULL);
#endif
}

void sched_switch_out(int why)
{
    struct worker *w = worker_self();
    struct stack *s = w->current->stack;
    w->switch_why = why;
#ifdef RT_ASAN
    __sanitizer_start_switch_fiber(&s->asan_fake, w->sys_stack_lo, w->sys_stack_size);
#endif
    actor_tsan_leave(s->tsan_back);
    rt_ctx_switch(&s->ctx, &w->sched_ctx);
#ifdef RT_ASAN
    __sanitizer_finish_switch_fiber(s->asan_fake, NULL, NULL);
#endif
}

void sched_actor_freed(void)
{
    if (atomic_fetch_sub(&rt.live, 1) == 1) {
        atomic_fetch_add(&rt.run_word, 1);
        rt_futex_wake(&rt.run_word, 1);
    }
}

unsigned actor_wait_conditions(struct actor *a, struct SnowIo *io, unsigned events, int64_t deadline);

/* No stack could be mapped for a (memory or vm.max_map_count exhausted).
 * The actor is not lost and does not make its worker spin: it waits on the
 * worker's starved list, retried every STARVED_RETRY_MS while other actors
 * run, exit and give stacks back. One log line per second at most. */
#define STARVED_RETRY_MS 10

static void starve(struct worker *w, struct actor *a)
{
    static _Atomic int64_t last_log;
    int64_t now = rt_now_ns();
    int64_t prev = atomic_load_explicit(&last_log, memory_order_relaxed);
    if (now - prev >= 1000000000 && atomic_compare_exchange_strong(&last_log, &prev, now))
        rt_log(RT_LOG_ERROR, "no memory for an actor stack (mmap failed; is vm.max_map_count too low?); "
                             "actors wait until stacks are freed");
    atomic_store(&a->state, A_RUNNABLE);
    a->next = w->starved;
    w->starved = a;
    if (!w->starved_retry_ns)
        w->starved_retry_ns = now + STARVED_RETRY_MS * 1000000;
}

static void retry_starved(struct worker *w)
{
    if (!w->starved || rt_now_ns() < w->starved_retry_ns)
        return;
    struct actor *a = w->starved;
    w->starved = NULL;
    w->starved_retry_ns = 0;
    while (a) {
        struct actor *next = a->next;
        rq_push(a->pinned ? &rt.workers[a->home].pq : &w->q, a);
        a = next;
    }
    /* Free stacks may sit in another worker's cache: let it steal these. */
    wake_idle(w);
}

/* Runs a until it parks, yields or exits. */
static void run_actor(struct worker *w, struct actor *a)
{
    for (;;) {
        atomic_store_explicit(&a->state, A_RUNNING, memory_order_relaxed);
        if (!a->stack) {
            a->stack = stack_get(w);
            if (!a->stack) {
                starve(w, a);
                return;
            }
        }
        w->current = a;
        a->reductions = rt.reductions;
        switch_to_actor(w, a->stack);
        w->current = NULL;
        switch (w->switch_why) {
        case SW_YIELD:
            atomic_store(&a->state, A_RUNNABLE);
            rq_push(a->pinned ? &w->pq : &w->q, a);
            return;
        case SW_PARK: {
            int exp = A_WAITING;
            if (atomic_compare_exchange_strong(&a->state, &exp, A_PARKED))
                return;
            continue; /* notified while parking: resume it right away */
        }
        case SW_HIBERNATE: {
            stack_put(w, a->stack);
            a->stack = NULL;
            unsigned got = actor_wait_conditions(a, a->wait_io, a->wait_events, a->wait_deadline);
            int exp = A_WAITING;
            if (!got && atomic_compare_exchange_strong(&a->state, &exp, A_PARKED))
                return;
            continue; /* a condition already holds: start the continuation */
        }
        case SW_EXIT:
            stack_put(w, a->stack);
            a->stack = NULL;
            actor_free(a);
            sched_actor_freed();
            return;
        default:
            abort();
        }
    }
}

static bool local_work(struct worker *w)
{
    return w->runnext || rq_len(&w->q) || rq_len(&w->pq);
}

bool sched_has_work(struct worker *w)
{
    if (local_work(w) || atomic_load(&rt.stopping))
        return true;
    for (int i = 0; i < rt.nworkers; i++)
        if (rq_len(&rt.workers[i].q))
            return true;
    return false;
}

static struct actor *find_work(struct worker *w)
{
    struct actor *a;
    /* runnext may not starve the queues: after a streak, take the queue. */
    if (w->runnext && w->runnext_streak < 64) {
        w->runnext_streak++;
        a = w->runnext;
        w->runnext = NULL;
        return a;
    }
    w->runnext_streak = 0;
    if ((a = rq_pop(&w->pq)) || (a = rq_pop(&w->q)))
        return a;
    if (w->runnext) {
        a = w->runnext;
        w->runnext = NULL;
        return a;
    }
    if (rt.nworkers > 1) {
        w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int start = (int)((w->rng >> 33) % (uint64_t)rt.nworkers);
        for (int i = 0; i < rt.nworkers; i++) {
            struct worker *v = &rt.workers[(start + i) % rt.nworkers];
            if (v != w && (a = rq_steal(w, v)))
                return a;
        }
    }
    return NULL;
}

static void run_timers_if_due(void)
{
    int64_t due = timers_next_due();
    if (due != INT64_MAX) {
        int64_t now = rt_now_ns();
        if (due <= now)
            timers_run(now);
    }
}

static void idle(struct worker *w)
{
    /* Try to become the poller: block in epoll until I/O or the next timer. */
    int64_t due = timers_next_due();
    if (w->starved && w->starved_retry_ns < due)
        due = w->starved_retry_ns;
    int64_t timeout = -1;
    if (due != INT64_MAX) {
        timeout = due - rt_now_ns();
        if (timeout < 0)
            timeout = 0;
    }
    int n = poller_poll(timeout);
    if (n >= 0) {
        run_timers_if_due();
        /* Hand the poll role on: if this worker now has actors to run, a
         * sleeping worker should take over the waiting. */
        if (local_work(w))
            for (int i = 0; i < rt.nworkers; i++)
                if (&rt.workers[i] != w && wake_worker(&rt.workers[i]))
                    break;
        return;
    }
    atomic_store(&w->sleeping, 1);
    if (sched_has_work(w)) {
        atomic_store(&w->sleeping, 0);
        return;
    }
    /* Another worker holds the poll role. Sleep until woken, or at most
     * until the next timer (or starved retry): the poller may be busy
     * running actors by then, and a due timer must not wait for it. With
     * nothing due, the sleep has no timeout at all. */
    due = timers_next_due();
    if (w->starved && w->starved_retry_ns < due)
        due = w->starved_retry_ns;
    if (due == INT64_MAX) {
        rt_futex_wait(&w->sleeping, 1, NULL);
    } else {
        int64_t ns = due - rt_now_ns();
        if (ns > 0) {
            struct timespec ts = {ns / 1000000000, ns % 1000000000};
            rt_futex_wait(&w->sleeping, 1, &ts);
        }
    }
    atomic_store(&w->sleeping, 0);
}

/* Spins briefly (tens of microseconds) before sleeping: in request/reply
 * traffic between workers the next message usually comes sooner than a
 * futex sleep and wake-up would take. Bounded, so an idle runtime still
 * goes to sleep at once in human terms. */
static bool spin_for_work(struct worker *w)
{
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < 32; j++)
            __builtin_ia32_pause();
        if (sched_has_work(w))
            return true;
    }
    return false;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    tls_worker = w;
    stack_thread_init(w);
    while (!atomic_load(&rt.stopping)) {
        retry_starved(w);
        struct actor *a = find_work(w);
        if (a) {
            run_actor(w, a);
            if ((++w->tick & 63) == 0) {
                run_timers_if_due();
                poller_poll(0);
            }
            continue;
        }
        run_timers_if_due();
        if (poller_poll(0) > 0)
            continue;
        if (!local_work(w) && !sched_has_work(w) && !spin_for_work(w))
            idle(w);
    }
    stack_thread_fini(w);
    tls_worker = NULL;
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return (int)rt_env_long("SNOW_WORKERS", n, 1, 1024);
}

int snow_rt_init(int nworkers)
{
    if (atomic_load(&rt.running))
        return -EBUSY;
    int n = nworkers > 0 ? nworkers : default_workers();
    memset(&rt, 0, sizeof rt);
    rt.nworkers = n;
    rt.reductions = (int32_t)rt_env_long("SNOW_REDUCTIONS", ACTOR_DEFAULT_REDUCTIONS, 1, 100000000);
    rt.workers = calloc((size_t)n, sizeof *rt.workers);
    if (!rt.workers)
        return -ENOMEM;
    int err = proc_init();
    if (!err)
        err = poller_init();
    if (err) {
        free(rt.workers);
        return err;
    }
    stack_signal_init();
    atomic_store(&rt.running, 1);
    for (int i = 0; i < n; i++) {
        struct worker *w = &rt.workers[i];
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            rt_log(RT_LOG_ERROR, "cannot start worker thread %d", i);
            abort();
        }
    }
    return 0;
}

static void kill_one(SnowPid pid, void *arg)
{
    (void)arg;
    actor_signal_exit(pid, 0, SNOW_EXIT_SHUTDOWN, false);
}

int snow_rt_run(void)
{
    if (!atomic_load(&rt.running))
        return SNOW_ENOT_RUNNING;
    bool killed = false;
    for (;;) {
        int word = atomic_load(&rt.run_word);
        if (atomic_load(&rt.live) == 0)
            break;
        if (atomic_load(&rt.shutdown_req) && !killed) {
            killed = true;
            proc_each(kill_one, NULL);
            continue;
        }
        rt_futex_wait(&rt.run_word, word, NULL);
    }
    atomic_store(&rt.stopping, 1);
    for (int i = 0; i < rt.nworkers; i++) {
        atomic_store(&rt.workers[i].sleeping, 0);
        rt_futex_wake(&rt.workers[i].sleeping, 1);
    }
    for (int i = 0; i < rt.nworkers; i++) {
        poller_interrupt();
        pthread_join(rt.workers[i].thread, NULL);
    }
    timers_fini();
    stack_pool_fini();
    actor_cache_fini();
    poller_fini();
    registry_fini();
    proc_fini();
    free(rt.workers);
    rt.workers = NULL;
    atomic_store(&rt.running, 0);
    return 0;
}

void snow_rt_shutdown(void)
{
    /* Only atomics and a raw futex call: safe in a signal handler. */
    atomic_store(&rt.shutdown_req, 1);
    atomic_fetch_add(&rt.run_word, 1);
    rt_futex_wake(&rt.run_word, 1);
}

/* ---- yielding and reductions -------------------------------------------------- */

void snow_actor_yield(void)
{
    struct actor *a = actor_self();
    if (!a) {
        sched_yield();
        return;
    }
    sched_switch_out(SW_YIELD);
    a = actor_self();
    actor_check_signals(a);
}

size_t actor_stack_remaining(void)
{
    struct actor *a = actor_self();
    if (!a || !a->stack)
        return 0;
    char probe;
    return (size_t)(&probe - a->stack->lo);
}

void snow_reduction_check(void)
{
    struct actor *a = actor_self();
    if (!a)
        return;
    char probe;
    if (RT_UNLIKELY((size_t)(&probe - a->stack->lo) < ACTOR_STACK_RESERVE)) {
        rt_log(RT_LOG_ERROR, "actor %llu overflowed its %d KiB stack; terminating it",
               (unsigned long long)a->pid, ACTOR_STACK_SIZE / 1024);
        actor_exit_now(SNOW_EXIT_STACK_OVERFLOW);
    }
    if (RT_LIKELY(--a->reductions > 0))
        return;
    sched_switch_out(SW_YIELD);
    a = actor_self();
    actor_check_signals(a);
}
