/*
 * wsclient.h: a small blocking WebSocket client for the connection tests.
 * It runs on the test's own thread (never on an actor), masks what it
 * sends, and reads whole server frames into a growable buffer. It never
 * answers pings by itself, so heartbeat tests can play a dead peer.
 */
#ifndef SNOW_TESTS_WSCLIENT_H
#define SNOW_TESTS_WSCLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../loopback.h"

struct wsc {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    char head[4096]; /* the handshake response head */
    int status;
};

struct wsframe {
    uint8_t op;
    bool fin;
    uint8_t rsv;
    uint8_t *data; /* malloc'd, NUL-terminated */
    size_t len;
};

/* When set, the receive buffer of the next connections (set before
 * connecting, so the advertised window stays that small). */
static int wsc_rcvbuf;

static inline int wsc_connect(struct wsc *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = loopback_socket(wsc_rcvbuf);
    if (c->fd < 0)
        return c->fd;
    return loopback_dial(&c->fd, port);
}

static inline int wsc_send(struct wsc *c, const void *p, size_t n)
{
    return loopback_send(c->fd, p, n);
}

static inline ssize_t wsc_fill(struct wsc *c)
{
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        uint8_t *p = realloc(c->buf, cap);
        if (!p)
            return -1;
        c->buf = p;
        c->cap = cap;
    }
    ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (k > 0)
        c->len += (size_t)k;
    return k;
}

/* The request for path with extra header lines (each ending in CRLF). */
static inline int wsc_request(char *out, size_t cap, const char *path, const char *extra)
{
    return snprintf(out, cap,
                    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                    path, extra ? extra : "");
}

/* Reads the response head (and its body, by Content-Length, dropped).
 * Returns the status, or -1. */
static inline int wsc_read_head(struct wsc *c)
{
    uint8_t *end;
    while (!(end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
        if (wsc_fill(c) <= 0)
            return -1;
    size_t hl = (size_t)(end + 4 - c->buf);
    size_t copy = hl < sizeof c->head ? hl : sizeof c->head - 1;
    memcpy(c->head, c->buf, copy);
    c->head[copy] = 0;
    if (sscanf(c->head, "HTTP/1.1 %d", &c->status) != 1)
        return -1;
    size_t cl = 0;
    const char *p = strcasestr(c->head, "\r\nContent-Length:");
    if (p && c->status != 101)
        cl = strtoul(p + 17, NULL, 10);
    while (c->len < hl + cl)
        if (wsc_fill(c) <= 0)
            return -1;
    memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
    c->len -= hl + cl;
    return c->status;
}

/* Connects, sends the handshake (plus extra bytes right behind it, in the
 * same write) and reads the head. Returns the status or -1. */
static inline int wsc_open(struct wsc *c, int port, const char *path, const char *headers, const void *extra,
                           size_t extra_len)
{
    if (wsc_connect(c, port) < 0)
        return -1;
    char req[2048];
    int n = wsc_request(req, sizeof req - extra_len, path, headers);
    if (extra_len)
        memcpy(req + n, extra, extra_len);
    if (wsc_send(c, req, (size_t)n + extra_len) < 0)
        return -1;
    return wsc_read_head(c);
}

/* A masked client frame into out (cap >= n + 14). b0 = FIN|RSV|opcode. */
static inline size_t ws_client_frame(uint8_t *out, uint8_t b0, const void *payload, size_t n, bool mask)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = b0;
    uint8_t m = mask ? 0x80 : 0;
    if (n < 126) {
        out[h++] = (uint8_t)(m | n);
    } else if (n <= 0xFFFF) {
        out[h++] = m | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (mask) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++)
        out[h + i] = mask ? (uint8_t)(p[i] ^ key[i & 3]) : p[i];
    return h + n;
}

static inline int wsc_frame(struct wsc *c, uint8_t b0, const void *p, size_t n)
{
    uint8_t *f = malloc(n + 14);
    if (!f)
        return -1;
    size_t k = ws_client_frame(f, b0, p, n, true);
    int r = wsc_send(c, f, k);
    free(f);
    return r;
}

static inline int wsc_close_frame(struct wsc *c, unsigned code, const char *reason)
{
    uint8_t body[125];
    size_t n = 0;
    if (code) {
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        n = 2;
        size_t r = reason ? strlen(reason) : 0;
        if (r)
            memcpy(body + 2, reason, r);
        n += r;
    }
    return wsc_frame(c, 0x88, body, n);
}

/* Reads one server frame. Returns 0, or -1 at end of stream / error.
 * Server frames must not be masked (checked). */
static inline int wsc_read(struct wsc *c, struct wsframe *f)
{
    memset(f, 0, sizeof *f);
    for (;;) {
        if (c->len >= 2) {
            if (c->buf[1] & 0x80)
                return -1;
            uint64_t n = c->buf[1] & 127;
            size_t h = 2;
            if (n == 126 && c->len >= 4) {
                n = (uint64_t)c->buf[2] << 8 | c->buf[3];
                h = 4;
            } else if (n == 127 && c->len >= 10) {
                n = 0;
                for (int i = 0; i < 8; i++)
                    n = n << 8 | c->buf[2 + i];
                h = 10;
            } else if (n >= 126) {
                h = 0;
            }
            if (h && c->len >= h + n) {
                f->op = c->buf[0] & 15;
                f->fin = (c->buf[0] & 0x80) != 0;
                f->rsv = c->buf[0] & 0x70;
                f->len = (size_t)n;
                f->data = malloc(f->len + 1);
                memcpy(f->data, c->buf + h, f->len);
                f->data[f->len] = 0;
                memmove(c->buf, c->buf + h + n, c->len - h - n);
                c->len -= h + (size_t)n;
                return 0;
            }
        }
        if (wsc_fill(c) <= 0)
            return -1;
    }
}

/* Reads one whole data message (continuations joined), answering nothing.
 * Control frames before it are returned instead when ctl is true. */
static inline int wsc_message(struct wsc *c, struct wsframe *m)
{
    struct wsframe f;
    if (wsc_read(c, &f) < 0)
        return -1;
    *m = f;
    while (!m->fin && m->op != 8 && m->op != 9 && m->op != 10) {
        if (wsc_read(c, &f) < 0)
            return -1;
        if (f.op >= 8) { /* a control frame between fragments: not expected here */
            free(f.data);
            continue;
        }
        m->data = realloc(m->data, m->len + f.len + 1);
        memcpy(m->data + m->len, f.data, f.len);
        m->len += f.len;
        m->data[m->len] = 0;
        m->fin = f.fin;
        free(f.data);
    }
    return 0;
}

static inline unsigned wsframe_code(const struct wsframe *f)
{
    return f->len >= 2 ? (unsigned)(f->data[0] << 8 | f->data[1]) : 1005;
}

/* True when the server ended the TCP stream (after what is buffered). */
static inline bool wsc_eof(struct wsc *c)
{
    while (c->len == 0) {
        ssize_t k = wsc_fill(c);
        if (k == 0)
            return true;
        if (k < 0)
            return errno == ECONNRESET;
    }
    return false;
}

static inline void wsc_close(struct wsc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

#endif
