/*
 * magazine.c: the per-worker caches of free actor records and small
 * message buffers, and the shared pools they trade with.
 *
 * A record is often allocated on one worker and freed on another (a
 * spawner's children exit where they ran; a message is made by its sender
 * and freed by its receiver), so one worker's cache keeps emptying while
 * another's keeps filling. Records therefore move between a worker and
 * the shared pool only in whole batches of kind->batch records, and a
 * batch moves as one pointer: taking one from the pool or giving one back
 * is a push or pop of an array slot under the pool's lock, without
 * walking a list whose records were last written on another core (each
 * such read would be a cache miss with the lock held). A worker keeps at
 * most two batches' worth: the chain it takes from and gives to, and one
 * complete batch in reserve, so that a worker alternating around a batch
 * boundary does not trade with the pool every time.
 *
 * Records are chained through a pointer at kind->link, a field the owner
 * does not use while the record is free. Chains are NULL-terminated; the
 * counts say how long they are.
 */
#include "actor/internal.h"

/* The chain is empty: the reserve batch, else one from the pool. */
void *mag_take_slow(struct mag *m, struct mag_pool *p, const struct mag_kind *k)
{
    if (m->full) {
        m->cur = m->full;
        m->full = NULL;
        m->cur_n = k->batch;
    } else if (atomic_load_explicit(&p->n, memory_order_relaxed)) {
        rt_spin_lock(&p->lock);
        /* relaxed under the lock: a hint for the lock-free check */
        int n = atomic_load_explicit(&p->n, memory_order_relaxed);
        if (n) {
            m->cur = p->batch[n - 1];
            m->cur_n = k->batch;
            atomic_store_explicit(&p->n, n - 1, memory_order_relaxed);
        }
        rt_spin_unlock(&p->lock);
    }
    if (!m->cur_n)
        return NULL;
    void *x = m->cur;
    m->cur = *mag_link(k, x);
    m->cur_n--;
    return x;
}

/* The chain is a complete batch: it becomes the reserve, and the old
 * reserve goes to the pool (or back to the caller when the pool is full). */
void *mag_put_slow(struct mag *m, struct mag_pool *p, const struct mag_kind *k, void *x)
{
    void *spill = m->full;
    /* relaxed: a stale count only sends the batch to the lock or to the
     * caller's free one time too many */
    if (spill && atomic_load_explicit(&p->n, memory_order_relaxed) < k->pool_max) {
        rt_spin_lock(&p->lock);
        int n = atomic_load_explicit(&p->n, memory_order_relaxed); /* as in mag_take_slow */
        if (n < k->pool_max) {
            p->batch[n] = spill;
            spill = NULL;
            atomic_store_explicit(&p->n, n + 1, memory_order_relaxed);
        }
        rt_spin_unlock(&p->lock);
    }
    m->full = m->cur;
    *mag_link(k, x) = NULL;
    m->cur = x;
    m->cur_n = 1;
    return spill;
}

static void free_chain(const struct mag_kind *k, void *x, void (*release)(void *))
{
    while (x) {
        void *next = *mag_link(k, x);
        release(x);
        x = next;
    }
}

void mag_fini(struct mag *m, const struct mag_kind *k, void (*release)(void *))
{
    free_chain(k, m->cur, release);
    free_chain(k, m->full, release);
    *m = (struct mag){0};
}

void mag_pool_fini(struct mag_pool *p, const struct mag_kind *k, void (*release)(void *))
{
    int n = atomic_load_explicit(&p->n, memory_order_relaxed); /* teardown: the workers stopped */
    for (int i = 0; i < n; i++)
        free_chain(k, p->batch[i], release);
    atomic_store_explicit(&p->n, 0, memory_order_relaxed);
}

void mag_free_chain(const struct mag_kind *k, void *chain, void (*release)(void *))
{
    free_chain(k, chain, release);
}
