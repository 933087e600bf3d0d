/*
 * wsclient.c: see wsclient.h. Plain connections read into the shared
 * scratch buffer and parse the frames in place; only an incomplete tail is
 * copied into the connection's own buffer, so an idle connection holds no
 * read buffer of its own. TLS connections (wsclient_tls.c) pump BearSSL's
 * engine: records in and out over the socket, application data into rbuf,
 * and wbuf into the engine.
 */
#include "wsclient.h"
#include "wsclient_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "utf8.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* A 101 response longer than this is refused. */
#define MAX_RESPONSE_HEAD 16384
/* Read space kept free in a connection's own buffer. */
#define MIN_READ_SPACE 16384

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void wsc_shared_seed(struct wsc_shared *sh)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid();
    }
    sh->rng = s ? s : 1;
}

uint64_t wsc_rand(struct wsc_shared *sh)
{
    uint64_t x = sh->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sh->rng = x;
    return x * 0x2545F4914F6CDD1Du;
}

void wsc_accept_for(const char *key, char out[29])
{
    br_sha1_context h;
    unsigned char digest[br_sha1_SIZE];
    br_sha1_init(&h);
    br_sha1_update(&h, key, strlen(key));
    br_sha1_update(&h, ws_guid, sizeof ws_guid - 1);
    br_sha1_out(&h, digest);
    rt_base64_encode(out, digest, sizeof digest);
    out[28] = '\0';
}

int64_t wsc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void *wsc_grow(void *p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return p;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c);
    if (!q) {
        fprintf(stderr, "loadgen: out of memory (%zu bytes)\n", c);
        exit(2);
    }
    *cap = c;
    return q;
}

void wsc_set_want_out(struct wsc_conn *c, bool want)
{
    if (c->want_out == want || c->state == WSC_DONE)
        return;
    /* A plain socket is registered edge-triggered for both directions
     * (wsc_connect): a send that found the buffer full gets an EPOLLOUT
     * edge when room comes back, with no epoll_ctl either way. */
    if (!c->sh->tls) {
        c->want_out = want;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->sh->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want;
}

void wsc_finish(struct wsc_conn *c, bool clean, const char *why)
{
    if (c->state == WSC_DONE)
        return;
    close(c->fd);
    c->fd = -1;
    c->state = WSC_DONE;
    c->want_out = false;
    c->ops->on_done(c, clean, why);
}

/* The server broke the protocol: the run cannot trust its figures. */
static void violate(struct wsc_conn *c, const char *why)
{
    c->violation = true;
    wsc_finish(c, false, why);
}

void wsc_abort(struct wsc_conn *c, const char *why)
{
    wsc_finish(c, false, why);
}

void wsc_release(struct wsc_conn *c)
{
    free(c->rbuf);
    free(c->wbuf);
    free(c->msg);
    free(c->t);
    c->rbuf = c->wbuf = c->msg = NULL;
    c->t = NULL;
    c->rcap = c->wcap = c->mcap = 0;
    c->rlen = c->woff = c->wlen = c->mlen = 0;
}

size_t wsc_pending(const struct wsc_conn *c)
{
    return c->wlen - c->woff;
}

/* --- output */

static uint8_t *reserve_out(struct wsc_conn *c, size_t n)
{
    if (c->woff > 0 && c->wlen + n > c->wcap) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    c->wbuf = wsc_grow(c->wbuf, &c->wcap, c->wlen + n);
    uint8_t *q = c->wbuf + c->wlen;
    c->wlen += n;
    return q;
}

/* Copies n payload bytes and applies the mask (RFC 6455 §5.3): the
 * 4-byte key repeated makes one 64-bit word, xored 32 bytes at a time (the
 * compiler keeps it in vector registers), then 8, then bytes. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint8_t kb[8];
    memcpy(kb, key, 4);
    memcpy(kb + 4, key, 4);
    uint64_t k8;
    memcpy(&k8, kb, 8);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, src + i, 32);
        w[0] ^= k8;
        w[1] ^= k8;
        w[2] ^= k8;
        w[3] ^= k8;
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

void wsc_queue(struct wsc_conn *c, int opcode, const uint8_t *p, size_t n)
{
    size_t hl = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8);
    uint8_t *q = reserve_out(c, hl + 4 + n);
    q[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        q[1] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        q[1] = 0x80 | 126;
        q[2] = (uint8_t)(n >> 8);
        q[3] = (uint8_t)n;
    } else {
        q[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            q[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    /* A fresh, unpredictable masking key for every frame (§5.3). */
    uint32_t k = (uint32_t)(wsc_rand(c->sh) >> 32);
    uint8_t *key = q + hl;
    memcpy(key, &k, 4);
    mask_copy(q + hl + 4, p, n, key);
}

static void write_plain(struct wsc_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        char why[96];
        snprintf(why, sizeof why, "write: %s", strerror(errno));
        wsc_finish(c, false, why);
        return;
    }
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    wsc_set_want_out(c, c->woff < c->wlen);
}


void wsc_flush(struct wsc_conn *c)
{
    /* Inside a parse the caller's loop flushes once it is done; a TLS pump
     * here would append to the buffer being parsed. */
    if (c->in_parse || c->state == WSC_DONE || c->state == WSC_CONNECTING)
        return;
    if (c->t)
        wsc_tls_turn(c, false);
    else
        write_plain(c);
}

void wsc_send(struct wsc_conn *c, int opcode, const uint8_t *p, size_t n)
{
    wsc_queue(c, opcode, p, n);
    wsc_flush(c);
}

void wsc_close(struct wsc_conn *c, uint16_t code)
{
    if (c->state != WSC_OPEN) {
        if (c->state == WSC_CONNECTING || c->state == WSC_HANDSHAKE)
            wsc_finish(c, false, "closed before the handshake completed");
        return;
    }
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    wsc_queue(c, 8, b, 2);
    c->state = WSC_CLOSING;
    wsc_flush(c);
}

/* --- handshake */

static bool token_in_list(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

/* Checks the response head (through the blank line). Returns NULL or why not. */
static const char *check_response(struct wsc_conn *c, const char *h, size_t n, char *why, size_t wn)
{
    const char *end = h + n, *eol = memchr(h, '\r', n);
    if (!eol || eol - h < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0 ||
        (eol - h > 12 && h[12] != ' ')) {
        int l = eol ? (int)(eol - h) : 0;
        snprintf(why, wn, "handshake: expected 101, got '%.*s'", l > 80 ? 80 : l, h);
        return why;
    }
    int upgrade = 0, connection = 0, accept = 0;
    const char *p = eol + 2;
    while (p < end && !(p[0] == '\r' && p + 1 < end && p[1] == '\n')) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (!le)
            break;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon)
            return "handshake: header line without a colon";
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (nl == 7 && strncasecmp(p, "upgrade", 7) == 0) {
            upgrade += vl == 9 && strncasecmp(v, "websocket", 9) == 0;
        } else if (nl == 10 && strncasecmp(p, "connection", 10) == 0) {
            connection += token_in_list(v, vl, "upgrade");
        } else if (nl == 20 && strncasecmp(p, "sec-websocket-accept", 20) == 0) {
            if (vl != 28 || memcmp(v, c->accept, 28) != 0) {
                snprintf(why, wn, "handshake: Sec-WebSocket-Accept '%.*s', expected '%s'",
                         (int)(vl > 60 ? 60 : vl), v, c->accept);
                return why;
            }
            accept++;
        } else if (nl == 24 && strncasecmp(p, "sec-websocket-extensions", 24) == 0) {
            return "handshake: an extension was accepted that was never offered";
        } else if (nl == 22 && strncasecmp(p, "sec-websocket-protocol", 22) == 0) {
            return "handshake: a subprotocol was chosen that was never offered";
        }
        p = le + 2;
    }
    if (upgrade != 1)
        return "handshake: no 'Upgrade: websocket'";
    if (connection < 1)
        return "handshake: no 'Connection: Upgrade'";
    if (accept != 1)
        return accept ? "handshake: Sec-WebSocket-Accept repeated" : "handshake: no Sec-WebSocket-Accept";
    return NULL;
}

/* --- frames */

static bool close_code_ok(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014 && code != 1015);
}

static void on_close_frame(struct wsc_conn *c, const uint8_t *p, size_t n)
{
    if (n == 1) {
        violate(c, "Close frame with a 1-byte payload");
        return;
    }
    unsigned code = 1005;
    if (n >= 2) {
        code = (unsigned)p[0] << 8 | p[1];
        if (!close_code_ok(code)) {
            char why[64];
            snprintf(why, sizeof why, "Close with code %u, which must never be sent", code);
            violate(c, why);
            return;
        }
        if (!rt_utf8_valid(p + 2, n - 2, NULL)) {
            violate(c, "Close reason is not UTF-8");
            return;
        }
    }
    c->got_close = true;
    c->close_code = (uint16_t)code;
    if (c->state == WSC_OPEN) {
        /* Answer with the same code (§5.5.1), an empty Close when there was none. */
        uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        wsc_queue(c, 8, b, code == 1005 ? 0 : 2);
    }
    c->state = WSC_CLOSED_WAIT;
}

static void deliver(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    if (op == 1 && !rt_utf8_valid(p, n, NULL)) {
        violate(c, "text message is not UTF-8");
        return;
    }
    c->ops->on_message(c, op, p, n);
}

/* Handles one whole frame. */
static void on_frame(struct wsc_conn *c, int op, bool fin, const uint8_t *p, size_t n)
{
    switch (op) {
    case 9:
        if (c->state == WSC_OPEN)
            wsc_queue(c, 10, p, n);
        return;
    case 10:
        c->ops->on_pong(c, p, n);
        return;
    case 8:
        on_close_frame(c, p, n);
        return;
    case 1:
    case 2:
        if (c->mop) {
            violate(c, "a new data frame inside a fragmented message");
            return;
        }
        if (fin) {
            deliver(c, op, p, n);
            return;
        }
        c->mop = op;
        c->mlen = 0;
        break;
    default: /* 0 */
        if (!c->mop) {
            violate(c, "a continuation frame outside a message");
            return;
        }
        break;
    }
    if (c->mlen + n > c->sh->max_message) {
        violate(c, "message larger than the limit");
        return;
    }
    c->msg = wsc_grow(c->msg, &c->mcap, c->mlen + n);
    memcpy(c->msg + c->mlen, p, n);
    c->mlen += n;
    if (fin) {
        int mop = c->mop;
        c->mop = 0;
        deliver(c, mop, c->msg, c->mlen);
    }
}

/* Parses data[0..n): the 101 first, then frames. Returns bytes consumed;
 * the rest is an incomplete response head or frame (c->need says how much
 * a frame needs when its header is complete). */
static size_t parse(struct wsc_conn *c, const uint8_t *data, size_t n)
{
    size_t off = 0;
    char why[160];
    c->need = 0;
    if (c->state == WSC_HANDSHAKE) {
        const uint8_t *e = memmem(data, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > MAX_RESPONSE_HEAD)
                violate(c, "handshake: response head too long");
            return 0;
        }
        off = (size_t)(e - data) + 4;
        const char *bad = check_response(c, (const char *)data, off, why, sizeof why);
        if (bad) {
            violate(c, bad);
            return n;
        }
        c->state = WSC_OPEN;
        c->ops->on_open(c);
    }
    while (c->state == WSC_OPEN || c->state == WSC_CLOSING) {
        size_t avail = n - off;
        if (avail < 2)
            break;
        const uint8_t *p = data + off;
        int op = p[0] & 0x0f;
        bool fin = p[0] & 0x80;
        if (p[1] & 0x80) {
            violate(c, "a server frame is masked (RFC 6455 5.1)");
            return n;
        }
        if (p[0] & 0x70) {
            violate(c, "RSV bits set without a negotiated extension");
            return n;
        }
        size_t hl = 2, len7 = p[1] & 0x7f;
        hl += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        if (avail < hl) {
            c->need = hl;
            break;
        }
        uint64_t len = len7;
        if (len7 == 126) {
            len = (uint64_t)p[2] << 8 | p[3];
            if (len < 126) {
                violate(c, "frame length not in its shortest form");
                return n;
            }
        } else if (len7 == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            if (len <= 0xffff || (len >> 63)) {
                violate(c, "frame length not in its shortest form");
                return n;
            }
        }
        if (op >= 8) {
            if (op > 10 || !fin || len > 125) {
                violate(c, op > 10 ? "reserved control opcode" : "fragmented or long control frame");
                return n;
            }
        } else if (op > 2) {
            violate(c, "reserved data opcode");
            return n;
        }
        if (len > c->sh->max_message) {
            snprintf(why, sizeof why, "a frame of %llu bytes, over the limit", (unsigned long long)len);
            violate(c, why);
            return n;
        }
        if (avail - hl < len) {
            c->need = hl + (size_t)len;
            break;
        }
        off += hl + (size_t)len;
        on_frame(c, op, fin, p + hl, (size_t)len);
    }
    if (c->state == WSC_CLOSED_WAIT || c->state == WSC_DONE)
        return n; /* bytes after a Close are ignored (§5.5.1) */
    return off;
}

/* Runs parse with flushes deferred, then keeps the unparsed tail in rbuf. */
void wsc_parse_rbuf(struct wsc_conn *c)
{
    c->in_parse = true;
    size_t used = parse(c, c->rbuf, c->rlen);
    c->in_parse = false;
    if (c->state == WSC_DONE)
        return;
    if (used) {
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
    }
}

void wsc_on_eof(struct wsc_conn *c)
{
    if (c->state == WSC_CLOSED_WAIT)
        wsc_finish(c, true, "closed");
    else if (c->state == WSC_HANDSHAKE)
        wsc_finish(c, false, "server closed the connection during the handshake");
    else
        wsc_finish(c, false, "server closed TCP without a Close frame");
}

/* Lists c for another read after this batch of events (wsc_run_more). */
static void list_more(struct wsc_conn *c)
{
    struct wsc_shared *sh = c->sh;
    if (c->in_more)
        return;
    sh->more = wsc_grow(sh->more, &sh->capmore, (sh->nmore + 1) * sizeof sh->more[0]);
    sh->more[sh->nmore++] = c;
    c->in_more = true;
}

bool wsc_run_more(struct wsc_shared *sh)
{
    if (!sh->nmore)
        return false;
    /* Entries listed during these reads go behind the ones taken now. */
    size_t n = sh->nmore;
    for (size_t i = 0; i < n; i++) {
        struct wsc_conn *c = sh->more[i];
        if (!c->in_more)
            continue;
        c->in_more = false;
        wsc_event(c, EPOLLIN);
    }
    memmove(sh->more, sh->more + n, (sh->nmore - n) * sizeof sh->more[0]);
    sh->nmore -= n;
    return sh->nmore > 0;
}

/* One read: recv, not read, which goes through the file layer first
 * (vfs_read, sock_read_iter: about a sixth of what a 64-byte read costs
 * here). The socket is edge-triggered, so a read that filled the
 * buffer lists the connection for another (the socket may hold more); a
 * shorter one emptied it, and new bytes raise a new edge. c->peer_shut:
 * epoll reported the server's FIN (EPOLLRDHUP) before this read. A read
 * that then returns less than it asked for has taken every byte sent
 * before the FIN, so the end of stream is known without the read that
 * would return 0. */
static void read_plain(struct wsc_conn *c)
{
    struct wsc_shared *sh = c->sh;
    bool peer_shut = c->peer_shut;
    ssize_t n;
    size_t asked;
    if (c->rlen == 0) {
        asked = sh->scratch_cap;
        n = recv(c->fd, sh->scratch, asked, 0);
        if (n > 0) {
            sh->now_ns = wsc_now_ns();
            c->in_parse = true;
            size_t used = parse(c, sh->scratch, (size_t)n);
            c->in_parse = false;
            if (c->state != WSC_DONE && used < (size_t)n) {
                size_t rest = (size_t)n - used;
                c->rbuf = wsc_grow(c->rbuf, &c->rcap, rest > c->need ? rest : c->need);
                memcpy(c->rbuf, sh->scratch + used, rest);
                c->rlen = rest;
            }
            if (c->state != WSC_DONE && (size_t)n == asked)
                list_more(c);
            else if (peer_shut && c->state != WSC_DONE)
                wsc_on_eof(c);
            return;
        }
    } else {
        size_t want = c->rlen + MIN_READ_SPACE;
        if (c->need > c->rlen && c->need > want)
            want = c->need;
        c->rbuf = wsc_grow(c->rbuf, &c->rcap, want);
        asked = c->rcap - c->rlen;
        n = recv(c->fd, c->rbuf + c->rlen, asked, 0);
        if (n > 0) {
            sh->now_ns = wsc_now_ns();
            c->rlen += (size_t)n;
            if (c->need <= c->rlen)
                wsc_parse_rbuf(c); /* else the frame is still incomplete: nothing to parse */
            if (c->state != WSC_DONE && (size_t)n == asked)
                list_more(c);
            else if (peer_shut && c->state != WSC_DONE)
                wsc_on_eof(c);
            return;
        }
    }
    if (n == 0) {
        wsc_on_eof(c);
    } else if (errno == EINTR) {
        list_more(c); /* no new edge would come for what is there */
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        char why[96];
        snprintf(why, sizeof why, "read: %s", strerror(errno));
        wsc_finish(c, false, why);
    }
}

/* --- TLS */

int wsc_connect(struct wsc_conn *c, struct wsc_shared *sh, const struct wsc_ops *ops,
                const char *path, const char *src)
{
    c->sh = sh;
    c->ops = ops;
    c->path = path;
    c->state = WSC_DONE;
    c->rlen = c->woff = c->wlen = c->mlen = c->need = 0;
    c->mop = 0;
    c->got_close = false;
    c->violation = false;
    c->close_code = 0;
    c->in_parse = false;
    c->peer_shut = false;
    c->in_more = false;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    if (!sh->nagle)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (inet_pton(AF_INET, src, &sa.sin_addr) != 1 || bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            int e = errno ? errno : EINVAL;
            close(c->fd);
            return -e;
        }
    }
    if (!sh->addr && inet_pton(AF_INET, sh->host, &sh->addr) != 1) {
        close(c->fd);
        return -EINVAL;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sh->port)};
    sa.sin_addr.s_addr = sh->addr;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        return -e;
    }
    /* Plain sockets edge-triggered: a level-triggered registration puts a
     * reported socket back on the ready list, so the next epoll_wait polls
     * it once more only to drop it (the read emptied it), and EPOLLOUT had
     * to be taken out of the interest set after the connect (an epoll_ctl
     * per connection). TLS keeps level-triggered readiness: its turn reads
     * at most 256 KiB, and what is left must be reported again. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | (sh->tls ? 0 : EPOLLET), .data.ptr = c};
    if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        int e = errno;
        close(c->fd);
        return -e;
    }
    c->want_out = true;
    c->state = WSC_CONNECTING;

    uint8_t raw[16];
    uint64_t r0 = wsc_rand(sh), r1 = wsc_rand(sh);
    memcpy(raw, &r0, 8);
    memcpy(raw + 8, &r1, 8);
    char key[25];
    rt_base64_encode(key, raw, sizeof raw);
    key[24] = '\0';
    wsc_accept_for(key, c->accept);
    if (sh->req_path != path) {
        int n = snprintf(sh->req_head, sizeof sh->req_head,
                         "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: ",
                         path, sh->host, sh->port);
        if (n < 0 || (size_t)n >= sizeof sh->req_head) {
            fprintf(stderr, "loadgen: request path too long\n");
            exit(2);
        }
        sh->req_head_len = (size_t)n;
        sh->req_path = path;
    }
    static const char tail[] = "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    uint8_t *q = reserve_out(c, sh->req_head_len + 24 + sizeof tail - 1);
    memcpy(q, sh->req_head, sh->req_head_len);
    memcpy(q + sh->req_head_len, key, 24);
    memcpy(q + sh->req_head_len + 24, tail, sizeof tail - 1);

    if (sh->tls && wsc_tls_start(c) < 0)
        return -EPROTO;
    return 0;
}

void wsc_event(struct wsc_conn *c, uint32_t events)
{
    if (c->state == WSC_DONE)
        return;
    if (c->state == WSC_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        /* Writable without an error condition: the connect succeeded
         * (connect(2)); SO_ERROR is read only to say why one failed. */
        int err = 0;
        if (events & (EPOLLERR | EPOLLHUP)) {
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (!err)
                err = ECONNREFUSED;
        }
        if (err) {
            char why[96];
            snprintf(why, sizeof why, "connect: %s", strerror(err));
            wsc_finish(c, false, why);
            return;
        }
        c->state = WSC_HANDSHAKE;
    }
    if (c->t) {
        wsc_tls_turn(c, (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0);
        return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP))
        c->peer_shut = true;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        read_plain(c);
    if (c->state != WSC_DONE)
        write_plain(c);
}
