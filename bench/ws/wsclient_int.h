/*
 * wsclient_int.h: what wsclient.c (the connection, framing, handshake
 * check, plain sockets) and wsclient_tls.c (the TLS engine pump) share.
 */
#ifndef SNOW_BENCH_WSCLIENT_INT_H
#define SNOW_BENCH_WSCLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsclient.h"

int64_t wsc_now_ns(void);
/* Grows p to at least need bytes (doubling from 256); exits when out of memory. */
void *wsc_grow(void *p, size_t *cap, size_t need);
/* EPOLLOUT in the interest set or not. */
void wsc_set_want_out(struct wsc_conn *c, bool want);
/* Closes the socket and reports on_done once. */
void wsc_finish(struct wsc_conn *c, bool clean, const char *why);
/* Parses rbuf with flushes deferred and keeps the unparsed tail. */
void wsc_parse_rbuf(struct wsc_conn *c);
/* The server closed TCP: clean only after the Close exchange. */
void wsc_on_eof(struct wsc_conn *c);

/* Sets up c->t for a new connection (engine reset, key pinned, suites);
 * < 0 with the connection finished when BearSSL refuses. */
int wsc_tls_start(struct wsc_conn *c);
/* One turn of a TLS connection: socket reads (when read_socket) until one
 * comes back short or 256 KiB came, every record decoded and parsed, the
 * replies encrypted and sent together. */
void wsc_tls_turn(struct wsc_conn *c, bool read_socket);

#endif
