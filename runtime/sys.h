/*
 * sys.h: system calls made directly with the `syscall` instruction, for
 * the calls on the runtime's hot paths (the stream layer's socket calls in
 * http/sock.h, the poller's epoll_pwait2).
 *
 * glibc's wrappers of these calls are thread cancellation points: around
 * the system call each one switches the thread to asynchronous
 * cancellation and back (__pthread_enable_asynccancel and
 * __pthread_disable_asynccancel), about 40 instructions a call. The
 * runtime never cancels a thread, so that work buys nothing. A direct call
 * also hands back the error as its result (-errno): no errno, which is per
 * thread, to read before a coroutine can move to another worker.
 *
 * RT_SYS_LIBC is defined where the libc calls must stay: sanitizer builds
 * (the sanitizers intercept the calls: ASan checks the buffers, TSan takes
 * a socket's writes and reads as synchronisation) and other architectures.
 */
#ifndef SNOW_RT_SYS_H
#define SNOW_RT_SYS_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define RT_SYS_LIBC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__x86_64__) || !defined(__linux__)
#ifndef RT_SYS_LIBC
#define RT_SYS_LIBC 1
#endif
#endif

#ifndef RT_SYS_LIBC

/* The x86-64 Linux system call convention: number in rax, arguments in
 * rdi, rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns
 * a value or -errno (-4095..-1) in rax. */
static inline long rt_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

#endif

#endif
