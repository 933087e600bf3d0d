/*
 * proc.c: the process table and the life of an actor: spawn, panics, and
 * the exit path (exit signals, links and monitors are in links.c).
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
 * lock once per spawn and once per exit, from two cores. A worker keeps a
 * chain of up to SLOT_CACHE_BATCH slots and one complete batch in reserve;
 * complete batches go to and come from the table as one index each
 * (rt.table.batch), so the lock is held for an array slot, not for a walk
 * over slots another core freed. Single free slots (a new chunk's, those
 * a plain thread gives back) wait on free_head and are taken from there
 * when no batch is left. */
#define SLOT_CACHE_BATCH 32

/* Gives w a chain of up to SLOT_CACHE_BATCH slots: a batch from the table,
 * else single slots from free_head, growing the table when it is empty.
 * 0, SNOW_ELIMIT or -ENOMEM. */
static int slot_refill(struct worker *w)
{
    struct proc_slot *fresh = NULL;
    rt_spin_lock(&rt.table.free_lock);
    if (rt.table.nbatches) {
        w->slot_cache = rt.table.batch[--rt.table.nbatches];
        w->slot_cache_n = SLOT_CACHE_BATCH;
        rt_spin_unlock(&rt.table.free_lock);
        return 0;
    }
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

/* Puts the n slots chained from first on free_head (the table holds as
 * many batches as it has room for; the rest wait there singly). */
static void slots_to_free_head(uint32_t first, int n)
{
    uint32_t last = first;
    for (int i = 1; i < n; i++)
        last = slot_at(last)->next_free;
    rt_spin_lock(&rt.table.free_lock);
    slot_at(last)->next_free = rt.table.free_head;
    rt.table.free_head = first;
    rt_spin_unlock(&rt.table.free_lock);
}

/* A free slot index: from the worker's list (w, the calling worker), else
 * the shared one (w NULL: a plain thread). */
static int64_t slot_take(struct worker *w)
{
    if (w) {
        if (!w->slot_cache_n) {
            if (w->slot_full_n) {
                w->slot_cache = w->slot_full;
                w->slot_cache_n = w->slot_full_n;
                w->slot_full_n = 0;
            } else {
                int err = slot_refill(w);
                if (err)
                    return err;
            }
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
    if (tmp.slot_cache_n > 1)
        slots_to_free_head(slot_at(idx)->next_free, tmp.slot_cache_n - 1);
    return idx;
}

/* Installs a in a free slot (taken through w, the calling worker or NULL)
 * and sets a->pid and a->slot.
 *
 * Shutdown: once rt.shutdown_req is set, snow_rt_run walks the table
 * (proc_each) and kills every actor it finds. An actor installed while
 * that walk runs ends itself instead (kill_reason, acted on at its first
 * run) when this reads the flag set. The flag is read inside the slot's
 * critical section, and the walk reads each slot inside one too, after it
 * read the flag: if the walk's section on this slot comes first, its
 * unlock orders the flag before our load; if ours comes first, the walk
 * finds the actor. A slot of a chunk the walk never saw was handed out
 * through the free lock after the walk read the chunk count under it
 * (proc_each), which orders the flag before our load the same way. No
 * fence is needed on this path. */
int proc_insert(struct actor *a, struct worker *w)
{
    int64_t got = slot_take(w);
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
    /* relaxed: ordered by the slot lock, as above */
    if (atomic_load_explicit(&rt.shutdown_req, memory_order_relaxed))
        atomic_store_explicit(&a->kill_reason, SNOW_EXIT_SHUTDOWN, memory_order_relaxed);
    rt_spin_unlock(&s->lock);
    return 0;
}


static void proc_free_slot(struct proc_slot *s)
{
    uint32_t idx = (uint32_t)(s->pid & ((1u << IDX_BITS) - 1));
    struct worker *w = worker_self();
    if (!w) {
        s->next_free = NO_SLOT;
        slots_to_free_head(idx, 1);
        return;
    }
    if (w->slot_cache_n == SLOT_CACHE_BATCH) {
        /* The chain is a complete batch: it becomes the reserve, and the
         * old reserve goes to the table. */
        if (w->slot_full_n) {
            bool kept = false;
            rt_spin_lock(&rt.table.free_lock);
            if (rt.table.nbatches < PROC_SLOT_BATCHES) {
                rt.table.batch[rt.table.nbatches++] = w->slot_full;
                kept = true;
            }
            rt_spin_unlock(&rt.table.free_lock);
            if (!kept)
                slots_to_free_head(w->slot_full, w->slot_full_n);
        }
        w->slot_full = w->slot_cache;
        w->slot_full_n = w->slot_cache_n;
        w->slot_cache_n = 0;
    }
    s->next_free = w->slot_cache;
    w->slot_cache = idx;
    w->slot_cache_n++;
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
    /* The chunk count is read under the free lock, which every slot
     * handed out passes through: a chunk added after this read only holds
     * actors installed after it (see proc_insert). */
    rt_spin_lock(&rt.table.free_lock);
    uint32_t nchunks = rt.table.nchunks;
    rt_spin_unlock(&rt.table.free_lock);
    for (uint32_t c = 0; c < nchunks; c++) {
        struct proc_slot *chunk = atomic_load(&rt.table.chunks[c]);
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

/* ---- actor structs ----------------------------------------------------------------
 *
 * Spawn and exit are often on different workers (the spawner's and the
 * thief's), so malloc would free across arenas on every exit. Each worker
 * keeps up to 64 free actor structs; beyond that they go to a shared,
 * bounded pool (4,096), and only beyond that back to malloc. Both
 * directions move a batch of 32 as one pointer (magazine.c), so a worker
 * where children exit and the worker that spawns them meet at the pool's
 * lock once per 32 actors, and neither walks the other's records there. */
static const struct mag_kind actor_kind = {
    .link = offsetof(struct actor, next),
    .batch = 32,
    .pool_max = 128,
};

/* Clears a cached record. A memset of the constant size compiles to a
 * string store (`rep stos`), whose start-up costs about as much as the
 * 34 plain 16-byte stores this loop makes. */
typedef uint64_t actor_clear_v __attribute__((vector_size(16), may_alias));
_Static_assert(sizeof(struct actor) % sizeof(actor_clear_v) == 0, "the record is cleared in 16-byte stores");

static inline void actor_clear(struct actor *a)
{
    actor_clear_v *p = (actor_clear_v *)a;
#pragma GCC unroll 64
    for (size_t i = 0; i < sizeof *a / sizeof *p; i++)
        p[i] = (actor_clear_v){0, 0};
}

static struct actor *actor_alloc(struct worker *w)
{
    struct actor *a = w ? mag_take(&w->actor_cache, &rt.actor_pool, &actor_kind) : NULL;
    if (a) {
        actor_clear(a);
        return a;
    }
    return calloc(1, sizeof *a);
}

static void actor_release(struct actor *a)
{
    struct worker *w = worker_self();
    if (!w) {
        free(a);
        return;
    }
    void *spill = mag_put(&w->actor_cache, &rt.actor_pool, &actor_kind, a);
    if (spill)
        mag_free_chain(&actor_kind, spill, free);
}

void actor_cache_fini(void)
{
    for (int i = 0; i < rt.nworkers; i++)
        mag_fini(&rt.workers[i].actor_cache, &actor_kind, free);
    mag_pool_fini(&rt.actor_pool, &actor_kind, free);
}

/* ---- spawn --------------------------------------------------------------------- */

/* w: the calling worker, NULL from a plain thread. */
static SnowPid spawn(struct worker *w, SnowActorFn fn, const void *args, size_t size,
                     const struct actor_spawn_opts *opts)
{
    /* Refused once shutdown was requested: the process is ending, and an
     * actor that restarts others from its terminate callback (a
     * supervisor) must not keep it alive. */
    if (!atomic_load(&rt.running) || atomic_load(&rt.shutdown_req) || atomic_load(&rt.stopping) || !fn)
        return 0;
    /* The record is nobody else's until proc_insert publishes it under
     * its slot lock (and the run queue's lock hands it to a worker): its
     * fields, atomics included, are initialised with plain or relaxed
     * stores. */
    struct actor *a = actor_alloc(w);
    if (!a)
        return 0;
    a->fn = fn;
    a->home = -1;
    atomic_store_explicit(&a->kill_reason, -1, memory_order_relaxed);
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
    /* Shutdown requested while we spawned: proc_insert sets the actor's
     * kill_reason, and it ends itself at its first run (its terminate
     * callback runs) as snow_rt_run's walk of the table would have made
     * it. */
    if (proc_insert(a, w)) {
        heap_free_all(&a->heap);
        actor_release(a);
        return 0;
    }
    a->wait_timer.pid = a->pid;
    sched_actor_spawned();
    SnowPid pid = a->pid;
    if (opts && opts->link) {
        struct actor *parent = actor_self();
        if (parent) {
            /* The child has not run yet, so both sides can be set up directly. */
            actor_set_put(parent->pid, ACTOR_LINKS, pid, 0);
            actor_set_put(pid, ACTOR_LINKS, parent->pid, 0);
        }
    }
    /* relaxed: A_RUNNABLE is what the cleared record holds already, and the
     * run queue's lock publishes the actor to the worker that runs it */
    atomic_store_explicit(&a->state, A_RUNNABLE, memory_order_relaxed);
    sched_enqueue(a, false);
    return pid;
}

SnowPid actor_spawn(SnowActorFn fn, const void *args, size_t size, const struct actor_spawn_opts *opts)
{
    struct worker *w = worker_self();
    if (w)
        return spawn(w, fn, args, size, opts);
    /* A plain thread: the runtime may be tearing down meanwhile. */
    if (!actor_ext_enter())
        return 0;
    SnowPid pid = spawn(NULL, fn, args, size, opts);
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
    /* relaxed: with the slot dead no sender reaches the actor any more,
     * and only the actor itself reads the count */
    atomic_store_explicit(&a->inbox_n, 0, memory_order_relaxed);
    rt_spin_unlock(&s->lock);

    registry_remove_actor(a);
    for (uint32_t i = 0; i < watching.cap; i++)
        if (watching.v[i].key)
            actor_set_del(watching.v[i].val, ACTOR_WATCHERS, watching.v[i].key, NULL);
    for (uint32_t i = 0; i < links.cap; i++)
        if (links.v[i].key)
            actor_signal_exit(links.v[i].key, a->pid, reason, true);
    for (uint32_t i = 0; i < watchers.cap; i++)
        if (watchers.v[i].key)
            actor_send_down(watchers.v[i].val, watchers.v[i].key, a->pid, reason);
    /* Most actors had no links, monitors, heap or panic: no calls for
     * those. */
    if (links.v)
        free(links.v);
    if (watchers.v)
        free(watchers.v);
    if (watching.v)
        free(watching.v);
    msg_free_list(inbox);
    mailbox_free(a);
    if (a->heap.space || a->heap.kept)
        heap_free_all(&a->heap);
    if (a->panic_msg) {
        free(a->panic_msg);
        a->panic_msg = NULL;
    }
}

void actor_free(struct actor *a)
{
    proc_free_slot(a->slot);
    actor_release(a);
}
