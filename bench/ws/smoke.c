/*
 * smoke.c: the load generator's correctness run (snow-ws-loadgen smoke).
 * Checks, and never times: the RFC 6455 §1.3 accept vector; echo of text
 * and binary messages at every length class (0, 1, 125, 126, 127, 65535,
 * 65536, 65537, 300,000 bytes) and of multi-byte UTF-8, one at a time and
 * pipelined over several connections; ping/pong payloads; broadcasts that
 * reach every other client in order and never the publisher; repeated
 * connect/upgrade/close cycles; a clean close handshake (code 1000 echoed,
 * the server closes TCP) on every connection. Any failure exits 1 with a
 * message; timeouts (30 s a step) only keep a broken server from hanging
 * the test.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

#define SEC INT64_C(1000000000)
#define STEP_TIMEOUT (30 * SEC)

static const size_t sizes[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, LG_SMOKE_MAX};
#define NSIZES (sizeof sizes / sizeof sizes[0])
static const char utf8_msg[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9d\x84\x9e end";

static struct {
    uint64_t total;    /* messages per connection */
    int depth;
    int done_conns;    /* connections that got every message back */
    int pongs, closed_ok;
    uint64_t messages, broadcasts;
    int checks;
    /* broadcast step */
    struct wsc_conn *pub;
    int nsub, synced;
    uint64_t next_seq, first_seq;
    int64_t last_probe;
    bool sync_done;
    uint8_t bmsg[64];
} S;

/* Message i of connection c: its opcode and payload. The last message of
 * each connection is the UTF-8 sample. */
static void expect(const struct wsc_conn *c, uint64_t i, int *op, const uint8_t **p, size_t *n)
{
    if (i == S.total - 1) {
        *op = 1;
        *p = (const uint8_t *)utf8_msg;
        *n = sizeof utf8_msg - 1;
        return;
    }
    uint64_t k = i + (uint64_t)c->id;
    *n = sizes[k % NSIZES];
    int text = (int)((k / NSIZES) % 2);
    *op = text ? 1 : 2;
    *p = lg_expected(text, i, c->id, *n);
}

static void send_next(struct wsc_conn *c)
{
    int op;
    const uint8_t *p;
    size_t n;
    expect(c, c->sent, &op, &p, &n);
    wsc_queue(c, op, p, n);
    c->sent++;
}

static void on_open(struct wsc_conn *c)
{
    g.opened++;
    c->t0 = 1;
}

static void echo_message(struct wsc_conn *c, int op, const uint8_t *p, size_t n)
{
    if (c == S.pub)
        lg_fail("the publisher received a broadcast (%zu bytes): /broadcast must skip the sender", n);
    if (c->role == 2) {
        /* A subscriber: sequence number, then template bytes. */
        uint64_t seq;
        if (op != 2 || n != sizeof S.bmsg)
            lg_fail("subscriber %d: opcode %d, %zu bytes; expected a %zu-byte binary broadcast", c->id, op, n,
                    sizeof S.bmsg);
        memcpy(&seq, p, 8);
        if (seq >= S.next_seq || memcmp(p + 8, lg_expected(0, seq, 0, n - 8), n - 8) != 0)
            lg_fail("subscriber %d: broadcast %" PRIu64 " is not what was published", c->id, seq);
        if (!c->sent) {
            c->sent = 1;
            c->recvd = seq;
            S.synced++;
        }
        if (seq != c->recvd)
            lg_fail("subscriber %d: broadcast %" PRIu64 " where %" PRIu64 " was due (lost, repeated or reordered)",
                    c->id, seq, c->recvd);
        c->recvd++;
        if (seq >= S.first_seq && S.sync_done)
            S.broadcasts++;
        return;
    }
    int wop;
    const uint8_t *want;
    size_t wn;
    uint64_t i = c->recvd;
    if (i >= c->sent)
        lg_fail("connection %d: a message it never sent came back (%zu bytes)", c->id, n);
    expect(c, i, &wop, &want, &wn);
    if (op != wop || n != wn)
        lg_fail("connection %d: message %" PRIu64 ": opcode %d, %zu bytes; sent opcode %d, %zu bytes", c->id, i, op,
                n, wop, wn);
    if (memcmp(p, want, n) != 0)
        lg_fail("connection %d: message %" PRIu64 " (%zu bytes) came back different", c->id, i, n);
    c->recvd++;
    S.messages++;
    if (c->sent < S.total)
        send_next(c);
    else if (c->recvd == S.total)
        S.done_conns++;
}

static void on_pong(struct wsc_conn *c, const uint8_t *p, size_t n)
{
    char want[32];
    int wn = snprintf(want, sizeof want, "smoke-ping-%d", c->id);
    if ((size_t)wn == n && memcmp(p, want, n) == 0)
        S.pongs++;
}

static void on_done(struct wsc_conn *c, bool clean, const char *why)
{
    lg_record_done(c, clean, why);
    if (!g.closing || !clean)
        lg_fail("connection %d (%s): %s", c->id, c->path, clean ? "closed by the server" : why);
    if (c->close_code != 1000)
        lg_fail("connection %d: the server answered Close 1000 with %u", c->id, c->close_code);
    S.closed_ok++;
}

static const struct wsc_ops ops = {on_open, echo_message, on_pong, on_done};

static bool echoed(void)
{
    return S.done_conns == g.nconns;
}

static bool ponged(void)
{
    return S.pongs == g.nconns;
}

static const char *echo_path(void)
{
    return g.o.path ? g.o.path : "/echo";
}

static void close_checked(void)
{
    S.closed_ok = 0;
    lg_close_all();
    if (S.closed_ok != g.nconns)
        lg_fail("%d of %d connections did not close cleanly", g.nconns - S.closed_ok, g.nconns);
}

/* nconns connections, each echoing total messages with depth in flight,
 * then a ping on each, then the close handshake. */
static void echo_step(int nconns, uint64_t total, int depth)
{
    lg_conns(nconns);
    g.opened = 0;
    S.total = total;
    S.depth = depth;
    S.done_conns = 0;
    S.pongs = 0;
    lg_open_batches(nconns, &ops, echo_path(), 1, 0, true);
    for (int i = 0; i < nconns; i++) {
        for (int d = 0; d < depth && g.conns[i].sent < total; d++)
            send_next(&g.conns[i]);
        wsc_flush(&g.conns[i]);
    }
    if (!lg_loop(echoed, lg_now() + STEP_TIMEOUT)) {
        for (int i = 0; i < nconns; i++) {
            struct wsc_conn *c = &g.conns[i];
            if (c->recvd < total)
                lg_note("connection %d: %" PRIu64 " of %" PRIu64 " sent, %" PRIu64 " back, %zu bytes unsent, "
                        "%zu bytes of an incomplete frame held, TLS engine state 0x%x",
                        i, c->sent, total, c->recvd, wsc_pending(c), c->rlen, wsc_tls_state(c));
        }
        lg_fail("echo: %d of %d connections did not get all %" PRIu64 " messages back within 30 s",
                nconns - S.done_conns, nconns, total);
    }
    S.checks++;
    for (int i = 0; i < nconns; i++) {
        char ping[32];
        int n = snprintf(ping, sizeof ping, "smoke-ping-%d", i);
        wsc_send(&g.conns[i], 9, (const uint8_t *)ping, (size_t)n);
    }
    if (!lg_loop(ponged, lg_now() + STEP_TIMEOUT))
        lg_fail("ping: %d of %d connections got no matching pong within 30 s", nconns - S.pongs, nconns);
    S.checks++;
    close_checked();
    S.checks++;
}

static void publish(void)
{
    uint64_t seq = S.next_seq++;
    memcpy(S.bmsg, &seq, 8);
    memcpy(S.bmsg + 8, lg_expected(0, seq, 0, sizeof S.bmsg - 8), sizeof S.bmsg - 8);
    wsc_send(S.pub, 2, S.bmsg, sizeof S.bmsg);
}

static void probe_tick(void)
{
    int64_t now = lg_now();
    if (!S.sync_done && now - S.last_probe >= 20000000) {
        S.last_probe = now;
        publish();
    }
}

static bool subs_synced(void)
{
    return S.synced == S.nsub;
}

static uint64_t want_seq;

static bool subs_caught_up(void)
{
    for (int i = 0; i < S.nsub; i++)
        if (g.conns[i].recvd < want_seq)
            return false;
    return true;
}

static void broadcast_step(int nsub, int count)
{
    const char *path = "/broadcast";
    lg_conns(nsub + 1);
    g.opened = 0;
    S.nsub = nsub;
    S.synced = 0;
    S.sync_done = false;
    S.next_seq = 0;
    lg_open_batches(nsub, &ops, path, 2, 0, true);
    S.pub = &g.conns[nsub];
    lg_open_batches(1, &ops, path, 3, nsub, true);
    g.tick = probe_tick;
    g.tick_ns = 5000000;
    if (!lg_loop(subs_synced, lg_now() + STEP_TIMEOUT))
        lg_fail("broadcast: only %d of %d subscribers received anything within 30 s", S.synced, nsub);
    S.sync_done = true;
    g.tick = NULL;
    S.first_seq = S.next_seq;
    /* Everything from here on must reach every subscriber, in order. */
    for (int k = 0; k < count; k++) {
        publish();
        want_seq = S.next_seq;
        if (!lg_loop(subs_caught_up, lg_now() + STEP_TIMEOUT))
            lg_fail("broadcast %" PRIu64 " did not reach every subscriber within 30 s", want_seq - 1);
    }
    S.checks++;
    /* A broadcast wrongly echoed to the publisher would be in flight
     * behind the last delivery: read for a moment more. */
    lg_loop(NULL, lg_now() + SEC / 5);
    S.checks++;
    S.pub = NULL;
    close_checked();
    S.checks++;
}

static void handshake_step(int cycles)
{
    for (int k = 0; k < cycles; k++) {
        lg_conns(1);
        g.opened = 0;
        S.total = 1;
        S.done_conns = 0;
        lg_open_batches(1, &ops, echo_path(), 1, 0, true);
        close_checked();
    }
    S.checks++;
}

int lg_mode_smoke(void)
{
    char acc[29];
    wsc_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc);
    if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
        lg_fail("the load generator's own accept computation is wrong: %s", acc);
    S.checks++;
    echo_step(1, 2 * NSIZES + 1, 1);
    echo_step(8, 200, 8);
    broadcast_step(3, 50);
    handshake_step(20);
    lg_result("bench ws_smoke checks=%d messages=%" PRIu64 " broadcast_deliveries=%" PRIu64 " tls=%d", S.checks,
              S.messages, S.broadcasts, g.o.tls);
    return 0;
}
