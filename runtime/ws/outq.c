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

static struct ws_shared_frame **slots(struct ws_outq *q)
{
    return q->ring ? q->ring : q->inl;
}

static uint32_t capacity(const struct ws_outq *q)
{
    return q->cap ? q->cap : WS_OUTQ_INLINE;
}

/* The ring's capacity is a power of two (WS_OUTQ_INLINE, doubled by
 * reserve), so a position wraps with a mask, not a division (several per
 * message, each tens of cycles). */
_Static_assert((WS_OUTQ_INLINE & (WS_OUTQ_INLINE - 1)) == 0, "WS_OUTQ_INLINE is a power of two");

static uint32_t wrap(const struct ws_outq *q, uint32_t pos)
{
    return pos & (capacity(q) - 1);
}

/* The i-th oldest data frame. */
static struct ws_shared_frame *at(struct ws_outq *q, uint32_t i)
{
    return slots(q)[wrap(q, q->first + i)];
}

/* Lets go of a data-lane entry: a shared frame's reference, the batch
 * (which stays the queue's, for the next turn), or a fragment of a large
 * own message (never shared) with its reference to the payload. */
static void release(struct ws_outq *q, struct ws_shared_frame *f)
{
    if (f == q->batch) {
        q->batch_queued = false;
    } else if (f->ext) {
        ws_payload_drop(f->hold);
        free(f);
    } else {
        ws_shared_frame_unref(f);
    }
}

/* Drops the oldest data frame (its bytes are already off the count). */
static void pop_first(struct ws_outq *q)
{
    release(q, slots(q)[q->first]);
    q->first = wrap(q, q->first + 1);
    q->n--;
}

void ws_outq_clear(struct ws_outq *q)
{
    while (q->n)
        pop_first(q);
    free(q->ring);
    free(q->batch);
    ws_outq_init(q);
}

/* Bytes of the server frame at p (header and payload; the queue wrote it). */
static size_t frame_size(const uint8_t *p)
{
    uint64_t n = p[1] & 0x7Fu;
    size_t h = 2;
    if (n == 126) {
        n = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
        h = 10;
    }
    return h + (size_t)n;
}

/* The end of the batch's frame that holds byte off, or off itself when a
 * frame starts there (a frame boundary). */
static size_t batch_frame_end(const struct ws_shared_frame *b, size_t off)
{
    size_t i = 0;
    while (i < off)
        i += frame_size(b->bytes + i);
    return i;
}

/* The oldest entry is written up to a frame boundary (off 0, or between
 * two frames of the batch), where a control frame may go. */
static bool at_boundary(struct ws_outq *q)
{
    if (!q->off)
        return true;
    return q->n && at(q, 0) == q->batch && batch_frame_end(q->batch, q->off) == q->off;
}

/* Room for k more data frames: 0 or -ENOMEM (nothing changed). */
static int reserve(struct ws_outq *q, size_t k)
{
    uint32_t cap = capacity(q);
    if (k <= cap - q->n)
        return 0;
    size_t want = cap;
    while (want - q->n < k) {
        if (want > UINT32_MAX / 2)
            return -ENOMEM;
        want *= 2;
    }
    struct ws_shared_frame **v = malloc(want * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->n; i++)
        v[i] = at(q, i);
    free(q->ring);
    q->ring = v;
    q->cap = (uint32_t)want;
    q->first = 0;
    return 0;
}

/* Appends f (room reserved). */
static void append(struct ws_outq *q, struct ws_shared_frame *f)
{
    slots(q)[wrap(q, q->first + q->n)] = f;
    q->n++;
    q->bytes += f->len;
}

int ws_outq_push(struct ws_outq *q, struct ws_shared_frame *f)
{
    if (reserve(q, 1) < 0)
        return -ENOMEM;
    append(q, f);
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
    uint32_t keep = q->off ? 1 : 0;
    size_t dropped = 0;
    while (q->n > keep) {
        uint32_t last = wrap(q, q->first + q->n - 1);
        struct ws_shared_frame *f = slots(q)[last];
        dropped += f->len;
        release(q, f);
        q->n--;
    }
    if (keep && at(q, 0) == q->batch) {
        /* Of a batch partly written, only the frame being written stays. */
        size_t end = batch_frame_end(q->batch, q->off);
        dropped += q->batch->len - end;
        q->batch->len = end;
        if (end == q->off) {
            q->off = 0;
            pop_first(q);
        }
    }
    q->bytes -= dropped;
    q->close_now = true;
    return dropped;
}

bool ws_outq_close_queued(const struct ws_outq *q)
{
    return q->ctl_len[WS_CTL_CLOSE] != 0;
}

/* Which control frame may go next: none while a data frame is half out. */
static int next_control(struct ws_outq *q)
{
    if (q->ctl_cur >= 0)
        return q->ctl_cur;
    if (!at_boundary((struct ws_outq *)q))
        return -1;
    if (q->ctl_len[WS_CTL_PONG])
        return WS_CTL_PONG;
    if (q->ctl_len[WS_CTL_PING])
        return WS_CTL_PING;
    if (q->ctl_len[WS_CTL_CLOSE] && (q->close_now || !q->n))
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
    for (uint32_t i = 0; i < q->n && n < max && total < budget; i++) {
        struct ws_shared_frame *f = at(q, i);
        if (f->ext) {
            /* The header here, the payload where the message is. */
            size_t hlen = f->len - f->payload_len;
            if (off < hlen) {
                iov[n].iov_base = f->bytes + off;
                iov[n].iov_len = hlen - off;
                total += iov[n].iov_len;
                off = 0;
                if (++n == max)
                    break;
            } else {
                off -= hlen;
            }
            iov[n].iov_base = (void *)(f->ext + off);
            iov[n].iov_len = f->payload_len - off;
        } else {
            iov[n].iov_base = f->bytes + off;
            iov[n].iov_len = f->len - off;
        }
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
    while (n && q->n) {
        size_t left = at(q, 0)->len - q->off;
        if (n < left) {
            q->off += n;
            return;
        }
        n -= left;
        q->off = 0;
        pop_first(q);
    }
}

/* A server frame (fin or not) in the layout of struct ws_shared_frame, so
 * own messages and room broadcasts travel the same lane: its payload
 * copied behind the header, or (in_place, for a large message) left at p and
 * kept by hold. */
static struct ws_shared_frame *frame_new(unsigned opcode, unsigned rsv, bool fin, const uint8_t *p, size_t n,
                                         bool in_place, struct ws_payload *hold)
{
    size_t hlen = ws_frame_header_len(n);
    struct ws_shared_frame *f = malloc(sizeof *f + hlen + (in_place ? 0 : n));
    if (!f)
        return NULL;
    int h = ws_frame_header(f->bytes, opcode, fin, n);
    if (h < 0) {
        free(f);
        return NULL;
    }
    if (n && !in_place)
        memcpy(f->bytes + h, p, n);
    f->ext = in_place ? p : NULL;
    f->hold = hold;
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

/*
 * A small whole frame into the batch, when the batch is free (not in the
 * ring: it starts over) or is the newest entry with room left. Returns 0,
 * 1 when it does not fit there (the caller makes a frame of its own), or
 * -ENOMEM.
 */
static int batch_append(struct ws_outq *q, unsigned opcode, unsigned rsv, const uint8_t *p, size_t n)
{
    size_t flen = ws_frame_header_len(n) + n;
    if (flen > WS_BATCH_FRAME)
        return 1;
    struct ws_shared_frame *b = q->batch;
    if (!b) {
        if (!(b = malloc(sizeof *b + WS_BATCH_CAP)))
            return -ENOMEM;
        memset(b, 0, sizeof *b);
        atomic_init(&b->refs, 1);
        q->batch = b;
    }
    if (q->batch_queued) {
        uint32_t last = wrap(q, q->first + q->n - 1);
        if (slots(q)[last] != b || b->len + flen > WS_BATCH_CAP)
            return 1;
    } else {
        if (reserve(q, 1) < 0)
            return -ENOMEM;
        b->len = 0;
    }
    uint8_t *at_end = b->bytes + b->len;
    int h = ws_frame_header(at_end, opcode, true, n);
    if (h < 0)
        return h;
    at_end[0] |= (uint8_t)rsv;
    if (n)
        memcpy(at_end + h, p, n);
    b->len += flen;
    q->bytes += flen;
    if (!q->batch_queued) {
        slots(q)[wrap(q, q->first + q->n)] = b;
        q->n++;
        q->batch_queued = true;
    }
    return 0;
}

/* The fragments of p[0..n), copied or (in_place) left where they are. */
static int fragments(struct ws_outq *q, unsigned opcode, unsigned rsv, const uint8_t *p, size_t n, bool in_place,
                     struct ws_payload *hold)
{
    /* Every fragment is built first: a message is queued whole or not at
     * all, never torn by a failed allocation. */
    size_t nfrag = n ? (n + WS_SEND_FRAGMENT - 1) / WS_SEND_FRAGMENT : 1;
    if (reserve(q, nfrag) < 0)
        return -ENOMEM;
    /* The reserved slots past the last frame hold the fragments until all
     * exist; only then are they counted in. */
    struct ws_shared_frame **v = slots(q);
    for (size_t i = 0; i < nfrag; i++) {
        size_t pos = i * WS_SEND_FRAGMENT;
        size_t len = n - pos < WS_SEND_FRAGMENT ? n - pos : WS_SEND_FRAGMENT;
        struct ws_shared_frame *f =
            frame_new(i ? WS_OP_CONT : opcode, i ? 0 : rsv, i + 1 == nfrag, p + pos, len, in_place, hold);
        if (!f) {
            while (i--)
                free(v[wrap(q, q->first + q->n + i)]); /* no reference taken yet */
            return -ENOMEM;
        }
        v[wrap(q, q->first + q->n + i)] = f;
    }
    for (size_t i = 0; i < nfrag; i++) {
        q->bytes += v[wrap(q, q->first + q->n)]->len;
        q->n++;
    }
    if (hold)
        hold->refs += nfrag;
    return 0;
}

int ws_outq_message_rsv(struct ws_outq *q, unsigned opcode, unsigned rsv, const void *data, size_t n)
{
    const uint8_t *p = data;
    int r = batch_append(q, opcode, rsv, p, n);
    if (r <= 0)
        return r;
    return fragments(q, opcode, rsv, p, n, false, NULL);
}

int ws_outq_message_at(struct ws_outq *q, unsigned opcode, const uint8_t *p, size_t n, struct ws_payload *hold)
{
    return fragments(q, opcode, 0, p, n, true, hold);
}

struct ws_payload *ws_payload_adopt(uint8_t *block)
{
    struct ws_payload *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->refs = 1;
    h->data = block;
    return h;
}

void ws_payload_drop(struct ws_payload *h)
{
    if (h && !--h->refs) {
        free(h->data);
        free(h);
    }
}

static bool lent(const struct ws_shared_frame *f)
{
    return f->ext && !f->hold;
}

/* The lent fragments: the newest entries (one message of one send). */
static uint32_t lent_count(struct ws_outq *q)
{
    uint32_t k = 0;
    while (k < q->n && lent(at(q, q->n - 1 - k)))
        k++;
    return k;
}

int ws_outq_keep(struct ws_outq *q)
{
    uint32_t k = lent_count(q);
    if (!k)
        return 0;
    uint32_t first = q->n - k;
    struct ws_shared_frame *f0 = at(q, first), *fl = at(q, q->n - 1);
    /* The fragments' payloads lie back to back from base. Of the oldest,
     * the bytes already written are not copied (its block keeps their
     * place, so the frame's offsets stay as they are). */
    const uint8_t *base = f0->ext;
    size_t size = (size_t)(fl->ext + fl->payload_len - base);
    size_t hlen = f0->len - f0->payload_len, skip = 0;
    if (first == 0 && q->off > hlen)
        skip = q->off - hlen;
    uint8_t *block = malloc(size);
    if (!block)
        return -ENOMEM;
    struct ws_payload *h = ws_payload_adopt(block);
    if (!h) {
        free(block);
        return -ENOMEM;
    }
    memcpy(block + skip, base + skip, size - skip);
    for (uint32_t i = first; i < q->n; i++) {
        struct ws_shared_frame *f = at(q, i);
        f->ext = block + (f->ext - base);
        f->hold = h;
    }
    h->refs = k;
    return 0;
}

bool ws_outq_unlend(struct ws_outq *q)
{
    bool torn = false;
    uint32_t k = lent_count(q);
    while (k--) {
        struct ws_shared_frame *f = at(q, q->n - 1);
        size_t left = f->len;
        if (q->n == 1 && q->off) {
            torn = true;
            left -= q->off;
            q->off = 0;
        }
        q->bytes -= left;
        q->n--;
        free(f);
    }
    return torn;
}
