/*
 * conn_util.c: the record of what the handlers saw, bounded waits on it,
 * frame expectations and the server around a route set (conn_util.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn_util.h"
#include "ws/conn.h"

struct conn_events conn_ev = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}};

SnowHttpServer *srv;
int port;

struct seen seen(void)
{
    pthread_mutex_lock(&conn_ev.lock);
    struct seen v = conn_ev.s;
    pthread_mutex_unlock(&conn_ev.lock);
    return v;
}

void seen_reset(void)
{
    pthread_mutex_lock(&conn_ev.lock);
    memset(&conn_ev.s, 0, sizeof conn_ev.s);
    pthread_mutex_unlock(&conn_ev.lock);
}

void record_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&conn_ev.lock);
    conn_ev.s.closes++;
    conn_ev.s.last_code = code;
    size_t n = len < sizeof conn_ev.s.last_reason - 1 ? len : sizeof conn_ev.s.last_reason - 1;
    memcpy(conn_ev.s.last_reason, reason, n);
    conn_ev.s.last_reason[n] = 0;
    conn_ev.s.last_conn = conn;
    /* Sends from the connection's own on_close find it closed. */
    conn_ev.s.after_end = snow_ws_send_text(conn, "x", 1);
    pthread_cond_broadcast(&conn_ev.cond);
    pthread_mutex_unlock(&conn_ev.lock);
}

void record_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&conn_ev.lock);
    conn_ev.s.opens++;
    conn_ev.s.last_pid = snow_ws_pid(conn);
    conn_ev.s.last_conn = conn;
    pthread_cond_broadcast(&conn_ev.cond);
    pthread_mutex_unlock(&conn_ev.lock);
}

/* Waits until *field (read under the lock) reaches n or 15 s pass;
 * returns the last value read. */
static int wait_count(const int *field, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&conn_ev.lock);
    while (*field < n)
        if (pthread_cond_timedwait(&conn_ev.cond, &conn_ev.lock, &ts) != 0)
            break;
    int got = *field;
    pthread_mutex_unlock(&conn_ev.lock);
    return got;
}

void wait_closes(int n)
{
    ck_assert_int_eq(wait_count(&conn_ev.s.closes, n), n);
}

void wait_opens(int n)
{
    ck_assert_int_eq(wait_count(&conn_ev.s.opens, n), n);
}

uint64_t wait_hibernated(uint64_t n)
{
    struct ws_idle_totals t;
    for (int i = 0; i < 2000; i++) {
        ws_idle_totals(&t);
        if (t.hibernated >= n)
            break;
        usleep(5000);
    }
    return t.hibernated;
}

void wait_bp_result(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    pthread_mutex_lock(&conn_ev.lock);
    while (conn_ev.s.bp_result == 0)
        if (pthread_cond_timedwait(&conn_ev.cond, &conn_ev.lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&conn_ev.lock);
}

void expect_message(struct wsc *c, unsigned op, const char *want, size_t n)
{
    struct wsframe m;
    ck_assert_int_eq(wsc_message(c, &m), 0);
    ck_assert_uint_eq(m.op, op);
    ck_assert_uint_eq(m.len, n);
    ck_assert(memcmp(m.data, want, n) == 0);
    free(m.data);
}

unsigned expect_close(struct wsc *c)
{
    struct wsframe f;
    do {
        ck_assert_int_eq(wsc_read(c, &f), 0);
        if (f.op != 8)
            free(f.data);
    } while (f.op != 8);
    unsigned code = wsframe_code(&f);
    free(f.data);
    return code;
}

void server_start(void (*add)(SnowRouter *r))
{
    ck_assert_int_eq(snow_rt_init(2), 0);
    SnowRouter *r = snow_router_new();
    add(r);
    int err;
    srv = snow_http_server_start(r, "127.0.0.1", 0, NULL, &err);
    ck_assert_msg(srv != NULL, "start: %s", snow_strerror(err));
    snow_router_free(r);
    port = snow_http_server_port(srv);
    seen_reset();
}

void server_stop(void)
{
    if (srv)
        snow_http_server_stop(srv);
    srv = NULL;
    snow_rt_shutdown();
    snow_rt_run();
}
