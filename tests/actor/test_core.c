/* Actor-core guarantees under races and load: shutdown while actors are
 * spawned, timers armed as a worker goes idle, demonitor against a dying
 * target, a woken actor behind a busy waker, timers and I/O next to busy
 * actors, one wake-up per deadline, hibernation with skipped messages,
 * the SIGSEGV handler chain, mailbox limits, selective receive's scan
 * position, large link sets, and worker start-up failures. Nothing here
 * asserts a duration: bounds are counts (slices, wake-ups, messages
 * examined); the caps on loops only keep a broken runtime from hanging. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static atomic_long result;
static atomic_long count;

/* ---- shutdown while actors are spawned -------------------------------------- */

static void respawning_child(void *arg);

static void respawn_on_terminate(int reason, void *arg)
{
    (void)reason;
    (void)arg;
    atomic_fetch_add(&count, 1);
    /* A supervisor restarting its child, as it would on any exit. */
    struct actor_spawn_opts o = {.worker = -1, .terminate = respawn_on_terminate};
    actor_spawn(respawning_child, NULL, 0, &o);
}

static void respawning_child(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
}

static void spawn_yield_loop(void *arg)
{
    (void)arg;
    for (long i = 0; i < 100000000L; i++) {
        snow_actor_spawn(respawning_child, NULL, 0);
        snow_actor_yield();
    }
}

static void shutdown_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++) {
        struct actor_spawn_opts o = {.worker = -1, .terminate = respawn_on_terminate};
        actor_spawn(respawning_child, NULL, 0, &o);
    }
    snow_actor_spawn(spawn_yield_loop, NULL, 0);
    snow_actor_spawn(spawn_yield_loop, NULL, 0);
    snow_sleep(20);
    snow_rt_shutdown();
    snow_actor_receive(-1);
}

START_TEST(shutdown_ends_actors_spawned_during_it)
{
    for (int round = 0; round < 20; round++) {
        atomic_store(&count, 0);
        RUN_ROOT(2, shutdown_root, NULL); /* hangs when a respawn escapes */
        ck_assert_int_ge(atomic_load(&count), 8);
        /* Spawning is refused after shutdown was requested. */
        ck_assert_int_lt(atomic_load(&count), 1000);
    }
}
END_TEST

/* ---- a timer armed from another thread as the only worker goes idle ------------ */

static sem_t arm_go, arm_done;
static atomic_int hook_armed;
static atomic_long timer_target;

static void arm_in_window(void)
{
    if (!atomic_exchange(&hook_armed, 0))
        return;
    sem_post(&arm_go);
    sem_wait(&arm_done);
}

static void *arming_thread(void *arg)
{
    (void)arg;
    sem_wait(&arm_go);
    snow_timer_send_after((SnowPid)atomic_load(&timer_target), 1, 77, NULL, 0);
    sem_post(&arm_done);
    /* If the timer is lost the actor would wait for ever: after a long
     * grace, a plain message ends the wait and the test fails on it. */
    for (int i = 0; i < 3000 && atomic_load(&result) == 0; i++)
        usleep(1000);
    if (atomic_load(&result) == 0)
        snow_actor_send((SnowPid)atomic_load(&timer_target), 78, NULL, 0);
    return NULL;
}

static void timer_waiter(void *arg)
{
    (void)arg;
    atomic_store(&timer_target, (long)snow_actor_self());
    atomic_store(&hook_armed, 1);
    SnowMessage *m = snow_actor_receive(-1);
    atomic_store(&result, m && m->tag == 77 ? 1 : 2);
}

START_TEST(timer_armed_as_worker_goes_idle_fires)
{
    for (int round = 0; round < 5; round++) {
        sem_init(&arm_go, 0, 0);
        sem_init(&arm_done, 0, 0);
        atomic_store(&result, 0);
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, arming_thread, NULL), 0);
        actor_test_idle_hook = arm_in_window;
        RUN_ROOT(1, timer_waiter, NULL);
        actor_test_idle_hook = NULL;
        pthread_join(th, NULL);
        ck_assert_int_eq(atomic_load(&result), 1);
    }
}
END_TEST

/* ---- no DOWN after a successful demonitor --------------------------------------- */

#define DEMON_ROUNDS 20000

/* Exits as soon as told to, on the other worker than the watcher. */
static void exit_when_told(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
}

static void demonitor_root(void *arg)
{
    (void)arg;
    uint64_t *demonitored = calloc(DEMON_ROUNDS, sizeof *demonitored);
    long spurious = 0, lost = 0;
    uint64_t tag = SNOW_TAG_DOWN;
    for (int i = 0; i < DEMON_ROUNDS; i++) {
        struct actor_spawn_opts o = {.worker = 1 - actor_worker_index(), .pinned = true};
        SnowPid p = actor_spawn(exit_when_told, NULL, 0, &o);
        uint64_t r1 = snow_actor_monitor(p);
        uint64_t r2 = snow_actor_monitor(p);
        snow_actor_send(p, 1, NULL, 0);
        /* A spread of delays, so that demonitor meets the target's exit
         * path at every point of it over the rounds. */
        for (volatile int k = 0; k < (i % 256) * 8; k++)
            ;
        demonitored[i] = snow_actor_demonitor(r1) == 0 ? r1 : 0;
        /* Wait for r2's DOWN; every other DOWN on the way is checked. */
        for (;;) {
            SnowMessage *m = snow_actor_receive_match(&tag, 1, 5000);
            if (!m) {
                lost++;
                break;
            }
            SnowDownMsg dm;
            memcpy(&dm, m->data, sizeof dm);
            if (dm.ref == r2)
                break;
            for (int k = i; k >= 0 && k > i - 64; k--)
                if (demonitored[k] == dm.ref)
                    spurious++;
        }
    }
    /* Stragglers of the last rounds. */
    snow_sleep(50);
    SnowMessage *m;
    while ((m = snow_actor_receive_match(&tag, 1, 0))) {
        SnowDownMsg dm;
        memcpy(&dm, m->data, sizeof dm);
        for (int k = DEMON_ROUNDS - 1; k >= DEMON_ROUNDS - 64; k--)
            if (demonitored[k] == dm.ref)
                spurious++;
    }
    free(demonitored);
    atomic_store(&result, spurious * 1000 + lost);
}

START_TEST(no_down_after_successful_demonitor)
{
    atomic_store(&result, -1);
    RUN_ROOT(2, demonitor_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 0);
}
END_TEST

/* ---- a woken actor does not wait behind a busy waker ----------------------------- */

static atomic_int woken_ran;

static void woken(void *arg)
{
    SnowPid root = *(SnowPid *)arg;
    snow_actor_send(root, 1, NULL, 0);
    snow_actor_receive(-1);
    atomic_store(&woken_ran, 1);
}

static void busy_waker(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    SnowPid p = snow_actor_spawn(woken, &self, sizeof self);
    recv_tag(1, 5000);
    snow_sleep(50); /* the other actor parks in its receive */
    atomic_store(&woken_ran, 0);
    snow_actor_send(p, 2, NULL, 0);
    /* Runs on without yielding (a long C call): the other worker idles. */
    int64_t end = snow_now_ms() + 5000;
    while (!atomic_load(&woken_ran) && snow_now_ms() < end)
        ;
    atomic_store(&result, atomic_load(&woken_ran));
}

START_TEST(woken_actor_runs_while_waker_is_busy)
{
    for (int round = 0; round < 3; round++) {
        atomic_store(&result, 0);
        RUN_ROOT(2, busy_waker, NULL);
        ck_assert_int_eq(atomic_load(&result), 1);
    }
}
END_TEST

/* ---- timers and I/O are looked at after every slice ------------------------------- */

static atomic_int stop_spin;
static atomic_long event_at_slice, slices;

/* One slice per iteration: ~200 us of work, then a yield. */
static void slice_spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spin)) {
        int64_t until = rt_now_ns() + 200000;
        while (rt_now_ns() < until)
            ;
        atomic_fetch_add(&slices, 1);
        snow_actor_yield();
    }
}

/* Marks, from the spinner's side, the slice count when the deadline
 * passed: the spinner checks the clock at every slice. */
static atomic_long mark_deadline_ns;

static void slice_spinner_marking(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spin)) {
        int64_t until = rt_now_ns() + 200000;
        while (rt_now_ns() < until)
            ;
        long d = atomic_load(&mark_deadline_ns);
        if (d && rt_now_ns() >= d && atomic_load(&event_at_slice) < 0)
            atomic_store(&event_at_slice, atomic_load(&slices));
        atomic_fetch_add(&slices, 1);
        snow_actor_yield();
    }
}

static void timer_slices_root(void *arg)
{
    (void)arg;
    atomic_store(&stop_spin, 0);
    snow_actor_spawn(slice_spinner_marking, NULL, 0);
    snow_actor_spawn(slice_spinner, NULL, 0);
    long worst = 0;
    for (int i = 0; i < 5; i++) {
        atomic_store(&event_at_slice, -1);
        int64_t deadline = actor_deadline_after_ms(5);
        atomic_store(&mark_deadline_ns, deadline);
        while (!(actor_wait(NULL, 0, deadline) & SNOW_WAIT_TIMEOUT))
            ;
        long at = atomic_load(&event_at_slice);
        long after = at < 0 ? 0 : atomic_load(&slices) - at;
        if (after > worst)
            worst = after;
        atomic_store(&mark_deadline_ns, 0);
    }
    atomic_store(&stop_spin, 1);
    atomic_store(&result, worst);
}

START_TEST(timer_fires_within_a_slice_on_a_busy_worker)
{
    atomic_store(&result, -1);
    atomic_store(&slices, 0);
    RUN_ROOT(1, timer_slices_root, NULL);
    /* Two other actors share the worker: the timer is seen at the end of
     * the slice running when it falls due, and the woken actor runs next. */
    ck_assert_int_ge(atomic_load(&result), 0);
    ck_assert_int_le(atomic_load(&result), 3);
}
END_TEST

static int io_pair[2];
/* The slice count read right after the write: more than the one before
 * it when the writer lost the CPU in between (a loaded host). The slices
 * that passed meanwhile, up to the reader's wake-up, are added to its
 * bound (written_late). */
static atomic_long written_at_slice, written_late;

static void *late_writer(void *arg)
{
    (void)arg;
    while (atomic_load(&event_at_slice) != -2)
        usleep(100);
    usleep(20000);
    atomic_store(&event_at_slice, atomic_load(&slices));
    ssize_t n = write(io_pair[1], "x", 1);
    (void)n;
    atomic_store(&written_at_slice, atomic_load(&slices));
    return NULL;
}

static void io_slices_root(void *arg)
{
    (void)arg;
    atomic_store(&stop_spin, 0);
    snow_actor_spawn(slice_spinner, NULL, 0);
    snow_actor_spawn(slice_spinner, NULL, 0);
    SnowIo *io = snow_io_open(io_pair[0], NULL);
    pthread_t th;
    pthread_create(&th, NULL, late_writer, NULL);
    atomic_store(&event_at_slice, -2);
    int got = 0;
    while (!(got & SNOW_WAIT_READABLE))
        got = actor_wait(io, SNOW_WAIT_READABLE, actor_deadline_after_ms(10000));
    long woke_at = atomic_load(&slices);
    pthread_join(th, NULL);
    snow_io_close(io);
    atomic_store(&stop_spin, 1);
    long before = atomic_load(&event_at_slice);
    atomic_store(&result, woke_at - before);
    long written = atomic_load(&written_at_slice);
    atomic_store(&written_late, (written < woke_at ? written : woke_at) - before);
}

START_TEST(io_is_polled_within_a_slice_on_a_busy_worker)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, io_pair), 0);
    atomic_store(&result, -1);
    atomic_store(&slices, 0);
    RUN_ROOT(1, io_slices_root, NULL);
    close(io_pair[1]);
    /* The slice running when the byte came ends with a poll; the reader
     * joins the queue's tail behind the two spinners. */
    ck_assert_int_ge(atomic_load(&result), 0);
    ck_assert_int_le(atomic_load(&result), 3 + atomic_load(&written_late));
}
END_TEST

/* ---- one wake-up per deadline ------------------------------------------------------- */

static void timeout_loop(void *arg)
{
    (void)arg;
    snow_sleep(20);
    long before = actor_idle_wakeups();
    for (int i = 0; i < 20; i++)
        snow_actor_receive(20);
    atomic_store(&result, actor_idle_wakeups() - before);
}

START_TEST(one_wakeup_per_deadline)
{
    atomic_store(&result, -1);
    RUN_ROOT(2, timeout_loop, NULL);
    /* 20 deadlines: one idle worker wakes for each (a few more for the
     * machine's own noise), not every idle worker. */
    ck_assert_int_ge(atomic_load(&result), 20);
    ck_assert_int_le(atomic_load(&result), 28);
}
END_TEST

/* ---- hibernation with a message a selective receive skipped ------------------------- */

static atomic_long continuations;

static void hib_cont(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&continuations, 1) > 1000)
        return;
    uint64_t want = 9;
    if (snow_actor_receive_match(&want, 1, 0)) {
        atomic_store(&result, 1);
        return;
    }
    snow_actor_hibernate(hib_cont, NULL);
}

static void hib_actor(void *arg)
{
    SnowPid root = *(SnowPid *)arg;
    snow_actor_send(snow_actor_self(), 8, NULL, 0); /* never wanted */
    uint64_t want = 9;
    snow_actor_receive_match(&want, 1, 0);          /* skips it */
    snow_actor_send(root, 1, NULL, 0);
    snow_actor_hibernate(hib_cont, NULL);
}

static void hib_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    SnowPid p = snow_actor_spawn(hib_actor, &self, sizeof self);
    uint64_t ref = snow_actor_monitor(p);
    recv_tag(1, 5000);
    snow_sleep(50); /* room for a wrong wake-up loop to show */
    snow_actor_send(p, 9, NULL, 0);
    SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 5000);
    SnowDownMsg dm;
    if (m)
        memcpy(&dm, m->data, sizeof dm);
    if (!m || dm.ref != ref)
        atomic_store(&result, -2);
}

START_TEST(hibernation_waits_for_a_new_message)
{
    atomic_store(&result, 0);
    atomic_store(&continuations, 0);
    RUN_ROOT(2, hib_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 1);
    ck_assert_int_eq(atomic_load(&continuations), 1);
}
END_TEST

/* ---- the program's own SIGSEGV handler does not displace the guard handler ----------- */

static char *trap_page;

static void program_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char *a = si->si_addr;
    if (a >= trap_page && a < trap_page + 4096) {
        /* A write barrier: make the page writable and retry. */
        mprotect(trap_page, 4096, PROT_READ | PROT_WRITE);
        atomic_fetch_add(&count, 1);
        return;
    }
    _exit(42); /* a guard-page hit reached the program: the runtime lost it */
}

__attribute__((noinline)) static int deep(int depth)
{
    volatile char buf[1000];
    buf[depth % 1000] = (char)depth;
    if (depth > 100000000)
        return 0;
    return deep(depth + 1) + buf[0];
}

static void overflow_now(void *arg)
{
    (void)arg;
    /* Waits for the go message, so the parent's monitor is in place before
     * the overflow (else the DOWN could say noproc). */
    snow_actor_receive(-1);
    deep(0);
}

static void chain_root(void *arg)
{
    (void)arg;
    long ok = 0;
    for (int i = 0; i < 3; i++) {
        /* A fault the program handles, then a guard-page hit. */
        mprotect(trap_page, 4096, PROT_NONE);
        trap_page[0] = 1;
        SnowPid p = snow_actor_spawn(overflow_now, NULL, 0);
        uint64_t ref = snow_actor_monitor(p);
        snow_actor_send(p, 1, NULL, 0);
        SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 5000);
        SnowDownMsg dm;
        if (!m)
            ok |= 1L << (8 + i);
        if (m) {
            memcpy(&dm, m->data, sizeof dm);
            ok |= (long)(dm.ref == ref && dm.reason == SNOW_EXIT_STACK_OVERFLOW) << i;
        }
    }
    atomic_store(&result, ok);
}

START_TEST(guard_handler_survives_a_program_fault)
{
    trap_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(trap_page, MAP_FAILED);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = program_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    atomic_store(&count, 0);
    atomic_store(&result, 0);
    RUN_ROOT(2, chain_root, NULL);
    ck_assert_int_eq(atomic_load(&count), 3);
    ck_assert_int_eq(atomic_load(&result), 7);
}
END_TEST

/* ---- mailbox limit --------------------------------------------------------------------- */

static atomic_int limit_go;

static void limited(void *arg)
{
    SnowPid root = *(SnowPid *)arg;
    snow_actor_set_mailbox_limit(3);
    snow_actor_trap_exit(1);
    snow_actor_send(root, 1, NULL, 0);
    while (!atomic_load(&limit_go)) /* not receiving while root fills the mailbox */
        snow_sleep(1);
    recv_tag(2, 5000);
    snow_actor_send(root, 3, NULL, 0);
    /* Full again; an exit signal still arrives. */
    if (recv_tag(SNOW_TAG_EXIT, 5000))
        snow_actor_send(root, 4, NULL, 0);
}

static void link_and_die(void *arg)
{
    snow_actor_link(*(SnowPid *)arg);
    snow_actor_exit(SNOW_EXIT_USER + 5);
}

static void limit_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    atomic_store(&limit_go, 0);
    SnowPid p = snow_actor_spawn(limited, &self, sizeof self);
    uint64_t ref = snow_actor_monitor(p);
    recv_tag(1, 5000);
    long r = 0;
    r |= (long)(snow_actor_send(p, 5, "a", 1) == 0) << 0;
    r |= (long)(snow_actor_send(p, 5, "b", 1) == 0) << 1;
    r |= (long)(snow_actor_send(p, 2, NULL, 0) == 0) << 2;
    r |= (long)(snow_actor_send(p, 5, "c", 1) == SNOW_ELIMIT) << 3; /* 3 queued */
    atomic_store(&limit_go, 1);
    /* p takes message 2 by selective receive: room for one again. */
    recv_tag(3, 5000);
    r |= (long)(snow_actor_send(p, 5, "d", 1) == 0) << 4;
    r |= (long)(snow_actor_send(p, 5, "e", 1) == SNOW_ELIMIT) << 5;
    snow_actor_spawn(link_and_die, &p, sizeof p);
    r |= (long)(recv_tag(4, 5000) != NULL) << 6;
    SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 5000);
    SnowDownMsg dm;
    if (m) {
        memcpy(&dm, m->data, sizeof dm);
        r |= (long)(dm.ref == ref && dm.reason == SNOW_EXIT_NORMAL) << 7;
    }
    r |= (long)(snow_actor_set_mailbox_limit(0) == 0) << 8;
    atomic_store(&result, r);
}

START_TEST(mailbox_limit_answers_elimit)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, limit_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 0x1ff);
    ck_assert_int_eq(snow_actor_set_mailbox_limit(1), SNOW_ENOT_ACTOR);
}
END_TEST

/* ---- selective receive keeps its scan position ------------------------------------------ */

static void scan_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    long r = 0;
    for (int i = 0; i < 10000; i++)
        snow_actor_send(self, 1, &i, sizeof i);
    uint64_t want = 2, other[2] = {3, 1};
    r += snow_actor_receive_match(&want, 1, 0) == NULL; /* scans 10,000 once */
    long before = actor_receive_scanned();
    for (int i = 0; i < 1000; i++) {
        snow_actor_send(self, 2, &i, sizeof i);
        SnowMessage *m = snow_actor_receive_match(&want, 1, 0);
        int v = -1;
        if (m)
            memcpy(&v, m->data, sizeof v);
        r += v == i ? 0 : 1000000;
    }
    long scanned = actor_receive_scanned() - before;
    /* Another tag set starts from the head again and finds the oldest. */
    SnowMessage *m = snow_actor_receive_match(other, 2, 0);
    int v = -1;
    if (m)
        memcpy(&v, m->data, sizeof v);
    r += m && m->tag == 1 && v == 0;
    /* Order of the rest is kept. */
    for (int i = 1; i < 10000; i++) {
        m = snow_actor_receive(0);
        if (m)
            memcpy(&v, m->data, sizeof v);
        if (!m || v != i) {
            r -= 1000;
            break;
        }
    }
    r += snow_actor_receive(0) == NULL;
    atomic_store(&result, r);
    atomic_store(&count, scanned);
}

START_TEST(selective_receive_costs_new_messages_only)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, scan_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 3);
    /* 1,000 receives, each finding its message first: not 10,000 each. */
    ck_assert_int_le(atomic_load(&count), 2000);
}
END_TEST

/* ---- many links and monitors --------------------------------------------------------------- */

#define MANY 30000

static void linked_child_wake(void *arg)
{
    (void)arg;
}

/* Hibernates, so that tens of thousands of them hold no stack. */
static void linked_child(void *arg)
{
    (void)arg;
    snow_actor_hibernate(linked_child_wake, NULL);
}

static void many_links_root(void *arg)
{
    (void)arg;
    snow_actor_trap_exit(1);
    SnowPid *p = malloc(MANY * sizeof *p);
    long r = 0;
    for (int i = 0; i < MANY; i++) {
        p[i] = snow_actor_spawn(linked_child, NULL, 0);
        r += snow_actor_link(p[i]) == 0;
        r += snow_actor_link(p[i]) == 0; /* twice: still one link */
    }
    for (int i = 0; i < MANY; i += 2)
        snow_actor_unlink(p[i]);
    for (int i = 0; i < MANY; i++)
        snow_actor_kill(p[i], 7);
    long exits = 0;
    SnowMessage *m;
    uint64_t tag = SNOW_TAG_EXIT;
    while ((m = snow_actor_receive_match(&tag, 1, 500)))
        exits++;
    free(p);
    atomic_store(&result, r);
    atomic_store(&count, exits);
}

START_TEST(many_links_each_signal_once)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, many_links_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 2 * MANY);
    ck_assert_int_eq(atomic_load(&count), MANY / 2);
}
END_TEST

/* ---- worker start-up failures ------------------------------------------------------------ */

static void nothing(void *arg)
{
    (void)arg;
    atomic_fetch_add(&count, 1);
}

START_TEST(worker_start_failure_is_an_error)
{
    atomic_store(&actor_fail_thread_starts, 1);
    int rc = snow_rt_init(2);
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_int_eq(snow_rt_workers(), 0);
    atomic_store(&actor_fail_thread_inits, 1);
    rc = snow_rt_init(2);
    ck_assert_int_lt(rc, 0);
    /* Nothing is left half-started: the next init works. */
    atomic_store(&count, 0);
    RUN_ROOT(2, nothing, NULL);
    ck_assert_int_eq(atomic_load(&count), 1);
}
END_TEST

Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shutdown_ends_actors_spawned_during_it);
    tcase_add_test(tc, timer_armed_as_worker_goes_idle_fires);
    tcase_add_test(tc, no_down_after_successful_demonitor);
    tcase_add_test(tc, woken_actor_runs_while_waker_is_busy);
    tcase_add_test(tc, timer_fires_within_a_slice_on_a_busy_worker);
    tcase_add_test(tc, io_is_polled_within_a_slice_on_a_busy_worker);
    tcase_add_test(tc, one_wakeup_per_deadline);
    tcase_add_test(tc, hibernation_waits_for_a_new_message);
    tcase_add_test(tc, guard_handler_survives_a_program_fault);
    tcase_add_test(tc, mailbox_limit_answers_elimit);
    tcase_add_test(tc, selective_receive_costs_new_messages_only);
    tcase_add_test(tc, many_links_each_signal_once);
    tcase_add_test(tc, worker_start_failure_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}
