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

#include "actor/internal.h"

struct actor *mailbox_push_locked(struct actor *a, struct msg *m)
{
    m->next = NULL;
    if (a->in_tail)
        a->in_tail->next = m;
    else
        a->in_head = m;
    a->in_tail = m;
    atomic_fetch_add(&a->inbox_n, 1); /* seq_cst: pairs with the state load below */
    return actor_notify_begin(a, SNOW_WAIT_MAILBOX | ACTOR_WAIT_NEW_MAIL) ? a : NULL;
}

static int send_msg(SnowPid pid, struct msg *m)
{
    struct proc_slot *s;
    struct actor *a = proc_lock(pid, &s);
    if (!a) {
        free(m);
        return SNOW_ENOPROC;
    }
    struct actor *wake = mailbox_push_locked(a, m);
    proc_release(s);
    if (wake)
        sched_enqueue(wake, true);
    return 0;
}

int actor_send_raw(SnowPid pid, uint64_t tag, SnowPid from, const void *data, size_t len)
{
    struct msg *m = msg_new(tag, from, data, len);
    if (!m)
        return -ENOMEM;
    return send_msg(pid, m);
}

int actor_deliver(SnowPid pid, struct msg *m)
{
    return send_msg(pid, m);
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

/* Moves the inbox to the end of the private list; returns the first moved. */
static struct msg *drain_inbox(struct actor *a)
{
    if (!atomic_load(&a->inbox_n))
        return NULL;
    rt_spin_lock(&a->slot->lock);
    struct msg *head = a->in_head, *tail = a->in_tail;
    a->in_head = a->in_tail = NULL;
    atomic_store(&a->inbox_n, 0);
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

static bool tag_matches(uint64_t tag, const uint64_t *tags, size_t n)
{
    if (!tags)
        return true;
    for (size_t i = 0; i < n; i++)
        if (tags[i] == tag)
            return true;
    return false;
}

static SnowMessage *receive(const uint64_t *tags, size_t ntags, int timeout_ms)
{
    struct actor *a = actor_self();
    if (!a)
        return NULL;
    actor_check_signals(a);
    if (a->last) {
        free(a->last);
        a->last = NULL;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : actor_deadline_after_ms(timeout_ms);
    struct msg *prev = NULL, *m = a->priv_head;
    for (;;) {
        for (; m; prev = m, m = m->next) {
            if (!tag_matches(m->m.tag, tags, ntags))
                continue;
            if (prev)
                prev->next = m->next;
            else
                a->priv_head = m->next;
            if (a->priv_tail == m)
                a->priv_tail = prev;
            m->next = NULL;
            a->last = m;
            return &m->m;
        }
        /* Everything already in the private list was scanned: go on with
         * what arrived since, starting after the last scanned message. */
        m = drain_inbox(a);
        if (m)
            continue;
        if (timeout_ms == 0)
            return NULL;
        int got = actor_wait(NULL, ACTOR_WAIT_NEW_MAIL, deadline);
        a = actor_self();
        m = drain_inbox(a);
        if (!m && (got & SNOW_WAIT_TIMEOUT))
            return NULL;
    }
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
    a->priv_head = a->priv_tail = NULL;
    free(a->last);
    a->last = NULL;
}
