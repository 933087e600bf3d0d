/* Links, trap_exit, monitors and terminate callbacks on every exit reason. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum how { HOW_RETURN, HOW_EXIT_USER, HOW_PANIC, HOW_KILLED, HOW_OVERFLOW_GUARD, HOW_OVERFLOW_CHECK, HOW_COUNT };

static const int expected_reason[HOW_COUNT] = {
    SNOW_EXIT_NORMAL, SNOW_EXIT_USER + 1, SNOW_EXIT_PANIC, SNOW_EXIT_KILLED,
    SNOW_EXIT_STACK_OVERFLOW, SNOW_EXIT_STACK_OVERFLOW,
};

static atomic_int term_reason[HOW_COUNT];
static atomic_int down_reason[HOW_COUNT];
static atomic_int linked_reason[HOW_COUNT];
static atomic_int trapped_reason[HOW_COUNT];
static atomic_long result;

__attribute__((noinline)) static int recurse(int depth, int check)
{
    volatile char buf[600];
    buf[0] = (char)depth;
    if (check)
        snow_reduction_check();
    if (depth > 100000000)
        return 0; /* never: 64 KiB runs out long before */
    return recurse(depth + 1, check) + buf[0];
}

static void record_term(int reason, void *arg)
{
    atomic_store(&term_reason[(intptr_t)arg], reason);
}

static SnowPid root_pid;

static void victim(void *arg)
{
    int how = *(int *)arg;
    snow_actor_set_terminate(record_term, (void *)(intptr_t)how);
    if (how == HOW_KILLED)
        snow_actor_trap_exit(1); /* KILLED cannot be trapped */
    snow_actor_send(root_pid, 100, NULL, 0); /* set up: ready to be ended */
    switch (how) {
    case HOW_RETURN:
        snow_actor_receive(-1);
        return;
    case HOW_EXIT_USER:
        snow_actor_receive(-1);
        snow_actor_exit(SNOW_EXIT_USER + 1);
    case HOW_PANIC:
        snow_actor_receive(-1);
        snow_panic("on purpose");
    case HOW_KILLED:
        for (;;)
            snow_actor_receive(-1);
    case HOW_OVERFLOW_GUARD:
        snow_actor_receive(-1);
        recurse(0, 0);
        return;
    case HOW_OVERFLOW_CHECK:
        snow_actor_receive(-1);
        recurse(0, 1);
        return;
    }
}

/* Linked to the victim, not trapping: dies with the victim's reason unless
 * that is normal. Reports how it ended through its own monitor. */
static void linked_plain(void *arg)
{
    (void)arg;
    SnowMessage *m = snow_actor_receive(-1); /* the victim's pid */
    SnowPid v;
    memcpy(&v, m->data, sizeof v);
    snow_actor_link(v);
    snow_actor_send(m->from, 100, NULL, 0);
    snow_actor_receive(-1); /* the test says "done" (only if it survived) */
}

static void linked_trapper(void *arg)
{
    int how = *(int *)arg;
    snow_actor_trap_exit(1);
    SnowMessage *m = snow_actor_receive(-1);
    SnowPid v;
    memcpy(&v, m->data, sizeof v);
    snow_actor_link(v);
    snow_actor_send(m->from, 100, NULL, 0);
    m = recv_tag(SNOW_TAG_EXIT, 5000);
    if (m) {
        SnowExitMsg em;
        memcpy(&em, m->data, sizeof em);
        atomic_store(&trapped_reason[how], em.from == v ? em.reason : -2);
    }
}

/* DOWN messages from different actors may arrive in any order (a linked
 * actor can die and report before the one that killed it does), so DOWNs
 * for other monitors are kept aside for a later call. */
static SnowDownMsg stash[16];
static int nstash;

static int down_of(uint64_t ref, SnowPid pid)
{
    for (;;) {
        for (int i = 0; i < nstash; i++)
            if (stash[i].ref == ref) {
                SnowDownMsg dm = stash[i];
                stash[i] = stash[--nstash];
                return dm.pid == pid ? dm.reason : -200;
            }
        SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 5000);
        if (!m)
            return -100;
        if (nstash == 16)
            return -300;
        memcpy(&stash[nstash++], m->data, sizeof stash[0]);
    }
}

static void reasons_root(void *arg)
{
    (void)arg;
    root_pid = snow_actor_self();
    for (int how = 0; how < HOW_COUNT; how++) {
        SnowPid v = snow_actor_spawn(victim, &how, sizeof how);
        SnowPid lp = snow_actor_spawn(linked_plain, NULL, 0);
        SnowPid lt = snow_actor_spawn(linked_trapper, &how, sizeof how);
        uint64_t mv = snow_actor_monitor(v);
        uint64_t ml = snow_actor_monitor(lp);
        snow_actor_send(lp, 1, &v, sizeof v);
        snow_actor_send(lt, 1, &v, sizeof v);
        for (int k = 0; k < 3; k++)
            recv_tag(100, -1); /* victim, linked_plain and linked_trapper are ready */
        if (how == HOW_KILLED)
            snow_actor_kill(v, SNOW_EXIT_KILLED);
        else
            snow_actor_send(v, 1, NULL, 0);
        atomic_store(&down_reason[how], down_of(mv, v));
        if (how == HOW_RETURN) {
            /* A normal exit does not take the linked actor down. */
            SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 100);
            atomic_store(&linked_reason[how], m || nstash ? -3 : SNOW_EXIT_NORMAL);
            snow_actor_send(lp, 2, NULL, 0);
            down_of(ml, lp);
        } else {
            atomic_store(&linked_reason[how], down_of(ml, lp));
        }
    }
}

START_TEST(every_exit_reason_reaches_links_monitors_and_terminate)
{
    nstash = 0;
    for (int i = 0; i < HOW_COUNT; i++) {
        atomic_store(&term_reason[i], -1);
        atomic_store(&down_reason[i], -1);
        atomic_store(&linked_reason[i], -1);
        atomic_store(&trapped_reason[i], -1);
    }
    RUN_ROOT(2, reasons_root, NULL);
    for (int i = 0; i < HOW_COUNT; i++) {
        ck_assert_msg(atomic_load(&term_reason[i]) == expected_reason[i], "terminate how=%d got %d", i,
                      atomic_load(&term_reason[i]));
        ck_assert_msg(atomic_load(&down_reason[i]) == expected_reason[i], "down how=%d got %d", i,
                      atomic_load(&down_reason[i]));
        ck_assert_msg(atomic_load(&linked_reason[i]) == expected_reason[i], "linked how=%d got %d", i,
                      atomic_load(&linked_reason[i]));
        ck_assert_msg(atomic_load(&trapped_reason[i]) == expected_reason[i], "trapped how=%d got %d", i,
                      atomic_load(&trapped_reason[i]));
    }
}
END_TEST

static void gone(void *arg)
{
    (void)arg;
}

static void noproc_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(gone, NULL, 0);
    uint64_t ref = snow_actor_monitor(p);
    long r = down_of(ref, p) == SNOW_EXIT_NORMAL;
    /* Monitoring a dead pid: an immediate DOWN with noproc. */
    ref = snow_actor_monitor(p);
    r += down_of(ref, p) == SNOW_EXIT_NOPROC;
    /* Killing a dead pid reports it. */
    r += snow_actor_kill(p, SNOW_EXIT_KILLED) == SNOW_ENOPROC;
    /* Linking to a dead pid while trapping: an EXIT message with noproc. */
    snow_actor_trap_exit(1);
    r += snow_actor_link(p) == SNOW_ENOPROC;
    SnowMessage *m = recv_tag(SNOW_TAG_EXIT, 1000);
    if (m) {
        SnowExitMsg em;
        memcpy(&em, m->data, sizeof em);
        r += em.reason == SNOW_EXIT_NOPROC && em.from == p;
    }
    atomic_store(&result, r);
}

START_TEST(dead_targets_give_noproc)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, noproc_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 5);
}
END_TEST

static void link_dead_untrapped(void *arg)
{
    SnowPid p = *(SnowPid *)arg;
    snow_actor_link(p);
    atomic_store(&result, -5); /* not reached: the noproc signal ends us */
}

static void noproc_exit_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(gone, NULL, 0);
    uint64_t ref = snow_actor_monitor(p);
    down_of(ref, p);
    SnowPid q = snow_actor_spawn(link_dead_untrapped, &p, sizeof p);
    ref = snow_actor_monitor(q);
    int r = down_of(ref, q);
    if (atomic_load(&result) == 0)
        atomic_store(&result, r);
}

START_TEST(link_to_dead_kills_untrapped_caller)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, noproc_exit_root, NULL);
    ck_assert_int_eq(atomic_load(&result), SNOW_EXIT_NOPROC);
}
END_TEST

static void panics_soon(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
    snow_panic("later");
}

static void unlink_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(panics_soon, NULL, 0);
    snow_actor_link(p);
    snow_actor_unlink(p);
    uint64_t ref = snow_actor_monitor(p);
    snow_actor_send(p, 1, NULL, 0);
    long r = down_of(ref, p) == SNOW_EXIT_PANIC;
    /* Still alive: the unlinked panic did not reach us. Now demonitor. */
    SnowPid q = snow_actor_spawn(panics_soon, NULL, 0);
    ref = snow_actor_monitor(q);
    r += snow_actor_demonitor(ref) == 0;
    uint64_t ref2 = snow_actor_monitor(q);
    snow_actor_send(q, 1, NULL, 0);
    r += down_of(ref2, q) == SNOW_EXIT_PANIC; /* only the second monitor fires */
    r += recv_tag(SNOW_TAG_DOWN, 50) == NULL;
    atomic_store(&result, r);
}

START_TEST(unlink_and_demonitor)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, unlink_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 4);
}
END_TEST

static void spawn_link_child(void *arg)
{
    (void)arg;
    snow_panic("child fails");
}

static void spawn_link_parent(void *arg)
{
    (void)arg;
    snow_actor_receive(-1); /* monitored by now */
    snow_actor_spawn_link(spawn_link_child, NULL, 0);
    snow_actor_receive(-1);
}

static void spawn_link_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(spawn_link_parent, NULL, 0);
    uint64_t ref = snow_actor_monitor(p);
    snow_actor_send(p, 1, NULL, 0);
    atomic_store(&result, down_of(ref, p));
}

START_TEST(spawn_link_propagates)
{
    atomic_store(&result, -1);
    RUN_ROOT(2, spawn_link_root, NULL);
    ck_assert_int_eq(atomic_load(&result), SNOW_EXIT_PANIC);
}
END_TEST

/* A terminate callback that panics does not stop the rest of the exit. */
static void bad_term(int reason, void *arg)
{
    (void)reason;
    (void)arg;
    snow_panic("in terminate");
}

static void bad_term_actor(void *arg)
{
    (void)arg;
    snow_actor_register("bad-term", snow_actor_self());
    snow_actor_set_terminate(bad_term, NULL);
}

static void bad_term_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(bad_term_actor, NULL, 0);
    uint64_t ref = snow_actor_monitor(p);
    long r = down_of(ref, p) >= 0;
    r += snow_actor_whereis("bad-term") == 0;
    atomic_store(&result, r);
}

START_TEST(terminate_callback_panic_is_contained)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, bad_term_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 2);
}
END_TEST

/* A spawn-time terminate callback runs even if the actor is killed before
 * its function ever starts, with the actor's copy of the arguments. */
static atomic_int abandoned_with;

static void spawn_term(int reason, void *args)
{
    atomic_store(&abandoned_with, *(int *)args * 100 + reason);
}

static void never_runs(void *arg)
{
    (void)arg;
    atomic_store(&abandoned_with, -1);
}

static void spawn_term_root(void *arg)
{
    (void)arg;
    int token = 7;
    struct actor_spawn_opts o = {.worker = -1, .terminate = spawn_term};
    /* One worker and no park in between: the child cannot run first. */
    SnowPid p = actor_spawn(never_runs, &token, sizeof token, &o);
    snow_actor_kill(p, SNOW_EXIT_KILLED);
}

START_TEST(spawn_terminate_runs_for_unstarted_actor)
{
    atomic_store(&abandoned_with, 0);
    RUN_ROOT(1, spawn_term_root, NULL);
    ck_assert_int_eq(atomic_load(&abandoned_with), 7 * 100 + SNOW_EXIT_KILLED);
}
END_TEST

Suite *links_suite(void)
{
    Suite *s = suite_create("links");
    TCase *tc = tcase_create("links");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_exit_reason_reaches_links_monitors_and_terminate);
    tcase_add_test(tc, dead_targets_give_noproc);
    tcase_add_test(tc, link_to_dead_kills_untrapped_caller);
    tcase_add_test(tc, unlink_and_demonitor);
    tcase_add_test(tc, spawn_link_propagates);
    tcase_add_test(tc, terminate_callback_panic_is_contained);
    tcase_add_test(tc, spawn_terminate_runs_for_unstarted_actor);
    suite_add_tcase(s, tc);
    return s;
}
