/*
 * modes.c: the measuring modes of the load generator: echo, idle,
 * handshake and fanout. Each prints one result line
 * ("bench ws_<mode> key=value ..."); see bench/README.md for the keys.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

enum { ROLE_ECHO = 1, ROLE_IDLE, ROLE_HS, ROLE_SUB, ROLE_PUB };

#define SEC INT64_C(1000000000)

/* A run where the load generator itself used this much of its core is
 * marked: the server's figure is then a lower bound. */
#define SATURATED_PCT 90.0

static void check_violation(struct wsc_conn *c, const char *why)
{
    if (c->violation)
        lg_fail("connection %d (%s): %s", c->id, c->path, why);
}

static void ignore_pong(struct wsc_conn *c, const uint8_t *p, size_t n)
{
    (void)c, (void)p, (void)n;
}

static void cpu_keys(const struct lg_cpu *a, const struct lg_cpu *b)
{
    double self, server;
    lg_cpu_span(a, b, &self, &server);
    lg_result(" loadgen_cpu_pct=%.1f loadgen_saturated=%d", self, self >= SATURATED_PCT);
    if (server >= 0)
        lg_result(" server_cpu_pct=%.1f", server);
    if (self >= SATURATED_PCT)
        lg_note("the load generator was %.0f%% busy: the server figure is a lower bound", self);
}

/* The measured window and the CPU readings at its two ends, taken by the
 * tick after the first event batch past each boundary. */
struct window {
    int64_t t_meas, t_end;
    bool at_meas, at_end;
    struct lg_cpu a, b;
};

static struct window win;

static void window_start(double warmup, double seconds)
{
    int64_t now = lg_now();
    win.t_meas = now + (int64_t)(warmup * (double)SEC);
    win.t_end = win.t_meas + (int64_t)(seconds * (double)SEC);
    win.at_meas = win.at_end = false;
    if (warmup <= 0) {
        lg_cpu_mark(&win.a);
        win.at_meas = true;
    }
}

static void window_tick(void)
{
    int64_t now = lg_now();
    if (!win.at_meas && now >= win.t_meas) {
        lg_cpu_mark(&win.a);
        win.at_meas = true;
    }
    if (!win.at_end && now >= win.t_end) {
        lg_cpu_mark(&win.b);
        win.at_end = true;
    }
}

static bool in_window(int64_t t)
{
    return t >= win.t_meas && t < win.t_end;
}

static double window_seconds(void)
{
    return (double)(win.t_end - win.t_meas) / 1e9;
}

/* ---------------------------------------------------------------- echo */

static struct {
    uint64_t msgs, bytes;
    struct lg_hist h;
    int finished;
    size_t span, step; /* lg_expected's offsets: (seq * 131 + id * 17) mod span */
} E;

/* Per connection: where in the template the next message to send and the
 * next echo to check begin, and the send times of the messages in flight in
 * a ring of --depth; each moves on by an addition, so a message costs no
 * division (the offsets are lg_expected's, kept incrementally). */
struct echo_conn {
    size_t off_send, off_recv;
    int slot_send, slot_recv;
    int64_t in_window; /* messages echoed in the measured window */
    int64_t sent_at[];
};

static const uint8_t *echo_payload(size_t off)
{
    return g.o.size ? (g.o.text ? g.tmpl_txt : g.tmpl_bin) + off : g.tmpl_bin;
}

static void next_off(size_t *off)
{
    *off += E.step;
    if (*off >= E.span)
        *off -= E.span;
}

static void echo_send(struct wsc_conn *c)
{
    struct echo_conn *e = c->user;
    c->sent++;
    e->sent_at[e->slot_send] = g.sh.now_ns;
    if (++e->slot_send == g.o.depth)
        e->slot_send = 0;
    wsc_queue(c, g.o.text ? 1 : 2, echo_payload(e->off_send), g.o.size);
    next_off(&e->off_send);
}

static void echo_open(struct wsc_conn *c)
{
    g.opened++;
    if (!c->user) {
        struct echo_conn *e = calloc(1, sizeof *e + (size_t)g.o.depth * sizeof e->sent_at[0]);
        if (!e)
            lg_fail("out of memory");
        e->off_send = e->off_recv = (size_t)((uint64_t)c->id * 17u % E.span);
        c->user = e;
    }
}

static void echo_message(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    struct echo_conn *e = c->user;
    uint64_t seq = c->recvd;
    if (seq >= c->sent)
        lg_fail("connection %d: a message it never sent came back (%zu bytes)", c->id, n);
    if (op != (g.o.text ? 1 : 2))
        lg_fail("connection %d: message %" PRIu64 " came back with opcode %d", c->id, seq, op);
    if (n != g.o.size)
        lg_fail("connection %d: message %" PRIu64 " came back with %zu bytes, sent %zu", c->id, seq, n, g.o.size);
    const uint8_t *want = echo_payload(e->off_recv);
    if (memcmp(p, want, n) != 0) {
        /* A server that drops a message under backpressure sends the next
         * one in its place: say so rather than only "differs". */
        size_t off = e->off_recv;
        for (uint64_t later = seq + 1; later < c->sent; later++) {
            next_off(&off);
            if (memcmp(p, echo_payload(off), n) == 0)
                lg_fail("connection %d: message %" PRIu64 " came back where %" PRIu64
                        " was due: the server dropped %" PRIu64 " message(s)",
                        c->id, later, seq, later - seq);
        }
        size_t i = 0;
        while (p[i] == want[i])
            i++;
        lg_fail("connection %d: message %" PRIu64 " differs at byte %zu of %zu", c->id, seq, i, n);
    }
    next_off(&e->off_recv);
    int64_t now = g.sh.now_ns, at = e->sent_at[e->slot_recv];
    if (++e->slot_recv == g.o.depth)
        e->slot_recv = 0;
    c->recvd++;
    if (in_window(now)) {
        E.msgs++;
        E.bytes += n;
        e->in_window++;
        lg_hist_add(&E.h, now - at);
    }
    if (now < win.t_end)
        echo_send(c);
    else if (c->recvd == c->sent)
        E.finished++;
}

static void echo_done(struct wsc_conn *c, bool clean, const char *why)
{
    lg_record_done(c, clean, why);
    check_violation(c, why);
    if (!c->user)
        g.failed++;
    if (!clean && !g.closing)
        lg_fail("connection %d (%s): %s", c->id, c->path, why);
}

static const struct wsc_ops echo_ops = {echo_open, echo_message, ignore_pong, echo_done};

static bool echo_drained(void)
{
    return E.finished == g.nconns;
}

int lg_mode_echo(void)
{
    int n = g.o.conns > 0 ? g.o.conns : 100;
    const char *path = g.o.path ? g.o.path : "/echo";
    E.span = g.tmpl_size / 2 ? g.tmpl_size / 2 : 1;
    E.step = 131 % E.span;
    lg_conns(n);
    lg_open_batches(n, &echo_ops, path, ROLE_ECHO, 0, true);
    g.tick = window_tick;
    g.tick_ns = 1000000;
    window_start(g.o.warmup, g.o.seconds);
    g.sh.now_ns = lg_now();
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < g.o.depth; d++)
            echo_send(&g.conns[i]);
        wsc_flush(&g.conns[i]);
    }
    if (!lg_loop(echo_drained, win.t_end + 30 * SEC))
        lg_fail("%d of %d connections still had messages in flight 30 s after the end", n - E.finished, n);
    if (!win.at_end)
        lg_cpu_mark(&win.b);
    g.tick = NULL;
    /* Fairness: the fewest and the most messages one connection had
     * echoed in the window. */
    int64_t cmin = INT64_MAX, cmax = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = ((struct echo_conn *)g.conns[i].user)->in_window;
        cmin = k < cmin ? k : cmin;
        cmax = k > cmax ? k : cmax;
    }
    unsigned suite = wsc_tls_suite(&g.conns[0]);
    lg_close_all();
    double secs = window_seconds();
    lg_result("bench ws_echo msgs_per_s=%.0f mb_per_s=%.2f rtt_p50_us=%.1f rtt_p99_us=%.1f rtt_p999_us=%.1f",
              (double)E.msgs / secs, (double)E.bytes / secs / 1e6, lg_hist_pct_us(&E.h, 0.50),
              lg_hist_pct_us(&E.h, 0.99), lg_hist_pct_us(&E.h, 0.999));
    lg_result(" conns=%d size=%zu depth=%d seconds=%g msgs=%" PRIu64 " tls=%d text=%d", n, g.o.size, g.o.depth,
              secs, E.msgs, g.o.tls, g.o.text);
    lg_result(" conn_msgs_min=%" PRId64 " conn_msgs_max=%" PRId64, cmin, cmax);
    if (g.o.tls)
        lg_result(" tls_suite=0x%04x", suite);
    cpu_keys(&win.a, &win.b);
    return 0;
}

/* ---------------------------------------------------------------- idle */

static struct {
    int alive, dropped;
} I;

static void idle_open(struct wsc_conn *c)
{
    g.opened++;
    c->sent = 1;
}

static void idle_message(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    (void)p;
    lg_fail("connection %d: an idle connection got a message (opcode %d, %zu bytes)", c->id, op, n);
}

static void idle_pong(struct wsc_conn *c, const uint8_t *p, size_t n)
{
    uint32_t want[2] = {(uint32_t)c->id, (uint32_t)c->t0};
    /* Unsolicited pongs are allowed (§5.5.3); only the one carrying our
     * ping's payload counts, once. */
    if (n == sizeof want && memcmp(p, want, n) == 0 && !c->recvd) {
        c->recvd = 1;
        I.alive++;
    }
}

static void idle_done(struct wsc_conn *c, bool clean, const char *why)
{
    lg_record_done(c, clean, why);
    check_violation(c, why);
    if (!c->sent)
        g.failed++;
    else if (!g.closing)
        I.dropped++;
}

static const struct wsc_ops idle_ops = {idle_open, idle_message, idle_pong, idle_done};

static bool idle_pinged(void)
{
    return I.alive + I.dropped >= g.opened;
}

int lg_mode_idle(void)
{
    int n = g.o.conns > 0 ? g.o.conns : 1000;
    const char *path = g.o.path ? g.o.path : "/echo";
    if (g.o.src_addrs == 0)
        g.o.src_addrs = 1 + (n - 1) / 25000;
    int pid = g.o.server_pid;
    lg_conns(n);
    long base = lg_proc_rss_kib(pid);
    lg_open_batches(n, &idle_ops, path, ROLE_IDLE, 0, false);
    if (g.failed)
        lg_note("%d of %d connections did not open; first: %s", g.failed, n, g.first_error);
    lg_note("%d connections open; settling 1 s, then holding %g s", g.opened, g.o.hold);
    lg_loop(NULL, lg_now() + SEC);
    long rss = lg_proc_rss_kib(pid);
    struct lg_cpu a, b;
    lg_cpu_mark(&a);
    lg_loop(NULL, lg_now() + (int64_t)(g.o.hold * (double)SEC));
    lg_cpu_mark(&b);
    for (int i = 0; i < n; i++) {
        struct wsc_conn *c = &g.conns[i];
        if (c->state != WSC_OPEN)
            continue;
        uint32_t id[2] = {(uint32_t)c->id, (uint32_t)c->t0};
        wsc_send(c, 9, (const uint8_t *)id, sizeof id);
    }
    lg_loop(idle_pinged, lg_now() + 30 * SEC);
    int alive = I.alive;
    lg_result("bench ws_idle conns=%d alive=%d failed=%d dropped=%d", n, alive, g.failed, I.dropped);
    if (base >= 0 && rss >= 0) {
        lg_result(" server_rss_base_kib=%ld server_rss_kib=%ld rss_per_conn_b=%.0f", base, rss,
                  alive ? (double)(rss - base) * 1024.0 / alive : 0.0);
    }
    double self, server;
    lg_cpu_span(&a, &b, &self, &server);
    lg_result(" hold_s=%g loadgen_cpu_pct=%.1f", g.o.hold, self);
    if (server >= 0)
        lg_result(" server_cpu_pct=%.2f", server);
    lg_result(" src_addrs=%d", g.o.src_addrs);
    lg_close_all();
    if (alive != n) {
        lg_note("only %d of %d connections answered the ping", alive, n);
        return 1;
    }
    return 0;
}

/* ----------------------------------------------------------- handshake */

static struct {
    uint64_t upgrades, errors;
    struct lg_hist h;
    int *restart;
    int nrestart;
    bool stop;
} H;

static void hs_open(struct wsc_conn *c)
{
    g.opened++;
    int64_t now = g.sh.now_ns;
    if (in_window(now)) {
        H.upgrades++;
        lg_hist_add(&H.h, now - c->t0);
    }
    wsc_close(c, 1000);
}

static void hs_message(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    (void)c, (void)op, (void)p, (void)n;
}

static void hs_done(struct wsc_conn *c, bool clean, const char *why)
{
    lg_record_done(c, clean, why);
    check_violation(c, why);
    if (!clean) {
        if (!H.errors)
            lg_note("first failed connection: %s", why);
        H.errors++;
    }
    H.restart[H.nrestart++] = c->id;
}

static const struct wsc_ops hs_ops = {hs_open, hs_message, ignore_pong, hs_done};

static void hs_tick(void)
{
    window_tick();
    if (lg_now() >= win.t_end)
        return;
    const char *path = g.o.path ? g.o.path : "/echo";
    int n = H.nrestart;
    H.nrestart = 0;
    for (int i = 0; i < n; i++) {
        struct wsc_conn *c = &g.conns[H.restart[i]];
        if (lg_connect(c, &hs_ops, path, ROLE_HS) < 0) {
            H.errors++;
            H.restart[H.nrestart++] = c->id; /* retried at the next tick */
        }
    }
}

static bool hs_all_done(void)
{
    return H.nrestart == g.nconns;
}

int lg_mode_handshake(void)
{
    int n = g.o.concurrency;
    /* Each connection writes its request, then its Close only after the
     * 101 (which acknowledges the request): Nagle's algorithm never holds
     * either back, and TCP_NODELAY would be one more system call each. */
    g.sh.nagle = true;
    lg_conns(n);
    H.restart = calloc((size_t)n, sizeof *H.restart);
    for (int i = 0; i < n; i++)
        H.restart[H.nrestart++] = i;
    g.tick = hs_tick;
    g.tick_ns = 1000000;
    window_start(g.o.warmup, g.o.seconds);
    hs_tick();
    lg_loop(NULL, win.t_end);
    if (!lg_loop(hs_all_done, lg_now() + 30 * SEC))
        lg_fail("%d handshake connections still open 30 s after the end", g.nconns - H.nrestart);
    if (!win.at_end)
        lg_cpu_mark(&win.b);
    g.tick = NULL;
    double secs = window_seconds();
    lg_result("bench ws_handshake upgrades_per_s=%.0f upgrade_p50_us=%.1f upgrade_p99_us=%.1f",
              (double)H.upgrades / secs, lg_hist_pct_us(&H.h, 0.5), lg_hist_pct_us(&H.h, 0.99));
    lg_result(" concurrency=%d seconds=%g upgrades=%" PRIu64 " errors=%" PRIu64 " tls=%d", n, secs, H.upgrades,
              H.errors, g.o.tls);
    cpu_keys(&win.a, &win.b);
    free(H.restart);
    return 0;
}

/* -------------------------------------------------------------- fanout */

/* The publisher keeps at most --depth broadcasts in flight: it sends the
 * next one when every subscriber has received an earlier one. Payload:
 * sequence number (8 bytes), send time (8 bytes), then template bytes. */
static struct {
    int nsub, synced;
    struct wsc_conn *pub;
    uint64_t next_seq, first_meas, deliveries, lost, broadcasts;
    uint64_t probe_seq;  /* the last probe sent before measuring */
    int probe_got;       /* subscribers that have received it */
    int *remaining;
    int outstanding;
    bool pub_dirty, measuring;
    uint8_t *msg;
    int64_t last_probe;
    struct lg_hist h;
} F;

static void fan_publish(void)
{
    uint64_t seq = F.next_seq++;
    int64_t ts = lg_now();
    size_t n = g.o.size;
    memcpy(F.msg, &seq, 8);
    memcpy(F.msg + 8, &ts, 8);
    memcpy(F.msg + 16, lg_expected(0, seq, 0, n - 16), n - 16);
    if (F.measuring) {
        F.remaining[seq % (uint64_t)g.o.depth] = F.nsub;
        F.outstanding++;
        F.broadcasts++;
    }
    wsc_queue(F.pub, 2, F.msg, n);
    F.pub_dirty = true;
}

static void fan_delivered(uint64_t seq)
{
    if (!F.measuring || seq < F.first_meas)
        return;
    if (--F.remaining[seq % (uint64_t)g.o.depth] == 0) {
        F.outstanding--;
        if (g.sh.now_ns < win.t_end)
            fan_publish();
    }
}

static void fan_open(struct wsc_conn *c)
{
    g.opened++;
    c->t0 = 0;
}

static void fan_message(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    if (c->role == ROLE_PUB)
        lg_fail("the publisher received a broadcast (%zu bytes): /broadcast must skip the sender", n);
    if (op != 2 || n != g.o.size)
        lg_fail("subscriber %d: a message with opcode %d and %zu bytes, expected binary %zu", c->id, op, n,
                g.o.size);
    uint64_t seq;
    int64_t ts;
    memcpy(&seq, p, 8);
    memcpy(&ts, p + 8, 8);
    if (seq >= F.next_seq)
        lg_fail("subscriber %d: broadcast %" PRIu64 " was never published", c->id, seq);
    if (memcmp(p + 16, lg_expected(0, seq, 0, n - 16), n - 16) != 0)
        lg_fail("subscriber %d: broadcast %" PRIu64 " differs from what was published", c->id, seq);
    if (!c->sent) {
        c->sent = 1;
        c->recvd = seq;
        F.synced++;
    }
    if (seq < c->recvd)
        lg_fail("subscriber %d: broadcast %" PRIu64 " after %" PRIu64 " (repeated or out of order)", c->id, seq,
                c->recvd - 1);
    if (!F.measuring && seq == F.probe_seq)
        F.probe_got++;
    for (uint64_t s = c->recvd; s < seq; s++) {
        F.lost++;
        fan_delivered(s);
    }
    c->recvd = seq + 1;
    int64_t now = g.sh.now_ns;
    if (F.measuring && seq >= F.first_meas && in_window(now)) {
        F.deliveries++;
        lg_hist_add(&F.h, now - ts);
    }
    fan_delivered(seq);
}

static void fan_done(struct wsc_conn *c, bool clean, const char *why)
{
    lg_record_done(c, clean, why);
    check_violation(c, why);
    if (!clean && !g.closing)
        lg_fail("connection %d (%s): %s", c->id, c->path, why);
}

static const struct wsc_ops fan_ops = {fan_open, fan_message, ignore_pong, fan_done};

static bool fan_synced(void);

static void fan_tick(void)
{
    if (!F.measuring) {
        /* Until every subscriber has received something, the room may not
         * hold them all yet: probes, at most one every 20 ms and only once
         * every subscriber already in the room has the previous one, so that
         * no backlog of probes is still being delivered when measuring starts. */
        int64_t now = lg_now();
        if (!fan_synced() && now - F.last_probe >= 20000000 && (F.next_seq == 0 || F.probe_got >= F.synced)) {
            F.last_probe = now;
            F.probe_seq = F.next_seq;
            F.probe_got = 0;
            fan_publish();
        }
    } else {
        window_tick();
    }
    if (F.pub_dirty) {
        F.pub_dirty = false;
        wsc_flush(F.pub);
    }
}

static bool fan_synced(void)
{
    return F.synced == F.nsub && F.probe_got == F.nsub;
}

static bool fan_drained(void)
{
    return F.outstanding == 0;
}

int lg_mode_fanout(void)
{
    if (g.o.size < 16)
        lg_fail("fanout needs --size of at least 16 (sequence number and time stamp)");
    const char *path = g.o.path ? g.o.path : "/broadcast";
    F.nsub = g.o.subscribers;
    lg_conns(F.nsub + 1);
    F.msg = malloc(g.o.size);
    F.remaining = calloc((size_t)g.o.depth, sizeof *F.remaining);
    lg_open_batches(F.nsub, &fan_ops, path, ROLE_SUB, 0, true);
    F.pub = &g.conns[F.nsub];
    lg_open_batches(1, &fan_ops, path, ROLE_PUB, F.nsub, true);
    g.tick = fan_tick;
    g.tick_ns = 1000000;
    if (!lg_loop(fan_synced, lg_now() + 30 * SEC))
        lg_fail("only %d of %d subscribers received a broadcast within 30 s", F.synced, F.nsub);
    F.measuring = true;
    F.first_meas = F.next_seq;
    window_start(g.o.warmup, g.o.seconds);
    g.sh.now_ns = lg_now();
    for (int d = 0; d < g.o.depth; d++)
        fan_publish();
    wsc_flush(F.pub);
    F.pub_dirty = false;
    if (!lg_loop(fan_drained, win.t_end + 30 * SEC))
        lg_fail("%d broadcasts not delivered to every subscriber 30 s after the end", F.outstanding);
    if (!win.at_end)
        lg_cpu_mark(&win.b);
    g.tick = NULL;
    lg_close_all();
    double secs = window_seconds();
    lg_result("bench ws_fanout deliveries_per_s=%.0f latency_p50_us=%.1f latency_p99_us=%.1f latency_p999_us=%.1f",
              (double)F.deliveries / secs, lg_hist_pct_us(&F.h, 0.5), lg_hist_pct_us(&F.h, 0.99),
              lg_hist_pct_us(&F.h, 0.999));
    lg_result(" subscribers=%d depth=%d size=%zu seconds=%g broadcasts=%" PRIu64 " lost=%" PRIu64, F.nsub,
              g.o.depth, g.o.size, secs, F.broadcasts, F.lost);
    cpu_keys(&win.a, &win.b);
    free(F.msg);
    free(F.remaining);
    return 0;
}
