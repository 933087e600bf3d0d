/*
 * test_conn_idle.c: what an idle connection keeps. Connections that have
 * read, decoded and answered a message hibernate; the runtime's own
 * accounting of what each held while parked (ws_idle_totals, taken when
 * it wakes) shows no awake part (read buffer, decoder, reassembly,
 * outbound queue), the HTTP connection's compact record only, no
 * collector state for an actor that never allocated in its heap, and only
 * the heap's core (no free-list table, no mark stack) for one that did.
 * Control frames (a peer's ping, the heartbeat's pong) do not keep a
 * connection awake the way data does.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_routes.h"
#include "ws/conn.h"

#define IDLE_CONNS 16

START_TEST(idle_connections_hold_no_awake_state)
{
    conn_start();
    struct wsc c[IDLE_CONNS];
    SnowPid pid[IDLE_CONNS];
    struct ws_idle_totals before;
    ws_idle_totals(&before);
    ck_assert_uint_eq(before.hibernated, 0);
    for (int i = 0; i < IDLE_CONNS; i++) {
        ck_assert_int_eq(wsc_open(&c[i], port, "/info", NULL, NULL, 0), 101);
        wait_opens(i + 1);
        pid[i] = seen().last_pid;
        /* A message read, decoded and answered: the awake part was used. */
        static char big[3000];
        memset(big, 'm', sizeof big);
        ck_assert_int_eq(wsc_frame(&c[i], 0x81, big, sizeof big), 0);
        ck_assert_int_eq(wsc_frame(&c[i], 0x01, "frag", 4), 0);
        ck_assert_int_eq(wsc_frame(&c[i], 0x80, "ment", 4), 0);
        struct wsframe m;
        ck_assert_int_eq(wsc_message(&c[i], &m), 0);
        ck_assert_uint_eq(m.len, sizeof big);
        free(m.data);
        expect_message(&c[i], 1, "fragment", 8);
    }
    ck_assert_uint_eq(wait_hibernated(IDLE_CONNS), IDLE_CONNS);
    /* Each wakes for a message from this thread (a sample of what it held
     * while parked), answers it, and parks again. */
    for (int i = 0; i < IDLE_CONNS; i++) {
        ck_assert_int_eq(snow_actor_send(pid[i], 77, "wake", 4), 0);
        expect_message(&c[i], 1, "wake", 4);
    }
    struct ws_idle_totals t;
    ws_idle_totals(&t);
    uint64_t n = t.samples - before.samples;
    ck_assert_uint_ge(n, IDLE_CONNS);
    /* Nothing of the awake part while parked. */
    ck_assert_uint_eq(t.live - before.live, 0);
    /* The HTTP connection's compact record: no request buffers. */
    uint64_t http = (t.http - before.http) / n;
    ck_assert_uint_gt(http, 0);
    ck_assert_uint_le(http, 128);
    /* The connection record and its stream; no heap, no zlib state. */
    uint64_t record = (t.record - before.record) / n;
    ck_assert_uint_ge(record, sizeof(struct ws_conn));
    ck_assert_uint_le(record, sizeof(struct ws_conn) + 32);
    ck_assert_uint_le((t.stream - before.stream) / n, 64);
    ck_assert_uint_eq(t.heap_state - before.heap_state, 0);
    ck_assert_uint_eq(t.heap_chunks - before.heap_chunks, 0);
    ck_assert_uint_eq(t.pmd - before.pmd, 0);
    for (int i = 0; i < IDLE_CONNS; i++)
        wsc_close(&c[i]);
    wait_closes(IDLE_CONNS);
    ws_idle_totals(&t);
    ck_assert_uint_eq(t.hibernated, 0);
    conn_stop();
}
END_TEST

START_TEST(idle_user_data_survives_in_the_heap)
{
    /* /keep keeps the first message in the actor's heap, held through the
     * user-data slot (a root of that heap, the record being malloc'd):
     * after hibernating, whose collection frees everything unreachable,
     * the kept copy comes back intact. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/keep", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "kept words", 10), 0);
    expect_message(&c, 1, "kept", 4);
    ck_assert_uint_eq(wait_hibernated(1), 1);
    struct ws_idle_totals before;
    ws_idle_totals(&before);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "again", 5), 0);
    expect_message(&c, 1, "kept words", 10);
    struct ws_idle_totals t;
    ws_idle_totals(&t);
    ck_assert_uint_ge(t.samples - before.samples, 1);
    /* This one has a heap (the kept copy and its index). Parked, its
     * collector state is the heap's core and the one root slot's array:
     * no per-class free-list table, no mark stack. */
    ck_assert_uint_gt(t.heap_chunks - before.heap_chunks, 0);
    uint64_t n = t.samples - before.samples;
    uint64_t state = (t.heap_state - before.heap_state) / n;
    ck_assert_uint_gt(state, 0);
    ck_assert_msg(state <= 256, "an idle heap keeps %llu bytes of collector state", (unsigned long long)state);
    ck_assert_uint_eq(t.live - before.live, 0);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

/* Reads frames until one with opcode op, answering the server's pings
 * meanwhile; returns it (the caller frees its data). */
static struct wsframe frame_with(struct wsc *c, unsigned op)
{
    for (;;) {
        struct wsframe f;
        ck_assert_int_eq(wsc_read(c, &f), 0);
        if (f.op == op)
            return f;
        ck_assert_uint_eq(f.op, 9);
        ck_assert_int_eq(wsc_frame(c, 0x8A, f.data, f.len), 0);
        free(f.data);
    }
}

static void expect_cold(struct wsc *c, SnowPid pid)
{
    ck_assert_int_eq(snow_actor_send(pid, 78, "?", 1), 0);
    struct wsframe f = frame_with(c, 1);
    ck_assert_str_eq((const char *)f.data, "cold");
    free(f.data);
}

START_TEST(control_frames_leave_a_connection_idle)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/calm", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowPid pid = seen().last_pid;
    ck_assert_uint_eq(wait_hibernated(1), 1);
    /* The peer's keep-alive ping: answered, then straight back to sleep.
     * The pong reached us, so the turn that read the ping has flushed; it
     * chooses between waiting awake and hibernating right after that,
     * before it could take the probe below. */
    ck_assert_int_eq(wsc_frame(&c, 0x89, "keep-alive", 10), 0);
    struct wsframe f = frame_with(&c, 10);
    ck_assert_str_eq((const char *)f.data, "keep-alive");
    free(f.data);
    expect_cold(&c, pid);
    /* The heartbeat: its ping answered, the pong taken (the round trip is
     * measured once it is), and the connection sleeps again at once. */
    f = frame_with(&c, 9);
    ck_assert_int_eq(wsc_frame(&c, 0x8A, f.data, f.len), 0);
    free(f.data);
    SnowWsConn *h = ws_handle(pid);
    for (int i = 0; i < 10000 && snow_ws_rtt_ms(h) < 0; i++)
        usleep(500);
    ck_assert_int_ge(snow_ws_rtt_ms(h), 0);
    expect_cold(&c, pid);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

Suite *conn_idle_suite(void)
{
    Suite *s = suite_create("ws_conn_idle");
    TCase *t = tcase_create("idle");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, idle_connections_hold_no_awake_state);
    tcase_add_test(t, idle_user_data_survives_in_the_heap);
    tcase_add_test(t, control_frames_leave_a_connection_idle);
    suite_add_tcase(s, t);
    return s;
}
