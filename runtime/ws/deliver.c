/*
 * deliver.c: frames that other actors hand to a connection (a room's
 * deliverer, snow_ws_send_* from another actor, the connection's own
 * handler broadcasting to a room it is in).
 *
 * From the connection's own actor a frame goes straight into its outbound
 * queue. From anyone else it goes under the connection table's lock: a
 * frame over the outbound limit is refused (and the connection closed, per
 * the route's policy), a lone frame to a hibernating member on a plain
 * socket is written by the deliverer itself (the parked handshake, see
 * enum ws_parked in conn.h), and any other frame goes through the member's
 * mailbox, ordered after the sender's earlier frames, so the member writes
 * them together in one writev.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "actor/actor.h"
#include "http/server.h"
#include "ws/conn.h"

void ws_conn_queue_frame(struct ws_conn *c, struct ws_shared_frame *f)
{
    if (c->room_epoch || f->room_epoch) {
        c->room_epoch = f->room_epoch;
        c->room_seq = f->room_seq;
    }
    size_t before = c->lv->q.bytes;
    if (ws_outq_push(&c->lv->q, f) < 0)
        ws_shared_frame_unref(f);
    ws_conn_sync_queued(c, before);
}

struct deliver {
    struct ws_shared_frame *f;
    SnowPid self;
    bool direct;
};

unsigned ws_conn_reclaim(struct ws_conn *c)
{
    for (;;) {
        /* seq_cst: pairs with the guest's release of the socket, so its
         * writes to c (kernel, room_seq) are seen from here on. */
        uint8_t st = atomic_load(&c->parked);
        if (st == WS_PARKED_NO)
            return st;
        if (st == WS_PARKED_GUEST) {
            __builtin_ia32_pause(); /* a write in progress: one sendmsg */
            continue;
        }
        if (atomic_compare_exchange_weak(&c->parked, &st, WS_PARKED_NO))
            return st;
    }
}

/* Under the table lock, for a frame that fits. 1: written whole, 2: in part
 * with the rest handed over, 0: deliver it the usual way. */
static int deliver_direct(struct ws_conn *c, struct ws_shared_frame *f, SnowPid self)
{
    if (atomic_load_explicit(&c->queued, memory_order_relaxed) != 0 || atomic_load(&c->close_asked) ||
        atomic_load_explicit(&c->kernel, memory_order_relaxed) + (int64_t)f->len > WS_SNDBUF_MAX / 2)
        return 0;
    uint8_t st = WS_PARKED_YES;
    if (!atomic_compare_exchange_strong(&c->parked, &st, WS_PARKED_GUEST))
        return 0;
    /* The socket is ours until we put it back: the actor waits for that. */
    if (c->stream && http_stream_reads_whole(c->stream)) {
        ssize_t w = send(http_stream_fd(c->stream), f->bytes, f->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        /* EAGAIN or an error (the actor finds it on its own): nothing
         * written, the usual way. */
        if (w > 0) {
            uint8_t next = WS_PARKED_YES;
            if ((size_t)w < f->len) {
                struct ws_rest rest = {f, (size_t)w};
                ws_shared_frame_ref(f);
                atomic_fetch_add_explicit(&c->queued, (int64_t)(f->len - (size_t)w), memory_order_relaxed);
                if (actor_send_raw(c->pid, SNOW_TAG_WS_BROADCAST, self, &rest, sizeof rest) < 0) {
                    /* No memory for the rest: the frame is torn, so the
                     * connection cannot go on (the actor sees REST with
                     * nothing to finish and fails). */
                    atomic_fetch_sub_explicit(&c->queued, (int64_t)(f->len - (size_t)w), memory_order_relaxed);
                    ws_shared_frame_unref(f);
                }
                next = WS_PARKED_REST;
            }
            if (c->room_epoch || f->room_epoch) {
                c->room_epoch = f->room_epoch;
                c->room_seq = f->room_seq;
            }
            int64_t k = atomic_load_explicit(&c->kernel, memory_order_relaxed) + w;
            atomic_store_explicit(&c->kernel, k, memory_order_relaxed);
            if ((uint64_t)k >= ws_limit(c) / 4)
                ws_conn_measure_kernel(c);
            atomic_store(&c->parked, next); /* seq_cst: see ws_conn_reclaim */
            return next == WS_PARKED_REST ? 2 : 1;
        }
    }
    atomic_store(&c->parked, WS_PARKED_YES);
    return 0;
}

/* Under the table lock: the connection cannot go away meanwhile. */
static int deliver_locked(struct ws_conn *c, void *arg)
{
    struct deliver *d = arg;
    if (!c || !atomic_load(&c->accepting))
        return SNOW_ECLOSED;
    if (!ws_pmd_frame_ok(c, d->f))
        return -EINVAL;
    if (!ws_conn_fits(c)) {
        ws_count(&c->route->bp_refused, 1);
        if (c->h->close_on_backpressure && !atomic_exchange(&c->close_asked, true)) {
            struct ws_close_req req = {.code = WS_CLOSE_POLICY, .len = 12};
            memcpy(req.reason, "backpressure", 12);
            /* Pending output until taken, as in api.c request_locked. */
            atomic_fetch_add_explicit(&c->queued, 1, memory_order_relaxed);
            if (actor_send_raw(c->pid, SNOW_TAG_WS_CLOSE, d->self, &req, sizeof req) < 0)
                atomic_fetch_sub_explicit(&c->queued, 1, memory_order_relaxed);
        }
        return SNOW_EBACKPRESSURE;
    }
    if (d->direct) {
        int w = deliver_direct(c, d->f, d->self);
        if (w)
            return w;
    }
    atomic_fetch_add_explicit(&c->queued, (int64_t)d->f->len, memory_order_relaxed);
    ws_shared_frame_ref(d->f);
    /* The mailbox orders this frame after the sender's earlier ones. */
    if (actor_send_raw(c->pid, SNOW_TAG_WS_BROADCAST, d->self, &d->f, sizeof d->f) < 0) {
        atomic_fetch_sub_explicit(&c->queued, (int64_t)d->f->len, memory_order_relaxed);
        ws_shared_frame_unref(d->f);
        return SNOW_ECLOSED;
    }
    return 0;
}

static int deliver(SnowPid pid, struct ws_shared_frame *f, bool direct);

int ws_conn_deliver(SnowPid pid, struct ws_shared_frame *f)
{
    return deliver(pid, f, false);
}

int ws_conn_deliver_direct(SnowPid pid, struct ws_shared_frame *f)
{
    return deliver(pid, f, true);
}

static int deliver(SnowPid pid, struct ws_shared_frame *f, bool direct)
{
    if (!f)
        return -EINVAL;
    struct ws_conn *own = ws_conn_self(pid);
    if (own) {
        /* From the connection's own handler: straight into its queue. */
        if (!atomic_load(&own->accepting))
            return SNOW_ECLOSED;
        if (!ws_pmd_frame_ok(own, f))
            return -EINVAL;
        if (!ws_conn_fits_after_flush(own))
            return ws_conn_refuse_backpressure(own);
        ws_shared_frame_ref(f);
        ws_conn_queue_frame(own, f);
        return 0;
    }
    struct deliver d = {f, snow_actor_self(), direct};
    return ws_table_with(pid, deliver_locked, &d);
}
