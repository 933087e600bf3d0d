/*
 * links.c: exit signals, links and monitors. Each actor keeps its links,
 * its watchers and what it watches in hash sets inside its record, changed
 * only under its slot lock (proc_lock). The exit path (proc.c,
 * actor_finish) walks them to signal links and send DOWN messages.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"
#include "actor/tsan.h"

/* ---- link and monitor sets ----------------------------------------------------
 *
 * Hash maps with linear probing (struct u64_map), so that an actor linked to
 * or monitoring tens of thousands of others adds, finds and drops each in
 * O(1). Changed only under the owner's slot lock; a table is allocated with
 * the lock dropped (actor_set_put) and freed after it is released. */

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
int actor_set_put(SnowPid pid, size_t off, uint64_t key, uint64_t val)
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


/* Removes key from the map at off in pid's actor; true when it was there. */
bool actor_set_del(SnowPid pid, size_t off, uint64_t key, uint64_t *val)
{
    struct proc_slot *s;
    struct actor *t = proc_lock(pid, &s);
    if (!t)
        return false;
    bool had = map_del((struct u64_map *)((char *)t + off), key, val);
    proc_release(s);
    return had;
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
    int err = actor_set_put(self->pid, ACTOR_LINKS, pid, 0);
    if (err < 0)
        return err;
    err = actor_set_put(pid, ACTOR_LINKS, self->pid, 0);
    if (err >= 0)
        return 0;
    actor_set_del(self->pid, ACTOR_LINKS, pid, NULL);
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
    actor_set_del(self->pid, ACTOR_LINKS, pid, NULL);
    actor_set_del(pid, ACTOR_LINKS, self->pid, NULL);
    return 0;
}

/* Sends DOWN for monitor ref to its watcher, if the watcher still holds
 * it: removing it from the watcher's set under the watcher's slot lock is
 * what decides between this DOWN and a concurrent snow_actor_demonitor, so
 * after a demonitor that returned 0 no DOWN for the reference arrives. */
void actor_send_down(SnowPid watcher, uint64_t ref, SnowPid pid, int reason)
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
    if (actor_set_put(self->pid, ACTOR_WATCHING, ref, pid) < 0)
        return 0;
    int err = actor_set_put(pid, ACTOR_WATCHERS, ref, self->pid);
    if (err == -ENOMEM) {
        actor_set_del(self->pid, ACTOR_WATCHING, ref, NULL);
        return 0;
    }
    if (err < 0)
        actor_send_down(self->pid, ref, pid, SNOW_EXIT_NOPROC);
    return ref;
}

int snow_actor_demonitor(uint64_t ref)
{
    struct actor *self = actor_self();
    if (!self)
        return SNOW_ENOT_ACTOR;
    uint64_t target = 0;
    if (!actor_set_del(self->pid, ACTOR_WATCHING, ref, &target))
        return SNOW_ENOPROC;
    actor_set_del(target, ACTOR_WATCHERS, ref, NULL);
    return 0;
}
