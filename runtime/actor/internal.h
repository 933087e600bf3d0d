/*
 * internal.h: the actor core's private structures, shared by the files of
 * runtime/actor/ only.
 *
 * Concurrency map (who may touch what):
 *   - struct actor fields marked [owner] are touched only by the actor itself
 *     (on its own stack) or by the worker running it between switches.
 *   - fields marked [slot] are guarded by the process-table slot lock of the
 *     actor (struct proc_slot.lock); senders, linkers and killers take it.
 *   - state is atomic: see the park/notify protocol in sched.c.
 * Never hold two slot locks at once; a slot lock may be held while taking a
 * run-queue lock or the timer lock, never the other way round.
 */
#ifndef SNOW_ACTOR_INTERNAL_H
#define SNOW_ACTOR_INTERNAL_H

#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "actor/actor.h"
#include "rt.h"

struct worker;

/* ---- spinlock ---------------------------------------------------------- */

typedef struct {
    atomic_int v;
} rt_spin_t;

static inline void rt_spin_lock(rt_spin_t *l)
{
    for (;;) {
        if (!atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(&l->v, memory_order_relaxed))
            __builtin_ia32_pause();
    }
}

static inline bool rt_spin_trylock(rt_spin_t *l)
{
    return !atomic_load_explicit(&l->v, memory_order_relaxed) &&
           !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}

static inline void rt_spin_unlock(rt_spin_t *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_release);
}

/* ---- coroutine context and stacks ------------------------------------- */

struct rt_ctx {
    void *sp;
};

/* Saves callee-saved registers on the current stack, stores the stack
 * pointer in from->sp, loads to->sp and returns on that stack. No system
 * call: the signal mask is not touched (ctx_x86_64.S). */
void rt_ctx_switch(struct rt_ctx *from, struct rt_ctx *to);

/* A guarded coroutine stack: [guard page][usable ... | struct stack]. The
 * header lives at the top of the mapping so a fresh stack's only touched page
 * holds both the header and the first frames. */
struct stack {
    struct rt_ctx ctx;  /* saved stack pointer while switched out */
    char *lo;           /* lowest usable byte (just above the guard page) */
    char *map;          /* start of the mapping (the guard page) */
    size_t usable;      /* bytes between lo and this header */
    struct stack *next; /* pool link */
    void *asan_fake;    /* ASan fake-stack handle across switches */
    void *tsan_fiber, *tsan_back; /* TSan contexts of this stack and of its worker (tsan.h) */
    jmp_buf top;        /* the trampoline's unwind point: exits land here */
};

struct stack *stack_get(struct worker *w);
void stack_put(struct worker *w, struct stack *s);
void stack_pool_fini(void);
void stack_signal_init(void);
int stack_thread_init(struct worker *w);
void stack_thread_fini(struct worker *w);

/* ---- messages and heap ----------------------------------------------- */

struct msg {
    SnowMessage m;   /* what receive hands out; m.data points just past us */
    struct msg *next;
    uint64_t pad_;   /* keeps the payload 16-byte aligned */
};

struct msg *msg_new(uint64_t tag, SnowPid from, const void *data, size_t len);
void msg_free_list(struct msg *m);

struct heap_chunk;
struct heap {
    struct heap_chunk *chunks; /* newest first */
    char *bump, *end;
    struct msg *kept;          /* messages moved here by snow_msg_keep */
};

void *heap_alloc(struct heap *h, size_t size);
void heap_free_all(struct heap *h);

/* ---- timers --------------------------------------------------------------- */

struct timer {
    int64_t due_ns;
    /* Position in the heap, -1 when not armed. Written under the timer
     * lock; read without it only by timer_disarm's fast path, where a
     * stale value just means taking the lock (relaxed is enough). */
    _Atomic int32_t idx;
    uint8_t kind;    /* TIMER_WAKE or TIMER_SEND */
    SnowPid pid;     /* whom to wake or send to */
    uint64_t id;     /* TIMER_SEND: the reference handed out */
    struct msg *msg; /* TIMER_SEND: the message to deliver */
};

enum { TIMER_WAKE = 1, TIMER_SEND = 2 };

void timer_arm(struct timer *t);
void timer_disarm(struct timer *t);
/* Fires every timer due at now; returns how many fired. */
int timers_run(int64_t now);
/* Earliest deadline, INT64_MAX when none. Lock-free read. */
int64_t timers_next_due(void);
void timers_fini(void);

/* ---- I/O handles ------------------------------------------------------- */

struct SnowIo {
    rt_spin_t lock;
    uint16_t gen;          /* bumped on close; stale epoll events are dropped */
    int fd;
    atomic_uint ready;     /* SNOW_WAIT_READABLE/WRITABLE/HANGUP seen, not consumed */
    struct actor *owner;   /* [lock] the actor to notify */
    struct SnowIo *next;   /* owner's list, or free list */
};

int poller_init(void);
void poller_fini(void);
/* Collects readiness and notifies owners. timeout_ns < 0 blocks. Returns
 * the number of events, or -1 when another worker holds the poll role. */
int poller_poll(int64_t timeout_ns);
/* Wakes a worker blocked in poller_poll. */
void poller_interrupt(void);
void io_close_all(struct actor *a);

/* ---- actors ------------------------------------------------------------ */

enum actor_state {
    A_RUNNABLE = 0, /* in a run queue */
    A_RUNNING,      /* on a worker, not waiting */
    A_WAITING,      /* on a worker, about to park: conditions being checked */
    A_NOTIFIED,     /* was WAITING when a notify came: do not park */
    A_PARKED,       /* off every queue, waiting for a notify */
    A_DEAD
};

struct link_vec {
    SnowPid *v;
    uint32_t n, cap;
};

struct mon {
    uint64_t ref;
    SnowPid pid; /* on the target: the watcher; on the watcher: the target */
};

struct mon_vec {
    struct mon *v;
    uint32_t n, cap;
};

struct proc_slot;

struct actor {
    _Atomic int state;
    int16_t home;          /* home worker, -1 none */
    uint8_t pinned;
    uint8_t trap_exit;     /* [slot] read by signal senders */
    uint8_t exiting;       /* [owner] finishing: further kills ignored */
    int32_t reductions;    /* [owner] */
    SnowPid pid;
    struct proc_slot *slot;
    struct actor *next;    /* run-queue link */
    struct stack *stack;   /* NULL before start and while hibernating */
    SnowActorFn fn;        /* entry: spawn function or hibernate continuation */
    void *arg;
    /* waiting [owner writes before publishing WAITING; wakers read] */
    _Atomic unsigned wait_events;
    struct SnowIo *wait_io;
    struct timer wait_timer;
    int64_t wait_deadline;
    atomic_int kill_reason; /* -1 none; an exit signal to act on */
    int exit_reason;        /* [owner] */
    /* mailbox */
    atomic_uint inbox_n;    /* [slot] written, read lock-free by the owner */
    struct msg *in_head, *in_tail;  /* [slot] */
    struct msg *priv_head, *priv_tail; /* [owner] moved from inbox, not yet taken */
    struct msg *last;       /* [owner] handed out by the last receive */
    struct heap heap;       /* [owner] */
    struct link_vec links;  /* [slot] */
    struct mon_vec watchers; /* [slot] monitors on me */
    struct mon_vec watching; /* [owner] monitors I hold */
    void (*term_cb)(int, void *); /* [owner] */
    void *term_arg;
    struct SnowIo *ios;     /* [owner] handles to close at exit */
    char *name;             /* [registry lock] */
    jmp_buf *catch_jb;      /* [owner] innermost actor_catch frame */
    char *panic_msg;        /* [owner] */
};

/* ---- process table -------------------------------------------------------- */

struct proc_slot {
    rt_spin_t lock;
    uint32_t next_free;
    SnowPid pid;          /* [lock] current pid of this slot (0 when free) */
    struct actor *actor;  /* [lock] NULL when free or dead */
};

int proc_init(void);
void proc_fini(void);
/* Installs a in a free slot; sets a->pid and a->slot. */
int proc_insert(struct actor *a);
/* Locks the slot of pid and returns its live actor, or NULL (slot unlocked). */
struct actor *proc_lock(SnowPid pid, struct proc_slot **slot);
void proc_release(struct proc_slot *slot);
/* Visits every live pid (for shutdown). */
void proc_each(void (*fn)(SnowPid pid, void *arg), void *arg);

/* ---- workers and the scheduler -------------------------------------------- */

struct runq {
    rt_spin_t lock;
    struct actor *head, *tail;
    /* Length: written under the lock, read without it as a hint by idle
     * and stealing workers (relaxed); the lock orders the list itself. The
     * wake-up protocol adds its own seq_cst fence (sched.c). */
    _Atomic uint32_t n;
};

struct worker {
    int index;
    pthread_t thread;
    struct rt_ctx sched_ctx;   /* the worker's own stack while an actor runs */
    struct actor *current;
    struct actor *runnext;     /* woken by the running actor: runs next, not stolen */
    struct runq q;             /* stealable */
    struct runq pq;            /* pinned to this worker */
    atomic_int sleeping;       /* 1 while parked on its futex */
    int switch_why;            /* why the actor switched out (SW_*) */
    uint32_t tick;
    uint32_t runnext_streak;
    uint64_t rng;
    struct actor *starved;     /* runnable, but no stack could be had */
    int64_t starved_retry_ns;  /* when to try them again */
    struct actor *actor_cache; /* freed actor structs, reused by spawn */
    int actor_cache_n;
    struct stack *stack_cache; /* a few free stacks without locking */
    int stack_cache_n;
    void *asan_fake;
    void *sys_stack_lo;        /* bounds of the worker thread's own stack (ASan) */
    size_t sys_stack_size;
    void *altstack;            /* SIGSEGV handler stack */
};

enum { SW_YIELD = 1, SW_PARK, SW_HIBERNATE, SW_EXIT };

/* Internal wait event: only messages that arrived since the mailbox was last
 * drained count (selective receive has already scanned the rest), where
 * SNOW_WAIT_MAILBOX counts every unread message. Reported as
 * SNOW_WAIT_MAILBOX. */
#define ACTOR_WAIT_NEW_MAIL (1u << 16)

struct runtime {
    int nworkers;
    struct worker *workers;
    atomic_int running;         /* 1 between init and the end of run */
    atomic_int stopping;        /* workers leave their loops */
    atomic_int shutdown_req;    /* snow_rt_shutdown was called */
    atomic_long live;           /* actors spawned and not yet freed */
    atomic_int run_word;        /* futex the snow_rt_run caller sleeps on */
    atomic_int poll_blocked;    /* a worker sits in epoll_wait */
    atomic_uint rr;             /* round robin for wakes from outside */
    int32_t reductions;         /* budget per slice */
};

extern struct runtime rt;

/* The calling thread's worker (NULL outside workers). Never inlined: a
 * coroutine may resume on another thread, and an inlined TLS address could
 * be cached across the switch. */
struct worker *worker_self(void);
struct actor *actor_self(void);

/* Makes a runnable actor eligible to run; w is the calling worker or NULL. */
void sched_enqueue(struct actor *a, bool from_waker);
/* Wakes an actor waiting for any of the conditions in mask (0 = always).
 * It only moves the state; when it returns true the caller owns the now
 * RUNNABLE actor and must pass it to sched_enqueue, after dropping any
 * spinlock it holds (enqueueing may make a system call to wake a worker,
 * which must never happen under a spinlock). */
bool actor_notify_begin(struct actor *a, unsigned mask);
/* Switches from the running actor to its worker's scheduler loop. */
void sched_switch_out(int why);
/* Makes an idle worker look again (wakes a sleeper or the poller): a new
 * earliest timer needs a worker waiting on it. */
void sched_kick_idle(void);
void sched_actor_freed(void);

/* Ends the calling actor now (unwinds to its trampoline). */
__attribute__((noreturn)) void actor_exit_now(int reason);
/* Acts on a pending exit signal, if any. */
void actor_check_signals(struct actor *a);
/* Runs every exit step on the actor's own stack: terminate callback, io,
 * table, links, monitors, registry, heap. */
void actor_finish(struct actor *a);
void actor_free(struct actor *a);
void actor_cache_fini(void);
/* Delivers an exit signal from `from` with reason to pid. Returns 0, or
 * SNOW_ENOPROC when pid is not alive. */
int actor_signal_exit(SnowPid pid, SnowPid from, int reason, bool from_link);
/* Appends a message to the locked slot's actor. Returns the actor when it
 * must be enqueued once the slot lock is released, else NULL. */
struct actor *mailbox_push_locked(struct actor *a, struct msg *m);
/* Frees what the owner still holds (the inbox is taken at the exit). */
void mailbox_free(struct actor *a);
void registry_remove_actor(struct actor *a);
void registry_fini(void);
void monitors_exit(struct actor *a, struct mon_vec *watchers, int reason);

/* Entry point at the top of every stack: runs actors until the end of time. */
void stack_trampoline(void);

static inline bool rt_futex_wait(atomic_int *addr, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0) == 0;
}
static inline void rt_futex_wake(atomic_int *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#endif
