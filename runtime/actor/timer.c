/*
 * timer.c: every timer of the runtime in one intrusive min-heap, fired by
 * the workers: by the poller (its epoll timeout is the earliest deadline)
 * and by busy workers after every slice. No OS thread per timer.
 *
 * Two kinds: TIMER_WAKE is embedded in each actor and backs the deadline of
 * actor_wait; TIMER_SEND carries a message for snow_timer_send_after and is
 * found by reference through a small hash map for snow_timer_cancel.
 * Actions run after the lock is dropped and address their target by PID,
 * so a timer racing with its actor's exit only ever finds a dead PID.
 *
 * Lazy re-arming of wake timers. A busy actor waits with a deadline many
 * times a second (a WebSocket connection between two messages: a deadline
 * some milliseconds on, a little later each time), and taking its timer
 * out of the heap after every wait only to put it back at the next one cost
 * about 180 instructions a wait, most of them the pairing heap's
 * re-linking on removal. So a wake timer stays in the heap when its wait
 * ends: timer_disarm only records that no deadline is wanted (want_ns -1),
 * and timer_arm with a deadline no earlier than the timer's place in the
 * heap (key_ns), and less than TIMER_LAZY_NS after it, only records the
 * new deadline. When the timer's place comes, timers_run looks at what is
 * wanted: nothing (the timer leaves the heap, no wake-up), a later
 * deadline (it goes back in at that one), or a due one (the actor is
 * woken, as before). A timer thus never fires later than wanted. The bound
 * keeps a busy actor's place from coming at all: it moves on (one heap
 * step, by the owner) once per TIMER_LAZY_NS of waits, so a worker blocked
 * in the poller is not woken early for it, only once when the actor stops
 * waiting with deadlines. An earlier deadline moves the timer at once. The
 * exit path needs the timer out of the heap before the actor's record is
 * freed, so a disarm by an exiting actor removes it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/internal.h"

/* How far a wake timer's place may lag behind its deadline (above). */
#define TIMER_LAZY_NS (INT64_C(10) * 1000000)

void timers_init(void)
{
    atomic_store(&rt.timers.next_due, INT64_MAX); /* seq_cst: see struct rt_timers */
}

static void set_next_due(void)
{
    /* seq_cst: the arming side's store before its load of poll_blocked
     * (sched_kick_timer); see struct rt_timers */
    atomic_store(&rt.timers.next_due, rt.timers.root ? rt.timers.root->key_ns : INT64_MAX);
}

int64_t timers_next_due(void)
{
    /* seq_cst: the poller's load after its store of poll_blocked; busy
     * workers' peeks could be relaxed, one load on x86 either way */
    return atomic_load(&rt.timers.next_due);
}

/* a and b are detached roots; returns the root of their union. */
static struct timer *meld(struct timer *a, struct timer *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->key_ns < a->key_ns) {
        struct timer *x = a;
        a = b;
        b = x;
    }
    b->prev = a;
    b->sibling = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    a->prev = a->sibling = NULL;
    return a;
}

/* Two-pass pairing of a sibling list, without recursion. */
static struct timer *merge_pairs(struct timer *first)
{
    struct timer *stack = NULL;
    while (first) {
        struct timer *a = first, *b = a->sibling;
        first = b ? b->sibling : NULL;
        a->sibling = a->prev = NULL;
        if (b)
            b->sibling = b->prev = NULL;
        struct timer *m = meld(a, b);
        m->sibling = stack;
        stack = m;
    }
    struct timer *r = NULL;
    while (stack) {
        struct timer *next = stack->sibling;
        stack->sibling = NULL;
        r = meld(r, stack);
        stack = next;
    }
    return r;
}

static void heap_insert_locked(struct timer *t, int64_t key)
{
    t->key_ns = key;
    t->child = t->sibling = t->prev = NULL;
    atomic_store_explicit(&t->armed, true, memory_order_relaxed); /* see struct timer */
    rt.timers.root = meld(rt.timers.root, t);
}

static void heap_remove_locked(struct timer *t)
{
    if (t == rt.timers.root) {
        rt.timers.root = merge_pairs(t->child);
    } else {
        if (t->prev->child == t)
            t->prev->child = t->sibling;
        else
            t->prev->sibling = t->sibling;
        if (t->sibling)
            t->sibling->prev = t->prev;
        rt.timers.root = meld(rt.timers.root, merge_pairs(t->child));
    }
    t->child = t->sibling = t->prev = NULL;
    atomic_store_explicit(&t->armed, false, memory_order_relaxed); /* see struct timer */
}

/* ---- reference map ---------------------------------------------------------- */

static uint32_t map_slot(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

/* Moves every chain into the larger table nb; returns the old table. */
static struct timer **map_rehash_locked(struct timer **nb, uint32_t cap)
{
    for (uint32_t i = 0; i < rt.timers.map_cap; i++)
        for (struct timer *t = rt.timers.map[i], *next; t; t = next) {
            next = t->map_next;
            uint32_t j = map_slot(t->id, cap);
            t->map_next = nb[j];
            nb[j] = t;
        }
    struct timer **old = rt.timers.map;
    rt.timers.map = nb;
    rt.timers.map_cap = cap;
    return old;
}

/* Takes the timer lock with room for one more reference in the map. The
 * table is allocated (and the old one freed) with the lock dropped. */
static int lock_with_map_room(void)
{
    for (;;) {
        rt_spin_lock(&rt.timers.lock);
        if (rt.timers.map_n < rt.timers.map_cap)
            return 0;
        uint32_t want = rt.timers.map_cap ? rt.timers.map_cap * 2 : 64;
        rt_spin_unlock(&rt.timers.lock);
        struct timer **nb = calloc(want, sizeof *nb);
        if (!nb)
            return -ENOMEM;
        rt_spin_lock(&rt.timers.lock);
        struct timer **old = nb;
        if (rt.timers.map_cap < want)
            old = map_rehash_locked(nb, want);
        rt_spin_unlock(&rt.timers.lock);
        free(old);
    }
}

static struct timer *map_take_locked(uint64_t id)
{
    if (!rt.timers.map_cap)
        return NULL;
    for (struct timer **pp = &rt.timers.map[map_slot(id, rt.timers.map_cap)]; *pp; pp = &(*pp)->map_next)
        if ((*pp)->id == id) {
            struct timer *t = *pp;
            *pp = t->map_next;
            rt.timers.map_n--;
            return t;
        }
    return NULL;
}

/* ---- arming and firing ----------------------------------------------------------- */

void timer_arm(struct timer *t)
{
    int64_t due = t->due_ns;
    rt_spin_lock(&rt.timers.lock);
    /* relaxed: read by timers_run under this lock, and without it only by
     * the owner (timer_disarm) */
    atomic_store_explicit(&t->want_ns, due, memory_order_relaxed);
    if (atomic_load_explicit(&t->armed, memory_order_relaxed)) { /* under the lock */
        if (t->key_ns <= due && due - t->key_ns < TIMER_LAZY_NS) {
            /* Its place comes first; timers_run moves it on then. */
            rt_spin_unlock(&rt.timers.lock);
            return;
        }
        heap_remove_locked(t);
    }
    heap_insert_locked(t, due);
    bool first = rt.timers.root == t;
    set_next_due();
    rt_spin_unlock(&rt.timers.lock);
    /* A new earliest deadline must shorten a poller's epoll timeout, or
     * get a worker to wait for it. */
    if (first)
        sched_kick_timer();
}

/* The actor whose wait timer t is (the only use of TIMER_WAKE). */
static struct actor *wake_owner(struct timer *t)
{
    return (struct actor *)(void *)((char *)t - offsetof(struct actor, wait_timer));
}

void timer_disarm(struct timer *t)
{
    /* Relaxed fast path: only the owner arms its wait timer, so a false
     * here is this thread's own earlier store or the firing worker's
     * removal (after which the timer is never touched again for this
     * wait); a stale true just costs a store or the lock. */
    if (!atomic_load_explicit(&t->armed, memory_order_relaxed))
        return;
    if (!wake_owner(t)->exiting) {
        /* Left in the heap (lazy re-arming, above). Without the lock: a
         * worker firing the timer meanwhile may still read the deadline
         * before this store and wake the actor once for nothing, which
         * every waiter takes (it checks its conditions and waits on), as
         * it does a wake-up racing with any other. */
        atomic_store_explicit(&t->want_ns, -1, memory_order_relaxed);
        return;
    }
    rt_spin_lock(&rt.timers.lock);
    if (atomic_load_explicit(&t->armed, memory_order_relaxed)) { /* under the lock */
        heap_remove_locked(t);
        set_next_due();
    }
    rt_spin_unlock(&rt.timers.lock);
}

/* One worker fires at a time (the others would only queue on the lock),
 * and due timers leave the heap in batches under one lock hold. */
#define FIRE_BATCH 64

int timers_run(int64_t now)
{
    /* acquire/release: the firing flag only keeps a second worker out; the
     * heap itself is ordered by the timer lock. */
    if (atomic_exchange_explicit(&rt.timers.firing, 1, memory_order_acquire))
        return 0;
    int fired = 0;
    struct {
        int kind;
        SnowPid pid;
        struct timer *t;
    } batch[FIRE_BATCH];
    for (;;) {
        /* Timers that only move on or leave count towards the batch too:
         * they bound the time the lock is held as much as fired ones. */
        int n = 0, taken = 0;
        rt_spin_lock(&rt.timers.lock);
        while (taken < FIRE_BATCH && rt.timers.root && rt.timers.root->key_ns <= now) {
            struct timer *t = rt.timers.root;
            heap_remove_locked(t);
            taken++;
            if (t->kind == TIMER_WAKE) {
                /* relaxed: see timer_disarm */
                int64_t want = atomic_load_explicit(&t->want_ns, memory_order_relaxed);
                if (want < 0)
                    continue; /* its wait ended: nothing to wake */
                if (want > now) {
                    heap_insert_locked(t, want); /* re-armed for later meanwhile */
                    continue;
                }
            } else {
                map_take_locked(t->id);
            }
            /* A WAKE timer lives in its actor, which may exit (and be
             * reused) once the lock is dropped: copy what we need now. */
            batch[n].kind = t->kind;
            batch[n].pid = t->pid;
            batch[n].t = t->kind == TIMER_SEND ? t : NULL;
            n++;
        }
        set_next_due();
        rt_spin_unlock(&rt.timers.lock);
        /* Woken actors run in the order their deadlines came, as one
         * list (sched_wake_flush), as the poller's do. */
        struct sched_wakes woken = {0};
        for (int i = 0; i < n; i++) {
            if (batch[i].kind == TIMER_WAKE) {
                struct proc_slot *s;
                struct actor *a = proc_lock(batch[i].pid, &s);
                if (a) {
                    bool wake = actor_notify_begin(a, 0);
                    proc_release(s);
                    if (wake)
                        sched_wake_add(&woken, a);
                }
            } else {
                actor_deliver(batch[i].pid, batch[i].t->msg);
                free(batch[i].t);
            }
        }
        sched_wake_flush(&woken);
        fired += n;
        if (taken < FIRE_BATCH)
            break;
    }
    atomic_store_explicit(&rt.timers.firing, 0, memory_order_release);
    return fired;
}

void timers_fini(void)
{
    /* Every TIMER_SEND timer is in the map; TIMER_WAKE timers live in
     * actors, all gone by now. */
    for (uint32_t i = 0; i < rt.timers.map_cap; i++)
        for (struct timer *t = rt.timers.map[i], *next; t; t = next) {
            next = t->map_next;
            msg_free(t->msg);
            free(t);
        }
    free(rt.timers.map);
    rt.timers.map = NULL;
    rt.timers.root = NULL;
    rt.timers.map_n = rt.timers.map_cap = 0;
    atomic_store(&rt.timers.next_due, INT64_MAX); /* seq_cst: teardown, not hot */
}

int64_t actor_deadline_after_ms(int64_t ms)
{
    if (ms < 0)
        return -1;
    if (ms > INT64_MAX / 2000000)
        ms = INT64_MAX / 2000000;
    return rt_now_ns() + ms * 1000000;
}

static uint64_t send_after(SnowPid pid, int64_t ms, uint64_t tag, const void *data, size_t len)
{
    if (!atomic_load(&rt.running) || (len && !data)) /* seq_cst: not hot */
        return 0;
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return 0;
    struct actor *self = actor_self();
    t->msg = msg_new(tag, self ? self->pid : 0, data, len);
    if (!t->msg || lock_with_map_room() < 0) {
        msg_free(t->msg);
        free(t);
        return 0;
    }
    t->kind = TIMER_SEND;
    t->pid = pid;
    int64_t due = actor_deadline_after_ms(ms < 0 ? 0 : ms);
    uint64_t id = t->id = ++rt.timers.next_id;
    uint32_t j = map_slot(id, rt.timers.map_cap);
    t->map_next = rt.timers.map[j];
    rt.timers.map[j] = t;
    rt.timers.map_n++;
    heap_insert_locked(t, due);
    bool first = rt.timers.root == t;
    set_next_due();
    rt_spin_unlock(&rt.timers.lock);
    /* t may already have fired and been freed by another worker here. */
    if (first)
        sched_kick_timer();
    return id;
}

uint64_t snow_timer_send_after(SnowPid pid, int64_t ms, uint64_t tag, const void *data, size_t len)
{
    if (worker_self())
        return send_after(pid, ms, tag, data, len);
    /* A plain thread: the runtime may be tearing down meanwhile. */
    if (!actor_ext_enter())
        return 0;
    uint64_t id = send_after(pid, ms, tag, data, len);
    actor_ext_leave();
    return id;
}

int snow_timer_cancel(uint64_t ref)
{
    rt_spin_lock(&rt.timers.lock);
    struct timer *t = map_take_locked(ref);
    if (t) {
        heap_remove_locked(t);
        set_next_due();
    }
    rt_spin_unlock(&rt.timers.lock);
    if (!t)
        return SNOW_ENOPROC;
    msg_free(t->msg);
    free(t);
    return 0;
}

void snow_sleep(int64_t ms)
{
    if (!actor_self()) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    int64_t deadline = actor_deadline_after_ms(ms);
    while (!(actor_wait(NULL, 0, deadline) & SNOW_WAIT_TIMEOUT))
        ;
}
