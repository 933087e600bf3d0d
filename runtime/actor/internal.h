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
#include <stddef.h>
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
    struct rt_ctx ctx;  /* saved stack pointer while no actor holds the stack (else in struct actor) */
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
    uint64_t seq;    /* per receiver, in arrival order */
    /* 1: a buffer of MSG_SMALL payload bytes, which msg_free keeps in the
     * freeing worker's cache; 0: malloc'd for its length. Kept apart from
     * m.len, which the receiver can see. The pad keeps the payload 16-byte
     * aligned. */
    uint32_t small;
    /* 1: counted in the receiver's room backlog (actor_send_backlog) until
     * it is received. */
    uint32_t backlog;
    uint32_t pad[2];
};

/* Payload bytes of a cached message buffer: every message up to this size
 * is allocated at this size, so that any of them can serve the next. */
#define MSG_SMALL 64

/* ---- free-record caches (magazine.c) ---------------------------------------- */

/* The most batches a shared pool holds. */
#define MAG_POOL_BATCHES 128

/* One kind of record: where its free-list link is, how many records a
 * batch has, how many batches the shared pool keeps. */
struct mag_kind {
    size_t link;
    int batch;
    int pool_max; /* at most MAG_POOL_BATCHES */
};

/* One worker's cache of one kind [the worker's own]. */
struct mag {
    void *cur;  /* chain taken from and given to */
    int cur_n;
    void *full; /* a complete batch in reserve, or NULL */
};

/* The shared pool of one kind: whole batches. */
struct mag_pool {
    rt_spin_t lock;
    atomic_int n; /* batches held; written under the lock, read without it as a hint */
    void *batch[MAG_POOL_BATCHES];
};

static inline void **mag_link(const struct mag_kind *k, void *x)
{
    return (void **)((char *)x + k->link);
}

void *mag_take_slow(struct mag *m, struct mag_pool *p, const struct mag_kind *k);
void *mag_put_slow(struct mag *m, struct mag_pool *p, const struct mag_kind *k, void *x);

/* A cached free record, or NULL (allocate one). */
static inline void *mag_take(struct mag *m, struct mag_pool *p, const struct mag_kind *k)
{
    if (RT_UNLIKELY(!m->cur_n))
        return mag_take_slow(m, p, k);
    void *x = m->cur;
    m->cur = *mag_link(k, x);
    m->cur_n--;
    return x;
}

/* Caches x. Returns NULL, or a chain of k->batch records that neither the
 * worker nor the pool has room for: the caller frees them
 * (mag_free_chain). */
static inline void *mag_put(struct mag *m, struct mag_pool *p, const struct mag_kind *k, void *x)
{
    if (RT_UNLIKELY(m->cur_n == k->batch))
        return mag_put_slow(m, p, k, x);
    *mag_link(k, x) = m->cur;
    m->cur = x;
    m->cur_n++;
    return NULL;
}
void mag_free_chain(const struct mag_kind *k, void *chain, void (*release)(void *));
/* At teardown, after the workers stopped: releases what is cached. */
void mag_fini(struct mag *m, const struct mag_kind *k, void (*release)(void *));
void mag_pool_fini(struct mag_pool *p, const struct mag_kind *k, void (*release)(void *));

struct msg *msg_new(uint64_t tag, SnowPid from, const void *data, size_t len);
/* Frees one message (to the calling worker's cache when small). */
void msg_free(struct msg *m);
void msg_free_list(struct msg *m);
void msg_cache_fini(void);

struct heap_space;
struct heap {
    struct heap_space *space;  /* chunks and collector state (gc.h); NULL until used */
    struct msg *kept;          /* messages moved here by snow_msg_keep */
};

/* Allocates without ever collecting: also used on another thread's behalf
 * (spawn arguments) before the actor runs. snow_gc_alloc may collect. */
void *heap_alloc(struct heap *h, size_t size);
void heap_free_all(struct heap *h);

/* ---- timers --------------------------------------------------------------- */

/* A timer is its own heap node (an intrusive pairing heap, timer.c): arming
 * never allocates, so it cannot fail, and nothing is reallocated under the
 * timer lock. */
struct timer {
    /* [lock] position in the heap: a send timer's due time; a wake timer's
     * may precede its deadline (timer.c, lazy re-arming) */
    int64_t key_ns;
    struct timer *child, *sibling;
    struct timer *prev; /* parent when first child, else the previous sibling */
    /* Written under the timer lock; read without it only by timer_disarm's
     * fast path, where a stale true just means taking the lock (relaxed). */
    _Atomic bool armed;
    uint8_t kind;          /* TIMER_WAKE or TIMER_SEND */
    SnowPid pid;           /* whom to wake or send to */
    union {
        struct {                    /* TIMER_SEND */
            uint64_t id;            /* the reference handed out */
            struct timer *map_next; /* reference hash chain */
            struct msg *msg;        /* the message to deliver */
        };
        struct {                    /* TIMER_WAKE */
            int64_t due_ns;         /* set by the owner before timer_arm */
            _Atomic int64_t want_ns; /* the deadline wanted, -1 none */
        };
    };
};

enum { TIMER_WAKE = 1, TIMER_SEND = 2 };

void timer_arm(struct timer *t);
void timer_disarm(struct timer *t);
/* Fires every timer due at now; returns how many fired. */
int timers_run(int64_t now);
/* Earliest deadline, INT64_MAX when none. Lock-free read. */
int64_t timers_next_due(void);
void timers_fini(void);
/* Delivers a timer's message (mailbox.c): never refused for the limit. */
int actor_deliver(SnowPid pid, struct msg *m);

/* ---- I/O handles ------------------------------------------------------- */

struct SnowIo {
    rt_spin_t lock;
    uint16_t gen;          /* bumped on close; stale epoll events are dropped */
    int fd;
    atomic_uint ready;     /* SNOW_WAIT_READABLE/WRITABLE/HANGUP seen, not consumed */
    bool sole;             /* the fd is this handle's alone (actor_io_open_nonblocking) */
    struct actor *owner;   /* [lock] the actor to notify */
    struct SnowIo *next;   /* owner's list, or free list */
};

int poller_init(void);
void poller_fini(void);
/* Collects readiness and notifies owners. Without block it only looks.
 * With block it waits until I/O, an interrupt, until_ns, or the earliest
 * timer, whose due time it reads after announcing itself in
 * rt.poll_blocked (so a timer armed meanwhile is never missed). Returns the
 * number of events, or -1 when another worker holds the poll role. */
int poller_poll(bool block, int64_t until_ns);
/* Wakes a worker blocked in poller_poll. */
void poller_interrupt(void);
/* True while some worker holds the poll role. */
bool poller_role_held(void);
/* Number of open I/O handles (a reason to keep a worker polling). */
long poller_open_handles(void);
/* rt_now_ns() of the last poll by any worker. */
int64_t poller_last_poll_ns(void);
void io_close_all(struct actor *a);
/* What a waiting actor's conditions hold now (0: none), for actor_wait and
 * for the worker that parks a hibernating actor. */
unsigned actor_wait_conditions(struct actor *a, struct SnowIo *io, unsigned events, int64_t deadline);
/* Discards the actor's stack frames and parks it (stack.c). */
__attribute__((noreturn)) void actor_unwind_hibernate(struct actor *a);

/* ---- actors ------------------------------------------------------------ */

enum actor_state {
    A_RUNNABLE = 0, /* in a run queue */
    A_RUNNING,      /* on a worker, not waiting */
    A_WAITING,      /* on a worker, about to park: conditions being checked */
    A_NOTIFIED,     /* was WAITING when a notify came: do not park */
    A_PARKED,       /* off every queue, waiting for a notify */
    A_DEAD
};

/* A set of u64 keys with a u64 value each (links: pid -> 0; monitors:
 * ref -> pid), open addressing with linear probing; key 0 is empty. Grown
 * with a table allocated before the owner's slot lock is taken (proc.c). */
struct u64_ent {
    uint64_t key, val;
};

struct u64_map {
    struct u64_ent *v;
    uint32_t n, cap;
};

struct proc_slot;

#define ACTOR_ARG_INLINE 48

/* Tag sets up to this size keep a selective receive's scan position. */
#define ACTOR_SCAN_TAGS 8

/* Layout: a message to a parked actor and the switch into it touch the
 * first 128 bytes only (state, wait mask, run-queue link, stack, saved
 * stack pointer, inbox, counts, limit), and the receive that follows the
 * next 64. In a ring of 10,000 actors every record has left the cache by
 * the time the token comes back, so each line touched is a miss. Records
 * come from calloc (16-byte aligned), which puts these 192 bytes on three
 * or four lines; 64-byte alignment would save the fourth but cost about
 * 80 bytes per actor in malloc's alignment padding (bench/README.md). */
struct actor {
    _Atomic int state;
    /* waiting [owner writes before publishing WAITING; wakers read] */
    _Atomic unsigned wait_events;
    int16_t home;          /* home worker, -1 none */
    uint8_t pinned;
    uint8_t trap_exit;     /* [slot] read by signal senders */
    uint8_t exiting;       /* [owner] finishing: further kills ignored */
    uint8_t scan_ntags;    /* [owner] tags in scan_tags; 0: no set cached */
    /* Where the actor last ran and who woke it lately [whoever owns the
     * actor: the worker running it, or the waker that made it RUNNABLE]:
     * an actor woken by ever-different actors goes back to its own worker
     * instead of following each waker (sched_enqueue). */
    uint8_t ran_on;        /* index + 1 of the worker it last ran on; 0: none yet */
    uint8_t wake_flips;    /* wakes by a waker other than the one before, decayed */
    int32_t reductions;    /* [owner] */
    uint16_t waker_tag;    /* a hash of the last waker's pid */
    /* [owner] the readiness of wait_io a hibernation continuation started
     * with (actor_woke_ready): SNOW_WAIT_READABLE, _WRITABLE, _HANGUP */
    uint8_t woke;
    struct actor *next;    /* run-queue link */
    struct stack *stack;   /* NULL before start and while hibernating */
    /* [owner] The stack pointer saved by the last switch out, while the
     * actor holds a stack (the stack's own ctx holds it otherwise: a fresh
     * or pooled stack, sched.c). Kept here rather than in the stack's
     * header so that resuming reads one line fewer; whoever makes the
     * actor runnable prefetches the frames it resumes in from it. */
    struct rt_ctx ctx;
    /* mailbox */
    atomic_ulong inbox_n;   /* [slot] written, read lock-free by the owner */
    struct msg *in_head, *in_tail;  /* [slot] */
    /* Messages queued (inbox and private list) = pushed - taken. Two
     * counts with one writer each instead of one count that both sides
     * change, so that neither a send nor a receive needs a locked
     * instruction for it: pushed [slot] grows under the slot lock (and is
     * the seq of the last message pushed); taken [owner] grows when a
     * receive hands a message out (read by senders for the limit,
     * relaxed: a stale value errs towards refusing). */
    uint64_t pushed;
    _Atomic uint64_t taken;
    unsigned long mbox_limit; /* [slot] 0: none; else senders get SNOW_ELIMIT */
    SnowPid pid;
    struct proc_slot *slot;
    SnowActorFn fn;        /* entry: spawn function or hibernate continuation */
    void *arg;
    struct SnowIo *wait_io;
    /* What a receive reads (the third line) */
    atomic_int kill_reason; /* -1 none; an exit signal to act on */
    int exit_reason;        /* [owner] */
    struct msg *priv_head, *priv_tail; /* [owner] moved from inbox, not yet taken */
    struct msg *last;       /* [owner] handed out by the last receive */
    uint64_t seen_seq;      /* [owner] every message up to this seq was examined by a receive */
    long scanned;           /* [owner] messages examined by receives (statistics) */
    /* [owner] Selective receive's scan position: every message up to and
     * including scan_pos was examined by a receive with the tag set in
     * scan_tags and did not match, so the next receive with that set goes
     * on from scan_pos->next. NULL: nothing scanned. */
    struct msg *scan_pos;
    struct timer wait_timer;
    int64_t wait_deadline;
    /* Room messages (actor_send_backlog) queued and not received yet:
     * added by senders under the slot lock, which makes the check against
     * the bound and the add one step; taken back by the owner on receive. */
    atomic_ulong backlog_n, backlog_bytes;
    unsigned long backlog_max_n;  /* [slot] 0: ACTOR_BACKLOG_MSGS */
    size_t backlog_max_bytes;     /* [slot] 0: ACTOR_BACKLOG_BYTES */
    uint64_t scan_tags[ACTOR_SCAN_TAGS]; /* [owner] the set scan_pos belongs to */
    struct heap heap;       /* [owner] */
    struct u64_map links;    /* [slot] pid -> 0 */
    struct u64_map watchers; /* [slot] monitors on me: ref -> watcher */
    struct u64_map watching; /* [slot] monitors I hold: ref -> target */
    void (*term_cb)(int, void *); /* [owner] */
    void *term_arg;
    struct SnowIo *ios;     /* [owner] handles to close at exit */
    char *name;             /* [registry lock] */
    jmp_buf *catch_jb;      /* [owner] innermost actor_catch frame */
    char *panic_msg;        /* [owner] */
    /* A spawn argument of up to ACTOR_ARG_INLINE bytes is copied here
     * instead of into the heap, so that spawning an actor with a small
     * argument creates no heap at all (gc.c scans it as a root while
     * a->arg or a->term_arg points into it). */
    _Alignas(16) unsigned char arg_inline[ACTOR_ARG_INLINE];
};

_Static_assert(offsetof(struct actor, ctx) < 64 && offsetof(struct actor, mbox_limit) < 128 && offsetof(struct actor, taken) < 128 &&
                   offsetof(struct actor, scan_pos) < 192,
               "a wake-up, a resume and a receive read the first 192 bytes");

/* ---- process table -------------------------------------------------------- */

struct proc_slot {
    rt_spin_t lock;
    uint32_t next_free;
    SnowPid pid;          /* [lock] current pid of this slot (0 when free) */
    struct actor *actor;  /* [lock] NULL when free or dead */
};

int proc_init(void);
void proc_fini(void);
/* Installs a in a free slot, taken through w (the calling worker, or NULL
 * from a plain thread); sets a->pid and a->slot, and a->kill_reason when
 * shutdown was requested (proc.c). */
int proc_insert(struct actor *a, struct worker *w);
/* Locks the slot of pid and returns its live actor, or NULL (slot unlocked). */
struct actor *proc_lock(SnowPid pid, struct proc_slot **slot);
void proc_release(struct proc_slot *slot);
/* Visits every live pid (for shutdown). */
void proc_each(void (*fn)(SnowPid pid, void *arg), void *arg);

/* ---- the runtime's shared state --------------------------------------------
 *
 * Everything the runtime shares between threads lives in struct runtime
 * (one instance, rt), per thread in struct worker. Defined here so that the
 * one struct holds them; each is touched only by its own file. */

#define PROC_IDX_BITS 24
#define PROC_CHUNK_BITS 12
#define PROC_CHUNK_SLOTS (1u << PROC_CHUNK_BITS)
#define PROC_MAX_CHUNKS (1u << (PROC_IDX_BITS - PROC_CHUNK_BITS))

/* proc.c: the process table */
#define PROC_SLOT_BATCHES 64

struct rt_table {
    struct proc_slot *_Atomic chunks[PROC_MAX_CHUNKS];
    uint32_t nchunks;
    rt_spin_t free_lock;
    uint32_t free_head;  /* [free_lock] single free slots (a new chunk's, a plain thread's) */
    int nbatches;        /* [free_lock] */
    uint32_t batch[PROC_SLOT_BATCHES]; /* [free_lock] chains of SLOT_CACHE_BATCH free slots */
    atomic_uint_fast64_t next_ref;
};

/* stack.c: the shared free list of stacks */
struct rt_free_list {
    rt_spin_t lock;
    void *free;
    /* Written under the lock; read without it as a hint (relaxed): a
     * stale value only means one more or one less trip to the lock. */
    atomic_int n;
};

struct io_block;

/* poller.c */
struct rt_poller {
    int epfd;
    int evfd;
    atomic_int role;              /* 1 while a worker is inside epoll_wait */
    atomic_int interrupted;
    atomic_long open;             /* handles open (relaxed: a hint for busy workers) */
    _Atomic int64_t last_poll_ns; /* relaxed: a hint for busy workers */
    rt_spin_t lock;               /* free list and blocks */
    struct SnowIo *free;
    struct io_block *blocks;
};

/* timer.c: a pairing heap. The root is the earliest timer; each node keeps
 * its children as a list (child, then sibling), and prev points back to the
 * parent (first child) or the previous sibling, so any node can be unlinked
 * in O(1) for a disarm. Insert is O(1), removing the root O(log n)
 * amortized, with the usual two-pass pairing. */
struct rt_timers {
    rt_spin_t lock;
    struct timer *root;
    /* heap root's due time or INT64_MAX, read without the lock. seq_cst:
     * the store pairs with the poller's load after it announces itself in
     * rt.poll_blocked (poller_poll), and with the busy workers' peeks. */
    _Atomic int64_t next_due;
    atomic_int firing; /* a worker is inside timers_run */
    /* reference -> TIMER_SEND timer: chained hash, grown with a table
     * allocated outside the lock */
    struct timer **map;
    uint32_t map_cap, map_n;
    uint64_t next_id;
};

void timers_init(void);

/* ---- workers and the scheduler -------------------------------------------- */

struct runq {
    rt_spin_t lock;
    struct actor *head, *tail;
    /* Length: written under the lock, read without it as a hint by idle
     * and stealing workers (relaxed); the lock orders the list itself. The
     * wake-up protocol adds its own seq_cst fence (sched.c). */
    _Atomic uint32_t n;
};

/* One worker's look at another worker's stealable queue over time (the
 * stealing policy, steal.c queue_worth): when the window opened and how
 * many actors the other worker had started and spawned by then. */
struct steal_watch {
    int64_t t;        /* 0: no window open */
    uint64_t spawned;
    uint32_t slices;
    bool worth;       /* the verdict of the last complete window */
};

struct worker {
    int index;
    pthread_t thread;
    int init_err;              /* stack_thread_init's result, read by snow_rt_init */
    struct rt_ctx sched_ctx;   /* the worker's own stack while an actor runs */
    struct actor *current;
    /* Woken by the running actor: runs next. An idle worker may take it
     * (CAS to NULL) once it has waited RUNNEXT_GRACE_NS while this worker
     * did not switch (steal.c). */
    struct actor *_Atomic runnext;
    struct actor *runnext_pinned; /* the same for actors pinned here: never stolen */
    _Atomic uint32_t slices;   /* actors started on this worker (relaxed: a hint for thieves) */
    struct runq q;             /* stealable */
    struct runq pq;            /* pinned to this worker */
    atomic_int sleeping;       /* 1 while parked on its futex */
    int switch_why;            /* why the actor switched out (SW_*) */
    uint32_t tick;
    uint32_t runnext_streak;
    /* the victim whose runnext this idle worker is watching */
    struct worker *rn_victim;
    struct actor *rn_actor;
    uint32_t rn_slices;
    int64_t rn_seen_ns;
    struct worker *rn_park_victim; /* last shortened block: whose slot, at which slice count */
    uint32_t rn_park_slices;
    uint64_t rng;
    struct steal_watch *watch; /* one per worker (by index), rt.watches */
    /* Set by sched_has_work: when an idle worker that saw a queue not worth
     * taking yet looks again (INT64_MAX: it saw none) */
    int64_t watch_until;
    int64_t handoff_at;        /* after_slice's next poll or hand-off, at the earliest */
    struct actor *starved;     /* runnable, but no stack could be had */
    int64_t starved_retry_ns;  /* when to try them again */
    struct mag actor_cache;    /* freed actor structs, reused by spawn */
    struct mag msg_cache;      /* free MSG_SMALL message buffers */
    uint32_t slot_cache;       /* free process-table slots (chained by next_free) */
    int slot_cache_n;
    uint32_t slot_full;        /* a complete batch of free slots in reserve; slot_full_n 0: none */
    int slot_full_n;
    struct stack *stack_cache; /* a few free stacks without locking */
    int stack_cache_n;
    char *stack_batch;         /* unused address space for new stacks (stack.c) */
    int stack_batch_n;         /* stacks' worth left in it */
    bool stack_batch_guarded;  /* its guards are installed (stack.c) */
    void *asan_fake;
    void *sys_stack_lo;        /* bounds of the worker thread's own stack (ASan) */
    size_t sys_stack_size;
    void *altstack;            /* SIGSEGV handler stack */
    /* Actors spawned on this worker and actors freed here, each written
     * only by this worker (a seq_cst store of its value + 1) and summed on
     * read (sched_no_live_actors). Monotonic, so that a sum read without
     * stopping anyone still proves "no actor was alive at one moment"; on
     * their own cache line, away from what thieves read. */
    _Alignas(64) _Atomic uint64_t spawned;
    _Atomic uint64_t freed;
};

enum { SW_YIELD = 1, SW_PARK, SW_HIBERNATE, SW_EXIT };

/* Internal wait event: only messages no receive has examined yet count
 * (those that arrived since the last drain, and those behind the selective
 * receive's scan position), where SNOW_WAIT_MAILBOX counts every unread
 * message. Receive parks on it, and so does a hibernating actor, so a
 * message that a selective receive skipped does not wake either again.
 * Reported as SNOW_WAIT_MAILBOX. */
#define ACTOR_WAIT_NEW_MAIL (1u << 16)

/* In SnowIo.ready only: the peer has shut its side (EPOLLRDHUP). Set by
 * the poller with the readiness bits and never consumed by a wait, so a
 * reader that emptied the socket with a short read can tell that the end
 * of the stream is still to be read although no new edge will come
 * (actor_io_peer_shut). */
#define ACTOR_IO_PEER_SHUT (1u << 17)

struct runtime {
    int nworkers;
    struct worker *workers;
    struct steal_watch *watches; /* nworkers x nworkers (struct worker's watch) */
    atomic_int running;         /* 1 between init and the end of run */
    atomic_int stopping;        /* workers leave their loops */
    atomic_int shutdown_req;    /* snow_rt_shutdown was called */
    _Atomic uint64_t ext_spawned; /* actors spawned outside the workers (worker counts: struct worker) */
    atomic_int run_word;        /* futex the snow_rt_run caller sleeps on */
    atomic_int poll_blocked;    /* a worker sits in epoll_wait */
    atomic_int nspinning;       /* idle workers spinning for work */
    atomic_uint rr;             /* round robin for wakes from outside */
    atomic_long idle_wakeups;   /* returns from an idle worker's blocking wait */
    atomic_int started;         /* workers that finished their start-up */
    int32_t reductions;         /* budget per slice */
    _Atomic int64_t starve_log_ns; /* last "no memory for a stack" line */
    struct rt_table table;
    struct mag_pool actor_pool;
    struct rt_free_list stack_pool;
    struct mag_pool msg_pool;
    struct rt_poller poller;
    struct rt_timers timers;
};

extern struct runtime rt;

/* The calling thread's worker (NULL outside workers). Never inlined: a
 * coroutine may resume on another thread, and an inlined TLS address could
 * be cached across the switch. */
struct worker *worker_self(void);
struct actor *actor_self(void);
/* Brackets a call from a plain thread (worker_self() NULL) that uses the
 * runtime's memory: false when the runtime is not running or is tearing
 * down (answer SNOW_ENOT_RUNNING), else the teardown waits for the
 * matching leave (lifecycle.c). Worker threads never call them. */
bool actor_ext_enter(void);
void actor_ext_leave(void);

/* Makes a runnable actor eligible to run; w is the calling worker or NULL. */
void sched_enqueue(struct actor *a, bool from_waker);
/* Actors one poll's ready handles or one round of due timers woke, made
 * eligible to run together by sched_wake_flush: the first added runs next
 * (runnext, as any woken actor: the lateness bound, README.md), the
 * others queue behind what waits already, in the order added (the order
 * the kernel reported them or the deadlines came). A pinned actor goes to
 * its home at once. */
struct sched_wakes {
    struct actor *head, *tail;
    uint32_t n;
    /* Set by the poller: on a worker with actors already waiting, the
     * whole list joins the queue's tail (sched_wake_flush). */
    bool behind_queue;
};

/* a: a RUNNABLE actor the caller owns (actor_notify_begin said so). */
void sched_wake_add(struct sched_wakes *l, struct actor *a);
void sched_wake_flush(struct sched_wakes *l);
/* Wakes an actor waiting for any of the conditions in mask (0 = always).
 * It only moves the state; when it returns true the caller owns the now
 * RUNNABLE actor and must pass it to sched_enqueue, after dropping any
 * spinlock it holds (enqueueing may make a system call to wake a worker,
 * which must never happen under a spinlock). */
bool actor_notify_begin(struct actor *a, unsigned mask);
/* A worker thread's loop (started by snow_rt_init). */
void *sched_worker_main(void *arg);
/* Switches from the running actor to its worker's scheduler loop. */
void sched_switch_out(int why);
/* A new earliest timer: makes sure a worker will wait for it (interrupts a
 * blocked poller, else wakes a sleeper when called from outside a worker). */
void sched_kick_timer(void);
/* True when w or another worker has work to take (poller.c rechecks).
 * Sets w->watch_until when another worker's queue holds actors that are
 * not worth taking yet: a blocking wait ends by then. */
bool sched_has_work(struct worker *w);
/* The stealing policy's verdict (steal.c): a queue of `queued` actors on
 * a worker that started or spawned `events` actors in the last dt_ns. */
bool sched_steal_worth(uint32_t queued, int64_t dt_ns, uint64_t events);
/* An actor taken from another worker for idle w (steal.c), or NULL. */
struct actor *sched_steal(struct worker *w);
/* Looks at the other workers' runnext slots (steal.c): with take, returns
 * an actor taken from a stuck one; without, (struct actor *)1 when one is
 * stuck. *pending (may be NULL) tells whether any slot is occupied. */
struct actor *sched_steal_runnext(struct worker *w, bool take, bool *pending);
/* How long a woken actor may wait in the runnext slot of a worker that does
 * not switch before an idle worker takes it. Short against a time slice,
 * long against a request/response exchange, where the waker parks within a
 * microsecond or two and its own worker runs the woken actor. */
#define RUNNEXT_GRACE_NS 20000
/* Counts a spawn (before the actor is enqueued) on the calling worker, or
 * on the shared counter from a plain thread. */
void sched_actor_spawned(void);
/* True when no spawned actor was alive at one moment during the call. */
bool sched_no_live_actors(void);

/* Ends the calling actor now (unwinds to its trampoline). */
__attribute__((noreturn)) void actor_exit_now(int reason);
/* Acts on a pending exit signal, if any. */
void actor_check_signals(struct actor *a);
/* Runs every exit step on the actor's own stack: terminate callback, io,
 * table, links, monitors, registry, heap. */
void actor_finish(struct actor *a);
void actor_free(struct actor *a);
/* Collects the calling actor's heap with every root but its stack and
 * registers (the hibernation argument in a->arg, kept messages, root
 * slots), which are being given up. Skipped when nothing was allocated
 * since the last hibernation collection. */
void actor_gc_hibernate(struct actor *a);
void actor_cache_fini(void);
/* Delivers an exit signal from `from` with reason to pid. Returns 0, or
 * SNOW_ENOPROC when pid is not alive. */
int actor_signal_exit(SnowPid pid, SnowPid from, int reason, bool from_link);
/* The link and monitor sets inside struct actor, by offset (links.c). */
#define ACTOR_LINKS offsetof(struct actor, links)
#define ACTOR_WATCHERS offsetof(struct actor, watchers)
#define ACTOR_WATCHING offsetof(struct actor, watching)
/* Adds key -> val to the set at off in pid's actor, under its slot lock:
 * 1 added, 0 there already, SNOW_ENOPROC, -ENOMEM. */
int actor_set_put(SnowPid pid, size_t off, uint64_t key, uint64_t val);
/* Removes key from the set at off in pid's actor; true when it was there. */
bool actor_set_del(SnowPid pid, size_t off, uint64_t key, uint64_t *val);
/* DOWN for monitor ref to its watcher, if the watcher still holds it. */
void actor_send_down(SnowPid watcher, uint64_t ref, SnowPid pid, int reason);
/* Appends a message to the locked slot's actor. Returns the actor when it
 * must be enqueued once the slot lock is released, else NULL. */
struct actor *mailbox_push_locked(struct actor *a, struct msg *m);
/* Frees what the owner still holds (the inbox is taken at the exit). */
void mailbox_free(struct actor *a);
void registry_remove_actor(struct actor *a);
void registry_fini(void);
/* True when the mailbox holds a message no receive has examined yet. */
bool mailbox_has_unseen(struct actor *a);

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
