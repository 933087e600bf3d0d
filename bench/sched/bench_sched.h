/*
 * bench_sched.h: what the scenario files of snow-bench-sched share with its
 * driver (driver.c): the counts, the program state, the message tags and
 * the helpers every scenario uses to spawn, wait and report.
 */
#ifndef SNOW_BENCH_SCHED_H
#define SNOW_BENCH_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actor/actor.h"

/* User message tags of this program (never reserved: top half is zero). */
enum {
    TAG_GO = 1,
    TAG_PING,
    TAG_PONG,
    TAG_STOP,
    TAG_DONE,
    TAG_TOKEN,
    TAG_NEXT,
    TAG_WAKE,
    TAG_TIMER,
};

/* How long the driver waits for a reply before declaring a scenario hung,
 * and how long the whole program may take before the watchdog ends it.
 * The measured loops themselves wait without a deadline: a deadline arms a
 * runtime timer and reads the clock on every receive, which would be part
 * of every figure; the watchdog covers a message that never comes. */
#define REPLY_TIMEOUT_MS 120000


struct counts {
    long switches;   /* raw coroutine switches */
    long yields;     /* yields per actor, two actors */
    long pp_same;    /* round trips, same worker */
    long pp_cross;   /* round trips, across workers */
    long spawns;     /* spawn + exit */
    long parked;     /* actors parked on their mailbox */
    long hibernated; /* actors hibernated */
    long timers;     /* timers per phase */
    long ring_size;  /* actors in the ring */
    long ring_hops;  /* token hops */
    long busy_sleeps; /* 10 ms sleeps next to busy workers */
    long sel_queued; /* messages skipped by each selective receive */
    long sel_calls;  /* selective receives timed */
};

/* The program's state: counts, selection, and what the watchdog reports. */
struct bench_state {
    struct counts n;
    int workers;
    const char *only;
    int driver_worker;
    const char *volatile current;
    int failed;
};
extern struct bench_state B;

/* Start, end and outcome of a timed loop, sent to the driver. */
struct span {
    int64_t t0, t1;
    int64_t status; /* 0 or a negative error */
};

/* Prints one result line (a newline is added) and flushes it. */
__attribute__((format(printf, 1, 2))) void emit(const char *fmt, ...);
/* Reports a failure of the current scenario on stderr; returns -1. */
__attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...);
/* Spawns fn on worker (-1: the runtime's choice), pinned or not. */
SnowPid spawn_on(SnowActorFn fn, const void *args, size_t size, int worker, bool pinned);
/* Waits for a message with the given tag and copies up to len bytes of its
 * payload into out. Returns 0, or -1 after a timeout. */
int await(uint64_t tag, void *out, size_t len);
/* Parks the driver until *counter reaches target, checking every ms. */
int await_count(atomic_long *counter, long target, const char *what);

/* The scenarios, each returning 0 or -1 (after fail()). */
int run_context_switch(void);       /* switching.c */
int run_yield(void);
int run_pp_same(void);              /* messages.c */
int run_pp_cross(void);
int run_pp_unpinned(void);
int run_ring(void);
int run_selective_receive(void);
int run_spawn(void);                /* actors.c */
int run_parked(void);
int run_hibernated(void);
int run_timers(void);               /* timers.c */
int run_timer_lateness_busy(void);

#endif
