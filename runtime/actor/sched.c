/*
 * sched.c: worker threads, run queues, idle sleeping, and the park/notify
 * protocol that makes lost wake-ups impossible (stealing: steal.c).
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
 * epoll_pwait2 until the next timer; the others sleep on a private futex
 * with no timer timeout, so a deadline wakes one worker. Whoever pushes
 * into an empty stealable queue wakes a sleeper (or interrupts the
 * poller), again with the store-then-load pairing: the pusher stores the
 * queue, fences, then loads `sleeping`; the sleeper stores `sleeping`,
 * fences, then rechecks the queues (seq_cst fences on both sides, since
 * the queue lengths are relaxed). A sleeper that finds a queue holding
 * actors it does not take yet (the stealing policy, steal.c) sleeps with a
 * deadline and looks again then. Busy workers look at timers and I/O
 * after every slice (after_slice), which bounds a deadline's lateness by
 * about one slice.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/internal.h"
#include "actor/runq.h"
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
    /* seq_cst though relaxed would do (a flag, nothing read through it
     * but nworkers, set before it): not a hot path. */
    return atomic_load(&rt.running) ? rt.nworkers : 0;
}

static uint64_t live_actors(void);

/* The sum of the per-worker counts (sched_no_live_actors): an actor
 * spawned or freed while it is read may or may not be in it. */
int snow_actor_count(void)
{
    if (!atomic_load(&rt.running))
        return 0;
    return (int)live_actors();
}

void sched_kick_timer(void)
{
    /* seq_cst: the caller stored the new due time (seq_cst) first; a
     * poller stores poll_blocked before it reads the due time, so either it
     * sees the new time or we see it blocked and interrupt it. */
    if (atomic_load(&rt.poll_blocked)) {
        poller_interrupt();
        return;
    }
    /* From a worker: it checks due timers after its current slice and hands
     * the waiting to a sleeper if it stays busy (worker_main). From outside,
     * a sleeper takes the poll role and waits for the timer. */
    if (worker_self())
        return;
    atomic_thread_fence(memory_order_seq_cst);
    for (int i = 0; i < rt.nworkers; i++)
        if (wake_worker(&rt.workers[i]))
            return;
}

/* The actor a running actor just woke runs next on this worker, within
 * a microsecond or so. Its record and the top of its stack (the frames it
 * parked in, from the saved stack pointer up) have usually left this
 * core's caches when many actors take turns (a ring of 10,000):
 * prefetching them now lets the misses overlap with the rest of the
 * waker's slice instead of stalling the switch. The waker has just written
 * the first 128 bytes of the record (the mailbox and the state), so only
 * the next 64, which a receive reads, are fetched (internal.h). The caller
 * owns the RUNNABLE actor, so its fields are stable; a prefetch never
 * faults. */
#define RESUME_STACK_LINES 6

static void prefetch_resume(struct actor *a)
{
    __builtin_prefetch((const char *)a + 128, 1);
    __builtin_prefetch((const char *)a + 191, 1); /* records are 16-byte aligned: maybe two lines */
    const char *sp = a->stack ? a->ctx.sp : NULL;
    if (sp)
        for (int i = 0; i < RESUME_STACK_LINES; i++)
            __builtin_prefetch(sp + 64 * i, 1);
}

/* Who woke an actor lately decides where it runs. A request/response
 * partner, woken by the same actor again and again, runs next on the
 * waker's worker (runnext, below). An actor that one actor after another
 * wakes (a spawner woken by each of its children in turn, a server by its
 * many clients) goes to the tail of the stealable queue of the worker it
 * last ran on instead, as every woken process does in Erlang: following
 * each waker, it would run once per message and park again, dragging its
 * record and stack between the workers and taking the actors it makes
 * with it; behind the others, it finds the messages of many wakers when
 * it runs and handles them in one slice. wake_flips grows by one when the
 * waker differs from the one before and halves when it is the same:
 * WAKE_FLIPS_WIDE changes in a row mark the actor, a partner that sticks
 * unmarks it within a few wakes. The owner of the RUNNABLE actor (the
 * waker) is the only writer of these fields. */
#define WAKE_FLIPS_WIDE 4
#define WAKE_FLIPS_MAX 16

static bool woken_by_many(struct actor *a, SnowPid waker)
{
    uint16_t tag = (uint16_t)((waker * 0x9E3779B97F4A7C15ULL) >> 48);
    if (a->waker_tag == tag) {
        a->wake_flips >>= 1;
        return false;
    }
    a->waker_tag = tag;
    if (a->wake_flips < WAKE_FLIPS_MAX)
        a->wake_flips++;
    return a->wake_flips >= WAKE_FLIPS_WIDE && a->ran_on;
}

void sched_enqueue(struct actor *a, bool from_waker)
{
    struct worker *w = worker_self();
    if (a->pinned) {
        struct worker *home = &rt.workers[a->home];
        if (home == w && from_waker && !w->runnext_pinned) {
            prefetch_resume(a);
            w->runnext_pinned = a;
            return;
        }
        rq_push(&home->pq, a);
        if (home != w) {
            atomic_thread_fence(memory_order_seq_cst); /* as in wake_idle, for home's pq */
            if (!wake_worker(home) && atomic_load(&rt.poll_blocked))
                poller_interrupt();
        }
        return;
    }
    if (w) {
        if (from_waker && w->current && woken_by_many(a, w->current->pid)) {
            struct worker *home = &rt.workers[a->ran_on - 1];
            if (rq_push(&home->q, a))
                wake_queue_owner(w, home);
            return;
        }
        if (from_waker) {
            /* The woken actor runs next on this worker: the waker usually
             * parks soon (request/response), so this keeps the pair on one
             * core's cache. If the waker keeps running instead (a long slice,
             * a long C call), an idle worker takes it after a grace period
             * (steal_runnext); one is woken for that unless one already
             * spins, as Go's scheduler does. Not when this worker is itself
             * idle (it fired a timer or I/O and runs a next). seq_cst
             * exchange, then seq_cst load of nspinning: pairs with a spinner's
             * increment of nspinning before its loads of runnext. */
            prefetch_resume(a);
            struct actor *old = atomic_exchange(&w->runnext, a);
            if (!old) {
                /* No fence before the loads of `sleeping` and poll_blocked
                 * (wake_idle has one for relaxed queue stores): the
                 * exchange is a seq_cst RMW and they are seq_cst loads. A
                 * fence per message was a tenth of a ring hop. */
                if (w->current && atomic_load(&rt.nspinning) == 0)
                    wake_one_idle(w);
                return;
            }
            a = old;
        }
        if (rq_push(&w->q, a))
            wake_queue_owner(w, w);
        return;
    }
    /* relaxed would do (only spreads the pushes); seq_cst kept: enqueues
     * from outside the workers are rare. The owner is woken whether or not
     * its queue was empty: it may be asleep with nothing else to run. */
    unsigned i = atomic_fetch_add(&rt.rr, 1) % (unsigned)rt.nworkers;
    rq_push(&rt.workers[i].q, a);
    wake_queue_owner(NULL, &rt.workers[i]);
}

void sched_wake_add(struct sched_wakes *l, struct actor *a)
{
    if (a->pinned) {
        sched_enqueue(a, true);
        return;
    }
    if (l->tail)
        l->tail->next = a;
    else
        l->head = a;
    l->tail = a;
    l->n++;
}

void sched_wake_flush(struct sched_wakes *l)
{
    if (!l->head)
        return;
    struct actor *head = l->head, *tail = l->tail, *rest = head->next;
    uint32_t n = l->n;
    bool behind = l->behind_queue;
    *l = (struct sched_wakes){0};
    struct worker *w = worker_self();
    /* Owners of ready handles on a worker that has actors waiting already
     * (the poll after a slice of a busy worker) all join the tail. Each
     * such poll finds the one or two handles that became ready since the
     * last; with slices longer than the poll interval (TLS turns) every
     * slice ends in one, and a first owner taking runnext ran ahead of
     * the whole queue slice after slice, until the runnext streak gave
     * the queue a turn (README.md, "Woken by I/O or a timer"). Timers
     * keep runnext: the lateness bound. */
    if (behind && w && local_work(w)) {
        if (rq_push_list(&w->q, head, tail, n))
            wake_queue_owner(w, w);
        return;
    }
    /* The first runs next, as any woken actor does (runnext: the lateness
     * bound, README.md); the others queue behind what waits already, in
     * order, so that a stream of polls cannot keep pushing the owners
     * woken earlier back. */
    sched_enqueue(head, true);
    if (n < 2)
        return;
    if (!w) {
        for (struct actor *a = rest, *nx; a; a = nx) {
            nx = a == tail ? NULL : a->next;
            sched_enqueue(a, false);
        }
        return;
    }
    if (rq_push_list(&w->q, rest, tail, n - 1))
        wake_queue_owner(w, w);
}

bool actor_notify_begin(struct actor *a, unsigned mask)
{
    /* seq_cst load and CASes of state: the notifier's half of the
     * park/notify protocol (top of this file); the caller made its
     * condition true with a seq_cst store or RMW before. */
    int s = atomic_load(&a->state);
    for (;;) {
        if (s != A_WAITING && s != A_PARKED)
            return false;
        /* relaxed: the owner stored wait_events before its seq_cst store of
         * WAITING, which the load of state above saw */
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

static void switch_to_actor(struct worker *w, struct actor *a)
{
    struct stack *s = a->stack;
#ifdef RT_ASAN
    __sanitizer_start_switch_fiber(&w->asan_fake, s->lo, s->usable);
#endif
    actor_tsan_enter(&s->tsan_back, s->tsan_fiber);
    rt_ctx_switch(&w->sched_ctx, &a->ctx);
#ifdef RT_ASAN
    __sanitizer_finish_switch_fiber(w->asan_fake, NULL, NULL);
#endif
}

void sched_switch_out(int why)
{
    struct worker *w = worker_self();
    struct actor *a = w->current;
    struct stack *s = a->stack;
    w->switch_why = why;
#ifdef RT_ASAN
    __sanitizer_start_switch_fiber(&s->asan_fake, w->sys_stack_lo, w->sys_stack_size);
#endif
    actor_tsan_leave(s->tsan_back);
    rt_ctx_switch(&a->ctx, &w->sched_ctx);
#ifdef RT_ASAN
    __sanitizer_finish_switch_fiber(s->asan_fake, NULL, NULL);
#endif
}

/* Live actors. One process-wide count, changed by the spawning worker and
 * by the one where the child exits, moved a contended cache line between
 * the cores for every spawn; each worker counts its own spawns and exits
 * instead. Who waits for the count to reach zero (snow_rt_run) reads the
 * sum; so does a worker that runs out of work, which then wakes that
 * waiter (sched_worker_main): the worker that freed the last actor always
 * gets there. */
void sched_actor_spawned(void)
{
    struct worker *w = worker_self();
    if (w) {
        /* seq_cst store by the only writer: see sched_no_live_actors */
        atomic_store(&w->spawned, atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1);
        return;
    }
    atomic_fetch_add(&rt.ext_spawned, 1); /* seq_cst, as above */
}

static void actor_freed(struct worker *w)
{
    /* seq_cst store by the only writer: see sched_no_live_actors */
    atomic_store(&w->freed, atomic_load_explicit(&w->freed, memory_order_relaxed) + 1);
}

/* Every counter only grows, and an actor's spawn is counted before it is
 * enqueued, so its exit is counted after its spawn (happens-before, hence
 * also in the seq_cst order of the stores). All frees are read first, then
 * all spawns, every access seq_cst: at the point T between the two groups
 * in that order, the frees read are at most those up to T, the spawns read
 * at least those up to T, and frees up to T never exceed spawns up to T.
 * Equal sums therefore mean that no actor was alive at T. A spawn later
 * than T is the caller's concern, as it was with one counter. */
static uint64_t live_actors(void)
{
    uint64_t freed = 0, spawned = 0;
    for (int i = 0; i < rt.nworkers; i++)
        freed += atomic_load(&rt.workers[i].freed);
    for (int i = 0; i < rt.nworkers; i++)
        spawned += atomic_load(&rt.workers[i].spawned);
    spawned += atomic_load(&rt.ext_spawned);
    return spawned - freed;
}

bool sched_no_live_actors(void)
{
    return live_actors() == 0;
}

/* A worker with nothing to run found that no actor is alive: wake
 * snow_rt_run. seq_cst: the word changes after the condition, read in the
 * other order by snow_rt_run (lifecycle.c). */
static void wake_run(void)
{
    atomic_fetch_add(&rt.run_word, 1);
    rt_futex_wake(&rt.run_word, 1);
}

/* No stack could be mapped for a (memory or vm.max_map_count exhausted).
 * The actor is not lost and does not make its worker spin: it waits on the
 * worker's starved list, retried every STARVED_RETRY_MS while other actors
 * run, exit and give stacks back. One log line per second at most. */
#define STARVED_RETRY_MS 10

static void starve(struct worker *w, struct actor *a)
{
    int64_t now = rt_now_ns();
    /* relaxed load, then a CAS: one of the workers that see a second passed
     * logs; nothing else is ordered by it. */
    int64_t prev = atomic_load_explicit(&rt.starve_log_ns, memory_order_relaxed);
    if (now - prev >= 1000000000 && atomic_compare_exchange_strong(&rt.starve_log_ns, &prev, now))
        rt_log(RT_LOG_ERROR, "no memory for an actor stack (mmap failed; is vm.max_map_count too low?); "
                             "actors wait until stacks are freed");
    /* seq_cst though relaxed would do (the actor is this worker's alone
     * until it is pushed under a queue lock): a rare path */
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
        /* relaxed: taken from a queue (its lock ordered the push), the
         * actor is ours; notifiers act only on WAITING and PARKED, which
         * the actor itself stores seq_cst */
        atomic_store_explicit(&a->state, A_RUNNING, memory_order_relaxed);
        if (!a->stack) {
            a->stack = stack_get(w);
            if (!a->stack) {
                starve(w, a);
                return;
            }
            a->ctx = a->stack->ctx; /* where the stack's trampoline waits */
        }
        w->current = a;
        a->ran_on = w->index < UINT8_MAX ? (uint8_t)(w->index + 1) : 0;
        a->reductions = rt.reductions;
        /* relaxed: a progress hint for thieves watching runnext */
        atomic_store_explicit(&w->slices, atomic_load_explicit(&w->slices, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        switch_to_actor(w, a);
        w->current = NULL;
        switch (w->switch_why) {
        case SW_YIELD:
            /* relaxed: nobody acts on RUNNABLE; the queue lock publishes it
             * to the worker that pops the actor */
            atomic_store_explicit(&a->state, A_RUNNABLE, memory_order_relaxed);
            rq_push(a->pinned ? &w->pq : &w->q, a);
            return;
        case SW_PARK: {
            int exp = A_WAITING;
            /* seq_cst: step 4 of the protocol; fails when a notifier
             * turned WAITING into NOTIFIED */
            if (atomic_compare_exchange_strong(&a->state, &exp, A_PARKED))
                return;
            continue; /* notified while parking: resume it right away */
        }
        case SW_HIBERNATE: {
            a->stack->ctx = a->ctx; /* the trampoline's switch point goes with the stack */
            stack_put(w, a->stack);
            a->stack = NULL;
            /* relaxed: the owner's own value, stored before it unwound */
            unsigned got = actor_wait_conditions(a, a->wait_io,
                                                 atomic_load_explicit(&a->wait_events, memory_order_relaxed),
                                                 a->wait_deadline);
            int exp = A_WAITING;
            /* seq_cst: as for SW_PARK; the conditions were checked after
             * the stack was given back, so a notify since WAITING is seen
             * either here or by the notifier */
            if (!got && atomic_compare_exchange_strong(&a->state, &exp, A_PARKED))
                return;
            continue; /* a condition already holds: start the continuation */
        }
        case SW_EXIT:
            a->stack->ctx = a->ctx; /* as for SW_HIBERNATE */
            stack_put(w, a->stack);
            a->stack = NULL;
            actor_free(a);
            actor_freed(w);
            return;
        default:
            abort();
        }
    }
}

static struct actor *take_runnext(struct worker *w)
{
    struct actor *a = w->runnext_pinned;
    if (a) {
        w->runnext_pinned = NULL;
        return a;
    }
    if (!atomic_load_explicit(&w->runnext, memory_order_relaxed))
        return NULL;
    /* acquire: pairs with our own publishing exchange (same thread) or
     * nothing; a thief's CAS may have emptied the slot meanwhile. */
    return atomic_exchange_explicit(&w->runnext, NULL, memory_order_acquire);
}

static struct actor *find_work(struct worker *w)
{
    struct actor *a;
    /* runnext may not starve the queues: after a streak, take the queue. */
    if (w->runnext_streak < 64 && (a = take_runnext(w))) {
        w->runnext_streak++;
        return a;
    }
    w->runnext_streak = 0;
    /* The pinned and the stealable queue take turns going first: a pinned
     * actor that keeps yielding must not starve the unpinned ones here. */
    struct runq *first = (w->tick & 1) ? &w->q : &w->pq, *second = (w->tick & 1) ? &w->pq : &w->q;
    if ((a = rq_pop(first)) || (a = rq_pop(second)))
        return a;
    if ((a = take_runnext(w)))
        return a;
    if (rt.nworkers > 1)
        return sched_steal(w);
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

/* How long an idle worker may block before looking at the runnext slots
 * again: INT64_MAX normally; RUNNEXT_GRACE_NS once when a slot is occupied,
 * since the waker's wake-up may have come just before this worker announced
 * itself (it only wakes workers that are sleeping or polling). When the
 * victim has started other actors since the last such short block, it is
 * switching normally and a later stuck slot comes with a wake-up, so the
 * block is not shortened again (no periodic wake-ups next to a busy
 * request/response pair). */
static int64_t runnext_recheck_at(struct worker *w)
{
    bool pending = false;
    if (rt.nworkers < 2 || (sched_steal_runnext(w, false, &pending), !pending)) {
        w->rn_park_victim = NULL;
        return INT64_MAX;
    }
    struct worker *v = w->rn_victim;
    uint32_t sl = v ? atomic_load_explicit(&v->slices, memory_order_relaxed) : 0;
    if (v && w->rn_park_victim == v && w->rn_park_slices != sl) {
        w->rn_park_victim = NULL;
        return INT64_MAX;
    }
    w->rn_park_victim = v;
    w->rn_park_slices = sl;
    int64_t now = rt_now_ns();
    if (!w->rn_seen_ns)
        w->rn_seen_ns = now; /* the grace runs during the block */
    return now + RUNNEXT_GRACE_NS;
}

static void idle(struct worker *w)
{
    /* Try to become the poller: block in epoll until I/O or the next timer
     * (poller_poll reads the timers itself, after announcing itself). */
    int64_t until = w->starved ? w->starved_retry_ns : INT64_MAX;
    int64_t rn = runnext_recheck_at(w);
    if (rn < until)
        until = rn;
    if (actor_test_idle_hook)
        actor_test_idle_hook();
    int n = poller_poll(true, until);
    if (n >= 0) {
        run_timers_if_due();
        return;
    }
    /* Another worker holds the poll role and waits for the timers and I/O:
     * sleep until woken (or the starved retry), with no timer timeout of our
     * own, so that a deadline wakes one worker, not every idle one. A poller
     * that goes on to run actors hands its role on when it stays busy
     * (worker_main). */
    atomic_store(&w->sleeping, 1);
    /* seq_cst store, then this fence, then the queue loads: pairs with the
     * fence in wake_idle (see there). */
    atomic_thread_fence(memory_order_seq_cst);
    if (sched_has_work(w) || !poller_role_held()) {
        atomic_store(&w->sleeping, 0); /* as below */
        return;
    }
    /* A queue not worth taking yet: look again then (pushes into it wake
     * nobody, wake_queue_owner) */
    if (w->watch_until < until)
        until = w->watch_until;
    if (until == INT64_MAX) {
        rt_futex_wait(&w->sleeping, 1, NULL);
    } else {
        int64_t ns = until - rt_now_ns();
        if (ns > 0) {
            struct timespec ts = {ns / 1000000000, ns % 1000000000};
            rt_futex_wait(&w->sleeping, 1, &ts);
        }
    }
    atomic_fetch_add_explicit(&rt.idle_wakeups, 1, memory_order_relaxed); /* statistics only */
    /* seq_cst though relaxed would do (a waker that still sees 1 only makes
     * a spare futex wake): once per sleep */
    atomic_store(&w->sleeping, 0);
}

/* Spins briefly (tens of microseconds) before sleeping: in request/reply
 * traffic between workers the next message usually comes sooner than a
 * futex sleep and wake-up would take. Bounded, so an idle runtime still
 * goes to sleep at once in human terms; it spins on (up to twice the grace)
 * while another worker's runnext slot holds an actor it may soon take.
 * Only where there is another worker to trade with. */
static bool spin_for_work(struct worker *w)
{
    /* Alone, a worker is the only one that polls I/O: readiness that comes
     * during a spin waits for the spin to end, and nothing but a plain
     * thread's send (which wakes a sleeper anyway) could end it sooner. */
    if (rt.nworkers == 1)
        return false;
    /* Not next to a queue that is not worth taking yet (the caller's
     * sched_has_work saw one): its worker is busy with short actors, and
     * spinning would only read the lines it writes. The wait's deadline
     * brings this worker back to look again. */
    if (w->watch_until != INT64_MAX)
        return false;
    /* seq_cst increment before the runnext loads: pairs with the waker's
     * exchange of runnext before its load of nspinning (sched_enqueue). */
    atomic_fetch_add(&rt.nspinning, 1);
    bool found = false;
    int64_t until = 0;
    for (int i = 0;; i++) {
        for (int j = 0; j < 32; j++)
            __builtin_ia32_pause();
        bool pending = false;
        if (sched_has_work(w) || (rt.nworkers > 1 && sched_steal_runnext(w, false, &pending))) {
            found = true;
            break;
        }
        if (w->watch_until != INT64_MAX)
            break;
        if (i < 64)
            continue;
        if (!pending)
            break;
        int64_t now = rt_now_ns();
        if (!until)
            until = now + 2 * RUNNEXT_GRACE_NS;
        else if (now > until)
            break;
    }
    /* seq_cst: a waker that still counts us skips its wake-up; a runnext
     * published just now is caught by runnext_recheck_at in idle */
    atomic_fetch_sub(&rt.nspinning, 1);
    return found;
}

/* After each slice: fire due timers (a lock-free peek at the earliest due
 * time), and when nobody polled for IO_POLL_NS, poll I/O (if handles are
 * open) and hand the poll role to a sleeping worker when this one stays
 * busy while timers or I/O handles wait. So a deadline or readiness waits
 * at most about one slice of the actor running here when every worker is
 * busy (README.md). The hand-off waits for the same IO_POLL_NS as the
 * poll: looked at after every slice, it cost a fence per message in a
 * ring of actors next to an idle worker, whose own idle polls keep
 * last_poll_ns recent anyway. */
#define IO_POLL_NS 100000

static void after_slice(struct worker *w)
{
    int64_t due = timers_next_due();
    long open = poller_open_handles();
    if (due == INT64_MAX && open <= 0)
        return;
    int64_t now = rt_now_ns();
    if (due <= now)
        timers_run(now);
    /* handoff_at: with timers pending but no handles open, nobody's poll
     * moves last_poll_ns on, and every slice would come this far */
    if (now - poller_last_poll_ns() < IO_POLL_NS || now < w->handoff_at)
        return;
    w->handoff_at = now + IO_POLL_NS;
    if (open > 0)
        poller_poll(false, 0);
    /* Not while a worker spins: it takes the poll role itself when it goes
     * idle. No fence: nothing is published here, and the pairing with a
     * sleeper (its store of `sleeping`, then its load of the role) is
     * between seq_cst accesses on both sides (poller_role_held). */
    if (local_work(w) && !poller_role_held() && atomic_load(&rt.nspinning) == 0) {
        for (int i = 0; i < rt.nworkers; i++)
            if (&rt.workers[i] != w && wake_worker(&rt.workers[i]))
                break;
    }
}

void *sched_worker_main(void *arg)
{
    struct worker *w = arg;
    tls_worker = w;
    /* test hook: seq_cst, start-up only */
    w->init_err = actor_fail_thread_inits > 0 && atomic_fetch_sub(&actor_fail_thread_inits, 1) > 0
                      ? -ENOMEM
                      : stack_thread_init(w);
    /* release: snow_rt_init reads init_err after seeing the count */
    atomic_fetch_add_explicit(&rt.started, 1, memory_order_release);
    rt_futex_wake(&rt.started, 1);
    /* seq_cst though relaxed would do here (the final wake-up follows
     * the store): one load per loop */
    while (!atomic_load(&rt.stopping)) {
        retry_starved(w);
        struct actor *a = find_work(w);
        if (a) {
            run_actor(w, a);
            w->tick++;
            after_slice(w);
            continue;
        }
        run_timers_if_due();
        if (poller_poll(false, 0) > 0)
            continue;
        if (sched_no_live_actors())
            wake_run();
        if (!local_work(w) && !sched_has_work(w) && !spin_for_work(w))
            idle(w);
    }
    stack_thread_fini(w);
    tls_worker = NULL;
    return NULL;
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
