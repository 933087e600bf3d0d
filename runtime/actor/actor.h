/*
 * actor.h: the actor core's internal interface for the other runtime layers
 * (http, ws, bench, tests). Generated code uses snow_rt.h only.
 *
 * The one waiting primitive is actor_wait: park until the io handle is
 * readable/writable, the mailbox is non-empty, or the deadline passes.
 * Readiness is edge-triggered underneath; actor_wait consumes the readiness
 * it reports, so the pattern is always "try the syscall; on EAGAIN wait".
 */
#ifndef SNOW_ACTOR_H
#define SNOW_ACTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rt.h"

#define ACTOR_STACK_SIZE (64 * 1024)
/* Headroom under which runtime entry points end the actor with
 * SNOW_EXIT_STACK_OVERFLOW instead of calling deeper. */
#define ACTOR_STACK_RESERVE (8 * 1024)
#define ACTOR_DEFAULT_REDUCTIONS 4000

struct actor_spawn_opts {
    int worker;   /* home worker, or -1 for "the caller's / any" */
    bool pinned;  /* run only on the home worker (never stolen) */
    bool link;    /* link to the caller */
    /* Terminate callback installed before the actor first runs, called with
     * the actor's copy of args: it runs even when the actor is killed
     * before its function starts (for resources handed over in args). The
     * function may replace it with snow_actor_set_terminate. */
    void (*terminate)(int reason, void *args);
};

SnowPid actor_spawn(SnowActorFn fn, const void *args, size_t size, const struct actor_spawn_opts *opts);

/* Sends (tag, data) like snow_actor_send but also with the runtime's
 * reserved tags, as from `from` (0: the runtime). */
int actor_send_raw(SnowPid pid, uint64_t tag, SnowPid from, const void *data, size_t len);
/* A runtime message that the receiver may fall behind on (a room message):
 * refused with SNOW_EBACKPRESSURE, nothing queued, while pid's mailbox
 * holds its backlog bound of such messages not received yet (count or
 * bytes, actor_set_backlog), or while it is at its own mailbox limit.
 * Otherwise as actor_send_raw. */
int actor_send_backlog(SnowPid pid, uint64_t tag, const void *data, size_t len);
/* The bound for pid (0: the default, ACTOR_BACKLOG_MSGS / _BYTES; SIZE_MAX:
 * none). 0 or SNOW_ENOPROC. */
int actor_set_backlog(SnowPid pid, size_t max_messages, size_t max_bytes);
#define ACTOR_BACKLOG_MSGS 8192
#define ACTOR_BACKLOG_BYTES ((size_t)16 << 20)

/* Deadline in absolute rt_now_ns() nanoseconds; < 0 means none. */
int actor_wait(SnowIo *io, unsigned events, int64_t deadline_ns);
/* snow_io_open for a socket that is already non-blocking and that only
 * this handle refers to (accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC, never
 * duplicated): the same, without the two fcntl calls, and closing it takes
 * it out of epoll by itself, so the close makes no EPOLL_CTL_DEL. */
SnowIo *actor_io_open_nonblocking(int fd, int *err);
int64_t actor_deadline_after_ms(int64_t ms);
/* The earlier of two deadlines, where a negative one means none. */
static inline int64_t actor_deadline_earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* Like actor_wait, but the stack is given back while parked and fn(arg)
 * starts on a fresh one when any condition holds. Does not return. */
__attribute__((noreturn)) void actor_hibernate(SnowIo *io, unsigned events, int64_t deadline_ns,
                                               void (*fn)(void *), void *arg);
/* In a hibernation continuation: the readiness of the handle it waited on
 * that it started with (SNOW_WAIT_READABLE / WRITABLE / HANGUP), consumed
 * as a wait's result is. 0 when it was woken by something else (mail, the
 * deadline), so a reader need not try the socket before its next wait. */
unsigned actor_woke_ready(void);
/* Whether the poller has seen the peer shut its side of io's socket
 * (EPOLLRDHUP or EPOLLHUP; sticky). A reader that skips the read that
 * would say EAGAIN after a short read must read on while this holds: the
 * end of the stream raised its edge already. */
bool actor_io_peer_shut(SnowIo *io);

/* Runs fn(arg) and catches a panic raised inside it (snow_panic). Returns 0
 * when fn returned, SNOW_EXIT_PANIC when it panicked (the stack between here
 * and the panic is discarded). Kills, exits and stack overflows are not
 * caught: they end the actor. */
int actor_catch(void (*fn)(void *), void *arg);
/* Message of the last caught panic of the calling actor ("" when none). */
const char *actor_panic_message(void);

/* GC root slots of the calling actor's heap. Until removed, every
 * collection of the caller's heap treats the word *slot as a root (read
 * at each collection, so the slot may be re-pointed or set to NULL at any
 * time). The slot must stay valid memory until removed and must not live
 * on the actor's stack if the actor hibernates; a typical slot is a field
 * of a malloc'd per-connection struct holding the user-data pointer. Call
 * only from the actor that owns the heap. Slots go away with the actor.
 * add: 0, -EINVAL (NULL), -ENOMEM, SNOW_ENOT_ACTOR. A slot added twice
 * must be removed twice. remove: 0, -ENOENT (not registered),
 * SNOW_ENOT_ACTOR. */
int actor_gc_root_add(void **slot);
int actor_gc_root_remove(void **slot);
/* Bytes of the calling actor's collector state (the heap's bookkeeping,
 * free-list table, root slots, mark stack) in malloc blocks; *chunk_bytes (when not NULL)
 * gets the bytes of its chunks and large objects. 0 without a heap. */
size_t actor_gc_state_bytes(size_t *chunk_bytes);
/* True when p points into an allocated (not freed) object of the calling
 * actor's heap. For diagnostics and tests. */
bool actor_gc_owns(const void *p);

/* True when called on an actor's stack. */
bool actor_in_actor(void);
/* Current worker index, or -1 outside the worker threads. */
int actor_worker_index(void);
/* Remaining bytes of the calling actor's stack (for tests and diagnostics). */
size_t actor_stack_remaining(void);

/* Measures the raw coroutine switch (no scheduler, no queues): switches
 * between two stacks n times on the calling thread and returns the mean
 * nanoseconds per switch. For bench/ only. */
double actor_bench_switch_ns(long n);

/* Fault injection for tests: while positive, each new stack mapping fails
 * (and the counter drops by one), as when vm.max_map_count or memory runs
 * out. Pooled stacks are still handed out. */
extern atomic_int actor_fail_stack_maps;
/* 1 (default): a new batch of stacks gets its guard pages from one
 * process_madvise; 0: each stack installs its own (the path for kernels
 * without it). */
extern atomic_int actor_stack_batch_advice;
/* While positive, each worker thread start fails (pthread_create, or the
 * thread's alternate signal stack), and the counter drops by one. */
extern atomic_int actor_fail_thread_starts;
extern atomic_int actor_fail_thread_inits;
/* For tests: called by an idle worker after it read the timers and before
 * it announces itself as the poller (the window a timer armed from another
 * thread must not fall into). NULL normally. */
extern void (*actor_test_idle_hook)(void);
/* Returns from an idle worker's blocking wait (epoll or futex) since init. */
long actor_idle_wakeups(void);
/* Messages the calling actor's receives have examined (0 outside an actor). */
long actor_receive_scanned(void);

#endif
