/*
 * runq.h: the run queues and the waking of idle workers, for the
 * scheduler alone (sched.c, steal.c; static inline, so that the
 * scheduler's loop keeps them inline; no other file includes this).
 *
 * A queue is a list under a spinlock with a relaxed length beside it that
 * lock-free readers take as a hint (struct runq, internal.h).
 */
#ifndef SNOW_ACTOR_RUNQ_H
#define SNOW_ACTOR_RUNQ_H

#include "actor/internal.h"

/* ---- run queues ----------------------------------------------------------- */

/* Appends the n actors chained from head to tail (through next). Returns
 * true when the queue was empty: the caller then makes sure an idle
 * worker looks at it (wake_queue_owner). */
static inline bool rq_push_list(struct runq *q, struct actor *head, struct actor *tail, uint32_t n)
{
    tail->next = NULL;
    rt_spin_lock(&q->lock);
    bool was_empty = !q->tail;
    if (q->tail)
        q->tail->next = head;
    else
        q->head = head;
    q->tail = tail;
    /* relaxed under the lock: a hint for lock-free readers (struct runq);
     * wake-ups pair through the fences in wake_idle and idle */
    atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) + n, memory_order_relaxed);
    rt_spin_unlock(&q->lock);
    return was_empty;
}

static inline bool rq_push(struct runq *q, struct actor *a)
{
    return rq_push_list(q, a, a, 1);
}

static inline uint32_t rq_len(struct runq *q)
{
    /* relaxed: a hint; the list itself is read under the lock */
    return atomic_load_explicit(&q->n, memory_order_relaxed);
}

static inline struct actor *rq_pop(struct runq *q)
{
    if (!rq_len(q))
        return NULL;
    rt_spin_lock(&q->lock);
    struct actor *a = q->head;
    if (a) {
        q->head = a->next;
        if (!q->head)
            q->tail = NULL;
        /* relaxed under the lock, as in rq_push */
        atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) - 1, memory_order_relaxed);
    }
    rt_spin_unlock(&q->lock);
    return a;
}

/* Moves up to half of victim's stealable queue, and at most STEAL_MAX, to
 * w; returns one to run. Finding where to cut reads the link of every
 * actor taken, records the victim last wrote, with the victim's queue
 * locked: half of a queue of a thousand fresh actors (a spawner's) is
 * five hundred such reads while the victim's pushes wait. A thief that
 * runs out again soon takes the next STEAL_MAX. The stolen chain joins
 * w's queue in one locked step. */
#define STEAL_MAX 16

static inline struct actor *rq_steal(struct worker *w, struct worker *victim)
{
    if (!rq_len(&victim->q) || !rt_spin_trylock(&victim->q.lock))
        return NULL;
    uint32_t n = atomic_load_explicit(&victim->q.n, memory_order_relaxed); /* under the lock */
    uint32_t take = n - n / 2;
    if (take > STEAL_MAX)
        take = STEAL_MAX;
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
    atomic_store_explicit(&victim->q.n, n - take, memory_order_relaxed); /* under the lock, as in rq_push */
    rt_spin_unlock(&victim->q.lock);
    last->next = NULL;
    if (take > 1)
        rq_push_list(&w->q, first->next, last, take - 1);
    return first;
}

/* ---- waking idle workers --------------------------------------------------- */

static inline bool wake_worker(struct worker *w)
{
    /* seq_cst load after the caller's fence: pairs with the sleeper's
     * store of 1 and its fence (idle). The exchange makes one waker own
     * the futex wake; relaxed would do for it, seq_cst costs nothing more
     * on an RMW here. */
    if (atomic_load(&w->sleeping) && atomic_exchange(&w->sleeping, 0)) {
        rt_futex_wake(&w->sleeping, 1);
        return true;
    }
    return false;
}

/* Somebody made stealable work: make sure an idle worker looks at it. The
 * fence orders the caller's queue store (relaxed n, under the queue lock)
 * before the loads of `sleeping` and `poll_blocked`; it pairs with the
 * fence an idle worker puts between its store of those and its loads of
 * the queue lengths (idle, poller_poll). */
static inline void wake_one_idle(struct worker *self)
{
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *v = &rt.workers[i];
        if (v != self && wake_worker(v))
            return;
    }
    /* seq_cst after the fence: pairs with the poller's store of
     * poll_blocked and its fence (poller_poll) */
    if (atomic_load(&rt.poll_blocked))
        poller_interrupt();
}

static inline void wake_idle(struct worker *self)
{
    atomic_thread_fence(memory_order_seq_cst);
    wake_one_idle(self);
}

/* A push found owner's stealable queue empty (self: the pushing worker,
 * NULL outside the workers). The owner, when it is not the pusher, may
 * be idle and is woken first; else another idle worker, which from then
 * on watches the queue until it empties (the stealing policy, steal.c).
 * A push into a queue that already held actors wakes nobody: an idle
 * worker that announced itself (sleeping, poll_blocked) after the push
 * that found the queue empty sees the queue and waits with a deadline
 * (watch_until); one that announced itself before was woken by that
 * push, or another was, and a worker that steals fills its own empty
 * queue, which wakes the next. So no queue is left without a watcher
 * while a worker idles, and the owner runs it in any case. The fence is
 * wake_idle's. */
static inline void wake_queue_owner(struct worker *self, struct worker *owner)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (owner != self && wake_worker(owner))
        return;
    wake_one_idle(self);
}

/* Work on w itself: its runnext slots or either queue. */
static inline bool local_work(struct worker *w)
{
    /* relaxed runnext: a hint; taking it is an exchange (take_runnext) */
    return w->runnext_pinned || atomic_load_explicit(&w->runnext, memory_order_relaxed) || rq_len(&w->q) ||
           rq_len(&w->pq);
}

#endif
