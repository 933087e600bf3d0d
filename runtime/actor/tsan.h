/*
 * tsan.h: ThreadSanitizer annotations for the actor core's own context
 * switch, in one place. Without ThreadSanitizer every function here is an
 * empty inline and the handles are NULL.
 *
 * rt_ctx_switch (ctx_x86_64.S) moves a thread from one stack to another
 * behind ThreadSanitizer's back. Left alone, TSan would keep one shadow
 * call stack per thread and push an actor's frames onto whichever worker
 * happens to run it, unwinding into garbage (and overflowing its shadow
 * stack) after the first migration. So every coroutine stack gets its own
 * TSan fiber context, created and destroyed with the stack, and each switch
 * tells TSan which context runs next, immediately before rt_ctx_switch:
 *
 *   scheduler -> actor stack   actor_tsan_enter(&ctx, stack's fiber)
 *   actor stack -> scheduler   actor_tsan_leave(ctx)
 *
 * The context a switch comes back to is the worker thread's own, read at
 * the moment of entering (a stack is only ever entered from a worker's
 * scheduler loop), so nothing per worker has to be set up beforehand.
 *
 * Switches synchronise (flags 0): a switch is program order on one OS
 * thread, so what the scheduler wrote before entering a stack (current
 * actor, reduction budget) happens before the actor's code, and what the
 * actor wrote happens before the scheduler's next step. Everything that
 * hands an actor or a stack to another thread (the state CASes of the
 * park/notify protocol, the run-queue and pool spinlocks, the epoll
 * interceptors) is made of C11 atomics or intercepted calls that TSan
 * already understands, so no __tsan_acquire/__tsan_release is needed on
 * top: an actor resumed on another worker is ordered after its previous
 * slice through
 *     fiber -> worker A (switch) -> CAS/unlock on A -> CAS/lock on B ->
 *     worker B -> fiber (switch).
 * A report TSan makes across that chain is a real missing edge in the
 * protocol, not an artefact of the switch.
 *
 * One edge is made by the kernel where TSan cannot see it: an I/O handle
 * is filled in, registered with epoll_ctl, and the poller (often another
 * worker) reads it when epoll_pwait2 returns its event. TSan intercepts
 * epoll_ctl and epoll_wait, but not epoll_pwait2, so poller.c releases the
 * handle before registering it and acquires it on each event
 * (actor_tsan_release/acquire on the handle's address).
 */
#ifndef SNOW_ACTOR_TSAN_H
#define SNOW_ACTOR_TSAN_H

#include <setjmp.h>

#include "rt.h" /* RT_TSAN */

/* Every jump to an actor_catch frame or to the top of a stack goes through
 * actor_longjmp. TSan intercepts longjmp (to unwind its shadow call stack
 * and to leave the signal-handler state after the guard-page handler) but
 * not _longjmp. In glibc both are one function, and neither touches the
 * signal mask for a buffer filled by _setjmp, so the TSan build loses
 * nothing by calling longjmp. */
#ifdef RT_TSAN
#define actor_longjmp(env, val) longjmp(env, val)
#else
#define actor_longjmp(env, val) _longjmp(env, val)
#endif

#ifdef RT_TSAN
#include <signal.h>
#include <ucontext.h>

#include <sanitizer/tsan_interface.h>

/* A fresh TSan context for a new coroutine stack. */
static inline void *actor_tsan_fiber_new(void)
{
    return __tsan_create_fiber(0);
}

static inline void actor_tsan_fiber_free(void *fiber)
{
    if (fiber)
        __tsan_destroy_fiber(fiber);
}

/* Right before switching from the calling thread's own context into a
 * stack whose context is fiber; *back receives the context to leave to. */
static inline void actor_tsan_enter(void **back, void *fiber)
{
    *back = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(fiber, 0);
}

/* Right before switching from a stack back to the context saved by
 * actor_tsan_enter. */
static inline void actor_tsan_leave(void *back)
{
    __tsan_switch_to_fiber(back, 0);
}

/* A happens-before edge the kernel makes and TSan cannot see: release
 * before handing addr to another thread through a system call that TSan
 * does not intercept, acquire after receiving it. */
static inline void actor_tsan_release(void *addr)
{
    __tsan_release(addr);
}

static inline void actor_tsan_acquire(void *addr)
{
    __tsan_acquire(addr);
}

/* Right before the guard-page handler jumps out of the signal (uctx is its
 * third argument). TSan runs a handler with every signal blocked, which
 * the kernel would have undone on return; a jump does not return, so the
 * thread's mask from before the fault is put back by hand. Otherwise the
 * next guard-page hit on this worker meets a blocked SIGSEGV and the
 * kernel kills the process. */
static inline void actor_tsan_signal_jump(void *uctx)
{
    pthread_sigmask(SIG_SETMASK, &((ucontext_t *)uctx)->uc_sigmask, NULL);
}
#else
static inline void *actor_tsan_fiber_new(void)
{
    return NULL;
}

static inline void actor_tsan_fiber_free(void *fiber)
{
    (void)fiber;
}

static inline void actor_tsan_enter(void **back, void *fiber)
{
    (void)back;
    (void)fiber;
}

static inline void actor_tsan_leave(void *back)
{
    (void)back;
}

static inline void actor_tsan_signal_jump(void *uctx)
{
    (void)uctx;
}

static inline void actor_tsan_release(void *addr)
{
    (void)addr;
}

static inline void actor_tsan_acquire(void *addr)
{
    (void)addr;
}
#endif

#endif
