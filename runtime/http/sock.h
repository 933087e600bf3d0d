/*
 * sock.h: the socket calls of the stream layer's hot path (recv, send,
 * sendmsg, readv) as system calls made directly, returning the count or a
 * negative errno.
 *
 * Why direct calls, and where the libc calls stay (sanitizer builds,
 * other architectures): sys.h. Here a 64-byte echo at depth 1, one recv
 * and one send, went from 2,016 to 1,939 instructions (callgrind;
 * bench/README.md, "Large payloads in place, and the socket calls without
 * cancellation").
 */
#ifndef SNOW_HTTP_SOCK_H
#define SNOW_HTTP_SOCK_H

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sys.h"

#ifndef RT_SYS_LIBC

static inline ssize_t http_sock_recv(int fd, void *buf, size_t n)
{
    return rt_sys6(SYS_recvfrom, fd, (long)buf, (long)n, 0, 0, 0);
}

static inline ssize_t http_sock_send(int fd, const void *buf, size_t n, int flags)
{
    return rt_sys6(SYS_sendto, fd, (long)buf, (long)n, flags, 0, 0);
}

static inline ssize_t http_sock_sendmsg(int fd, const struct msghdr *m, int flags)
{
    return rt_sys6(SYS_sendmsg, fd, (long)m, flags, 0, 0, 0);
}

static inline ssize_t http_sock_readv(int fd, const struct iovec *iov, int n)
{
    return rt_sys6(SYS_readv, fd, (long)iov, n, 0, 0, 0);
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
