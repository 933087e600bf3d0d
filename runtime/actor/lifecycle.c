/*
 * lifecycle.c: starting the runtime (snow_rt_init), running it until the
 * last actor is gone (snow_rt_run), and shutdown (snow_rt_shutdown).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/internal.h"

static int default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return (int)rt_env_long("SNOW_WORKERS", n, 1, 1024);
}

void (*actor_test_idle_hook)(void);
atomic_int actor_fail_thread_starts;
atomic_int actor_fail_thread_inits;

/*
 * Calls from plain threads against the teardown. A worker thread's calls
 * need nothing: snow_rt_run joins every worker before teardown frees
 * anything. A plain thread (main, a signal watcher, a program's own
 * threads) may send, spawn, kill or set a timer at any moment, also while
 * snow_rt_run is freeing the process table and the workers. Such a call
 * counts itself in ext.calls for as long as it uses the runtime's memory
 * (actor_ext_enter / actor_ext_leave); teardown closes ext.open first and
 * then waits for the count to reach zero, so a call either completes
 * before anything is freed or finds the gate closed and answers
 * SNOW_ENOT_RUNNING. ext lives outside rt because snow_rt_init clears rt
 * while a late call from a plain thread may still touch the count.
 */
static struct {
    atomic_int open;    /* 1 from init until teardown starts */
    atomic_int calls;   /* plain-thread calls in flight */
    atomic_int waiting; /* teardown sleeps on calls */
} ext;

bool actor_ext_enter(void)
{
    /* seq_cst, both: with teardown's "open = 0, then read calls" either
     * this load sees the gate closed or teardown sees this call counted. */
    atomic_fetch_add(&ext.calls, 1);
    if (atomic_load(&ext.open))
        return true;
    actor_ext_leave();
    return false;
}

void actor_ext_leave(void)
{
    /* seq_cst: the decrement before the load of waiting, which teardown
     * stores before it reads calls: either teardown reads the decremented
     * count or this load sees it waiting and wakes it. Waking only then
     * keeps the system call off every plain-thread send. */
    if (atomic_fetch_sub(&ext.calls, 1) == 1 && atomic_load(&ext.waiting))
        rt_futex_wake(&ext.calls, INT_MAX);
}

static void ext_close(void)
{
    atomic_store(&ext.open, 0);
    atomic_store(&ext.waiting, 1);
    for (int n; (n = atomic_load(&ext.calls)) != 0;)
        rt_futex_wait(&ext.calls, n, NULL);
    atomic_store(&ext.waiting, 0);
}

/* Stops and joins the first n workers and frees what init set up. */
static void stop_workers(int n)
{
    /* seq_cst, before the wake-ups: pairs with sched_has_work's load */
    atomic_store(&rt.stopping, 1);
    for (int i = 0; i < n; i++) {
        /* 0 before the wake: a worker just about to wait sees a changed
         * word and does not sleep (the futex checks it) */
        atomic_store(&rt.workers[i].sleeping, 0);
        rt_futex_wake(&rt.workers[i].sleeping, 1);
    }
    for (int i = 0; i < n; i++) {
        poller_interrupt();
        pthread_join(rt.workers[i].thread, NULL);
    }
}

static void teardown(void)
{
    ext_close();
    timers_fini();
    stack_pool_fini();
    actor_cache_fini();
    msg_cache_fini();
    poller_fini();
    registry_fini();
    proc_fini();
    free(rt.workers);
    rt.workers = NULL;
    free(rt.watches);
    rt.watches = NULL;
    atomic_store(&rt.running, 0); /* seq_cst: after the teardown it announces */
}

int snow_rt_init(int nworkers)
{
    if (atomic_load(&rt.running)) /* seq_cst: init and run are not hot */
        return -EBUSY;
    int n = nworkers > 0 ? nworkers : default_workers();
    memset(&rt, 0, sizeof rt);
    rt.nworkers = n;
    rt.reductions = (int32_t)rt_env_long("SNOW_REDUCTIONS", ACTOR_DEFAULT_REDUCTIONS, 1, 100000000);
    /* aligned: struct worker keeps its spawn and exit counts on their own
     * cache line */
    rt.workers = aligned_alloc(_Alignof(struct worker), (size_t)n * sizeof *rt.workers);
    if (!rt.workers)
        return -ENOMEM;
    memset(rt.workers, 0, (size_t)n * sizeof *rt.workers);
    rt.watches = calloc((size_t)n * (size_t)n, sizeof *rt.watches);
    if (!rt.watches) {
        free(rt.workers);
        return -ENOMEM;
    }
    timers_init();
    int err = proc_init();
    if (!err)
        err = poller_init();
    if (err) {
        free(rt.watches);
        free(rt.workers);
        return err;
    }
    stack_signal_init();
    atomic_store(&rt.running, 1); /* seq_cst: after everything it announces was set up */
    atomic_store(&ext.open, 1);
    int started = 0;
    for (int i = 0; i < n && !err; i++) {
        struct worker *w = &rt.workers[i];
        w->index = i;
        w->watch = rt.watches + (size_t)i * (size_t)n;
        w->watch_until = INT64_MAX;
        w->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        /* test hook: seq_cst, start-up only */
        err = actor_fail_thread_starts > 0 && atomic_fetch_sub(&actor_fail_thread_starts, 1) > 0
                  ? EAGAIN
                  : pthread_create(&w->thread, NULL, sched_worker_main, w);
        if (err) {
            rt_log(RT_LOG_ERROR, "cannot start worker thread %d: %s", i, strerror(err));
            err = -err;
        } else {
            started++;
        }
    }
    /* Every worker reports whether it could set up its alternate signal
     * stack; without one a guard-page hit could not be recovered. acquire:
     * pairs with the worker's release increment, after its init_err. */
    for (int k; (k = atomic_load_explicit(&rt.started, memory_order_acquire)) < started;)
        rt_futex_wait(&rt.started, k, NULL);
    for (int i = 0; i < started && !err; i++)
        if (rt.workers[i].init_err) {
            err = rt.workers[i].init_err;
            rt_log(RT_LOG_ERROR, "worker thread %d: no alternate signal stack: %s", i, strerror(-err));
        }
    if (err) {
        stop_workers(started);
        teardown();
        return err;
    }
    return 0;
}

static void kill_one(SnowPid pid, void *arg)
{
    (void)arg;
    actor_signal_exit(pid, 0, SNOW_EXIT_SHUTDOWN, false);
}

int snow_rt_run(void)
{
    if (!atomic_load(&rt.running))
        return SNOW_ENOT_RUNNING;
    bool killed = false;
    for (;;) {
        /* seq_cst: the word is read before the conditions and changed
         * after them (sched_worker_main, snow_rt_shutdown), the futex
         * protocol's order */
        int word = atomic_load(&rt.run_word);
        if (sched_no_live_actors())
            break;
        if (atomic_load(&rt.shutdown_req) && !killed) {
            killed = true;
            /* The walk reads every slot under its lock after the flag was
             * read here, and a spawn reads the flag under the lock of the
             * slot it installs into (proc_insert): an actor spawned
             * concurrently is either seen here or kills itself. */
            proc_each(kill_one, NULL);
            continue;
        }
        rt_futex_wait(&rt.run_word, word, NULL);
    }
    stop_workers(rt.nworkers);
    teardown();
    return 0;
}

void snow_rt_shutdown(void)
{
    /* Only atomics and a raw futex call: safe in a signal handler. seq_cst:
     * the flag before the word, read in the other order by snow_rt_run,
     * which reads the flag before its walk of the table (proc_insert). */
    atomic_store(&rt.shutdown_req, 1);
    atomic_fetch_add(&rt.run_word, 1);
    rt_futex_wake(&rt.run_word, 1);
}

