/*
 * client.h: a small blocking HTTP/1.1 client for the in-process server
 * tests (runs on the test's own thread, never on an actor).
 */
#ifndef SNOW_TEST_CLIENT_H
#define SNOW_TEST_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../loopback.h"

struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

struct response {
    int status;
    char head[8192];
    char body[1 << 16];
    size_t body_len;
    int closed; /* the connection ended right after this response */
};

static inline int client_open(struct client *c)
{
    c->len = 0;
    c->fd = loopback_socket(0);
    return c->fd < 0 ? c->fd : 0;
}

static inline int client_dial(struct client *c, int port)
{
    return loopback_dial(&c->fd, port);
}

static inline int client_connect(struct client *c, int port)
{
    int r = client_open(c);
    return r < 0 ? r : client_dial(c, port);
}

static inline int client_send(struct client *c, const void *p, size_t n)
{
    return loopback_send(c->fd, p, n);
}

static inline int client_sends(struct client *c, const char *s)
{
    return client_send(c, s, strlen(s));
}

static inline ssize_t client_fill(struct client *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (k > 0)
        c->len += (size_t)k;
    return k;
}

/* The value of header name in head (case-insensitive), copied to out. */
static inline int header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            l += nl + 1;
            while (*l == ' ')
                l++;
            const char *e = strstr(l, "\r\n");
            size_t n = e ? (size_t)(e - l) : strlen(l);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, l, n);
            out[n] = 0;
            return 1;
        }
    }
    return 0;
}

/* Reads one response (HEAD: no body). Returns 0 or -1 (closed / malformed). */
static inline int client_read(struct client *c, struct response *r, int head_request)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end)
            break;
        if (client_fill(c) <= 0)
            return -1;
    }
    size_t hl = (size_t)(end + 4 - c->buf);
    if (hl >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    char v[64];
    size_t cl = 0;
    if (!head_request && header_value(r->head, "Content-Length", v, sizeof v))
        cl = strtoul(v, NULL, 10);
    while (c->len < hl + cl)
        if (client_fill(c) <= 0)
            return -1;
    size_t copy = cl < sizeof r->body ? cl : sizeof r->body - 1;
    memcpy(r->body, c->buf + hl, copy);
    r->body[copy] = 0;
    r->body_len = cl;
    memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
    c->len -= hl + cl;
    return 0;
}

/* True when the server closed the connection (EOF, nothing buffered). */
static inline int client_eof(struct client *c)
{
    if (c->len)
        return 0;
    char b;
    return recv(c->fd, &b, 1, 0) == 0;
}

static inline void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

#endif
