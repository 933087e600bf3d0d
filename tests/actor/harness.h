/* Shared helpers for the actor suites: start the runtime, run one root
 * actor to completion, and assert on the main thread afterwards (Check's
 * assertions are not made from worker threads). */
#ifndef SNOW_TEST_ACTOR_HARNESS_H
#define SNOW_TEST_ACTOR_HARNESS_H

#include <check.h>
#include <stdatomic.h>
#include <string.h>

#include "actor/actor.h"
#include "snow_rt.h"

#define RUN_ROOT(nworkers, fn, arg)                                  \
    do {                                                             \
        ck_assert_int_eq(snow_rt_init(nworkers), 0);                 \
        ck_assert_uint_ne(snow_actor_spawn((fn), (arg), 0), 0);      \
        ck_assert_int_eq(snow_rt_run(), 0);                          \
    } while (0)

/* Receives until a message with tag arrives (others are dropped). */
static inline SnowMessage *recv_tag(uint64_t tag, int timeout_ms)
{
    return snow_actor_receive_match(&tag, 1, timeout_ms);
}

/* The order in which actors did things, one character per event, kept
 * as a string; marks past its end are counted but not kept. Actors on
 * any worker may mark it. */
typedef struct {
    char s[64];
    atomic_int n;
} TraceLog;

static inline void trace_reset(TraceLog *t)
{
    memset(t->s, 0, sizeof t->s);
    atomic_store(&t->n, 0);
}

static inline void trace_mark(TraceLog *t, char c)
{
    int k = atomic_fetch_add(&t->n, 1);
    if (k < (int)sizeof t->s - 1)
        t->s[k] = c;
}

Suite *sched_suite(void);
Suite *mailbox_suite(void);
Suite *links_suite(void);
Suite *timer_suite(void);
Suite *io_suite(void);
Suite *stack_suite(void);
Suite *misc_suite(void);
Suite *core_suite(void);
Suite *count_suite(void);
Suite *magazine_suite(void);

#endif
