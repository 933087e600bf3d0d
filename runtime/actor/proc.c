/*
 * proc.c: the process table and the life of an actor: spawn, exit signals,
 * links, monitors, the terminate callback, panics, and the exit path.
 *
 * The table is a two-level array of slots (chunks of 4096, up to 2^24
 * slots) so a slot never moves and lookup is two loads. A PID is
 * (generation << 24) | index with a 40-bit generation bumped every time the
 * slot is reused, so a stale PID never reaches a newer actor. Exited
 * actors give their slot back to a free list: the table grows only to the
 * peak number of live actors.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"
#include "actor/tsan.h"

#define IDX_BITS PROC_IDX_BITS
#define CHUNK_BITS PROC_CHUNK_BITS
#define CHUNK_SLOTS PROC_CHUNK_SLOTS
#define MAX_CHUNKS PROC_MAX_CHUNKS
#define NO_SLOT UINT32_MAX

static inline struct proc_slot *slot_at(uint32_t idx)
{
    struct proc_slot *c = atomic_load_explicit(&rt.table.chunks[idx >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[idx & (CHUNK_SLOTS - 1)] : NULL;
}

int proc_init(void)
{
    memset(&rt.table, 0, sizeof rt.table);
    rt.table.free_head = NO_SLOT;
    atomic_store(&rt.table.next_ref, 1);
    return 0;
}

void proc_fini(void)
{
    /* The workers are gone. An actor still in the table was spawned while
     * the shutdown walk ran and never got to run (it would have ended
     * itself at its first run): nothing else will free it. */
    for (uint32_t i = 0; i < rt.table.nchunks; i++) {
        struct proc_slot *c = atomic_load(&rt.table.chunks[i]);
        for (uint32_t j = 0; c && j < CHUNK_SLOTS; j++) {
            struct actor *a = c[j].actor;
            if (a && !a->stack) {
                heap_free_all(&a->heap);
                free(a);
                c[j].actor = NULL;
            }
        }
    }
    for (uint32_t i = 0; i < rt.table.nchunks; i++)
        free(atomic_load(&rt.table.chunks[i]));
    memset(&rt.table, 0, sizeof rt.table);
}

/* Installs chunk c (allocated without the lock) as the next chunk. */
static void grow_locked(struct proc_slot *c)
{
    uint32_t base = rt.table.nchunks << CHUNK_BITS;
    for (uint32_t i = 0; i < CHUNK_SLOTS; i++) {
        c[i].next_free = i + 1 < CHUNK_SLOTS ? base + i + 1 : rt.table.free_head;
        c[i].pid = (SnowPid)(base + i); /* generation 0: the first use gets 1 */
    }
    atomic_store_explicit(&rt.table.chunks[rt.table.nchunks], c, memory_order_release);
    rt.table.nchunks++;
    rt.table.free_head = base;
}

/* Free slots are cached per worker, like actor structs: a spawner and the
 * workers where its children exit would otherwise take the table's free
 * lock once per spawn and once per exit, from two cores. A worker's list
 * holds up to SLOT_CACHE_LOCAL slots; the shared list is taken and given
 * SLOT_CACHE_BATCH at a time, in one locked step. */
#define SLOT_CACHE_LOCAL 64
#define SLOT_CACHE_BATCH 32

/* Moves up to SLOT_CACHE_BATCH slots from the shared list to w's, growing
 * the table when it is empty. 0, SNOW_ELIMIT or -ENOMEM. */
static int slot_refill(struct worker *w)
{
    struct proc_slot *fresh = NULL;
    rt_spin_lock(&rt.table.free_lock);
    while (rt.table.free_head == NO_SLOT) {
        if (rt.table.nchunks == MAX_CHUNKS) {
            rt_spin_unlock(&rt.table.free_lock);
            free(fresh);
            return SNOW_ELIMIT;
        }
        if (fresh) {
            grow_locked(fresh);
            fresh = NULL;
            break;
        }
        /* No allocation under the spinlock: allocate, then look again. */
        rt_spin_unlock(&rt.table.free_lock);
        if (!(fresh = calloc(CHUNK_SLOTS, sizeof *fresh)))
            return -ENOMEM;
        rt_spin_lock(&rt.table.free_lock);
    }
    for (int i = 0; i < SLOT_CACHE_BATCH && rt.table.free_head != NO_SLOT; i++) {
        uint32_t idx = rt.table.free_head;
        struct proc_slot *s = slot_at(idx);
        rt.table.free_head = s->next_free;
        s->next_free = w->slot_cache;
        w->slot_cache = idx;
        w->slot_cache_n++;
    }
    rt_spin_unlock(&rt.table.free_lock);
    free(fresh); /* another spawner grew the table meanwhile */
    return 0;
}

/* A free slot index: from the worker's list, else the shared one. */
static int64_t slot_take(void)
{
    struct worker *w = worker_self();
    if (w) {
        if (!w->slot_cache_n) {
            int err = slot_refill(w);
            if (err)
                return err;
        }
        uint32_t idx = w->slot_cache;
        w->slot_cache = slot_at(idx)->next_free;
        w->slot_cache_n--;
        return idx;
    }
    /* Outside the workers (a spawn from another thread): the shared list,
     * through a worker-shaped list of one batch that goes straight back. */
    struct worker tmp = {.slot_cache = NO_SLOT};
    int err = slot_refill(&tmp);
    if (err)
        return err;
    uint32_t idx = tmp.slot_cache;
    uint32_t rest = slot_at(idx)->next_free;
    if (tmp.slot_cache_n > 1) {
        uint32_t last = rest;
        for (int i = 2; i < tmp.slot_cache_n; i++)
            last = slot_at(last)->next_free;
        rt_spin_lock(&rt.table.free_lock);
        slot_at(last)->next_free = rt.table.free_head;
        rt.table.free_head = rest;
        rt_spin_unlock(&rt.table.free_lock);
    }
    return idx;
}

int proc_insert(struct actor *a)
{
    int64_t got = slot_take();
    if (got < 0)
        return (int)got;
    uint32_t idx = (uint32_t)got;
    struct proc_slot *s = slot_at(idx);
    rt_spin_lock(&s->lock);
    uint64_t gen = (s->pid >> IDX_BITS) + 1;
    if (gen >= (UINT64_C(1) << 40))
        gen = 1;
    s->pid = (gen << IDX_BITS) | idx;
    s->actor = a;
    a->pid = s->pid;
    a->slot = s;
    rt_spin_unlock(&s->lock);
    return 0;
}

static void proc_free_slot(struct proc_slot *s)
{
    uint32_t idx = (uint32_t)(s->pid & ((1u << IDX_BITS) - 1));
    struct worker *w = worker_self();
    if (w && w->slot_cache_n < SLOT_CACHE_LOCAL) {
        s->next_free = w->slot_cache;
        w->slot_cache = idx;
        w->slot_cache_n++;
        return;
    }
    /* Full (or not a worker): this slot and, from a worker, a batch of its
     * list go back to the shared list in one locked step. */
    uint32_t first = idx, last = idx;
    if (w) {
        s->next_free = w->slot_cache;
        for (int i = 0; i < SLOT_CACHE_BATCH; i++)
            last = slot_at(last)->next_free;
        w->slot_cache = slot_at(last)->next_free;
        w->slot_cache_n -= SLOT_CACHE_BATCH;
    }
    rt_spin_lock(&rt.table.free_lock);
    slot_at(last)->next_free = rt.table.free_head;
    rt.table.free_head = first;
    rt_spin_unlock(&rt.table.free_lock);
}

struct actor *proc_lock(SnowPid pid, struct proc_slot **slot)
{
    uint32_t idx = (uint32_t)(pid & ((1u << IDX_BITS) - 1));
    if (!pid || (idx >> CHUNK_BITS) >= MAX_CHUNKS)
        return NULL;
    struct proc_slot *s = slot_at(idx);
    if (!s)
        return NULL;
    rt_spin_lock(&s->lock);
    if (s->pid != pid || !s->actor) {
        rt_spin_unlock(&s->lock);
        return NULL;
    }
    *slot = s;
    return s->actor;
}

void proc_release(struct proc_slot *slot)
{
    rt_spin_unlock(&slot->lock);
}

void proc_each(void (*fn)(SnowPid pid, void *arg), void *arg)
{
    for (uint32_t c = 0; c < MAX_CHUNKS; c++) {
        struct proc_slot *chunk = atomic_load(&rt.table.chunks[c]);
        if (!chunk)
            break;
        for (uint32_t i = 0; i < CHUNK_SLOTS; i++) {
            struct proc_slot *s = &chunk[i];
            rt_spin_lock(&s->lock);
            SnowPid pid = s->actor ? s->pid : 0;
            rt_spin_unlock(&s->lock);
            if (pid)
                fn(pid, arg);
        }
    }
}

/* ---- link and monitor sets ----------------------------------------------------
 *
 * Hash maps with linear probing (struct u64_map), so that an actor linked to
 * or monitoring tens of thousands of others adds, finds and drops each in
 * O(1). Changed only under the owner's slot lock; a table is allocated with
 * the lock dropped (locked_put) and freed after it is released. */

static uint32_t hslot(uint64_t key, uint32_t cap)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static struct u64_ent *map_find(const struct u64_map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (uint32_t j = hslot(key, m->cap);; j = (j + 1) & (m->cap - 1)) {
        if (m->v[j].key == key)
            return &m->v[j];
        if (!m->v[j].key)
            return NULL;
    }
}

/* Load factor at most 3/4 after one more insert. */
static bool map_fits(const struct u64_map *m)
{
    return (uint64_t)(m->n + 1) * 4 <= (uint64_t)m->cap * 3;
}

static void map_place(struct u64_ent *v, uint32_t cap, uint64_t key, uint64_t val)
{
    uint32_t j = hslot(key, cap);
    while (v[j].key)
        j = (j + 1) & (cap - 1);
    v[j] = (struct u64_ent){key, val};
}

/* Moves m into the larger, zeroed table v; returns the old table to free. */
static struct u64_ent *map_adopt(struct u64_map *m, struct u64_ent *v, uint32_t cap)
{
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->v[i].key)
            map_place(v, cap, m->v[i].key, m->v[i].val);
    struct u64_ent *old = m->v;
    m->v = v;
    m->cap = cap;
    return old;
}

static bool map_del(struct u64_map *m, uint64_t key, uint64_t *val)
{
    struct u64_ent *e = map_find(m, key);
    if (!e)
        return false;
    if (val)
        *val = e->val;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    uint32_t mask = m->cap - 1, j = (uint32_t)(e - m->v);
    m->v[j].key = 0;
    for (uint32_t k = (j + 1) & mask; m->v[k].key; k = (k + 1) & mask) {
        uint32_t home = hslot(m->v[k].key, m->cap);
        bool movable = (j <= k) ? (home <= j || home > k) : (home <= j && home > k);
        if (movable) {
            m->v[j] = m->v[k];
            m->v[k].key = 0;
            j = k;
        }
    }
    m->n--;
    return true;
}

/* Adds key -> val to the map at offset off inside pid's actor, under its
 * slot lock. Returns 1 when added, 0 when the key was there already,
 * SNOW_ENOPROC when pid is not alive, -ENOMEM. */
static int locked_put(SnowPid pid, size_t off, uint64_t key, uint64_t val)
{
    struct u64_ent *fresh = NULL;
    uint32_t fresh_cap = 0;
    for (;;) {
        struct proc_slot *s;
        struct actor *t = proc_lock(pid, &s);
        if (!t) {
            free(fresh);
            return SNOW_ENOPROC;
        }
        struct u64_map *m = (struct u64_map *)((char *)t + off);
        struct u64_ent *old = NULL;
        int r = -1;
        if (map_find(m, key)) {
            r = 0;
        } else {
            if (!map_fits(m) && fresh && fresh_cap > m->cap) {
                old = map_adopt(m, fresh, fresh_cap);
                fresh = NULL;
            }
            if (map_fits(m)) {
                map_place(m->v, m->cap, key, val);
                m->n++;
                r = 1;
            }
        }
        uint32_t cap = m->cap ? m->cap * 2 : 8;
        proc_release(s);
        free(old);
        free(fresh);
        fresh = NULL;
        if (r >= 0)
            return r;
        fresh = calloc(cap, sizeof *fresh);
        fresh_cap = cap;
        if (!fresh)
            return -ENOMEM;
    }
}

#define LINKS offsetof(struct actor, links)
#define WATCHERS offsetof(struct actor, watchers)
#define WATCHING offsetof(struct actor, watching)

/* Removes key from the map at off in pid's actor; true when it was there. */
static bool locked_del(SnowPid pid, size_t off, uint64_t key, uint64_t *val)
{
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (!t)
        return false;
    bool had = map_del((struct u64_map *)((char *)t + off), key, val);
    proc_release(s);
    return had;
}

/* ---- actor structs ----------------------------------------------------------------
 *
 * Spawn and exit are often on different workers (the spawner's and the
 * thief's), so malloc would free across arenas on every exit. Each worker
 * keeps a small list of free actor structs; beyond it they go to a shared,
 * bounded list, and only beyond that back to malloc. */
#define ACTOR_CACHE_LOCAL 64
#define ACTOR_CACHE_SHARED 4096


static int pool_n(void)
{
    return atomic_load_explicit(&rt.actor_pool.n, memory_order_relaxed);
}

static void pool_n_add(int d)
{
    atomic_store_explicit(&rt.actor_pool.n, pool_n() + d, memory_order_relaxed);
}

static struct actor *actor_alloc(void)
{
    struct worker *w = worker_self();
    struct actor *a = NULL;
    if (w && !w->actor_cache && pool_n()) {
        /* Refill half the local list in one locked step. */
        rt_spin_lock(&rt.actor_pool.lock);
        while (rt.actor_pool.free && w->actor_cache_n < ACTOR_CACHE_LOCAL / 2) {
            struct actor *x = rt.actor_pool.free;
            rt.actor_pool.free = x->next;
            pool_n_add(-1);
            x->next = w->actor_cache;
            w->actor_cache = x;
            w->actor_cache_n++;
        }
        rt_spin_unlock(&rt.actor_pool.lock);
    }
    if (w && w->actor_cache) {
        a = w->actor_cache;
        w->actor_cache = a->next;
        w->actor_cache_n--;
        memset(a, 0, sizeof *a);
        return a;
    }
    return calloc(1, sizeof *a);
}

static void actor_release(struct actor *a)
{
    struct worker *w = worker_self();
    if (w && w->actor_cache_n < ACTOR_CACHE_LOCAL) {
        a->next = w->actor_cache;
        w->actor_cache = a;
        w->actor_cache_n++;
        return;
    }
    if (pool_n() < ACTOR_CACHE_SHARED) {
        rt_spin_lock(&rt.actor_pool.lock);
        if (pool_n() < ACTOR_CACHE_SHARED) {
            a->next = rt.actor_pool.free;
            rt.actor_pool.free = a;
            pool_n_add(1);
            a = NULL;
        }
        rt_spin_unlock(&rt.actor_pool.lock);
        if (!a)
            return;
    }
    free(a);
}

void actor_cache_fini(void)
{
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *w = &rt.workers[i];
        while (w->actor_cache) {
            struct actor *a = w->actor_cache;
            w->actor_cache = a->next;
            free(a);
        }
        w->actor_cache_n = 0;
    }
    while (rt.actor_pool.free) {
        struct actor *a = rt.actor_pool.free;
        rt.actor_pool.free = a->next;
        free(a);
    }
    atomic_store(&rt.actor_pool.n, 0);
}

/* ---- spawn --------------------------------------------------------------------- */

static SnowPid spawn(SnowActorFn fn, const void *args, size_t size, const struct actor_spawn_opts *opts)
{
    /* Refused once shutdown was requested: the process is ending, and an
     * actor that restarts others from its terminate callback (a
     * supervisor) must not keep it alive. */
    if (!atomic_load(&rt.running) || atomic_load(&rt.shutdown_req) || atomic_load(&rt.stopping) || !fn)
        return 0;
    struct actor *a = actor_alloc();
    if (!a)
        return 0;
    a->fn = fn;
    a->home = -1;
    atomic_store(&a->kill_reason, -1);
    atomic_init(&a->wait_timer.armed, false);
    a->wait_timer.kind = TIMER_WAKE;
    if (size && size <= ACTOR_ARG_INLINE) {
        /* No heap for a small argument: most actors never allocate, and
         * creating a heap costs more than the rest of the spawn. */
        a->arg = a->arg_inline;
        memcpy(a->arg, args, size);
    } else if (size) {
        a->arg = heap_alloc(&a->heap, size);
        if (!a->arg) {
            actor_release(a);
            return 0;
        }
        memcpy(a->arg, args, size);
    } else {
        a->arg = (void *)args;
    }
    if (opts && opts->terminate) {
        a->term_cb = opts->terminate;
        a->term_arg = a->arg;
    }
    if (opts && opts->worker >= 0 && opts->worker < rt.nworkers) {
        a->home = (int16_t)opts->worker;
        a->pinned = opts->pinned;
    }
    if (proc_insert(a)) {
        heap_free_all(&a->heap);
        actor_release(a);
        return 0;
    }
    a->wait_timer.pid = a->pid;
    sched_actor_spawned();
    SnowPid pid = a->pid;
    /* Shutdown requested while we spawned: snow_rt_run's walk of the table
     * may already have passed this slot, so the actor ends itself (its
     * terminate callback runs) as the walk would have made it. The fence
     * pairs with the one in snow_rt_run between the flag and the walk. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&rt.shutdown_req))
        atomic_store(&a->kill_reason, SNOW_EXIT_SHUTDOWN);
    struct actor *parent = actor_self();
    if (opts && opts->link && parent) {
        /* The child has not run yet, so both sides can be set up directly. */
        locked_put(parent->pid, LINKS, pid, 0);
        locked_put(pid, LINKS, parent->pid, 0);
    }
    atomic_store(&a->state, A_RUNNABLE);
    sched_enqueue(a, false);
    return pid;
}

SnowPid actor_spawn(SnowActorFn fn, const void *args, size_t size, const struct actor_spawn_opts *opts)
{
    if (worker_self())
        return spawn(fn, args, size, opts);
    /* A plain thread: the runtime may be tearing down meanwhile. */
    if (!actor_ext_enter())
        return 0;
    SnowPid pid = spawn(fn, args, size, opts);
    actor_ext_leave();
    return pid;
}

SnowPid snow_actor_spawn(SnowActorFn fn, const void *args, size_t size)
{
    struct actor_spawn_opts o = {.worker = -1};
    return actor_spawn(fn, args, size, &o);
}

SnowPid snow_actor_spawn_link(SnowActorFn fn, const void *args, size_t size)
{
    struct actor_spawn_opts o = {.worker = -1, .link = true};
    return actor_spawn(fn, args, size, &o);
}

SnowPid snow_actor_self(void)
{
    struct actor *a = actor_self();
    return a ? a->pid : 0;
}

/* ---- exit signals ---------------------------------------------------------------- */

void actor_check_signals(struct actor *a)
{
    int r = atomic_load_explicit(&a->kill_reason, memory_order_relaxed);
    if (RT_UNLIKELY(r >= 0) && !a->exiting)
        actor_exit_now(r);
}

int actor_signal_exit(SnowPid pid, SnowPid from, int reason, bool from_link)
{
    bool untrappable = reason == SNOW_EXIT_SHUTDOWN || (!from_link && reason == SNOW_EXIT_KILLED);
    struct msg *m = NULL;
    for (;;) {
        struct proc_slot *s;
        struct actor *t = proc_lock(pid, &s);
        if (!t) {
            msg_free(m);
            return SNOW_ENOPROC;
        }
        if (from_link && !map_find(&t->links, from)) {
            /* Unlinked in the meantime: the signal no longer applies. */
            proc_release(s);
            msg_free(m);
            return 0;
        }
        bool trap = t->trap_exit && !untrappable;
        if (trap && !m) {
            /* No allocation under the slot lock: drop it, allocate, look
             * again (trap_exit may have changed meanwhile). */
            proc_release(s);
            SnowExitMsg em = {.from = from, .reason = reason};
            if (!(m = msg_new(SNOW_TAG_EXIT, from, &em, sizeof em)))
                return -ENOMEM;
            continue;
        }
        if (from_link)
            map_del(&t->links, from, NULL);
        struct actor *wake = NULL;
        if (trap) {
            wake = mailbox_push_locked(t, m);
            m = NULL;
        } else if (reason != SNOW_EXIT_NORMAL || (!from_link && from == pid)) {
            int none = -1;
            atomic_compare_exchange_strong(&t->kill_reason, &none, reason);
            wake = actor_notify_begin(t, 0) ? t : NULL;
        }
        proc_release(s);
        msg_free(m);
        if (wake)
            sched_enqueue(wake, true);
        return 0;
    }
}

int snow_actor_kill(SnowPid pid, int reason)
{
    if (reason < 0)
        return -EINVAL;
    struct actor *self = actor_self();
    if (self && pid == self->pid) {
        bool trap = self->trap_exit && reason != SNOW_EXIT_KILLED;
        if (!trap)
            actor_exit_now(reason);
    }
    if (worker_self())
        return actor_signal_exit(pid, self ? self->pid : 0, reason, false);
    /* A plain thread: the runtime may be tearing down meanwhile. */
    if (!actor_ext_enter())
        return SNOW_ENOT_RUNNING;
    int r = actor_signal_exit(pid, 0, reason, false);
    actor_ext_leave();
    return r;
}

void snow_actor_exit(int reason)
{
    if (!actor_self()) {
        rt_log(RT_LOG_ERROR, "snow_actor_exit called outside an actor");
        abort();
    }
    actor_exit_now(reason);
}

int snow_actor_trap_exit(int on)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    rt_spin_lock(&a->slot->lock);
    int old = a->trap_exit;
    a->trap_exit = on ? 1 : 0;
    rt_spin_unlock(&a->slot->lock);
    return old;
}

int snow_actor_set_terminate(void (*cb)(int reason, void *arg), void *arg)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    a->term_cb = cb;
    a->term_arg = arg;
    return 0;
}

/* ---- links and monitors ---------------------------------------------------------- */

int snow_actor_link(SnowPid pid)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    if (pid == self->pid)
        return 0;
    int err = locked_put(self->pid, LINKS, pid, 0);
    if (err < 0)
        return err;
    err = locked_put(pid, LINKS, self->pid, 0);
    if (err >= 0)
        return 0;
    locked_del(self->pid, LINKS, pid, NULL);
    if (err != SNOW_ENOPROC)
        return err;
    /* The target is gone: deliver noproc to ourselves, as the link would
     * have done the moment it was made (a trapping actor gets
     * SNOW_TAG_EXIT, any other exits with SNOW_EXIT_NOPROC). */
    actor_signal_exit(self->pid, pid, SNOW_EXIT_NOPROC, false);
    actor_check_signals(actor_self());
    return SNOW_ENOPROC;
}

int snow_actor_unlink(SnowPid pid)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    locked_del(self->pid, LINKS, pid, NULL);
    locked_del(pid, LINKS, self->pid, NULL);
    return 0;
}

/* Sends DOWN for monitor ref to its watcher, if the watcher still holds
 * it: removing it from the watcher's set under the watcher's slot lock is
 * what decides between this DOWN and a concurrent snow_actor_demonitor, so
 * after a demonitor that returned 0 no DOWN for the reference arrives. */
static void send_down(SnowPid watcher, uint64_t ref, SnowPid pid, int reason)
{
    SnowDownMsg dm = {.ref = ref, .pid = pid, .reason = reason};
    struct msg *m = msg_new(SNOW_TAG_DOWN, pid, &dm, sizeof dm);
    if (!m)
        return;
    struct proc_slot *s;
    struct actor *w = proc_lock(watcher, &s);
    if (!w || !map_del(&w->watching, ref, NULL)) {
        if (w)
            proc_release(s);
        msg_free(m);
        return;
    }
    struct actor *wake = mailbox_push_locked(w, m);
    proc_release(s);
    if (wake)
        sched_enqueue(wake, true);
}

uint64_t snow_actor_monitor(SnowPid pid)
{
    struct actor *self = actor_self();
    if (!self)
        return 0;
    uint64_t ref = atomic_fetch_add(&rt.table.next_ref, 1);
    if (locked_put(self->pid, WATCHING, ref, pid) < 0)
        return 0;
    int err = locked_put(pid, WATCHERS, ref, self->pid);
    if (err == -ENOMEM) {
        locked_del(self->pid, WATCHING, ref, NULL);
        return 0;
    }
    if (err < 0)
        send_down(self->pid, ref, pid, SNOW_EXIT_NOPROC);
    return ref;
}

int snow_actor_demonitor(uint64_t ref)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    uint64_t target = 0;
    if (!locked_del(self->pid, WATCHING, ref, &target))
        return SNOW_ENOPROC;
    locked_del(target, WATCHERS, ref, NULL);
    return 0;
}

/* ---- panics and catching ------------------------------------------------------------ */

int actor_catch(void (*fn)(void *), void *arg)
{
    struct actor *a = actor_self();
    if (!a) {
        fn(arg);
        return 0;
    }
    jmp_buf jb;
    jmp_buf *outer = a->catch_jb;
    if (_setjmp(jb) == 0) {
        a->catch_jb = &jb;
        fn(arg);
        actor_self()->catch_jb = outer;
        return 0;
    }
    actor_self()->catch_jb = outer;
    return SNOW_EXIT_PANIC;
}

const char *actor_panic_message(void)
{
    struct actor *a = actor_self();
    return a && a->panic_msg ? a->panic_msg : "";
}

void snow_panic(const char *msg)
{
    struct actor *a = actor_self();
    if (!msg)
        msg = "panic";
    if (!a) {
        rt_log(RT_LOG_ERROR, "panic outside any actor: %s", msg);
        abort();
    }
    free(a->panic_msg);
    a->panic_msg = strdup(msg);
    if (a->catch_jb && !a->exiting)
        actor_longjmp(*a->catch_jb, 1);
    rt_log(RT_LOG_WARN, "actor %llu panicked: %s", (unsigned long long)a->pid, msg);
    actor_exit_now(SNOW_EXIT_PANIC);
}

/* ---- the exit path -------------------------------------------------------------------- */

void actor_finish(struct actor *a)
{
    a->exiting = 1;
    a->catch_jb = NULL;
    int reason = a->exit_reason;
    if (a->term_cb) {
        /* Cleared first: if the callback itself panics or exits, the
         * trampoline comes back here and the rest of the path still runs. */
        void (*cb)(int, void *) = a->term_cb;
        a->term_cb = NULL;
        cb(reason, a->term_arg);
        a = actor_self();
    }
    io_close_all(a);
    timer_disarm(&a->wait_timer);

    struct proc_slot *s = a->slot;
    rt_spin_lock(&s->lock);
    s->actor = NULL; /* from here every lookup of this pid fails */
    struct u64_map links = a->links;
    struct u64_map watchers = a->watchers;
    struct u64_map watching = a->watching;
    memset(&a->links, 0, sizeof a->links);
    memset(&a->watchers, 0, sizeof a->watchers);
    memset(&a->watching, 0, sizeof a->watching);
    struct msg *inbox = a->in_head; /* nothing can be appended any more */
    a->in_head = a->in_tail = NULL;
    atomic_store(&a->inbox_n, 0);
    rt_spin_unlock(&s->lock);

    registry_remove_actor(a);
    for (uint32_t i = 0; i < watching.cap; i++)
        if (watching.v[i].key)
            locked_del(watching.v[i].val, WATCHERS, watching.v[i].key, NULL);
    for (uint32_t i = 0; i < links.cap; i++)
        if (links.v[i].key)
            actor_signal_exit(links.v[i].key, a->pid, reason, true);
    for (uint32_t i = 0; i < watchers.cap; i++)
        if (watchers.v[i].key)
            send_down(watchers.v[i].val, watchers.v[i].key, a->pid, reason);
    free(links.v);
    free(watchers.v);
    free(watching.v);
    msg_free_list(inbox);
    mailbox_free(a);
    heap_free_all(&a->heap);
    free(a->panic_msg);
    a->panic_msg = NULL;
}

void actor_free(struct actor *a)
{
    proc_free_slot(a->slot);
    actor_release(a);
}
