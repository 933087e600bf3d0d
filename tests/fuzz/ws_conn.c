/*
 * ws_conn.c: libFuzzer target for the connection loop as a whole: the
 * runtime (workers, poller, timers), the HTTP connection actor, the
 * upgrade and the WebSocket loop with its close paths, permessage-deflate,
 * limits and backpressure -- the state machines the pure targets cannot
 * reach.
 *
 * The runtime starts once per process with an HTTP server whose routes are
 *   /echo     echo (on_open / on_close counted)
 *   /small    max_message 256, outbound limit 1 KiB with close on
 *             backpressure; a message starting 'c' closes with the code
 *             in its next two bytes and the rest as reason, 'p' pings with
 *             the rest, anything else is echoed
 *   /deflate  echo with permessage-deflate
 *   GET /hello  a plain HTTP answer
 * Each input gets a fresh connection actor on one end of an AF_UNIX
 * socketpair (http_server_adopt, as the listener does for an accepted
 * socket); the target is the client on the other end.
 *
 * Input: byte 0 chooses the opening (bits 0-1: raw bytes straight into the
 * HTTP loop, or a valid upgrade to /echo, /small or /deflate with an
 * offer) and the ending (bit 2: EOF then read to the end, else an abrupt
 * close of both directions); bytes 1 and 2 give the two chunk sizes the
 * rest of the input alternates between (1..256 and 1..2041 bytes), sent
 * while everything the server writes is read. Then:
 *   - after EOF the server ends the connection within 5 s and has written
 *     an upgrade's 101 then only well-formed server frames (unmasked,
 *     minimal lengths, control frames short and final, RSV1 only with an
 *     agreed deflate, fragments in order), a Close only last, at most a
 *     truncated frame at the very end;
 *   - the connection actor is gone within 5 s either way (process table
 *     and WebSocket connection count back where they were), and on_close
 *     ran exactly once for every on_open.
 * A hang past those bounds aborts with what was left; libFuzzer's -timeout
 * and LeakSanitizer catch the rest.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_ref.h"
#include "http/server.h"
#include "snow_rt.h"

#define DEADLINE_MS 5000

static SnowHttpServer *server;
static SnowWsHandler echo_h, small_h, deflate_h;
static int base_actors;
static atomic_long opens, closes;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the server side ---- */

static void echo_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    if (is_text)
        snow_ws_send_text(conn, data, len);
    else
        snow_ws_send_binary(conn, data, len);
}

static void small_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    const unsigned char *p = data;
    if (len >= 3 && p[0] == 'c') {
        int r = snow_ws_close(conn, p[1] << 8 | p[2], (const char *)p + 3, len - 3);
        CHECK(r == 0 || r == -EINVAL || r == -EILSEQ || r == SNOW_ECLOSED);
    } else if (len >= 1 && p[0] == 'p') {
        int r = snow_ws_ping(conn, p + 1, len - 1);
        CHECK(r == 0 || r == -EINVAL || r == SNOW_ECLOSED || r == SNOW_EBACKPRESSURE);
    } else {
        echo_message(conn, data, len, is_text, arg);
    }
}

static void counted_open(SnowWsConn *conn, void *arg)
{
    (void)conn;
    (void)arg;
    atomic_fetch_add(&opens, 1);
}

static void counted_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg)
{
    (void)conn;
    (void)reason;
    (void)len;
    (void)arg;
    CHECK(code >= 1000 && code <= 4999);
    atomic_fetch_add(&closes, 1);
}

static void hello(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    snow_http_res_send(res, 200, "text/plain", "hello", 5);
}

typedef void (*message_fn)(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg);

static void route(SnowWsHandler *h, message_fn fn)
{
    snow_ws_handler_init(h);
    h->on_open = counted_open;
    h->on_message = fn;
    h->on_close = counted_close;
    /* Nothing here waits on a clock but these, kept well under the
     * target's own 5 s bounds: the client ends every input. */
    h->ping_interval_ms = 0;
    h->close_timeout_ms = 1000;
    h->write_timeout_ms = 2000;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    CHECK(snow_rt_init(2) == 0);
    route(&echo_h, echo_message);
    route(&small_h, small_message);
    small_h.max_message = 256;
    small_h.outbound_limit = 1024;
    small_h.close_on_backpressure = 1;
    route(&deflate_h, echo_message);
    deflate_h.deflate = 1;
    SnowRouter *r = snow_router_new();
    CHECK(r);
    CHECK(snow_router_route(r, "GET", "/hello", hello, NULL) == 0);
    CHECK(snow_router_ws(r, "/echo", &echo_h) == 0);
    CHECK(snow_router_ws(r, "/small", &small_h) == 0);
    CHECK(snow_router_ws(r, "/deflate", &deflate_h) == 0);
    int err;
    /* The listener is never used (connections come from socketpairs);
     * it makes the server whole, on 127.0.0.1 only. */
    server = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    CHECK(server);
    snow_router_free(r);
    base_actors = snow_actor_count();
    return 0;
}

/* ---- the client side ---- */

struct out {
    unsigned char *p;
    size_t n, cap;
    int eof;
};

/* Reads what the server has written, waiting up to ms for it. */
static void pump_in(int fd, struct out *o, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, ms) <= 0)
        return;
    for (;;) {
        if (o->cap - o->n < 65536) {
            o->cap = o->cap * 2 + 65536;
            o->p = realloc(o->p, o->cap);
            CHECK(o->p);
        }
        ssize_t r = recv(fd, o->p + o->n, o->cap - o->n, MSG_DONTWAIT);
        if (r > 0) {
            o->n += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            o->eof = 1;
        return;
    }
}

/* Sends p[0..n) while reading; false once the server stopped reading. */
static int send_all(int fd, const unsigned char *p, size_t n, struct out *o, int64_t deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return 0;
        if (now_ms() > deadline) {
            fprintf(stderr, "ws-conn: the server stopped reading without closing (%zu bytes left)\n", n);
            abort();
        }
        struct pollfd pf[1] = {{fd, POLLIN | POLLOUT, 0}};
        poll(pf, 1, 50);
        pump_in(fd, o, 0);
        if (o->eof)
            return 0;
    }
    pump_in(fd, o, 0);
    return 1;
}

static const unsigned char *find(const unsigned char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return p + i;
    return NULL;
}

/* The server's bytes after a valid upgrade request. */
static void check_frames(const unsigned char *p, size_t n)
{
    const unsigned char *end_head = find(p, n, "\r\n\r\n");
    CHECK(n >= 13 && memcmp(p, "HTTP/1.1 101 ", 13) == 0);
    CHECK(end_head);
    int deflate = find(p, (size_t)(end_head - p), "permessage-deflate") != NULL;
    size_t i = (size_t)(end_head - p) + 4;
    int in_msg = 0, closed = 0;
    while (i < n) {
        CHECK(!closed); /* nothing after a Close */
        if (n - i < 2)
            return; /* cut at the end: the client left first */
        unsigned b0 = p[i], b1 = p[i + 1], op = b0 & 0x0f;
        uint64_t len = b1 & 0x7f;
        size_t h = 2;
        CHECK(!(b1 & 0x80)); /* server frames are never masked */
        if (len == 126) {
            if (n - i < 4)
                return;
            len = (uint64_t)p[i + 2] << 8 | p[i + 3];
            CHECK(len >= 126);
            h = 4;
        } else if (len == 127) {
            if (n - i < 10)
                return;
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | p[i + 2 + k];
            CHECK(len >= 65536 && !(len >> 63));
            h = 10;
        }
        CHECK(!(b0 & 0x30));
        if (op >= 8) {
            CHECK(op == 8 || op == 9 || op == 10);
            CHECK((b0 & 0x80) && len <= 125 && !(b0 & 0x40));
            if (op == 8) {
                CHECK(len != 1);
                closed = 1;
            }
        } else {
            CHECK(op <= 2);
            CHECK(in_msg ? op == 0 : op != 0);
            CHECK(!(b0 & 0x40) || (deflate && op != 0));
            in_msg = !(b0 & 0x80);
        }
        if (n - i - h < len)
            return;
        i += h + (size_t)len;
    }
}

static void wait_gone(void)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (snow_actor_count() != base_actors || snow_ws_connection_count() != 0) {
        if (now_ms() > deadline) {
            fprintf(stderr, "ws-conn: the connection actor still runs %d ms after the client left "
                            "(actors %d, baseline %d; ws connections %d)\n",
                    DEADLINE_MS, snow_actor_count(), base_actors, snow_ws_connection_count());
            abort();
        }
        usleep(200);
    }
    /* on_close runs before the actor is freed */
    CHECK(atomic_load(&opens) == atomic_load(&closes));
}

static const char *const openings[] = {
    NULL,
    "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "GET /small HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "GET /deflate HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned flags = data[0];
    size_t sz[2] = {1u + data[1], 1u + data[2] * 8u};
    const char *opening = openings[flags & 3];
    int eof_end = (flags & 4) != 0;
    data += 3;
    size -= 3;

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    http_server_adopt(server, sv[1]);
    int fd = sv[0];
    struct out o = {0};
    int64_t deadline = now_ms() + DEADLINE_MS;
    int open = 1;
    if (opening)
        open = send_all(fd, (const unsigned char *)opening, strlen(opening), &o, deadline);
    for (size_t i = 0, k = 0; open && i < size; k ^= 1) {
        size_t n = size - i < sz[k] ? size - i : sz[k];
        open = send_all(fd, data + i, n, &o, deadline);
        i += n;
    }
    if (eof_end) {
        shutdown(fd, SHUT_WR);
        while (!o.eof) {
            if (now_ms() > deadline + DEADLINE_MS) {
                fprintf(stderr, "ws-conn: no end of the stream %d ms after the client's EOF (%zu bytes read)\n",
                        DEADLINE_MS, o.n);
                abort();
            }
            pump_in(fd, &o, 50);
        }
        if (opening)
            check_frames(o.p, o.n);
        else
            CHECK(o.n == 0 || (o.n >= 9 && memcmp(o.p, "HTTP/1.1 ", 9) == 0));
    }
    close(fd);
    wait_gone();
    free(o.p);
    return 0;
}
