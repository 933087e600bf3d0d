/*
 * outq.c: a connection's outbound queue. Buffering only: no socket, no
 * locks (the connection's own actor is the only user).
 *
 * Two lanes, as in wslay: data frames (shared, reference-counted, in the
 * order queued) and control frames (pong, ping, close; one slot each).
 * A control frame overtakes data only at a frame boundary: bytes of one
 * frame are never interleaved with another's (§5.4: control frames may be
 * injected between fragments, never inside a frame). The close goes after
 * queued data, so a program's last messages reach the peer before its Close,
 * unless it was queued as an abort (protocol error, stall), which drops the
 * data. Nothing is queued after a close (§5.5.1); the caller enforces that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "ws/conn.h"

void ws_outq_init(struct ws_outq *q)
{
    memset(q, 0, sizeof *q);
    q->ctl_cur = -1;
}

void ws_outq_clear(struct ws_outq *q)
{
    while (q->head) {
        struct ws_out *o = q->head;
        q->head = o->next;
        ws_shared_frame_unref(o->f);
        free(o);
    }
    ws_outq_init(q);
}

static void link_node(struct ws_outq *q, struct ws_out *o)
{
    o->next = NULL;
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    q->bytes += o->f->len;
}

int ws_outq_push(struct ws_outq *q, struct ws_shared_frame *f)
{
    struct ws_out *o = malloc(sizeof *o);
    if (!o)
        return -ENOMEM;
    o->f = f;
    link_node(q, o);
    return 0;
}

void ws_outq_control(struct ws_outq *q, int lane, const uint8_t *frame, size_t n)
{
    if (q->ctl_cur == lane)
        return; /* being written: the newer one would tear it; keep it */
    q->bytes -= q->ctl_len[lane];
    memcpy(q->ctl[lane], frame, n);
    q->ctl_len[lane] = (uint8_t)n;
    q->bytes += n;
}

size_t ws_outq_abort(struct ws_outq *q)
{
    /* A frame already partly written must still be finished: the peer
     * would otherwise read the Close as payload. */
    struct ws_out **pp = q->off ? &q->head->next : &q->head;
    size_t dropped = 0;
    while (*pp) {
        struct ws_out *o = *pp;
        *pp = o->next;
        dropped += o->f->len;
        ws_shared_frame_unref(o->f);
        free(o);
    }
    q->tail = q->head;
    q->bytes -= dropped;
    q->close_now = true;
    return dropped;
}

bool ws_outq_close_queued(const struct ws_outq *q)
{
    return q->ctl_len[WS_CTL_CLOSE] != 0;
}

/* Which control frame may go next: none while a data frame is half out. */
static int next_control(const struct ws_outq *q)
{
    if (q->ctl_cur >= 0)
        return q->ctl_cur;
    if (q->off)
        return -1;
    if (q->ctl_len[WS_CTL_PONG])
        return WS_CTL_PONG;
    if (q->ctl_len[WS_CTL_PING])
        return WS_CTL_PING;
    if (q->ctl_len[WS_CTL_CLOSE] && (q->close_now || !q->head))
        return WS_CTL_CLOSE;
    return -1;
}

int ws_outq_gather(struct ws_outq *q, struct iovec *iov, int max, size_t budget)
{
    int n = 0;
    size_t total = 0;
    /* At most one control frame leads the batch; the rest follow the data
     * lane in order, with the remaining controls appended once it is
     * empty (they overtake at the next batch otherwise). */
    int lane = next_control(q);
    if (lane >= 0 && n < max) {
        iov[n].iov_base = q->ctl[lane] + q->ctl_off;
        iov[n].iov_len = (size_t)(q->ctl_len[lane] - q->ctl_off);
        total += iov[n].iov_len;
        n++;
        q->ctl_cur = (int8_t)lane;
        if (lane == WS_CTL_CLOSE)
            return n; /* nothing after a Close */
    }
    size_t off = q->off;
    for (struct ws_out *o = q->head; o && n < max && total < budget; o = o->next) {
        iov[n].iov_base = o->f->bytes + off;
        iov[n].iov_len = o->f->len - off;
        total += iov[n].iov_len;
        n++;
        off = 0;
    }
    return n;
}

void ws_outq_consume(struct ws_outq *q, size_t n, bool *close_out)
{
    *close_out = false;
    q->bytes -= n;
    if (q->ctl_cur >= 0) {
        int lane = q->ctl_cur;
        size_t left = (size_t)(q->ctl_len[lane] - q->ctl_off);
        if (n < left) {
            q->ctl_off = (uint8_t)(q->ctl_off + n);
            return;
        }
        n -= left;
        q->ctl_len[lane] = 0;
        q->ctl_off = 0;
        q->ctl_cur = -1;
        if (lane == WS_CTL_CLOSE) {
            *close_out = true;
            return;
        }
    }
    while (n && q->head) {
        struct ws_out *o = q->head;
        size_t left = o->f->len - q->off;
        if (n < left) {
            q->off += n;
            return;
        }
        n -= left;
        q->off = 0;
        q->head = o->next;
        if (!q->head)
            q->tail = NULL;
        ws_shared_frame_unref(o->f);
        free(o);
    }
}

/* A server frame (fin or not) in the layout of struct ws_shared_frame, so
 * own messages and room broadcasts travel the same lane. */
static struct ws_shared_frame *frame_new(unsigned opcode, unsigned rsv, bool fin, const uint8_t *p, size_t n)
{
    size_t hlen = ws_frame_header_len(n);
    struct ws_shared_frame *f = malloc(sizeof *f + hlen + n);
    if (!f)
        return NULL;
    int h = ws_frame_header(f->bytes, opcode, fin, n);
    if (h < 0) {
        free(f);
        return NULL;
    }
    if (n)
        memcpy(f->bytes + h, p, n);
    atomic_init(&f->refs, 1);
    f->room_epoch = 0;
    f->room_seq = 0;
    f->bytes[0] |= (uint8_t)rsv;
    f->opcode = (uint8_t)opcode;
    f->rsv = (uint8_t)rsv;
    f->payload_len = n;
    f->len = (size_t)h + n;
    return f;
}

int ws_outq_message(struct ws_outq *q, unsigned opcode, const void *data, size_t n)
{
    return ws_outq_message_rsv(q, opcode, 0, data, n);
}

int ws_outq_message_rsv(struct ws_outq *q, unsigned opcode, unsigned rsv, const void *data, size_t n)
{
    const uint8_t *p = data;
    /* Every fragment is built first: a message is queued whole or not at
     * all, never torn by a failed allocation. */
    size_t nfrag = n ? (n + WS_SEND_FRAGMENT - 1) / WS_SEND_FRAGMENT : 1;
    struct ws_out *first = NULL, **tail = &first;
    for (size_t i = 0; i < nfrag; i++) {
        size_t at = i * WS_SEND_FRAGMENT;
        size_t len = n - at < WS_SEND_FRAGMENT ? n - at : WS_SEND_FRAGMENT;
        struct ws_out *o = malloc(sizeof *o);
        struct ws_shared_frame *f = o ? frame_new(i ? WS_OP_CONT : opcode, i ? 0 : rsv, i + 1 == nfrag, p + at, len) : NULL;
        if (!f) {
            free(o);
            while (first) {
                struct ws_out *next = first->next;
                ws_shared_frame_unref(first->f);
                free(first);
                first = next;
            }
            return -ENOMEM;
        }
        o->f = f;
        o->next = NULL;
        *tail = o;
        tail = &o->next;
    }
    while (first) {
        struct ws_out *next = first->next;
        link_node(q, first);
        first = next;
    }
    return 0;
}
