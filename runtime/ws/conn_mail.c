/*
 * conn_mail.c: what a WebSocket connection's actor takes from its mailbox
 * in a turn of its loop (conn.c): broadcast frames from rooms and other
 * senders (into the outbound queue, or the rest of one half written),
 * close and ping requests from other actors, the server's stop (the
 * drain), and the program's own messages (on_info).
 */
#include <string.h>

#include "actor/actor.h"
#include "ws/conn.h"


struct info_call {
    struct ws_conn *c;
    SnowMessage *m;
};

static void call_info(void *arg)
{
    struct info_call *i = arg;
    i->c->h->on_info(ws_handle(i->c->pid), i->m, i->c->h->arg);
}

static void begin_drain(struct ws_conn *c)
{
    if (c->draining)
        return;
    c->draining = true;
    c->lv->drain_due = actor_deadline_after_ms(c->h->drain_timeout_ms > 0 ? c->h->drain_timeout_ms : 1);
    if (c->h->drain_spread_ms > 0)
        /* Spread by a hash of the PID: no shared random state. */
        c->lv->spread_due = actor_deadline_after_ms((int64_t)(c->pid * UINT64_C(0x9E3779B97F4A7C15) >> 33) %
                                                    c->h->drain_spread_ms);
    else
        ws_conn_close_own(c, WS_CLOSE_GOING_AWAY, "server stopping", 15);
}

void ws_conn_take_frame(struct ws_conn *c, SnowMessage *m)
{
    struct ws_rest rest = {NULL, 0};
    memcpy(&rest, m->data, m->len < sizeof rest ? m->len : sizeof rest);
    struct ws_shared_frame *f = rest.f;
    size_t left = f->len - rest.off;
    /* The sender counted it in queued; moving it into the queue keeps
     * that count, dropping it gives it back. */
    atomic_fetch_sub_explicit(&c->queued, (int64_t)left, memory_order_relaxed);
    if (rest.off) {
        /* Part of it is on the wire: it must be finished, first, even
         * after a close (the peer would read the Close as payload). */
        size_t before = c->lv->q.bytes;
        if (ws_outq_empty(&c->lv->q) && ws_outq_push(&c->lv->q, f) == 0) {
            c->lv->q.off = rest.off;
            c->lv->q.bytes -= rest.off;
            ws_conn_sync_queued(c, before);
        } else {
            ws_shared_frame_unref(f);
            c->wr_failed = true;
        }
        return;
    }
    if (c->lv->close.state == WS_STATE_OPEN)
        ws_conn_queue_frame(c, f);
    else
        ws_shared_frame_unref(f);
}

bool ws_conn_take_mail(struct ws_conn *c)
{
    for (int i = 0; i < WS_MAIL_BUDGET; i++) {
        SnowMessage *m = snow_actor_receive(0);
        if (!m)
            return false;
        switch (m->tag) {
        case SNOW_TAG_WS_BROADCAST:
            ws_conn_take_frame(c, m);
            break;
        case SNOW_TAG_WS_CLOSE: {
            atomic_fetch_sub_explicit(&c->queued, 1, memory_order_relaxed); /* the sender's count */
            struct ws_close_req req;
            memset(&req, 0, sizeof req);
            memcpy(&req, m->data, m->len < sizeof req ? m->len : sizeof req);
            if (req.code == WS_CLOSE_POLICY && atomic_load(&c->close_asked)) {
                c->reaped_bp = true;
                ws_conn_cut(c, WS_CLOSE_POLICY);
            } else {
                ws_conn_close_own(c, req.code, req.reason, req.len);
            }
            break;
        }
        case SNOW_TAG_WS_PING:
            ws_conn_ping_own(c, m->data, m->len);
            break;
        case SNOW_TAG_STOP:
            begin_drain(c);
            break;
        default:
            if (c->h->on_info && !c->panicked) {
                struct info_call ic = {c, m};
                ws_call(c, call_info, &ic);
            }
            break;
        }
    }
    return true;
}
