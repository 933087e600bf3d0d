/*
 * sock.h: the socket calls of the stream layer's hot path (recv, send,
 * sendmsg, readv) as system calls made directly, returning the count or a
 * negative errno.
 *
 * glibc's wrappers of these calls are thread cancellation points: around
 * the system call each one switches the thread to asynchronous
 * cancellation and back (__pthread_enable_asynccancel and
 * __pthread_disable_asynccancel), about 40 instructions a call: a 64-byte
 * echo at depth 1, one recv and one send, went from 2,016 to 1,939
 * instructions (callgrind; bench/README.md, "Large payloads in place, and
 * the socket calls without cancellation"). The runtime never cancels a
 * thread, so that work buys nothing. A direct
 * system call also hands back the error as its result: no errno, which is
 * per thread, to read before a coroutine can move to another worker.
 *
 * Sanitizer builds keep the libc calls, which the sanitizers intercept
 * (ASan checks the buffers; TSan takes a socket's writes and reads as
 * synchronisation). So do other architectures.
 */
#ifndef SNOW_HTTP_SOCK_H
#define SNOW_HTTP_SOCK_H

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define HTTP_SOCK_LIBC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__x86_64__) || !defined(__linux__)
#ifndef HTTP_SOCK_LIBC
#define HTTP_SOCK_LIBC 1
#endif
#endif

#ifndef HTTP_SOCK_LIBC

/* The x86-64 Linux system call convention: number in rax, arguments in
 * rdi, rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns
 * a value or -errno (-4095..-1) in rax. */
static inline long http_sys6(long nr, long a, long b, long c, long d, long e, long f)
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

static inline ssize_t http_sock_recv(int fd, void *buf, size_t n)
{
    return http_sys6(SYS_recvfrom, fd, (long)buf, (long)n, 0, 0, 0);
}

static inline ssize_t http_sock_send(int fd, const void *buf, size_t n, int flags)
{
    return http_sys6(SYS_sendto, fd, (long)buf, (long)n, flags, 0, 0);
}

static inline ssize_t http_sock_sendmsg(int fd, const struct msghdr *m, int flags)
{
    return http_sys6(SYS_sendmsg, fd, (long)m, flags, 0, 0, 0);
}

static inline ssize_t http_sock_readv(int fd, const struct iovec *iov, int n)
{
    return http_sys6(SYS_readv, fd, (long)iov, n, 0, 0, 0);
}

#else

static inline ssize_t http_sock_result(ssize_t r)
{
    return r < 0 ? -errno : r;
}

static inline ssize_t http_sock_recv(int fd, void *buf, size_t n)
{
    return http_sock_result(recv(fd, buf, n, 0));
}

static inline ssize_t http_sock_send(int fd, const void *buf, size_t n, int flags)
{
    return http_sock_result(send(fd, buf, n, flags));
}

static inline ssize_t http_sock_sendmsg(int fd, const struct msghdr *m, int flags)
{
    return http_sock_result(sendmsg(fd, m, flags));
}

static inline ssize_t http_sock_readv(int fd, const struct iovec *iov, int n)
{
    return http_sock_result(readv(fd, iov, n));
}

#endif

#endif
