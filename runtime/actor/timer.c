/*
 * timer.c: every timer of the runtime in one binary min-heap, fired by the
 * workers: by the poller (its epoll timeout is the earliest deadline) and
 * by busy workers between actors. No OS thread per timer.
 *
 * Two kinds: TIMER_WAKE is embedded in each actor and backs the deadline of
 * actor_wait; TIMER_SEND carries a message for snow_timer_send_after and is
 * found by reference through a small hash map for snow_timer_cancel.
 * Actions run after the lock is dropped and address their target by PID,
 * so a timer racing with its actor's exit only ever finds a dead PID.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/internal.h"

static inline int32_t idx_get(const struct timer *t)
{
    return atomic_load_explicit(&t->idx, memory_order_relaxed);
}

static inline void idx_set(struct timer *t, int32_t v)
{
    atomic_store_explicit(&t->idx, v, memory_order_relaxed);
}

int actor_deliver(SnowPid pid, struct msg *m);

static struct {
    rt_spin_t lock;
    struct timer **heap;
    uint32_t n, cap;
    _Atomic int64_t next_due; /* heap[0]->due_ns or INT64_MAX, for lock-free peeks */
    atomic_int firing;        /* a worker is inside timers_run */
    /* reference -> TIMER_SEND timer, open addressing with linear probing */
    struct timer **map;
    uint32_t map_cap, map_n;
    uint64_t next_id;
} tm = {.next_due = INT64_MAX};

static void set_next_due(void)
{
    atomic_store(&tm.next_due, tm.n ? tm.heap[0]->due_ns : INT64_MAX);
}

int64_t timers_next_due(void)
{
    return atomic_load_explicit(&tm.next_due, memory_order_acquire);
}

static void heap_swap(uint32_t i, uint32_t j)
{
    struct timer *t = tm.heap[i];
    tm.heap[i] = tm.heap[j];
    tm.heap[j] = t;
    idx_set(tm.heap[i], (int32_t)i);
    idx_set(tm.heap[j], (int32_t)j);
}

static void sift_up(uint32_t i)
{
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (tm.heap[p]->due_ns <= tm.heap[i]->due_ns)
            break;
        heap_swap(i, p);
        i = p;
    }
}

static void sift_down(uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tm.n && tm.heap[l]->due_ns < tm.heap[m]->due_ns)
            m = l;
        if (r < tm.n && tm.heap[r]->due_ns < tm.heap[m]->due_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

static int heap_insert_locked(struct timer *t)
{
    if (tm.n == tm.cap) {
        uint32_t cap = tm.cap ? tm.cap * 2 : 64;
        struct timer **h = realloc(tm.heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        tm.heap = h;
        tm.cap = cap;
    }
    idx_set(t, (int32_t)tm.n);
    tm.heap[tm.n++] = t;
    sift_up(tm.n - 1);
    return 0;
}

static void heap_remove_locked(struct timer *t)
{
    uint32_t i = (uint32_t)idx_get(t);
    idx_set(t, -1);
    tm.n--;
    if (i != tm.n) {
        tm.heap[i] = tm.heap[tm.n];
        idx_set(tm.heap[i], (int32_t)i);
        sift_down(i);
        sift_up(i);
    }
}

/* ---- reference map ---------------------------------------------------------- */

static uint32_t map_slot(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static int map_put_locked(struct timer *t)
{
    if ((tm.map_n + 1) * 2 > tm.map_cap) {
        uint32_t cap = tm.map_cap ? tm.map_cap * 2 : 64;
        struct timer **m = calloc(cap, sizeof *m);
        if (!m)
            return -ENOMEM;
        for (uint32_t i = 0; i < tm.map_cap; i++) {
            struct timer *x = tm.map[i];
            if (!x)
                continue;
            uint32_t j = map_slot(x->id, cap);
            while (m[j])
                j = (j + 1) & (cap - 1);
            m[j] = x;
        }
        free(tm.map);
        tm.map = m;
        tm.map_cap = cap;
    }
    uint32_t j = map_slot(t->id, tm.map_cap);
    while (tm.map[j])
        j = (j + 1) & (tm.map_cap - 1);
    tm.map[j] = t;
    tm.map_n++;
    return 0;
}

static struct timer *map_take_locked(uint64_t id)
{
    if (!tm.map_cap)
        return NULL;
    uint32_t mask = tm.map_cap - 1, j = map_slot(id, tm.map_cap);
    while (tm.map[j] && tm.map[j]->id != id)
        j = (j + 1) & mask;
    struct timer *t = tm.map[j];
    if (!t)
        return NULL;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    tm.map[j] = NULL;
    tm.map_n--;
    for (uint32_t k = (j + 1) & mask; tm.map[k]; k = (k + 1) & mask) {
        uint32_t home = map_slot(tm.map[k]->id, tm.map_cap);
        bool movable = (j <= k) ? (home <= j || home > k) : (home <= j && home > k);
        if (movable) {
            tm.map[j] = tm.map[k];
            tm.map[k] = NULL;
            j = k;
        }
    }
    return t;
}

/* ---- arming and firing ----------------------------------------------------------- */

void timer_arm(struct timer *t)
{
    rt_spin_lock(&tm.lock);
    if (idx_get(t) >= 0)
        heap_remove_locked(t);
    int err = heap_insert_locked(t);
    bool first = !err && idx_get(t) == 0;
    set_next_due();
    rt_spin_unlock(&tm.lock);
    /* A new earliest deadline must shorten a poller's epoll timeout, or
     * get a sleeping worker to wait for it. */
    if (first)
        sched_kick_idle();
}

void timer_disarm(struct timer *t)
{
    if (idx_get(t) < 0)
        return;
    rt_spin_lock(&tm.lock);
    if (idx_get(t) >= 0) {
        heap_remove_locked(t);
        set_next_due();
    }
    rt_spin_unlock(&tm.lock);
}

/* One worker fires at a time (the others would only queue on the lock),
 * and due timers leave the heap in batches under one lock hold. */
#define FIRE_BATCH 64

int timers_run(int64_t now)
{
    if (atomic_exchange_explicit(&tm.firing, 1, memory_order_acquire))
        return 0;
    int fired = 0;
    struct {
        int kind;
        SnowPid pid;
        struct timer *t;
    } batch[FIRE_BATCH];
    for (;;) {
        int n = 0;
        rt_spin_lock(&tm.lock);
        while (n < FIRE_BATCH && tm.n && tm.heap[0]->due_ns <= now) {
            struct timer *t = tm.heap[0];
            heap_remove_locked(t);
            if (t->kind == TIMER_SEND)
                map_take_locked(t->id);
            /* A WAKE timer lives in its actor, which may exit (and be
             * reused) once the lock is dropped: copy what we need now. */
            batch[n].kind = t->kind;
            batch[n].pid = t->pid;
            batch[n].t = t->kind == TIMER_SEND ? t : NULL;
            n++;
        }
        set_next_due();
        rt_spin_unlock(&tm.lock);
        for (int i = 0; i < n; i++) {
            if (batch[i].kind == TIMER_WAKE) {
                struct proc_slot *s;
                struct actor *a = proc_lock(batch[i].pid, &s);
                if (a) {
                    bool wake = actor_notify_begin(a, 0);
                    proc_release(s);
                    if (wake)
                        sched_enqueue(a, true);
                }
            } else {
                actor_deliver(batch[i].pid, batch[i].t->msg);
                free(batch[i].t);
            }
        }
        fired += n;
        if (n < FIRE_BATCH)
            break;
    }
    atomic_store_explicit(&tm.firing, 0, memory_order_release);
    return fired;
}

void timers_fini(void)
{
    for (uint32_t i = 0; i < tm.n; i++) {
        struct timer *t = tm.heap[i];
        if (t->kind == TIMER_SEND) {
            free(t->msg);
            free(t);
        } else {
            idx_set(t, -1);
        }
    }
    free(tm.heap);
    free(tm.map);
    tm.heap = NULL;
    tm.map = NULL;
    tm.n = tm.cap = tm.map_n = tm.map_cap = 0;
    atomic_store(&tm.next_due, INT64_MAX);
}

int64_t actor_deadline_after_ms(int64_t ms)
{
    if (ms < 0)
        return -1;
    if (ms > INT64_MAX / 2000000)
        ms = INT64_MAX / 2000000;
    return rt_now_ns() + ms * 1000000;
}

uint64_t snow_timer_send_after(SnowPid pid, int64_t ms, uint64_t tag, const void *data, size_t len)
{
    if (!atomic_load(&rt.running) || (len && !data))
        return 0;
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return 0;
    struct actor *self = actor_self();
    t->msg = msg_new(tag, self ? self->pid : 0, data, len);
    if (!t->msg) {
        free(t);
        return 0;
    }
    t->kind = TIMER_SEND;
    t->pid = pid;
    idx_set(t, -1);
    t->due_ns = actor_deadline_after_ms(ms < 0 ? 0 : ms);
    rt_spin_lock(&tm.lock);
    uint64_t id = t->id = ++tm.next_id;
    int err = map_put_locked(t);
    if (!err) {
        err = heap_insert_locked(t);
        if (err)
            map_take_locked(t->id);
    }
    bool first = !err && idx_get(t) == 0;
    set_next_due();
    rt_spin_unlock(&tm.lock);
    if (err) {
        free(t->msg);
        free(t);
        return 0;
    }
    /* t may already have fired and been freed by another worker here. */
    if (first)
        sched_kick_idle();
    return id;
}

int snow_timer_cancel(uint64_t ref)
{
    rt_spin_lock(&tm.lock);
    struct timer *t = map_take_locked(ref);
    if (t) {
        heap_remove_locked(t);
        set_next_due();
    }
    rt_spin_unlock(&tm.lock);
    if (!t)
        return SNOW_ENOPROC;
    free(t->msg);
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
