/*
 * stack.c: guarded coroutine stacks, their pool, the trampoline every stack
 * starts in, and the guard-page (SIGSEGV) handler.
 *
 * A stack is one mapping: a PROT_NONE guard page, then 64 KiB + one page of
 * usable memory whose top holds struct stack. makecontext (ucontext) lays out
 * the initial frame; rt_ctx_switch then enters and leaves it without system
 * calls. Each stack runs stack_trampoline forever: it calls the current
 * actor's function, finishes the actor, and switches back to the scheduler
 * ready for the next actor. Exits, panics and overflows _longjmp to the
 * trampoline's jmp_buf on the same stack, which discards the frames above.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "actor/internal.h"
#include "actor/tsan.h"

#ifdef RT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define GUARD_SIZE 4096
#define MAP_SIZE (GUARD_SIZE + ACTOR_STACK_SIZE + 4096)
#define HEADER_SIZE ((sizeof(struct stack) + 63) & ~(size_t)63)
#define WORKER_CACHE_MAX 32
#define GLOBAL_POOL_MAX 256
#define ALTSTACK_SIZE (64 * 1024)

enum { UNWIND_EXIT = 1, UNWIND_HIBERNATE = 2 };


static int pool_n(void)
{
    return atomic_load_explicit(&rt.stack_pool.n, memory_order_relaxed);
}

static void pool_n_add(int d)
{
    atomic_store_explicit(&rt.stack_pool.n, pool_n() + d, memory_order_relaxed);
}

/* Initial frame for rt_ctx_switch, matching ctx_x86_64.S. */
struct boot_frame {
    /* popped by rt_ctx_switch, lowest address first */
    uint32_t mxcsr;
    uint16_t fpucw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp;
    uint64_t rip;
};

/* getcontext is returns-twice; calling it through a plain function keeps
 * that property (and its register-clobbering rules) out of stack_create. */
static RT_NOINLINE int context_init(ucontext_t *uc)
{
    return getcontext(uc);
}

_Static_assert(sizeof(struct boot_frame) == 64, "matches ctx_x86_64.S");

/* getcontext reads the signal mask with a system call; makecontext needs
 * only a valid context to fill in. So one context is taken per process and
 * every new stack starts from a copy of it (makecontext reads none of the
 * copied registers nor the floating-point state it points to). */
static ucontext_t context_template;
static int context_template_err;
static pthread_once_t context_once = PTHREAD_ONCE_INIT;

static void context_template_init(void)
{
    context_template_err = context_init(&context_template);
}

atomic_int actor_fail_stack_maps;

/* Address space for a new stack. A worker maps STACK_BATCH stacks' worth
 * at once and hands it out one stack at a time, so that starting many
 * actors (a server's connections, a ring) costs one mmap per batch instead
 * of one per stack; each stack is still its own guard page and mapping
 * once its guard is protected, and is unmapped on its own. The unused rest
 * of a batch is never touched (MAP_NORESERVE), so it costs no memory. */
#define STACK_BATCH 16

static bool batch_prepare(char *b);

/* *guarded: the mapping's guard page is installed already. */
static char *map_one(struct worker *w, bool *guarded)
{
    int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK;
    *guarded = false;
    if (w && !w->stack_batch_n) {
        char *b = mmap(NULL, (size_t)STACK_BATCH * MAP_SIZE, prot, flags, -1, 0);
        if (b != MAP_FAILED) {
            /* Batches whose guards are page-table marks stay whole mappings
             * that the kernel may merge with their neighbours: never back
             * them with huge pages, which would make a stack's first
             * touched page 2 MiB (transparent_hugepage=always). Advice
             * only: a refusal changes nothing else. */
            (void)madvise(b, (size_t)STACK_BATCH * MAP_SIZE, MADV_NOHUGEPAGE);
            w->stack_batch = b;
            w->stack_batch_n = STACK_BATCH;
            w->stack_batch_guarded = batch_prepare(b);
        }
    }
    if (w && w->stack_batch_n) {
        char *map = w->stack_batch;
        w->stack_batch += MAP_SIZE;
        w->stack_batch_n--;
        *guarded = w->stack_batch_guarded;
        return map;
    }
    char *map = mmap(NULL, MAP_SIZE, prot, flags, -1, 0);
    return map == MAP_FAILED ? NULL : map;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

/* 1 until the kernel refuses MADV_GUARD_INSTALL (older than 6.13): then
 * every guard is an mprotect. Process-wide, like the kernel it describes
 * (relaxed: a stale 1 costs one refused madvise). */
static atomic_int guard_madvise = 1;

/* Makes the first page of a stack's mapping its guard. A guard installed
 * with madvise is a mark in the page table: the mapping stays one (a
 * batch of 16 stacks stays one VMA), where mprotect splits it in two or
 * three, which made the guard the dearest part of a fresh stack (a ring of
 * 10,000 actors spent more time in mprotect's VMA splits than in the
 * first page faults). A hit faults either way (SIGSEGV, segv_handler). */
static int guard_install(char *map)
{
    if (atomic_load_explicit(&guard_madvise, memory_order_relaxed)) {
        if (madvise(map, GUARD_SIZE, MADV_GUARD_INSTALL) == 0)
            return 0;
        if (errno != EINVAL)
            return -1;
        atomic_store_explicit(&guard_madvise, 0, memory_order_relaxed);
    }
    return mprotect(map, GUARD_SIZE, PROT_NONE);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
/* The calling thread (PIDFD_SELF, Linux 6.15): process_madvise on it acts
 * on the process's memory. */
#define PIDFD_SELF_THREAD (-10000)

/* 1 until process_madvise refuses a batch's guards (a kernel before 6.15
 * knows no PIDFD_SELF, one before 6.13 no guard advice): then each
 * stack installs its own (relaxed, as guard_madvise). Tests set it to 0
 * to take that path (actor.h). */
atomic_int actor_stack_batch_advice = 1;

/* Installs the guards of all STACK_BATCH stacks of a new batch with one
 * process_madvise instead of a madvise each, and faults in the top page of
 * each (its header and first frames, written when the stack is made and
 * at the first run) in one more: a ring of 10,000 fresh actors paid one
 * system call and one page fault per stack. True when the guards are in. */
static bool batch_prepare(char *b)
{
    if (!atomic_load_explicit(&actor_stack_batch_advice, memory_order_relaxed) ||
        !atomic_load_explicit(&guard_madvise, memory_order_relaxed))
        return false;
    struct iovec iov[STACK_BATCH];
    for (int i = 0; i < STACK_BATCH; i++)
        iov[i] = (struct iovec){.iov_base = b + (size_t)i * MAP_SIZE, .iov_len = GUARD_SIZE};
    long done = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, (size_t)STACK_BATCH, MADV_GUARD_INSTALL, 0u);
    if (done != (long)STACK_BATCH * GUARD_SIZE) {
        /* Nothing or part installed: each stack installs its own again
         * (installing a guard twice is harmless). */
        atomic_store_explicit(&actor_stack_batch_advice, 0, memory_order_relaxed);
        return false;
    }
    for (int i = 0; i < STACK_BATCH; i++)
        iov[i] = (struct iovec){.iov_base = b + (size_t)(i + 1) * MAP_SIZE - 4096, .iov_len = 4096};
    /* Advice only: a refusal leaves the faults to the first writes. */
    (void)syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, (size_t)STACK_BATCH, MADV_POPULATE_WRITE, 0u);
    return true;
}

static struct stack *stack_create(struct worker *w, void (*entry)(void))
{
    if (atomic_load_explicit(&actor_fail_stack_maps, memory_order_relaxed) > 0 &&
        atomic_fetch_sub(&actor_fail_stack_maps, 1) > 0)
        return NULL;
    bool guarded;
    char *map = map_one(w, &guarded);
    if (!map)
        return NULL;
    if (!guarded && guard_install(map)) {
        munmap(map, MAP_SIZE);
        return NULL;
    }
    struct stack *s = (struct stack *)(map + MAP_SIZE - HEADER_SIZE);
    memset(s, 0, sizeof *s);
    s->map = map;
    s->lo = map + GUARD_SIZE;
    s->usable = (size_t)((char *)s - s->lo);

    /* makecontext prepares the entry stack pointer (aligned, with its own
     * return slot) and instruction pointer; we read both back and push the
     * frame rt_ctx_switch pops, so the first switch "returns" into entry. */
    pthread_once(&context_once, context_template_init);
    if (context_template_err) {
        munmap(map, MAP_SIZE);
        return NULL;
    }
    ucontext_t uc = context_template;
    uc.uc_stack.ss_sp = s->lo;
    uc.uc_stack.ss_size = s->usable;
    uc.uc_link = NULL;
    makecontext(&uc, entry, 0);
    uintptr_t sp = (uintptr_t)uc.uc_mcontext.gregs[REG_RSP];
    /* After rt_ctx_switch pops this frame and returns through f->rip, the
     * stack pointer is exactly the one makecontext prepared. */
    struct boot_frame *f = (struct boot_frame *)(sp - sizeof(struct boot_frame));
    memset(f, 0, sizeof *f);
    f->mxcsr = 0x1F80; /* default SSE control: all exceptions masked, round to nearest */
    f->fpucw = 0x037F; /* default x87 control word */
    f->rip = (uint64_t)uc.uc_mcontext.gregs[REG_RIP];
    s->ctx.sp = f;
    s->tsan_fiber = actor_tsan_fiber_new();
    return s;
}

static void stack_destroy(struct stack *s)
{
    actor_tsan_fiber_free(s->tsan_fiber);
    munmap(s->map, MAP_SIZE);
}

struct stack *stack_get(struct worker *w)
{
    struct stack *s = w->stack_cache;
    if (s) {
        w->stack_cache = s->next;
        w->stack_cache_n--;
        return s;
    }
    if (pool_n()) {
        rt_spin_lock(&rt.stack_pool.lock);
        s = rt.stack_pool.free;
        if (s) {
            rt.stack_pool.free = s->next;
            pool_n_add(-1);
        }
        rt_spin_unlock(&rt.stack_pool.lock);
        if (s)
            return s;
    }
    return stack_create(w, stack_trampoline);
}

void stack_put(struct worker *w, struct stack *s)
{
#ifdef RT_ASAN
    /* Frames abandoned by an unwind (exit, panic, overflow) leave their
     * redzones poisoned; the next actor on this stack must not trip on
     * them. */
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->usable);
#endif
    if (w->stack_cache_n < WORKER_CACHE_MAX) {
        s->next = w->stack_cache;
        w->stack_cache = s;
        w->stack_cache_n++;
        return;
    }
    rt_spin_lock(&rt.stack_pool.lock);
    if (pool_n() < GLOBAL_POOL_MAX) {
        s->next = rt.stack_pool.free;
        rt.stack_pool.free = s;
        pool_n_add(1);
        s = NULL;
    }
    rt_spin_unlock(&rt.stack_pool.lock);
    if (s)
        stack_destroy(s);
}

void stack_pool_fini(void)
{
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *w = &rt.workers[i];
        if (w->stack_batch_n)
            munmap(w->stack_batch, (size_t)w->stack_batch_n * MAP_SIZE);
        w->stack_batch = NULL;
        w->stack_batch_n = 0;
        while (w->stack_cache) {
            struct stack *s = w->stack_cache;
            w->stack_cache = s->next;
            stack_destroy(s);
        }
        w->stack_cache_n = 0;
    }
    while (rt.stack_pool.free) {
        struct stack *s = rt.stack_pool.free;
        rt.stack_pool.free = s->next;
        stack_destroy(s);
    }
    atomic_store(&rt.stack_pool.n, 0);
}

/* ---- the trampoline -------------------------------------------------------- */

void stack_trampoline(void)
{
#ifdef RT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    for (;;) {
        struct actor *a = actor_self();
        int why = _setjmp(a->stack->top);
        a = actor_self();
        if (why == 0) {
            if (!a->exiting) {
                actor_check_signals(a);
                timer_disarm(&a->wait_timer);
                /* A hibernation continuation starts as a wait would return:
                 * the readiness it waited for is consumed, so that its next
                 * EAGAIN parks until a new edge (see actor_wait). */
                a->woke = 0;
                if (a->wait_io) {
                    unsigned took = atomic_load_explicit(&a->wait_events, memory_order_relaxed) &
                                    (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE);
                    unsigned had = atomic_fetch_and(&a->wait_io->ready, ~took);
                    a->woke = (uint8_t)(had & (took | SNOW_WAIT_HANGUP));
                }
                atomic_store_explicit(&a->wait_events, 0, memory_order_relaxed);
                a->wait_io = NULL;
                a->fn(a->arg);
                a = actor_self();
                a->exit_reason = SNOW_EXIT_NORMAL;
            }
            why = UNWIND_EXIT;
        }
        if (why == UNWIND_HIBERNATE) {
            sched_switch_out(SW_HIBERNATE);
            continue;
        }
        actor_finish(a);
        sched_switch_out(SW_EXIT);
    }
}

void actor_exit_now(int reason)
{
    struct actor *a = actor_self();
    a->exit_reason = reason;
    actor_longjmp(a->stack->top, UNWIND_EXIT);
}

__attribute__((noreturn)) void actor_unwind_hibernate(struct actor *a)
{
    actor_longjmp(a->stack->top, UNWIND_HIBERNATE);
}

/* ---- guard-page handler ---------------------------------------------------- */

static size_t fmt_u64(char *buf, uint64_t v, int base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (uint64_t)base];
        v /= (uint64_t)base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static size_t put(char *buf, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + at, s, n);
    return at + n;
}

static struct sigaction prev_segv, prev_bus;

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    struct worker *w = worker_self();
    struct actor *a = w ? w->current : NULL;
    char *addr = si->si_addr;
    if (a && a->stack && addr >= a->stack->map && addr < a->stack->lo) {
        /* Async-signal-safe report: write(2) of a preformatted line. */
        char line[192];
        size_t n = put(line, 0, "snow-rt: actor ");
        n += fmt_u64(line + n, a->pid, 10);
        n = put(line, n, " overflowed its 64 KiB stack (guard page hit at 0x");
        n += fmt_u64(line + n, (uint64_t)(uintptr_t)addr, 16);
        n = put(line, n, "); terminating it with reason stack_overflow\n");
        ssize_t wr = write(2, line, n);
        (void)wr;
        /* SA_NODEFER leaves SIGSEGV unblocked, so jumping out of the
         * handler leaves the thread's mask as it was; the kernel's signal
         * frame on the alternate stack is simply abandoned. The actor's
         * frames are discarded and its exit path runs from the top of its
         * own stack. */
        a->exit_reason = SNOW_EXIT_STACK_OVERFLOW;
#ifdef RT_ASAN
        /* The jump leaves from the alternate stack, so the sanitizer does
         * not clean the actor stack's shadow itself; the exit path about to
         * run there must not meet the dead frames' redzones. */
        ASAN_UNPOISON_MEMORY_REGION(a->stack->lo, a->stack->usable);
#endif
        actor_tsan_signal_jump(uctx);
        actor_longjmp(a->stack->top, UNWIND_EXIT);
    }
    /* Not an actor's guard page: hand the fault to whatever handled this
     * signal before the runtime started, and stay installed for the next
     * guard-page hit. A program's own handler is called as it asked to be
     * (its mask and SA_RESETHAND are not emulated); with the default action
     * (or SIG_IGN, which the kernel overrides for a real fault) the default
     * is restored and the handler returns, so the faulting instruction
     * faults again and the process dies with the usual signal and core. */
    const struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, si, uctx);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
}

void stack_signal_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    struct sigaction cur;
    /* Installed once per process: a second snow_rt_init must not record
     * our own handler as the one to fall back to. */
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && cur.sa_sigaction == segv_handler)
        return;
    sigaction(SIGSEGV, &sa, &prev_segv);
    sigaction(SIGBUS, &sa, &prev_bus);
}

int stack_thread_init(struct worker *w)
{
    pthread_attr_t attr;
    if (!pthread_getattr_np(pthread_self(), &attr)) {
        pthread_attr_getstack(&attr, &w->sys_stack_lo, &w->sys_stack_size);
        pthread_attr_destroy(&attr);
    }
    w->altstack = malloc(ALTSTACK_SIZE);
    if (!w->altstack)
        return -ENOMEM;
    stack_t ss = {.ss_sp = w->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL))
        return -errno;
    return 0;
}

void stack_thread_fini(struct worker *w)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(w->altstack);
    w->altstack = NULL;
}

/* ---- raw switch benchmark ----------------------------------------------------- */

static struct rt_ctx bench_main_ctx;
static struct stack *bench_stack;

static void bench_entry(void)
{
    for (;;) {
        actor_tsan_leave(bench_stack->tsan_back);
        rt_ctx_switch(&bench_stack->ctx, &bench_main_ctx);
    }
}

double actor_bench_switch_ns(long n)
{
    bench_stack = stack_create(NULL, bench_entry);
    if (!bench_stack)
        return -1;
    actor_tsan_enter(&bench_stack->tsan_back, bench_stack->tsan_fiber);
    rt_ctx_switch(&bench_main_ctx, &bench_stack->ctx); /* enter once */
    int64_t t0 = rt_now_ns();
    for (long i = 0; i < n; i++) {
        actor_tsan_enter(&bench_stack->tsan_back, bench_stack->tsan_fiber);
        rt_ctx_switch(&bench_main_ctx, &bench_stack->ctx);
    }
    int64_t t1 = rt_now_ns();
    stack_destroy(bench_stack);
    bench_stack = NULL;
    return (double)(t1 - t0) / (double)(2 * n);
}
