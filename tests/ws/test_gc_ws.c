/*
 * test_gc_ws.c: a WebSocket connection that lives for a million messages
 * keeps its actor's heap bounded.
 *
 * The handler does what compiled Snow code does with every message: it
 * copies it into the connection actor's heap (snow_gc_alloc), works on the
 * copy and sends it back. Nothing frees the copies; only the per-actor
 * collector does, from the connection actor's own roots. The connection's
 * user data (a heap object too) is reachable only through the connection
 * record, so it must survive every collection with its count intact.
 * The heartbeat runs all along, as on a real connection: its pings come
 * between echoes and while the connection idles, and the client answers
 * each one.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "snow_rt.h"
#include "wsclient.h"

#define MESSAGES 1000000
#define WINDOW 256
#define MSG_LEN 48
/* The collector's floor is 256 KiB (SNOW_GC_MIN_KIB) and the live set of
 * this handler is one message and the user record, so the heap stays far
 * below this bound; without collection it would pass it after about 20,000
 * messages. */
#define HEAP_BOUND (2u << 20)
/* The heartbeat runs through the whole stream: a ping this long after the
 * last pong, and every CHECKPOINT messages the client waits for one, so
 * pings, pongs and collections interleave whatever the machine's speed. */
#define PING_MS 20
#define CHECKPOINT 100000

struct user {
    uint64_t count;     /* messages seen */
    unsigned char *last; /* the copy of the latest message (heap object) */
};

static atomic_uint_least64_t max_heap;
static atomic_uint_least64_t collections;
static atomic_uint_least64_t user_count;
static atomic_int bad;

static int gc_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    struct user *u = snow_gc_alloc(sizeof *u);
    if (!u)
        return SNOW_WS_REFUSE;
    snow_ws_set_user(conn, u);
    return SNOW_WS_ACCEPT;
}

static void gc_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)is_text;
    (void)arg;
    struct user *u = snow_ws_user(conn);
    unsigned char *copy = snow_gc_alloc(len);
    if (!u || !copy) {
        atomic_store(&bad, 1);
        return;
    }
    memcpy(copy, data, len);
    /* The previous copy becomes garbage here; the user record keeps the
     * newest one, so a collection must not free it. */
    if (u->last && u->last[0] != (unsigned char)((u->count - 1) & 0xff))
        atomic_store(&bad, 2);
    u->last = copy;
    u->count++;
    atomic_store(&user_count, u->count);
    if (snow_ws_send_binary(conn, copy, len) != 0)
        atomic_store(&bad, 3);
    SnowGcStats st;
    if (snow_gc_stats(&st) == 0) {
        if (st.heap_bytes > atomic_load(&max_heap))
            atomic_store(&max_heap, st.heap_bytes);
        atomic_store(&collections, st.collections);
    }
}

static SnowWsHandler h_gc;

static void fill(unsigned char *p, uint64_t i)
{
    for (size_t k = 0; k < MSG_LEN; k++)
        p[k] = (unsigned char)((i + k * 31) & 0xff);
}

/* Reads the next data frame, answering every ping before it with a pong
 * that carries its payload (RFC 6455 §5.5.3); counts the pings. Returns 0,
 * or -1 at end of stream. */
static int read_answering(struct wsc *c, struct wsframe *f, uint64_t *pings)
{
    for (;;) {
        if (wsc_read(c, f) < 0)
            return -1;
        if (f->op != 9)
            return 0;
        ck_assert_int_eq(wsc_frame(c, 0x8a, f->data, f->len), 0);
        free(f->data);
        ++*pings;
    }
}

/* Waits for the server's next heartbeat ping and answers it. */
static void await_ping(struct wsc *c, uint64_t *pings)
{
    struct wsframe f;
    ck_assert_int_eq(wsc_read(c, &f), 0);
    ck_assert_msg(f.op == 9, "expected a ping with nothing outstanding, got opcode %u", f.op);
    ck_assert_int_eq(wsc_frame(c, 0x8a, f.data, f.len), 0);
    free(f.data);
    ++*pings;
}

START_TEST(echo_million_messages_heap_bounded)
{
    ck_assert_int_eq(snow_rt_init(2), 0);
    snow_ws_handler_init(&h_gc);
    h_gc.on_connect = gc_connect;
    h_gc.on_message = gc_message;
    h_gc.ping_interval_ms = PING_MS;
    SnowRouter *r = snow_router_new();
    ck_assert_int_eq(snow_router_ws(r, "/gc", &h_gc), 0);
    int err;
    SnowHttpServer *srv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    ck_assert_msg(srv != NULL, "start: %s", snow_strerror(err));
    snow_router_free(r);

    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, snow_http_server_port(srv), "/gc", NULL, NULL, 0), 101);
    static uint8_t batch[WINDOW * (MSG_LEN + 14)];
    unsigned char msg[MSG_LEN];
    uint64_t sent = 0, got = 0, pings = 0, checkpoint = 0;
    while (got < MESSAGES) {
        if (sent >= checkpoint) {
            /* Every echo is in: the connection idles until its ping. */
            await_ping(&c, &pings);
            checkpoint += CHECKPOINT;
        }
        size_t off = 0;
        uint64_t n = MESSAGES - sent < WINDOW ? MESSAGES - sent : WINDOW;
        for (uint64_t i = 0; i < n; i++) {
            fill(msg, sent + i);
            off += ws_client_frame(batch + off, 0x82, msg, MSG_LEN, true);
        }
        ck_assert_int_eq(wsc_send(&c, batch, off), 0);
        sent += n;
        for (; got < sent; got++) {
            struct wsframe f;
            ck_assert_int_eq(read_answering(&c, &f, &pings), 0);
            ck_assert_uint_eq(f.op, 2);
            ck_assert_uint_eq(f.len, MSG_LEN);
            fill(msg, got);
            ck_assert_msg(memcmp(f.data, msg, MSG_LEN) == 0, "echo %llu differs", (unsigned long long)got);
            free(f.data);
        }
    }
    ck_assert_int_eq(atomic_load(&bad), 0);
    ck_assert_uint_eq(atomic_load(&user_count), MESSAGES);
    ck_assert_uint_gt(atomic_load(&collections), 0);
    ck_assert_msg(atomic_load(&max_heap) <= HEAP_BOUND, "heap reached %llu bytes",
                  (unsigned long long)atomic_load(&max_heap));
    ck_assert_uint_ge(pings, MESSAGES / CHECKPOINT);
    fprintf(stderr, "gc-ws: %d messages, heap at most %llu bytes, %llu collections, %llu pings answered\n",
            MESSAGES, (unsigned long long)atomic_load(&max_heap), (unsigned long long)atomic_load(&collections),
            (unsigned long long)pings);
    wsc_close_frame(&c, 1000, NULL);
    close(c.fd);
    free(c.buf);
    snow_http_server_stop(srv);
    snow_rt_shutdown();
    snow_rt_run();
}
END_TEST

int main(void)
{
    (void)wsc_rcvbuf;
    Suite *s = suite_create("gc-ws");
    TCase *tc = tcase_create("gc-ws");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, echo_million_messages_heap_bounded);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
