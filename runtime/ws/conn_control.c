/*
 * conn_control.c: a connection's control side, on its own actor: our
 * Close (a protocol error, a policy cut, the program's own close), the
 * peer's control frames (ping, pong, Close), and the deadlines a turn acts
 * on (heartbeat ping due, pong overdue, spread shutdown, write stall,
 * drain, close timeout). conn.c's loop calls in here; every Close goes
 * into the queue's control lane and leaves with the turn's write.
 */
#include <errno.h>
#include <string.h>

#include "actor/actor.h"
#include "ws/conn.h"

int64_t ws_deadline_ms(int64_t ms)
{
    return ms > 0 ? actor_deadline_after_ms(ms) : -1;
}

static bool due(int64_t deadline, int64_t now)
{
    return deadline >= 0 && now >= deadline;
}

/* ---- closing ---- */

/* Starts our close. abort drops queued data so the Close goes next. */
static int start_close(struct ws_conn *c, unsigned code, const char *reason, size_t n, bool abort)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    int len = ws_close_start(&c->lv->close, code, reason, n, frame);
    if (len < 0)
        return len;
    /* Kept for on_close in case the peer never answers (ws_conn_finish). */
    size_t keep = reason ? rt_utf8_prefix(reason, n, WS_CLOSE_REASON_MAX) : 0;
    if (keep && reason)
        memcpy(c->lv->close.reason, reason, keep);
    c->lv->close.reason_len = (uint8_t)keep;
    atomic_store(&c->accepting, false);
    size_t before = c->lv->q.bytes;
    if (abort)
        ws_outq_abort(&c->lv->q);
    ws_outq_control(&c->lv->q, WS_CTL_CLOSE, frame, (size_t)len);
    ws_conn_sync_queued(c, before);
    c->lv->close_due = actor_deadline_earliest(c->lv->close_due, ws_deadline_ms(c->h->close_timeout_ms));
    c->ping_due = c->pong_due = -1;
    return 0;
}

/* A protocol error: close with code. The answers to the frames before the
 * bad one are already queued and go out first (the peer may be waiting
 * for them); the close timeout bounds that. */
void ws_conn_fail(struct ws_conn *c, unsigned code)
{
    if (c->lv->close.state == WS_STATE_OPEN)
        start_close(c, code, NULL, 0, false);
}

/* A policy decision about the output itself (backpressure, a stall, a
 * dead peer): close with code, dropping what is queued. */
void ws_conn_cut(struct ws_conn *c, unsigned code)
{
    if (c->lv->close.state == WS_STATE_OPEN)
        start_close(c, code, NULL, 0, true);
}

int ws_conn_close_own(struct ws_conn *c, unsigned code, const char *reason, size_t n)
{
    if (!atomic_load(&c->accepting) || c->lv->close.state != WS_STATE_OPEN)
        return SNOW_ECLOSED;
    if (code && !ws_close_code_valid(code))
        return -EINVAL;
    if (n && !rt_utf8_valid(reason, n, NULL))
        return -EILSEQ;
    return start_close(c, code, reason, n, false);
}

/* ---- the peer's control frames ---- */

static void on_pong(struct ws_conn *c, const uint8_t *p, size_t n)
{
    int64_t now = rt_now_ns();
    uint64_t token;
    if (n == sizeof token && c->pong_due >= 0) {
        memcpy(&token, p, sizeof token);
        if (token == (uint64_t)c->ping_sent_ns) {
            atomic_store(&c->rtt_ms, (int)((now - c->ping_sent_ns) / 1000000));
            c->pong_due = -1;
            c->ping_due = ws_deadline_ms(c->h->ping_interval_ms);
            return;
        }
    }
    /* §5.5.3: an unsolicited pong needs no answer; one that matches the
     * last user ping measures the round trip too. */
    if (c->user_ping_ns && n == c->user_ping_len && ws_payload_hash(p, n) == c->user_ping_hash) {
        atomic_store(&c->rtt_ms, (int)((now - c->user_ping_ns) / 1000000));
        c->user_ping_ns = 0;
    }
}

void ws_conn_on_control(struct ws_conn *c, const struct ws_event *ev)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    switch (ev->opcode) {
    case WS_OP_PING: {
        /* §5.5.2: a pong with the same payload, unless our Close went out. */
        if (c->lv->close.state != WS_STATE_OPEN)
            return;
        int len = ws_frame_control(frame, WS_OP_PONG, ev->data, ev->len);
        size_t before = c->lv->q.bytes;
        ws_outq_control(&c->lv->q, WS_CTL_PONG, frame, (size_t)len);
        ws_conn_sync_queued(c, before);
        return;
    }
    case WS_OP_PONG:
        on_pong(c, ev->data, ev->len);
        return;
    case WS_OP_CLOSE: {
        bool was_open = c->lv->close.state == WS_STATE_OPEN;
        int len = ws_close_received(&c->lv->close, ev->data, ev->len, frame);
        atomic_store(&c->accepting, false);
        c->ping_due = c->pong_due = -1;
        if (was_open && len > 0) {
            /* §5.5.1: answered after the messages already queued (which
             * the peer expects, e.g. echoes of what it sent before its
             * Close), bounded by the close timeout. */
            size_t before = c->lv->q.bytes;
            ws_outq_control(&c->lv->q, WS_CTL_CLOSE, frame, (size_t)len);
            ws_conn_sync_queued(c, before);
            c->lv->close_due = actor_deadline_earliest(c->lv->close_due, ws_deadline_ms(c->h->close_timeout_ms));
        }
        return;
    }
    default:
        return;
    }
}


/* ---- deadlines ---- */

static void send_heartbeat(struct ws_conn *c, int64_t now)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    uint64_t token = (uint64_t)now;
    int len = ws_frame_control(frame, WS_OP_PING, &token, sizeof token);
    size_t before = c->lv->q.bytes;
    ws_outq_control(&c->lv->q, WS_CTL_PING, frame, (size_t)len);
    ws_conn_sync_queued(c, before);
    c->ping_sent_ns = now;
    c->ping_due = -1;
    c->pong_due = now + (int64_t)(c->h->pong_timeout_ms > 0 ? c->h->pong_timeout_ms : 1) * 1000000;
}

/* The stall clock is due with the queue empty, watching the kernel: the
 * peer stalled if the kernel still holds as much as when the clock
 * started. Less is progress, and the clock starts again on the new
 * figure; a kernel that holds nothing ends the watch. */
static bool kernel_stalled(struct ws_conn *c)
{
    if (c->lv->stall_kernel < 0)
        return false;
    ws_conn_measure_kernel(c);
    int64_t k = atomic_load_explicit(&c->kernel, memory_order_relaxed);
    if (k > 0 && k >= c->lv->stall_kernel)
        return true;
    if (k == 0) {
        c->lv->stall_kernel = c->lv->stall_due = -1;
    } else {
        c->lv->stall_kernel = k;
        c->lv->stall_due = ws_deadline_ms(c->h->write_timeout_ms);
    }
    return false;
}

void ws_conn_check_deadlines(struct ws_conn *c)
{
    int64_t now = rt_now_ns();
    c->lv->now = now;
    if (due(c->ping_due, now) && c->lv->close.state == WS_STATE_OPEN)
        send_heartbeat(c, now);
    if (due(c->pong_due, now)) {
        /* The peer is gone or stuck: 1001, and no waiting for an answer. */
        c->pong_due = -1;
        c->reaped_heartbeat = true;
        ws_conn_cut(c, WS_CLOSE_GOING_AWAY);
        c->lv->close_due = now;
    }
    if (due(c->lv->spread_due, now)) {
        c->lv->spread_due = -1;
        ws_conn_close_own(c, WS_CLOSE_GOING_AWAY, "server stopping", 15);
    }
    if (due(c->lv->stall_due, now) && (!ws_outq_empty(&c->lv->q) || kernel_stalled(c))) {
        c->lv->stall_due = -1;
        c->lv->stall_kernel = -1;
        c->reaped_stall = true;
        /* The Close goes out with this turn's write if the socket takes
         * it; then TCP close either way. */
        ws_conn_cut(c, WS_CLOSE_POLICY);
        c->lv->close_due = now;
    }
    if (due(c->lv->drain_due, now))
        c->lv->close_due = now;
    if (due(c->lv->close_due, now))
        c->timed_out = true;
}
