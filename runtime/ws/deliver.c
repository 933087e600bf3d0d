/*
 * deliver.c: frames that other actors hand to a connection (a room's
 * deliverer, snow_ws_send_* from another actor, the connection's own
 * handler broadcasting to a room it is in).
 *
 * From the connection's own actor a frame goes straight into its outbound
 * queue. From anyone else it goes under the connection table's lock: a
 * frame over the outbound limit is refused (and the connection closed, per
 * the route's policy), frames for a hibernating member on a plain socket
 * are written by the deliverer itself, all of one batch in one writev (the
 * parked handshake, see enum ws_parked in conn.h), and any other frame
 * goes through the member's mailbox, ordered after the sender's earlier
 * frames, so the member writes them together in one writev.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "actor/actor.h"
#include "http/server.h"
#include "ws/conn.h"

/* What a deliverer reads of a member it writes to, up to direct_fd, is
 * the record's first cache line (conn.h). */
_Static_assert(offsetof(struct ws_conn, direct_fd) + sizeof(int) <= 64, "the deliverer's fields span two lines");

void ws_conn_queue_frame(struct ws_conn *c, struct ws_shared_frame *f)
{
    size_t before = c->lv->q.bytes;
    if (ws_outq_push(&c->lv->q, f) < 0)
        ws_shared_frame_unref(f);
    ws_conn_sync_queued(c, before);
}

unsigned ws_conn_reclaim(struct ws_conn *c)
{
    for (;;) {
        /* seq_cst: pairs with the guest's release of the socket, so its
         * writes to c (kernel) are seen from here on. */
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

/* The frames of one call, all for one connection, in the order given. */
struct batch {
    struct ws_shared_frame *const *f;
    uint32_t n;
    SnowPid self;
    bool direct;                 /* the caller may write them itself */
    uint8_t *cork;               /* the caller's buffer for one send (NULL: none) */
    size_t cork_cap;
    const uint8_t *laid;         /* f[0..n) back to back already (NULL: no) */
    int rc;                      /* the last frame's result (ws_conn_deliver) */
    struct ws_batch_result *out; /* tallies */
};

/* RSV1 frames (compressed) only to connections that agreed on it. */
static inline bool frame_ok(const struct ws_conn *c, const struct ws_shared_frame *f)
{
    return !(f->rsv & WS_RSV1) || ws_pmd_frame_ok(c, f);
}

/*
 * Under the table lock, holding the socket: how many of b's first frames
 * the deliverer may write itself, their iovecs in iov. They must each be
 * allowed on this connection (deflate) and fit under the outbound limit by
 * the same rule as one by one (pending before the frame below the limit;
 * nothing is queued, so pending is the kernel's share plus what this write
 * adds), and together stay under half the kernel's buffer cap, so a short
 * write is rare. *short_of: the kernel's share is what stopped it.
 */
static inline uint32_t direct_prefix(const struct ws_conn *c, const struct batch *b, struct iovec *iov, size_t *total,
                              bool *short_of)
{
    uint64_t k = (uint64_t)atomic_load_explicit(&c->kernel, memory_order_relaxed);
    uint64_t limit = ws_limit(c), sum = k;
    uint32_t m = 0;
    *short_of = false;
    for (; m < b->n; m++) {
        struct ws_shared_frame *f = b->f[m];
        if (!frame_ok(c, f))
            break;
        if (sum >= limit || sum + f->len > WS_SNDBUF_MAX / 2) {
            *short_of = k > 0;
            break;
        }
        iov[m] = (struct iovec){f->bytes, f->len};
        sum += f->len;
    }
    *total = (size_t)(sum - k);
    return m;
}

/* The frame the socket took w bytes of goes on through the mailbox
 * (struct ws_rest); the owner writes its rest before anything else. */
static void hand_rest(struct ws_conn *c, struct ws_shared_frame *f, size_t w, SnowPid self)
{
    struct ws_rest rest = {f, w};
    ws_shared_frame_ref(f);
    atomic_fetch_add_explicit(&c->queued, (int64_t)(f->len - w), memory_order_relaxed);
    if (actor_send_raw(c->pid, SNOW_TAG_WS_BROADCAST, self, &rest, sizeof rest) < 0) {
        /* No memory for the rest: the frame is torn, so the connection
         * cannot go on (the actor sees REST with nothing to finish and
         * fails). */
        atomic_fetch_sub_explicit(&c->queued, (int64_t)(f->len - w), memory_order_relaxed);
        ws_shared_frame_unref(f);
    }
}

/*
 * Under the table lock, for a connection that accepts frames. Writes a
 * prefix of b to the socket of a hibernating member in one writev and
 * returns its length (counted in b->out); 0 when nothing was written, and
 * the frames go the usual way. A frame cut short ends the prefix: its rest
 * and what follows go through the mailbox, the rest first, so the wire
 * order is the batch's order.
 */
static uint32_t deliver_direct(struct ws_conn *c, struct batch *b)
{
    if (atomic_load_explicit(&c->queued, memory_order_relaxed) != 0 || atomic_load(&c->close_asked))
        return 0;
    uint8_t st = WS_PARKED_YES;
    if (!atomic_compare_exchange_strong(&c->parked, &st, WS_PARKED_GUEST))
        return 0;
    /* The socket is ours until we put it back: the actor waits for that. */
    uint32_t done = 0;
    uint8_t next = WS_PARKED_YES;
    struct iovec iov[WS_DIRECT_MAX];
    size_t total = 0;
    bool short_of;
    uint32_t m = 0;
    for (bool measured = false; c->direct_fd >= 0; measured = true) {
        m = direct_prefix(c, b, iov, &total, &short_of);
        if (!short_of || measured)
            break;
        /* c->kernel is an upper bound that only grows between measures
         * (conn.c kernel_after_write): the peer has likely read most of
         * it. Measured here, once per about half the kernel's buffer of
         * direct writes. */
        ws_conn_measure_kernel(c);
    }
    if (m) {
        ssize_t w;
        if (m == 1) {
            w = send(c->direct_fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else if (b->laid || total <= b->cork_cap) {
            /* Small frames: one buffer costs the kernel one copy instead
             * of one per frame (measured on the fanout bench: the iovec
             * walk was most of the difference to a plain send). The
             * prefix of frames laid out by the caller is one already. */
            const uint8_t *p = b->laid;
            if (!p) {
                size_t at = 0;
                for (uint32_t i = 0; i < m; i++) {
                    memcpy(b->cork + at, iov[i].iov_base, iov[i].iov_len);
                    at += iov[i].iov_len;
                }
                p = b->cork;
            }
            w = send(c->direct_fd, p, total, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m};
            w = sendmsg(c->direct_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        /* EAGAIN or an error (the actor finds it on its own): nothing
         * written, the usual way. */
        if (w > 0) {
            b->out->writes++;
            size_t left = (size_t)w;
            while (done < m && left >= iov[done].iov_len)
                left -= iov[done++].iov_len;
            if (left) {
                hand_rest(c, b->f[done++], left, b->self);
                b->out->partial++;
                next = WS_PARKED_REST;
            }
            b->out->delivered += done;
            b->out->direct += done;
            int64_t k = atomic_load_explicit(&c->kernel, memory_order_relaxed) + w;
            atomic_store_explicit(&c->kernel, k, memory_order_relaxed);
            if ((uint64_t)k >= ws_limit(c) / 4 || done < b->n)
                ws_conn_measure_kernel(c);
        }
    }
    atomic_store(&c->parked, next); /* seq_cst: see ws_conn_reclaim */
    return done;
}

/* Under the table lock, for a connection that accepts frames: one frame
 * through the mailbox, or refused for the limit. */
static int deliver_mail(struct ws_conn *c, struct ws_shared_frame *f, SnowPid self)
{
    if (!frame_ok(c, f))
        return -EINVAL;
    if (!ws_conn_fits(c)) {
        ws_count(&c->route->bp_refused, 1);
        if (c->h->close_on_backpressure && !atomic_exchange(&c->close_asked, true)) {
            struct ws_close_req req = {.code = WS_CLOSE_POLICY, .len = 12};
            memcpy(req.reason, "backpressure", 12);
            /* Pending output until taken, as in api.c request_locked. */
            atomic_fetch_add_explicit(&c->queued, 1, memory_order_relaxed);
            if (actor_send_raw(c->pid, SNOW_TAG_WS_CLOSE, self, &req, sizeof req) < 0)
                atomic_fetch_sub_explicit(&c->queued, 1, memory_order_relaxed);
        }
        return SNOW_EBACKPRESSURE;
    }
    atomic_fetch_add_explicit(&c->queued, (int64_t)f->len, memory_order_relaxed);
    ws_shared_frame_ref(f);
    /* The mailbox orders this frame after the sender's earlier ones. */
    if (actor_send_raw(c->pid, SNOW_TAG_WS_BROADCAST, self, &f, sizeof f) < 0) {
        atomic_fetch_sub_explicit(&c->queued, (int64_t)f->len, memory_order_relaxed);
        ws_shared_frame_unref(f);
        return SNOW_ECLOSED;
    }
    return 0;
}

static void tally(struct batch *b, int rc)
{
    b->rc = rc;
    if (rc == 0)
        b->out->delivered++;
    else if (rc == SNOW_EBACKPRESSURE)
        b->out->refused++;
    else
        b->out->failed++;
}

/* Under the table lock: the connection cannot go away meanwhile. */
static int deliver_locked(struct ws_conn *c, void *arg)
{
    struct batch *b = arg;
    uint32_t i = 0;
    if (!c || !atomic_load(&c->accepting)) {
        for (; i < b->n; i++)
            tally(b, SNOW_ECLOSED);
        return 0;
    }
    if (b->direct)
        i = deliver_direct(c, b);
    for (; i < b->n; i++)
        tally(b, deliver_mail(c, b->f[i], b->self));
    return 0;
}

/* From the connection's own handler: straight into its queue. */
static int deliver_own(struct ws_conn *own, struct ws_shared_frame *f)
{
    if (!atomic_load(&own->accepting))
        return SNOW_ECLOSED;
    if (!frame_ok(own, f))
        return -EINVAL;
    if (!ws_conn_fits_after_flush(own))
        return ws_conn_refuse_backpressure(own);
    ws_shared_frame_ref(f);
    ws_conn_queue_frame(own, f);
    return 0;
}

static void deliver(SnowPid pid, struct batch *b)
{
    struct ws_conn *own = pid == b->self ? ws_conn_self(pid) : NULL;
    if (own) {
        for (uint32_t i = 0; i < b->n; i++)
            tally(b, deliver_own(own, b->f[i]));
        return;
    }
    struct ws_table_held held;
    deliver_locked(ws_table_lock(pid, &held), b);
    ws_table_unlock(&held);
}

int ws_conn_deliver(SnowPid pid, struct ws_shared_frame *f)
{
    if (!f)
        return -EINVAL;
    struct ws_batch_result out = {0};
    struct batch b = {.f = &f, .n = 1, .self = snow_actor_self(), .out = &out};
    deliver(pid, &b);
    return b.rc;
}

void ws_conn_deliver_batch(const struct ws_deliverer *by, SnowPid pid, struct ws_shared_frame *const *f, uint32_t n,
                           struct ws_batch_result *out)
{
    for (uint32_t i = 0; i < n; i += WS_DIRECT_MAX) {
        struct batch b = {.f = f + i, .n = n - i < WS_DIRECT_MAX ? n - i : WS_DIRECT_MAX, .self = by->self,
                          .direct = true, .cork = by->cork, .cork_cap = by->cork ? by->cork_cap : 0,
                          .laid = n <= WS_DIRECT_MAX ? by->laid : NULL, .out = out};
        deliver(pid, &b);
    }
}
