/*
 * loopback.h: the blocking TCP client sockets the in-process server tests
 * use (on the test's own thread, never on an actor): bounded waits, so a
 * hung server fails a test instead of hanging it, and no Nagle delay.
 */
#ifndef SNOW_TESTS_LOOPBACK_H
#define SNOW_TESTS_LOOPBACK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A new socket, or -errno. rcvbuf > 0 sets the receive buffer first, so
 * the window the connection advertises stays that small. */
static inline int loopback_socket(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Connects *fd to 127.0.0.1:port; on failure closes it, sets it to -1 and
 * returns -errno. */
static inline int loopback_dial(int *fd, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(*fd, (struct sockaddr *)&a, sizeof a) == 0)
        return 0;
    int e = -errno;
    close(*fd);
    *fd = -1;
    return e;
}

/* All n bytes, or -1. */
static inline int loopback_send(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

#endif
