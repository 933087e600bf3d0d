/*
 * mailbox.c: sending and (selective) receiving.
 *
 * The inbox is a FIFO list guarded by the receiver's process-table slot
 * lock, which a sender needs anyway to check the PID is alive; one lock
 * per message keeps a sender's messages in order and makes "is the
 * receiver still alive" and "append" one atomic step. The receiver moves
 * the whole inbox to a private list in one locked step and scans that
 * without locking; selective receive leaves skipped messages there in
 * their order. inbox_n is what the park/notify protocol reads (sched.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"

struct actor *mailbox_push_locked(struct actor *a, struct msg *m)
{
    m->next = NULL;
    m->seq = ++a->pushed;
    if (a->in_tail)
        a->in_tail->next = m;
    else
        a->in_head = m;
    a->in_tail = m;
    atomic_fetch_add(&a->inbox_n, 1); /* seq_cst: pairs with the state load below */
    return actor_notify_begin(a, SNOW_WAIT_MAILBOX | ACTOR_WAIT_NEW_MAIL) ? a : NULL;
}

/* limited: the receiver's mailbox limit applies (user messages). Runtime
 * messages (exit and down signals, timers) are always delivered: dropping
 * one would break links, monitors and deadlines. */
/* Messages queued for a: pushed but not yet taken. Under a's slot lock. */
static uint64_t queued_locked(struct actor *a)
{
    /* relaxed: the owner's count; a stale one makes the result larger */
    return a->pushed - atomic_load_explicit(&a->taken, memory_order_relaxed);
}

static int send_locked(SnowPid pid, struct msg *m, bool limited)
{
    struct proc_slot *s;
    struct actor *a = proc_lock(pid, &s);
    if (!a) {
        msg_free(m);
        return SNOW_ENOPROC;
    }
    if (limited && a->mbox_limit && queued_locked(a) >= a->mbox_limit) {
        proc_release(s);
        msg_free(m);
        return SNOW_ELIMIT;
    }
    struct actor *wake = mailbox_push_locked(a, m);
    proc_release(s);
    if (wake)
        sched_enqueue(wake, true);
    return 0;
}

static int send_msg(SnowPid pid, struct msg *m, bool limited)
{
    if (worker_self())
        return send_locked(pid, m, limited);
    /* A plain thread: the runtime may be tearing down meanwhile. */
    if (!actor_ext_enter()) {
        free(m);
        return SNOW_ENOT_RUNNING;
    }
    int r = send_locked(pid, m, limited);
    actor_ext_leave();
    return r;
}

int actor_send_raw(SnowPid pid, uint64_t tag, SnowPid from, const void *data, size_t len)
{
    struct msg *m = msg_new(tag, from, data, len);
    if (!m)
        return -ENOMEM;
    return send_msg(pid, m, !SNOW_TAG_IS_RESERVED(tag));
}

int actor_send_backlog(SnowPid pid, uint64_t tag, const void *data, size_t len)
{
    struct msg *m = msg_new(tag, 0, data, len);
    if (!m)
        return -ENOMEM;
    bool ext = !worker_self();
    if (ext && !actor_ext_enter()) {
        msg_free(m);
        return SNOW_ENOT_RUNNING;
    }
    struct proc_slot *s;
    struct actor *a = proc_lock(pid, &s);
    int rc = 0;
    if (!a) {
        rc = SNOW_ENOPROC;
    } else {
        unsigned long max_n = a->backlog_max_n ? a->backlog_max_n : ACTOR_BACKLOG_MSGS;
        size_t max_b = a->backlog_max_bytes ? a->backlog_max_bytes : ACTOR_BACKLOG_BYTES;
        /* relaxed: the adds happen under this lock; the owner's takes only
         * lower the figures, so a stale one errs towards refusing */
        if (atomic_load_explicit(&a->backlog_n, memory_order_relaxed) >= max_n ||
            atomic_load_explicit(&a->backlog_bytes, memory_order_relaxed) >= max_b ||
            (a->mbox_limit && queued_locked(a) >= a->mbox_limit))
            rc = SNOW_EBACKPRESSURE;
    }
    if (rc) {
        if (a)
            proc_release(s);
        msg_free(m);
    } else {
        m->backlog = 1;
        atomic_fetch_add_explicit(&a->backlog_n, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->backlog_bytes, len, memory_order_relaxed);
        struct actor *wake = mailbox_push_locked(a, m);
        proc_release(s);
        if (wake)
            sched_enqueue(wake, true);
    }
    if (ext)
        actor_ext_leave();
    return rc;
}

int actor_set_backlog(SnowPid pid, size_t max_messages, size_t max_bytes)
{
    bool ext = !worker_self();
    if (ext && !actor_ext_enter())
        return SNOW_ENOT_RUNNING;
    struct proc_slot *s;
    struct actor *a = proc_lock(pid, &s);
    if (a) {
        a->backlog_max_n = max_messages;
        a->backlog_max_bytes = max_bytes;
        proc_release(s);
    }
    if (ext)
        actor_ext_leave();
    return a ? 0 : SNOW_ENOPROC;
}

int actor_deliver(SnowPid pid, struct msg *m)
{
    return send_msg(pid, m, false);
}

int snow_actor_send(SnowPid pid, uint64_t tag, const void *data, size_t len)
{
    if (SNOW_TAG_IS_RESERVED(tag))
        return SNOW_ERESERVED_TAG;
    if (len && !data)
        return -EINVAL;
    struct actor *self = actor_self();
    return actor_send_raw(pid, tag, self ? self->pid : 0, data, len);
}

int snow_actor_set_mailbox_limit(size_t max_messages)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    rt_spin_lock(&a->slot->lock);
    a->mbox_limit = max_messages;
    rt_spin_unlock(&a->slot->lock);
    return 0;
}

/* Moves the inbox to the end of the private list; returns the first moved. */
static struct msg *drain_inbox(struct actor *a)
{
    if (!atomic_load(&a->inbox_n))
        return NULL;
    rt_spin_lock(&a->slot->lock);
    struct msg *head = a->in_head, *tail = a->in_tail;
    a->in_head = a->in_tail = NULL;
    /* relaxed under the slot lock: the next sender's seq_cst increment
     * comes after the unlock and sees it; the protocol's store-then-load
     * pairs are the sender's increment and the waiter's WAITING store */
    atomic_store_explicit(&a->inbox_n, 0, memory_order_relaxed);
    rt_spin_unlock(&a->slot->lock);
    if (!head)
        return NULL;
    if (a->priv_tail)
        a->priv_tail->next = head;
    else
        a->priv_head = head;
    a->priv_tail = tail;
    return head;
}

static inline bool has_unseen(struct actor *a)
{
    /* seq_cst load of inbox_n: the waiter's half of the park/notify
     * protocol (sched.c) when called after storing WAITING */
    return atomic_load(&a->inbox_n) || (a->priv_tail && a->priv_tail->seq > a->seen_seq);
}

bool mailbox_has_unseen(struct actor *a)
{
    return has_unseen(a);
}

/* Parks until a message no receive has examined arrives or an exit signal
 * is pending. This is actor_wait (poller.c) for the wait of a receive
 * without a deadline, the wait of every actor that only passes messages,
 * with the same protocol (sched.c) and nothing else: no I/O handle, no
 * timer, no clock. Besides its instructions, a hop of a ring of actors
 * saves actor_wait's stack frame, whose lines have left the cache by the
 * time the actor resumes. */
static void wait_new_mail(struct actor *a)
{
    /* relaxed: published by the seq_cst store of WAITING below. The signal
     * bit lets an exit signal wake us (actor_signal_exit). */
    atomic_store_explicit(&a->wait_events, ACTOR_WAIT_NEW_MAIL | SNOW_WAIT_SIGNAL, memory_order_relaxed);
    bool sig;
    /* seq_cst: step 2 of the protocol, before the condition loads */
    atomic_store(&a->state, A_WAITING);
    for (;;) {
        /* seq_cst loads of kill_reason and (in has_unseen) inbox_n: step 3,
         * each pairing with the notifier's seq_cst write of it */
        sig = atomic_load(&a->kill_reason) >= 0 && !a->exiting;
        if (sig || has_unseen(a))
            break;
        /* The record stays where it is while the actor runs on another
         * worker: a is still ours when this returns. */
        sched_switch_out(SW_PARK);
        /* Woken, so a condition almost always holds: look before storing
         * WAITING again, which is only needed to park once more. */
        sig = atomic_load(&a->kill_reason) >= 0 && !a->exiting;
        if (sig || has_unseen(a))
            break;
        atomic_store(&a->state, A_WAITING); /* seq_cst, as above */
    }
    /* relaxed: notifiers ignore RUNNING (and may have turned WAITING into
     * NOTIFIED, which this overwrites); nothing is published by it */
    atomic_store_explicit(&a->state, A_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&a->wait_events, 0, memory_order_relaxed); /* read only while WAITING/PARKED */
    if (sig)
        actor_check_signals(a);
}

static bool tag_matches(uint64_t tag, const uint64_t *tags, size_t n)
{
    if (!tags)
        return true;
    for (size_t i = 0; i < n; i++)
        if (tags[i] == tag)
            return true;
    return false;
}

/* Where a receive with this tag set starts: after the cached scan position
 * when the set is the one cached, else at the head (and the set becomes the
 * cached one). *prev is the message before the start. */
static struct msg *scan_start(struct actor *a, const uint64_t *tags, size_t n, struct msg **prev)
{
    *prev = NULL;
    if (!tags || n > ACTOR_SCAN_TAGS)
        return a->priv_head;
    bool same = a->scan_ntags == n;
    for (size_t i = 0; same && i < n; i++)
        same = a->scan_tags[i] == tags[i];
    if (same && a->scan_pos) {
        *prev = a->scan_pos;
        return a->scan_pos->next;
    }
    if (!same) {
        memcpy(a->scan_tags, tags, n * sizeof *tags);
        a->scan_ntags = (uint8_t)n;
        a->scan_pos = NULL;
    }
    return a->priv_head;
}

static SnowMessage *receive(const uint64_t *tags, size_t ntags, int timeout_ms)
{
    struct actor *a = actor_self();
    if (!a)
        return NULL;
    actor_check_signals(a);
    if (a->last) {
        msg_free(a->last);
        a->last = NULL;
    }
    bool cached = tags && ntags <= ACTOR_SCAN_TAGS;
    int64_t deadline = timeout_ms < 0 ? -1 : actor_deadline_after_ms(timeout_ms);
    struct msg *prev, *m = scan_start(a, tags, ntags, &prev);
    for (;;) {
        for (; m; prev = m, m = m->next) {
            a->scanned++;
            if (!tag_matches(m->m.tag, tags, ntags))
                continue;
            if (prev)
                prev->next = m->next;
            else
                a->priv_head = m->next;
            if (a->priv_tail == m)
                a->priv_tail = prev;
            /* Everything before m was examined; the cached position stays
             * valid (a removed message never is the position itself). */
            if (cached || a->scan_pos == m)
                a->scan_pos = prev;
            if (m->seq > a->seen_seq)
                a->seen_seq = m->seq;
            m->next = NULL;
            a->last = m;
            /* relaxed store by the only writer: a count read by senders */
            atomic_store_explicit(&a->taken, atomic_load_explicit(&a->taken, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            if (m->backlog) {
                /* relaxed: counts, read by senders as a bound */
                atomic_fetch_sub_explicit(&a->backlog_n, 1, memory_order_relaxed);
                atomic_fetch_sub_explicit(&a->backlog_bytes, m->m.len, memory_order_relaxed);
            }
            return &m->m;
        }
        /* Everything in the private list was examined and skipped: go on
         * with what arrived since, starting after the last one. */
        if (cached)
            a->scan_pos = prev;
        if (prev && prev->seq > a->seen_seq)
            a->seen_seq = prev->seq;
        m = drain_inbox(a);
        if (m)
            continue;
        if (timeout_ms == 0)
            return NULL;
        if (deadline < 0) {
            wait_new_mail(a);
            m = drain_inbox(a);
            continue;
        }
        int got = actor_wait(NULL, ACTOR_WAIT_NEW_MAIL, deadline);
        a = actor_self();
        m = drain_inbox(a);
        if (!m && (got & SNOW_WAIT_TIMEOUT))
            return NULL;
    }
}

long actor_receive_scanned(void)
{
    struct actor *a = actor_self();
    return a ? a->scanned : 0;
}

SnowMessage *snow_actor_receive(int timeout_ms)
{
    return receive(NULL, 0, timeout_ms);
}

SnowMessage *snow_actor_receive_match(const uint64_t *tags, size_t n, int timeout_ms)
{
    if (!tags || !n)
        return NULL;
    return receive(tags, n, timeout_ms);
}

void snow_msg_keep(SnowMessage *msg)
{
    struct actor *a = actor_self();
    if (!a || !msg || !a->last || &a->last->m != msg)
        return;
    a->last->next = a->heap.kept;
    a->heap.kept = a->last;
    a->last = NULL;
}

void mailbox_free(struct actor *a)
{
    msg_free_list(a->priv_head);
    a->priv_head = a->priv_tail = a->scan_pos = NULL;
    msg_free(a->last);
    a->last = NULL;
}
