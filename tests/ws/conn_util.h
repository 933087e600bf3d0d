/*
 * conn_util.h: what the connection suites (test_conn_*.c, test_pmd_conn.c)
 * share: a record of what the handlers saw, written on worker threads
 * under a mutex and read by the test's thread through a copy; bounded
 * waits on it (failure guards, not timings); frame expectations on the
 * blocking client; and a server on 127.0.0.1 port 0 around a route set.
 */
#ifndef SNOW_TESTS_WS_CONN_UTIL_H
#define SNOW_TESTS_WS_CONN_UTIL_H

#include <check.h>
#include <pthread.h>
#include <stdint.h>

#include "snow_rt.h"
#include "wsclient.h"

/* What the handlers saw. */
struct seen {
    int closes;
    int last_code;
    char last_reason[128];
    SnowWsConn *last_conn;
    SnowPid last_pid;
    int opens;
    int bp_result;
    int64_t bp_buffered;
    int bp_sent;
    int after_end; /* a send after the end, from the connection's on_close */
    int after_end_buffered;
    void *conn_user_seen;
};

struct conn_events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct seen s;
};

extern struct conn_events conn_ev;

/* A copy of the record, taken under its lock. */
struct seen seen(void);
/* Clears the record (a fresh server). */
void seen_reset(void);

/* on_close and on_open handlers that fill the record. */
void record_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg);
void record_open(SnowWsConn *conn, void *arg);

/* Wait (bounded, 15 s, as a failure guard only) until on_close / on_open
 * ran n times, and assert that they did. */
void wait_closes(int n);
void wait_opens(int n);
/* Waits (bounded: a failure guard only) until n connections hibernate
 * (a busy one waits WS_HOT_MS after its peer's last bytes first). Returns
 * the number hibernated. */
uint64_t wait_hibernated(uint64_t n);
/* Waits (bounded likewise) until a handler recorded a non-zero bp_result. */
void wait_bp_result(void);

/* Reads one whole message and asserts its opcode and payload. */
void expect_message(struct wsc *c, unsigned op, const char *want, size_t n);
/* Reads frames until a Close; returns its code. */
unsigned expect_close(struct wsc *c);

/* The server the suite's cases talk to, and its port. */
extern SnowHttpServer *srv;
extern int port;

/* Starts the runtime (two workers) and a server with the routes add()
 * puts on a new router; clears the record. */
void server_start(void (*add)(SnowRouter *r));
/* Stops the server (if still running) and the runtime. */
void server_stop(void);

#endif
