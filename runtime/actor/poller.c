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
#include <unistd.h>

#include "actor/internal.h"
#include "actor/tsan.h"

#define IO_BLOCK 64
#define MAX_EVENTS 256
#define PTR_BITS 48

bool sched_has_work(struct worker *w);
__attribute__((noreturn)) void actor_unwind_hibernate(struct actor *a);

struct io_block {
    struct io_block *next;
    struct SnowIo io[IO_BLOCK];
};

static struct {
    int epfd;
    int evfd;
    atomic_int role; /* 1 while a worker is inside epoll_wait */
    atomic_int interrupted;
    rt_spin_t lock; /* free list and blocks */
    struct SnowIo *free;
    struct io_block *blocks;
} pl = {.epfd = -1, .evfd = -1};

int poller_init(void)
{
    pl.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (pl.epfd < 0)
        return -errno;
    pl.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pl.evfd < 0) {
        int e = errno;
        close(pl.epfd);
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(pl.epfd, EPOLL_CTL_ADD, pl.evfd, &ev);
    atomic_store(&pl.role, 0);
    atomic_store(&pl.interrupted, 0);
    return 0;
}

void poller_fini(void)
{
    close(pl.evfd);
    close(pl.epfd);
    pl.epfd = pl.evfd = -1;
    while (pl.blocks) {
        struct io_block *b = pl.blocks;
        pl.blocks = b->next;
        free(b);
    }
    pl.free = NULL;
}

void poller_interrupt(void)
{
    /* One pending interrupt is enough; skip the syscall if one is queued. */
    if (atomic_exchange(&pl.interrupted, 1))
        return;
    uint64_t one = 1;
    ssize_t n = write(pl.evfd, &one, sizeof one);
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
    return b;
}

int poller_poll(int64_t timeout_ns)
{
    if (atomic_exchange(&pl.role, 1))
        return -1;
    struct worker *w = worker_self();
    if (timeout_ns != 0) {
        atomic_store(&rt.poll_blocked, 1);
        /* Recheck after announcing ourselves: work pushed before the store
         * above was not followed by an interrupt. */
        if (w && sched_has_work(w))
            timeout_ns = 0;
    }
    struct epoll_event evs[MAX_EVENTS];
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int n = epoll_pwait2(pl.epfd, evs, MAX_EVENTS, tsp, NULL);
    if (n < 0 && errno == ENOSYS) {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(pl.epfd, evs, MAX_EVENTS, ms);
    }
    atomic_store(&rt.poll_blocked, 0);
    if (n < 0)
        n = 0;
    int events = 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (!d) {
            uint64_t v;
            ssize_t r = read(pl.evfd, &v, sizeof v);
            (void)r;
            atomic_store(&pl.interrupted, 0);
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
            sched_enqueue(wake, true);
    }
    atomic_store(&pl.role, 0);
    return events;
}

/* ---- handles ------------------------------------------------------------------- */

static struct SnowIo *io_alloc(void)
{
    rt_spin_lock(&pl.lock);
    if (!pl.free) {
        struct io_block *b = calloc(1, sizeof *b);
        if (!b) {
            rt_spin_unlock(&pl.lock);
            return NULL;
        }
        b->next = pl.blocks;
        pl.blocks = b;
        for (int i = 0; i < IO_BLOCK; i++) {
            b->io[i].next = pl.free;
            pl.free = &b->io[i];
        }
    }
    struct SnowIo *io = pl.free;
    pl.free = io->next;
    rt_spin_unlock(&pl.lock);
    io->next = NULL;
    return io;
}

static void io_free(struct SnowIo *io)
{
    rt_spin_lock(&pl.lock);
    io->next = pl.free;
    pl.free = io;
    rt_spin_unlock(&pl.lock);
}

SnowIo *snow_io_open(int fd, int *err)
{
    struct actor *a = actor_self();
    int e = 0;
    struct SnowIo *io = NULL;
    if (!a) {
        e = SNOW_ENOT_ACTOR;
        goto out;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        e = -errno;
        goto out;
    }
    io = io_alloc();
    if (!io) {
        e = -ENOMEM;
        goto out;
    }
    rt_spin_lock(&io->lock);
    io->fd = fd;
    io->owner = a;
    atomic_store(&io->ready, 0);
    uint16_t gen = io->gen;
    rt_spin_unlock(&io->lock);
    actor_tsan_release(io); /* paired with the acquire in poller_poll (tsan.h) */
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = (uint64_t)(uintptr_t)io | ((uint64_t)gen << PTR_BITS),
    };
    if (epoll_ctl(pl.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
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

static void io_release(struct SnowIo *io, bool close_fd)
{
    rt_spin_lock(&io->lock);
    io->gen++;
    io->owner = NULL;
    int fd = io->fd;
    io->fd = -1;
    rt_spin_unlock(&io->lock);
    epoll_ctl(pl.epfd, EPOLL_CTL_DEL, fd, NULL);
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
    if (atomic_load(&a->kill_reason) >= 0 && !a->exiting)
        c |= SNOW_WAIT_SIGNAL;
    /* a->priv_head is the owner's; this runs on the owner's behalf (its
     * own stack, or its worker while it hibernates). */
    if ((events & (SNOW_WAIT_MAILBOX | ACTOR_WAIT_NEW_MAIL)) && atomic_load(&a->inbox_n))
        c |= SNOW_WAIT_MAILBOX;
    if ((events & SNOW_WAIT_MAILBOX) && a->priv_head)
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
    atomic_store(&a->state, A_RUNNING);
    if (armed)
        timer_disarm(&a->wait_timer);
    atomic_store_explicit(&a->wait_events, 0, memory_order_relaxed);
    a->wait_io = NULL;
    if (got & SNOW_WAIT_SIGNAL)
        actor_check_signals(a);
    if (io)
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
    /* actor_catch frames live on the stack being given up. */
    a->catch_jb = NULL;
    publish_wait(a, io, events);
    a->wait_deadline = deadline;
    if (deadline >= 0) {
        a->wait_timer.due_ns = deadline;
        timer_arm(&a->wait_timer);
    }
    /* WAITING before the stack is given up: a notify that comes while we
     * unwind turns it into NOTIFIED and the worker restarts us at once. */
    atomic_store(&a->state, A_WAITING);
    actor_unwind_hibernate(a);
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
