/*
 * conn_routes.h: the route set the test_conn_*.c suites share
 * (conn_routes.c): one handler per behaviour under test, on paths named
 * after it, all recording opens and closes in conn_ev.
 */
#ifndef SNOW_TESTS_WS_CONN_ROUTES_H
#define SNOW_TESTS_WS_CONN_ROUTES_H

#include "conn_util.h"

/* Starts the runtime and a server with the route set; stops both. */
void conn_start(void);
void conn_stop(void);

/* A flooding handler's end: the send's result r after sent messages,
 * and what was pending then, into conn_ev (wait_bp_result). */
void record_flood(SnowWsConn *conn, int r, int sent);
/* Echoes a message with its opcode. */
void echo(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg);

extern SnowWsHandler h_keep, h_pconnect, h_spread, h_echo, h_auth, h_panic, h_flood, h_floodclose, h_stall, h_hb,
    h_foreign, h_info, h_close, h_origin, h_small, h_astext, h_calm, h_slowclose;

Suite *conn_life_suite(void);
Suite *conn_handlers_suite(void);
Suite *conn_deadline_suite(void);
Suite *conn_outbound_suite(void);
Suite *conn_idle_suite(void);
Suite *conn_large_suite(void);

#endif
