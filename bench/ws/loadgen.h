/*
 * loadgen.h: what the load generator's modes (modes.c, smoke.c) share with
 * its driver (loadgen.c): options, the connection table, the event loop,
 * payload templates, CPU and memory readings, the latency histogram.
 */
#ifndef SNOW_BENCH_LOADGEN_H
#define SNOW_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsclient.h"

/* Largest message the smoke mode sends. */
#define LG_SMOKE_MAX (300 * 1000)
#define LG_HIST_BUCKETS (64 * 128)

struct lg_opts {
    const char *mode, *host, *path, *tls_ca, *sni, *label;
    int port, conns, depth, concurrency, subscribers, batch, server_pid, src_addrs;
    size_t size;
    double seconds, warmup, hold;
    bool text, tls;
};

struct lg_hist {
    uint64_t n;
    uint64_t b[LG_HIST_BUCKETS];
};

/* A reading of the clock and of both processes' CPU time (seconds). */
struct lg_cpu {
    int64_t t;
    double self, server; /* server < 0: no --server-pid */
};

struct lg {
    struct lg_opts o;
    struct wsc_shared sh;
    struct wsc_conn *conns;
    int nconns, cap;
    uint8_t *tmpl_bin, *tmpl_txt;
    size_t tmpl_size;
    /* Called after every batch of events, and at least every tick_ns. */
    void (*tick)(void);
    int64_t tick_ns;
    int opened, failed;       /* upgrades completed / connections that failed to open */
    int clean_closes, unclean;
    bool closing;
    char first_error[256];
};

extern struct lg g;

int64_t lg_now(void);
double lg_self_cpu(void);
double lg_proc_cpu(int pid);
long lg_proc_rss_kib(int pid);
void lg_cpu_mark(struct lg_cpu *m);
void lg_cpu_span(const struct lg_cpu *a, const struct lg_cpu *b, double *self_pct, double *server_pct);

void lg_hist_add(struct lg_hist *h, int64_t ns);
double lg_hist_pct_us(const struct lg_hist *h, double p);

void lg_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void lg_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The n payload bytes message seq of connection id must carry. */
const uint8_t *lg_expected(int text, uint64_t seq, int id, size_t n);

/* Makes n empty connection slots (g.conns[0..n)), ids 0..n-1. */
struct wsc_conn *lg_conns(int n);
int lg_connect(struct wsc_conn *c, const struct wsc_ops *ops, const char *path, int role);
/* Opens g.conns[first..first+n) in batches of --batch, each batch waited
 * for (30 s at most). ops->on_open must count g.opened and on_done
 * g.failed for connections that never opened. fatal: any failure ends the
 * run. Returns g.opened. */
int lg_open_batches(int n, const struct wsc_ops *ops, const char *path, int role, int first, bool fatal);
/* Runs the event loop until done() (checked before each wait) or the
 * deadline (0: none). Returns done()'s last value (true without done). */
bool lg_loop(bool (*done)(void), int64_t deadline);
/* Close handshake on every open connection (10 s at most, then abort). */
void lg_close_all(void);
/* Bookkeeping every on_done must call first. */
void lg_record_done(struct wsc_conn *c, bool clean, const char *why);

/* Appends to the result line (printed last, with --label appended). */
void lg_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int lg_mode_echo(void);
int lg_mode_idle(void);
int lg_mode_handshake(void);
int lg_mode_fanout(void);
int lg_mode_smoke(void);

#endif
