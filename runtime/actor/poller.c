/*
 * poller.c: epoll integrated with the scheduler, I/O handles, and
 * actor_wait, the one parking primitive.
 *
 * Every fd is registered once, edge-triggered, for both directions. The
 * poller records readiness bits in the handle and notifies the owner; the
 * owner consumes the bits it asked for when actor_wait returns. A stale bit
 * costs one extra EAGAIN, never a lost edge: an edge that arrives after the
 * bits were consumed sets them again.
 *
 * Handles are type-stable: they are recycled through a free list and never
 * returned to malloc while the runtime runs, and each epoll event carries
 * the handle's 16-bit generation next to its address. An event that races
 * with snow_io_close finds a bumped generation (checked under the handle's
 * lock) and is dropped, so the poller never touches a closed handle's owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actor/internal.h"
#include "actor/tsan.h"
#include "sys.h"

#define IO_BLOCK 64
#define MAX_EVENTS 256
#define PTR_BITS 48

struct io_block {
    struct io_block *next;
    struct SnowIo io[IO_BLOCK];
};


int poller_init(void)
{
    rt.poller.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rt.poller.epfd < 0)
        return -errno;
    rt.poller.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rt.poller.evfd < 0) {
        int e = errno;
        close(rt.poller.epfd);
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(rt.poller.epfd, EPOLL_CTL_ADD, rt.poller.evfd, &ev);
    /* seq_cst though nothing runs yet (init): not a hot path */
    atomic_store(&rt.poller.role, 0);
    atomic_store(&rt.poller.interrupted, 0);
    atomic_store(&rt.poller.open, 0);
    return 0;
}

void poller_fini(void)
{
    close(rt.poller.evfd);
    close(rt.poller.epfd);
    rt.poller.epfd = rt.poller.evfd = -1;
    while (rt.poller.blocks) {
        struct io_block *b = rt.poller.blocks;
        rt.poller.blocks = b->next;
        free(b);
    }
    rt.poller.free = NULL;
}

void poller_interrupt(void)
{
    /* One pending interrupt is enough; skip the syscall if one is queued. */
    /* seq_cst: pairs with the poller clearing the flag (after it read the
     * eventfd): an interrupt set after that clear writes the eventfd again */
    if (atomic_exchange(&rt.poller.interrupted, 1))
        return;
    uint64_t one = 1;
    ssize_t n = write(rt.poller.evfd, &one, sizeof one);
    (void)n;
}

static unsigned bits_of(uint32_t ev)
{
    unsigned b = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLPRI))
        b |= SNOW_WAIT_READABLE;
    if (ev & EPOLLOUT)
        b |= SNOW_WAIT_WRITABLE;
    if (ev & (EPOLLERR | EPOLLHUP))
        b |= SNOW_WAIT_HANGUP | SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE;
    if (ev & (EPOLLRDHUP | EPOLLHUP))
        b |= ACTOR_IO_PEER_SHUT;
    return b;
}

bool actor_io_peer_shut(SnowIo *io)
{
    /* seq_cst: the poller's fetch_or happened before the wake-up that let
     * the reader see the bytes in front of the end of the stream, or it
     * comes later with a new edge that wakes the reader again. */
    return io && (atomic_load(&io->ready) & ACTOR_IO_PEER_SHUT);
}

bool poller_role_held(void)
{
    /* seq_cst: an idle worker stores `sleeping`, then loads this; the
     * poller stores it (release of the role) before its loads of
     * `sleeping` in the hand-off (worker_main's after_slice). */
    return atomic_load(&rt.poller.role) != 0;
}

long poller_open_handles(void)
{
    /* relaxed: a hint for busy workers whether to poll at all */
    return atomic_load_explicit(&rt.poller.open, memory_order_relaxed);
}

int64_t poller_last_poll_ns(void)
{
    /* relaxed: a hint for busy workers when to poll */
    return atomic_load_explicit(&rt.poller.last_poll_ns, memory_order_relaxed);
}

long actor_idle_wakeups(void)
{
    return atomic_load_explicit(&rt.idle_wakeups, memory_order_relaxed); /* statistics only */
}

/* epoll_pwait2 without the libc wrapper's cancellation switches (sys.h):
 * a busy worker polls every 100 microseconds and whenever its queue runs
 * dry, several times per millisecond at depth-1 echo. Returns the count
 * or -errno. */
static int poll_events(struct epoll_event *evs, const struct timespec *tsp)
{
#ifndef RT_SYS_LIBC
    return (int)rt_sys6(SYS_epoll_pwait2, rt.poller.epfd, (long)evs, MAX_EVENTS, (long)tsp, 0, 0);
#else
    int n = epoll_pwait2(rt.poller.epfd, evs, MAX_EVENTS, tsp, NULL);
    return n < 0 ? -errno : n;
#endif
}

int poller_poll(bool block, int64_t until_ns)
{
    /* seq_cst exchange: one poller at a time; see poller_role_held */
    if (atomic_exchange(&rt.poller.role, 1))
        return -1;
    struct worker *w = worker_self();
    int64_t timeout_ns = 0;
    if (block) {
        atomic_store(&rt.poll_blocked, 1);
        /* After announcing ourselves: work pushed before the store above
         * was not followed by an interrupt (the fence pairs with the one in
         * wake_idle), and a timer armed before it did not interrupt us
         * (seq_cst store here, seq_cst load of the due time; the arming
         * side stores the due time, then loads poll_blocked). */
        atomic_thread_fence(memory_order_seq_cst);
        int64_t due = timers_next_due();
        if (due < until_ns)
            until_ns = due;
        bool work = w && sched_has_work(w);
        /* a queue not worth taking yet: look again then (sched.c) */
        if (w && w->watch_until < until_ns)
            until_ns = w->watch_until;
        if (work)
            timeout_ns = 0;
        else if (until_ns == INT64_MAX)
            timeout_ns = -1;
        else if ((timeout_ns = until_ns - rt_now_ns()) < 0)
            timeout_ns = 0;
    }
    struct epoll_event evs[MAX_EVENTS];
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int n = poll_events(evs, tsp);
    if (n == -ENOSYS) {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(rt.poller.epfd, evs, MAX_EVENTS, ms);
    }
    if (block) {
        /* seq_cst though relaxed would do (a waker that still sees 1 makes a
         * spare interrupt): once per blocking poll */
        atomic_store(&rt.poll_blocked, 0);
        if (timeout_ns != 0)
            atomic_fetch_add_explicit(&rt.idle_wakeups, 1, memory_order_relaxed); /* statistics only */
    }
    atomic_store_explicit(&rt.poller.last_poll_ns, rt_now_ns(), memory_order_relaxed); /* a hint, as read */
    if (n < 0)
        n = 0;
    int events = 0;
    /* Woken owners, in the order of their events (sched_wake_flush):
     * the first runs next, the others queue in order; on a worker with
     * actors already waiting, all of them queue behind those. Each used to
     * take the worker's runnext slot in turn, pushing the one before to
     * the queue's tail, so the last handle reported ran first. */
    struct sched_wakes woken = {.behind_queue = true};
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (!d) {
            uint64_t v;
            ssize_t r = read(rt.poller.evfd, &v, sizeof v);
            (void)r;
            atomic_store(&rt.poller.interrupted, 0); /* see poller_interrupt */
            continue;
        }
        struct SnowIo *io = (struct SnowIo *)(uintptr_t)(d & ((UINT64_C(1) << PTR_BITS) - 1));
        actor_tsan_acquire(io); /* the registration happened before its event (tsan.h) */
        uint16_t gen = (uint16_t)(d >> PTR_BITS);
        unsigned bits = bits_of(evs[i].events);
        struct actor *wake = NULL;
        rt_spin_lock(&io->lock);
        if (io->gen == gen && io->owner) {
            atomic_fetch_or(&io->ready, bits); /* seq_cst: pairs with the owner's state store */
            if (actor_notify_begin(io->owner, bits))
                wake = io->owner;
            events++;
        }
        rt_spin_unlock(&io->lock);
        if (wake)
            sched_wake_add(&woken, wake);
    }
    sched_wake_flush(&woken);
    /* seq_cst: see poller_role_held */
    atomic_store(&rt.poller.role, 0);
    return events;
}

/* ---- handles ------------------------------------------------------------------- */

static struct SnowIo *io_alloc(void)
{
    struct io_block *b = NULL;
    for (;;) {
        rt_spin_lock(&rt.poller.lock);
        if (rt.poller.free || b)
            break;
        /* No allocation under the spinlock: allocate, then look again. */
        rt_spin_unlock(&rt.poller.lock);
        if (!(b = calloc(1, sizeof *b)))
            return NULL;
    }
    if (b && !rt.poller.free) {
        b->next = rt.poller.blocks;
        rt.poller.blocks = b;
        for (int i = 0; i < IO_BLOCK; i++) {
            b->io[i].next = rt.poller.free;
            rt.poller.free = &b->io[i];
        }
        b = NULL;
    }
    struct SnowIo *io = rt.poller.free;
    rt.poller.free = io->next;
    rt_spin_unlock(&rt.poller.lock);
    free(b); /* another thread refilled the list meanwhile */
    io->next = NULL;
    atomic_fetch_add_explicit(&rt.poller.open, 1, memory_order_relaxed); /* a count, see poller_open_handles */
    return io;
}

static void io_free(struct SnowIo *io)
{
    atomic_fetch_sub_explicit(&rt.poller.open, 1, memory_order_relaxed); /* a count, as above */
    rt_spin_lock(&rt.poller.lock);
    io->next = rt.poller.free;
    rt.poller.free = io;
    rt_spin_unlock(&rt.poller.lock);
}

static SnowIo *io_open(int fd, int *err, bool set_nonblocking)
{
    struct actor *a = actor_self();
    int e = 0;
    struct SnowIo *io = NULL;
    if (!a) {
        e = SNOW_ENOT_ACTOR;
        goto out;
    }
    if (set_nonblocking) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            e = -errno;
            goto out;
        }
    }
    io = io_alloc();
    if (!io) {
        e = -ENOMEM;
        goto out;
    }
    rt_spin_lock(&io->lock);
    io->fd = fd;
    io->sole = !set_nonblocking;
    io->owner = a;
    atomic_store(&io->ready, 0); /* under the handle lock, before epoll knows the fd */
    uint16_t gen = io->gen;
    rt_spin_unlock(&io->lock);
    actor_tsan_release(io); /* paired with the acquire in poller_poll (tsan.h) */
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = (uint64_t)(uintptr_t)io | ((uint64_t)gen << PTR_BITS),
    };
    if (epoll_ctl(rt.poller.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        e = -errno;
        rt_spin_lock(&io->lock);
        io->owner = NULL;
        io->gen++;
        rt_spin_unlock(&io->lock);
        io_free(io);
        io = NULL;
        goto out;
    }
    io->next = a->ios;
    a->ios = io;
out:
    if (err)
        *err = e;
    return io;
}

SnowIo *snow_io_open(int fd, int *err)
{
    return io_open(fd, err, true);
}

SnowIo *actor_io_open_nonblocking(int fd, int *err)
{
    return io_open(fd, err, false);
}

static void io_release(struct SnowIo *io, bool close_fd)
{
    rt_spin_lock(&io->lock);
    io->gen++;
    io->owner = NULL;
    int fd = io->fd;
    io->fd = -1;
    rt_spin_unlock(&io->lock);
    /* Closing an fd that no other descriptor shares releases its file,
     * which takes it out of the epoll set (epoll(7)): one system call
     * fewer per accepted connection. An event the poller already fetched
     * finds the bumped generation either way. */
    if (!(close_fd && io->sole))
        epoll_ctl(rt.poller.epfd, EPOLL_CTL_DEL, fd, NULL);
    if (close_fd)
        close(fd);
    io_free(io);
}

void snow_io_close(SnowIo *io)
{
    if (!io)
        return;
    struct actor *a = actor_self();
    if (a) {
        for (struct SnowIo **pp = &a->ios; *pp; pp = &(*pp)->next)
            if (*pp == io) {
                *pp = io->next;
                break;
            }
        if (a->wait_io == io)
            a->wait_io = NULL;
    }
    io_release(io, true);
}

void io_close_all(struct actor *a)
{
    while (a->ios) {
        struct SnowIo *io = a->ios;
        a->ios = io->next;
        io_release(io, true);
    }
    a->wait_io = NULL;
}

int snow_io_fd(const SnowIo *io)
{
    return io ? io->fd : -1;
}

/* ---- waiting ----------------------------------------------------------------------- */

unsigned actor_wait_conditions(struct actor *a, struct SnowIo *io, unsigned events, int64_t deadline)
{
    unsigned c = 0;
    /* seq_cst loads of kill_reason, inbox_n and ready: the waiter's half of
     * the park/notify protocol, after its seq_cst store of WAITING
     * (sched.c); each pairs with the notifier's seq_cst write of it. */
    if (atomic_load(&a->kill_reason) >= 0 && !a->exiting)
        c |= SNOW_WAIT_SIGNAL;
    /* a->priv_head is the owner's; this runs on the owner's behalf (its
     * own stack, or its worker while it hibernates). */
    if ((events & SNOW_WAIT_MAILBOX) && (atomic_load(&a->inbox_n) || a->priv_head))
        c |= SNOW_WAIT_MAILBOX;
    if ((events & ACTOR_WAIT_NEW_MAIL) && mailbox_has_unseen(a))
        c |= SNOW_WAIT_MAILBOX;
    if (io && (events & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE))) {
        unsigned r = atomic_load(&io->ready);
        c |= r & events & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE);
        c |= r & SNOW_WAIT_HANGUP;
    }
    if (deadline >= 0 && rt_now_ns() >= deadline)
        c |= SNOW_WAIT_TIMEOUT;
    return c;
}

static void publish_wait(struct actor *a, struct SnowIo *io, unsigned events)
{
    a->wait_io = io;
    /* relaxed: published by the seq_cst store of WAITING that follows */
    atomic_store_explicit(&a->wait_events, events | SNOW_WAIT_SIGNAL, memory_order_relaxed);
}

int actor_wait(SnowIo *io, unsigned events, int64_t deadline)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    publish_wait(a, io, events);
    a->wait_deadline = deadline;
    bool armed = false;
    unsigned got;
    for (;;) {
        /* seq_cst: step 2 of the protocol, before the condition loads */
        atomic_store(&a->state, A_WAITING);
        got = actor_wait_conditions(a, io, events, deadline);
        if (got)
            break;
        if (deadline >= 0 && !armed) {
            a->wait_timer.due_ns = deadline;
            timer_arm(&a->wait_timer);
            armed = true;
        }
        sched_switch_out(SW_PARK);
        a = actor_self();
    }
    /* seq_cst though relaxed would do (notifiers ignore RUNNING and may
     * already have moved WAITING to NOTIFIED, which this overwrites): kept,
     * once per wait */
    atomic_store(&a->state, A_RUNNING);
    if (armed)
        timer_disarm(&a->wait_timer);
    atomic_store_explicit(&a->wait_events, 0, memory_order_relaxed); /* read only while WAITING/PARKED */
    a->wait_io = NULL;
    if (got & SNOW_WAIT_SIGNAL)
        actor_check_signals(a);
    if (io)
        /* seq_cst RMW: an edge the poller sets after this is kept */
        atomic_fetch_and(&io->ready, ~(got & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE)));
    return (int)got;
}

void actor_hibernate(SnowIo *io, unsigned events, int64_t deadline, void (*fn)(void *), void *arg)
{
    struct actor *a = actor_self();
    if (!a) {
        rt_log(RT_LOG_ERROR, "hibernate called outside an actor");
        abort();
    }
    a->fn = (SnowActorFn)fn;
    a->arg = arg;
    /* The stack is about to be given up: arg is the continuation's only
     * state, which makes this the point to compact the heap (gc.c). */
    actor_gc_hibernate(a);
    /* actor_catch frames live on the stack being given up. */
    a->catch_jb = NULL;
    /* A message that a selective receive already skipped does not end the
     * hibernation (the continuation would only skip it again and hibernate
     * at once, for ever): only one no receive has examined does. */
    if (events & SNOW_WAIT_MAILBOX)
        events = (events & ~SNOW_WAIT_MAILBOX) | ACTOR_WAIT_NEW_MAIL;
    publish_wait(a, io, events);
    a->wait_deadline = deadline;
    if (deadline >= 0) {
        a->wait_timer.due_ns = deadline;
        timer_arm(&a->wait_timer);
    }
    /* WAITING before the stack is given up: a notify that comes while we
     * unwind turns it into NOTIFIED and the worker restarts us at once. */
    atomic_store(&a->state, A_WAITING); /* seq_cst: step 2, as in actor_wait */
    actor_unwind_hibernate(a);
}

unsigned actor_woke_ready(void)
{
    struct actor *a = actor_self();
    return a ? a->woke : 0;
}

void snow_actor_hibernate(void (*fn)(void *arg), void *arg)
{
    actor_hibernate(NULL, SNOW_WAIT_MAILBOX, -1, fn, arg);
}

int snow_wait(SnowIo *io, unsigned events, int timeout_ms)
{
    if (!actor_self())
        return SNOW_ENOT_ACTOR;
    events &= SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE | SNOW_WAIT_MAILBOX;
    return actor_wait(io, events, timeout_ms < 0 ? -1 : actor_deadline_after_ms(timeout_ms));
}
