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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"
#include "actor/tsan.h"

#define IDX_BITS 24
#define CHUNK_BITS 12
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << (IDX_BITS - CHUNK_BITS))
#define NO_SLOT UINT32_MAX

static struct {
    struct proc_slot *_Atomic chunks[MAX_CHUNKS];
    uint32_t nchunks;
    rt_spin_t free_lock;
    uint32_t free_head;
    atomic_uint_fast64_t next_ref;
} table;

static inline struct proc_slot *slot_at(uint32_t idx)
{
    struct proc_slot *c = atomic_load_explicit(&table.chunks[idx >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[idx & (CHUNK_SLOTS - 1)] : NULL;
}

int proc_init(void)
{
    memset(&table, 0, sizeof table);
    table.free_head = NO_SLOT;
    atomic_store(&table.next_ref, 1);
    return 0;
}

void proc_fini(void)
{
    for (uint32_t i = 0; i < table.nchunks; i++)
        free(atomic_load(&table.chunks[i]));
    memset(&table, 0, sizeof table);
}

static int grow_locked(void)
{
    if (table.nchunks == MAX_CHUNKS)
        return SNOW_ELIMIT;
    struct proc_slot *c = calloc(CHUNK_SLOTS, sizeof *c);
    if (!c)
        return -ENOMEM;
    uint32_t base = table.nchunks << CHUNK_BITS;
    for (uint32_t i = 0; i < CHUNK_SLOTS; i++) {
        c[i].next_free = i + 1 < CHUNK_SLOTS ? base + i + 1 : table.free_head;
        c[i].pid = (SnowPid)(base + i); /* generation 0: the first use gets 1 */
    }
    atomic_store_explicit(&table.chunks[table.nchunks], c, memory_order_release);
    table.nchunks++;
    table.free_head = base;
    return 0;
}

int proc_insert(struct actor *a)
{
    rt_spin_lock(&table.free_lock);
    if (table.free_head == NO_SLOT) {
        int err = grow_locked();
        if (err) {
            rt_spin_unlock(&table.free_lock);
            return err;
        }
    }
    uint32_t idx = table.free_head;
    struct proc_slot *s = slot_at(idx);
    table.free_head = s->next_free;
    rt_spin_unlock(&table.free_lock);

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
    rt_spin_lock(&table.free_lock);
    s->next_free = table.free_head;
    table.free_head = idx;
    rt_spin_unlock(&table.free_lock);
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
        struct proc_slot *chunk = atomic_load(&table.chunks[c]);
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

/* ---- small vectors ------------------------------------------------------------ */

static int pidvec_add(struct link_vec *v, SnowPid p)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (v->v[i] == p)
            return 0;
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        SnowPid *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = p;
    return 0;
}

static bool pidvec_del(struct link_vec *v, SnowPid p)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (v->v[i] == p) {
            v->v[i] = v->v[--v->n];
            return true;
        }
    return false;
}

static int monvec_add(struct mon_vec *v, uint64_t ref, SnowPid p)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        struct mon *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = (struct mon){ref, p};
    return 0;
}

static bool monvec_del(struct mon_vec *v, uint64_t ref, SnowPid *pid)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (v->v[i].ref == ref) {
            if (pid)
                *pid = v->v[i].pid;
            v->v[i] = v->v[--v->n];
            return true;
        }
    return false;
}

/* ---- actor structs ----------------------------------------------------------------
 *
 * Spawn and exit are often on different workers (the spawner's and the
 * thief's), so malloc would free across arenas on every exit. Each worker
 * keeps a small list of free actor structs; beyond it they go to a shared,
 * bounded list, and only beyond that back to malloc. */
#define ACTOR_CACHE_LOCAL 64
#define ACTOR_CACHE_SHARED 4096

static struct {
    rt_spin_t lock;
    struct actor *free;
    int n;
} actor_pool;

static struct actor *actor_alloc(void)
{
    struct worker *w = worker_self();
    struct actor *a = NULL;
    if (w && !w->actor_cache && actor_pool.n) {
        /* Refill half the local list in one locked step. */
        rt_spin_lock(&actor_pool.lock);
        while (actor_pool.free && w->actor_cache_n < ACTOR_CACHE_LOCAL / 2) {
            struct actor *x = actor_pool.free;
            actor_pool.free = x->next;
            actor_pool.n--;
            x->next = w->actor_cache;
            w->actor_cache = x;
            w->actor_cache_n++;
        }
        rt_spin_unlock(&actor_pool.lock);
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
    if (actor_pool.n < ACTOR_CACHE_SHARED) {
        rt_spin_lock(&actor_pool.lock);
        if (actor_pool.n < ACTOR_CACHE_SHARED) {
            a->next = actor_pool.free;
            actor_pool.free = a;
            actor_pool.n++;
            a = NULL;
        }
        rt_spin_unlock(&actor_pool.lock);
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
    while (actor_pool.free) {
        struct actor *a = actor_pool.free;
        actor_pool.free = a->next;
        free(a);
    }
    actor_pool.n = 0;
}

/* ---- spawn --------------------------------------------------------------------- */

SnowPid actor_spawn(SnowActorFn fn, const void *args, size_t size, const struct actor_spawn_opts *opts)
{
    if (!atomic_load(&rt.running) || atomic_load(&rt.stopping) || !fn)
        return 0;
    struct actor *a = actor_alloc();
    if (!a)
        return 0;
    a->fn = fn;
    a->home = -1;
    atomic_store(&a->kill_reason, -1);
    atomic_init(&a->wait_timer.idx, -1);
    a->wait_timer.kind = TIMER_WAKE;
    if (size) {
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
    atomic_fetch_add(&rt.live, 1);
    SnowPid pid = a->pid;
    struct actor *parent = actor_self();
    if (opts && opts->link && parent) {
        /* The child has not run yet, so both sides can be set up directly. */
        struct proc_slot *ps = parent->slot;
        rt_spin_lock(&ps->lock);
        pidvec_add(&parent->links, pid);
        rt_spin_unlock(&ps->lock);
        rt_spin_lock(&a->slot->lock);
        pidvec_add(&a->links, parent->pid);
        rt_spin_unlock(&a->slot->lock);
    }
    atomic_store(&a->state, A_RUNNABLE);
    sched_enqueue(a, false);
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
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (!t)
        return SNOW_ENOPROC;
    if (from_link && !pidvec_del(&t->links, from)) {
        /* Unlinked in the meantime: the signal no longer applies. */
        proc_release(s);
        return 0;
    }
    bool untrappable = reason == SNOW_EXIT_SHUTDOWN || (!from_link && reason == SNOW_EXIT_KILLED);
    struct actor *wake = NULL;
    if (t->trap_exit && !untrappable) {
        SnowExitMsg em = {.from = from, .reason = reason};
        struct msg *m = msg_new(SNOW_TAG_EXIT, from, &em, sizeof em);
        if (m)
            wake = mailbox_push_locked(t, m);
    } else if (reason != SNOW_EXIT_NORMAL || (!from_link && from == pid)) {
        int none = -1;
        atomic_compare_exchange_strong(&t->kill_reason, &none, reason);
        wake = actor_notify_begin(t, 0) ? t : NULL;
    }
    proc_release(s);
    if (wake)
        sched_enqueue(wake, true);
    return 0;
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
    return actor_signal_exit(pid, self ? self->pid : 0, reason, false);
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
    rt_spin_lock(&self->slot->lock);
    int err = pidvec_add(&self->links, pid);
    rt_spin_unlock(&self->slot->lock);
    if (err)
        return err;
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (t) {
        err = pidvec_add(&t->links, self->pid);
        proc_release(s);
        return err;
    }
    /* The target is gone: undo our half and deliver noproc to ourselves,
     * as the link would have done the moment it was made (a trapping actor
     * gets SNOW_TAG_EXIT, any other exits with SNOW_EXIT_NOPROC). */
    rt_spin_lock(&self->slot->lock);
    pidvec_del(&self->links, pid);
    rt_spin_unlock(&self->slot->lock);
    actor_signal_exit(self->pid, pid, SNOW_EXIT_NOPROC, false);
    actor_check_signals(actor_self());
    return SNOW_ENOPROC;
}

int snow_actor_unlink(SnowPid pid)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    rt_spin_lock(&self->slot->lock);
    pidvec_del(&self->links, pid);
    rt_spin_unlock(&self->slot->lock);
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (t) {
        pidvec_del(&t->links, self->pid);
        proc_release(s);
    }
    return 0;
}

static void send_down(SnowPid watcher, uint64_t ref, SnowPid pid, int reason)
{
    SnowDownMsg dm = {.ref = ref, .pid = pid, .reason = reason};
    struct msg *m = msg_new(SNOW_TAG_DOWN, pid, &dm, sizeof dm);
    if (!m)
        return;
    struct proc_slot *s;
    struct actor *w = proc_lock(watcher, &s);
    if (!w) {
        free(m);
        return;
    }
    /* The watcher no longer holds this monitor once DOWN is on its way. */
    monvec_del(&w->watching, ref, NULL);
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
    uint64_t ref = atomic_fetch_add(&table.next_ref, 1);
    rt_spin_lock(&self->slot->lock);
    int err = monvec_add(&self->watching, ref, pid);
    rt_spin_unlock(&self->slot->lock);
    if (err)
        return 0;
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (t) {
        err = monvec_add(&t->watchers, ref, self->pid);
        proc_release(s);
        if (!err)
            return ref;
    }
    send_down(self->pid, ref, pid, SNOW_EXIT_NOPROC);
    return ref;
}

int snow_actor_demonitor(uint64_t ref)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    SnowPid target = 0;
    rt_spin_lock(&self->slot->lock);
    bool had = monvec_del(&self->watching, ref, &target);
    rt_spin_unlock(&self->slot->lock);
    if (!had)
        return SNOW_ENOPROC;
    struct proc_slot *s;
    struct actor *t = proc_lock(target, &s);
    if (t) {
        monvec_del(&t->watchers, ref, NULL);
        proc_release(s);
    }
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
    struct link_vec links = a->links;
    struct mon_vec watchers = a->watchers;
    struct mon_vec watching = a->watching;
    memset(&a->links, 0, sizeof a->links);
    memset(&a->watchers, 0, sizeof a->watchers);
    memset(&a->watching, 0, sizeof a->watching);
    struct msg *inbox = a->in_head; /* nothing can be appended any more */
    a->in_head = a->in_tail = NULL;
    atomic_store(&a->inbox_n, 0);
    rt_spin_unlock(&s->lock);

    registry_remove_actor(a);
    for (uint32_t i = 0; i < watching.n; i++) {
        struct proc_slot *ts;
        struct actor *t = proc_lock(watching.v[i].pid, &ts);
        if (t) {
            monvec_del(&t->watchers, watching.v[i].ref, NULL);
            proc_release(ts);
        }
    }
    for (uint32_t i = 0; i < links.n; i++)
        actor_signal_exit(links.v[i], a->pid, reason, true);
    for (uint32_t i = 0; i < watchers.n; i++)
        send_down(watchers.v[i].pid, watchers.v[i].ref, a->pid, reason);
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
