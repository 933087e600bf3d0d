/*
 * conn_large.c: a connection's large payloads, both ways, each byte
 * passed over once between the socket and the program.
 *
 * In: the payload of a message larger than the read buffer is read
 * straight behind the message's bytes and unmasked there (payload room).
 *
 * Out: an own message of WS_SEND_LARGE bytes or more is not copied into
 * its frames. Its fragments are headers whose payload stays where the
 * message is (outq.c, ws_outq_message_at):
 *
 * - the message on_message is looking at, or a part of it, when it lies
 *   in the reassembly buffer (an echo, a relay of what came in): the
 *   buffer itself is handed over to the frames, and the next message gets
 *   a new one (it regrew from nothing after every large message anyway,
 *   hibernation giving it back). With no large buffer left the connection
 *   now waits awake after such a message like after a small one (conn.c
 *   looks at the buffer's size): what made staying awake cost fresh pages
 *   was the message buffer kept while the frames took copies, and neither
 *   happens here (page faults per 1 MiB echo: 7.5 before, 7.1 after);
 * - any other buffer of the sender's: lent for the length of the call.
 *   What the socket takes at once is written from there; only the rest
 *   is copied, into one block that its fragments share.
 *
 * For a 1 MiB echo the copy into frames was two thirds of the server's
 * instructions (callgrind, see the commit that brought this file). The
 * TLS stream takes the same iovecs, so the frames copy goes there too.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "ws/conn.h"

/* ---- in ---- */

/*
 * Room in the message buffer to read the current frame's payload into,
 * or NULL to read into the read buffer. A large payload of a reassembled
 * message (larger than the read buffer, or fragmented) would otherwise be
 * read into the read buffer, unmasked there and copied on into the message
 * buffer: a second pass over every byte (for a 1 MiB echo the copy was 42 %
 * of the server's instructions). Read straight behind the message's bytes,
 * it is unmasked (and validated) in place by the decoder and appended
 * without a copy. Only while the read buffer is empty and the decoder is
 * inside such a payload, and never for more bytes than the payload has
 * left, so that the next frame's header always lands in the read buffer.
 * The buffer grows as ws_msgbuf_append would grow it for a read of the
 * read buffer's size (room for at most 64 KiB more than the bytes already
 * here, by doubling, so to at most twice what arrived plus that, never
 * past the message limit, never by a declared length); a message that
 * would pass the limit goes the usual way, which fails the connection
 * with 1009 at the same byte.
 */
uint8_t *ws_conn_payload_room(struct ws_conn *c, size_t *room)
{
    struct ws_live *lv = c->lv;
    if (c->pmd.on || !lv->reasm.in_message || lv->direct_ok || lv->roff != lv->rlen ||
        lv->dec.state != WS_DEC_PAYLOAD || lv->dec_failed || c->lingering)
        return NULL;
    uint64_t left = lv->dec.frame_len - lv->dec.frame_done;
    if (left < WS_RBUF_SMALL)
        return NULL;
    size_t want = left < WS_RBUF_LARGE ? (size_t)left : WS_RBUF_LARGE;
    if (ws_msgbuf_reserve(&lv->reasm.buf, want) < 0)
        return NULL;
    size_t free_room = lv->reasm.buf.cap - lv->reasm.buf.len;
    *room = left < free_room ? (size_t)left : free_room;
    return ws_msgbuf_room(&lv->reasm.buf);
}

uint16_t ws_conn_take_payload(struct ws_conn *c, uint8_t *p, size_t n)
{
    struct ws_event ev;
    ssize_t used = ws_decoder_next(&c->lv->dec, p, n, &ev);
    if (used < 0) {
        c->lv->dec_failed = true;
        return ws_decoder_close_code(&c->lv->dec);
    }
    /* Inside the payload with n <= its rest, the step is one DATA event
     * of all n bytes. */
    assert((size_t)used == n && ev.kind == WS_EV_DATA && ev.data == p);
    if (ws_reasm_feed(&c->lv->reasm, &ev) < 0) {
        c->lv->dec_failed = true;
        return c->lv->reasm.close_code;
    }
    return 0;
}

/* ---- out ---- */

/* The owner may write its socket now: open, past the 101 (not in on_open
 * before it went out), not blocked, not failed. */
static bool can_write(const struct ws_conn *c)
{
    return c->phase == WS_PHASE_OPEN && !c->lv->hs && c->stream && !c->wr_failed && !c->wr_blocked;
}

/* Over the limit on the owner's own actor: what is queued may simply not
 * have been written yet (a turn writes at its end), so write what the
 * socket takes now, without waiting, and look again. */
bool ws_conn_fits_after_flush(struct ws_conn *c)
{
    if (ws_conn_fits(c))
        return true;
    if (can_write(c))
        ws_conn_flush(c);
    ws_conn_measure_kernel(c);
    return ws_conn_fits(c);
}

/* A refusal with the queue empty: everything pending is in the kernel,
 * so no write waits and the queue's stall clock would not run. A peer that
 * stopped reading must still be cut off after the write timeout, so the
 * clock starts on the kernel's figure (ws_conn_check_deadlines). */
int ws_conn_refuse_backpressure(struct ws_conn *c)
{
    ws_count(&c->route->bp_refused, 1);
    if (ws_outq_empty(&c->lv->q) && c->lv->stall_due < 0 &&
        (c->lv->stall_due = ws_deadline_ms(c->h->write_timeout_ms)) >= 0)
        c->lv->stall_kernel = atomic_load_explicit(&c->kernel, memory_order_relaxed);
    if (c->h->close_on_backpressure && c->lv->close.state == WS_STATE_OPEN) {
        c->reaped_bp = true;
        ws_conn_cut(c, WS_CLOSE_POLICY);
    }
    return SNOW_EBACKPRESSURE;
}

/*
 * The holder of the message on_message is looking at, when p[0..n) lies
 * in it and it is the reassembly buffer (not a view into the read buffer,
 * nor an inflated message): taken over from the reassembly on the first
 * such send, with a reference of its own that ws_conn_message_done drops
 * when on_message returns (the program may still read the message until
 * then, after its frames went out). NULL when p is not in it.
 */
static struct ws_payload *message_hold(struct ws_conn *c, const uint8_t *p, size_t n)
{
    struct ws_live *lv = c->lv;
    uintptr_t a = (uintptr_t)p, m = (uintptr_t)lv->msg;
    if (!lv->msg || a < m || a - m > lv->msg_len || n > lv->msg_len - (a - m))
        return NULL;
    if (lv->msg_hold)
        return lv->msg_hold;
    if (c->pmd.on || lv->msg != lv->reasm.buf.data)
        return NULL;
    if (!(lv->msg_hold = ws_payload_adopt(lv->reasm.buf.data)))
        return NULL;
    /* The reassembly starts its next message in a buffer of its own. */
    lv->reasm.buf.data = NULL;
    lv->reasm.buf.len = lv->reasm.buf.cap = 0;
    return lv->msg_hold;
}

void ws_conn_message_done(struct ws_conn *c)
{
    ws_payload_drop(c->lv->msg_hold);
    c->lv->msg_hold = NULL;
}

/* The first large own message raises the socket's send buffer to
 * WS_SNDBUF_LARGE's cap (conn.h). With 128 KiB a 1 MiB echo took 30.5
 * system calls per message, 8.5 of them writes, 8.7 waits, and sent 22.3
 * TCP segments; with 512 KiB 17.0, 3.2, 3.7 and 14.8 (bench/ws/peer_cost.sh,
 * 2 connections at depth 1; Bun: 6.4, one writev, 1.2 and 17.1). With
 * 1 MiB (the whole default limit) one write a message where 512 KiB took
 * three, and 426 µs of server CPU a message where it took 583
 * (bench/README.md, "The 1 MiB echo: the whole limit in the kernel").
 * Where net.core.wmem_max is lower, the kernel grants that much. */
static void widen_sndbuf(struct ws_conn *c)
{
    if (c->sndbuf_large || !c->stream)
        return;
    c->sndbuf_large = true;
    int v = ws_sndbuf(c);
    setsockopt(http_stream_fd(c->stream), SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}

/* A message of WS_SEND_LARGE bytes or more, keeping the shared byte
 * count in step itself (a write in between consumes some). */
static int send_large(struct ws_conn *c, unsigned opcode, const uint8_t *p, size_t n)
{
    struct ws_outq *q = &c->lv->q;
    widen_sndbuf(c);
    struct ws_payload *hold = message_hold(c, p, n);
    size_t before = q->bytes;
    int r = ws_outq_message_at(q, opcode, p, n, hold);
    if (r < 0)
        return r;
    ws_conn_sync_queued(c, before);
    if (hold)
        return 0;
    /* Lent: as much as the socket takes now (after what was queued
     * before, in order), and a copy of the rest. */
    if (can_write(c))
        ws_conn_flush(c);
    if (ws_outq_keep(q) == 0)
        return 0;
    before = q->bytes;
    /* No memory for the rest. When part of the message is out already the
     * stream cannot go on (a frame would be cut short): the connection
     * ends, as it does when it cannot wake for want of memory. */
    if (ws_outq_unlend(q))
        c->wr_failed = true;
    ws_conn_sync_queued(c, before);
    return -ENOMEM;
}

int ws_conn_send_own(struct ws_conn *c, unsigned opcode, const void *p, size_t n)
{
    if (!atomic_load(&c->accepting))
        return SNOW_ECLOSED;
    if (!ws_conn_fits_after_flush(c))
        return ws_conn_refuse_backpressure(c);
    size_t before = c->lv->q.bytes;
    int r = ws_pmd_send(c, opcode, p, n);
    if (r == 1 && n >= WS_SEND_LARGE) {
        r = send_large(c, opcode, p, n);
    } else {
        if (r == 1)
            r = ws_outq_message(&c->lv->q, opcode, p, n);
        if (r == 0)
            ws_conn_sync_queued(c, before);
    }
    if (r < 0)
        return r;
    ws_count(&c->route->msgs_out, 1);
    ws_count(&c->route->bytes_out, n);
    return 0;
}

int ws_conn_ping_own(struct ws_conn *c, const void *p, size_t n)
{
    if (!atomic_load(&c->accepting))
        return SNOW_ECLOSED;
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    int len = ws_frame_control(frame, WS_OP_PING, p, n);
    if (len < 0)
        return len;
    size_t before = c->lv->q.bytes;
    ws_outq_control(&c->lv->q, WS_CTL_PING, frame, (size_t)len);
    ws_conn_sync_queued(c, before);
    c->user_ping_ns = rt_now_ns();
    c->user_ping_len = (uint8_t)n;
    c->user_ping_hash = ws_payload_hash(p, n);
    return 0;
}
