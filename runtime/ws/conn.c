/*
 * conn.c: the WebSocket connection loop, on the connection's own actor.
 *
 * One wait per turn, on everything at once: the socket readable (unless the
 * last read left more to read), the socket writable (only while output is
 * queued and the last write hit EAGAIN), the mailbox, and the earliest of
 * the connection's deadlines (ping due, pong overdue, close timeout, write
 * stall, drain). No read timeout, no polling, no thread or timer per
 * connection. A turn reads in large chunks and handles every complete frame
 * in the buffer, takes the mailbox, acts on due deadlines, then writes what
 * all of that queued in one writev. Closing, the peer's control frames and
 * the deadlines themselves are in conn_control.c.
 *
 * An idle connection (nothing queued, no message half received, no partial
 * frame) hibernates: the read buffer and the message buffer are freed and
 * the actor parks with its stack given back (actor_hibernate); everything
 * lives in struct ws_conn. It resumes on a fresh stack in ws_conn_run.
 *
 * Exit: every path (the loop ending, a panic in the runtime, a kill, the
 * runtime shutting down) reaches ws_conn_finish (life.c) exactly once: on_close with the
 * real code, counters, rooms, the table, the mailbox's frames, the queue,
 * the stream, the memory.
 */
#include <assert.h>
#include <errno.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "actor/actor.h"
#include "http/server.h"
#include "ws/conn.h"

#define LINGER_MS 1000
#define LINGER_BYTES (256 * 1024)

/* ---- small helpers ---- */

/* SIOCOUTQ: bytes the kernel holds that the peer has not acknowledged. */
void ws_conn_measure_kernel(struct ws_conn *c)
{
    int v = 0;
    if (c->stream && ioctl(http_stream_fd(c->stream), SIOCOUTQ, &v) == 0)
        atomic_store_explicit(&c->kernel, v, memory_order_relaxed);
}

/*
 * After a write of w bytes. The kernel's share only matters against the
 * outbound limit, so it is not measured after every write (an ioctl per
 * write was as many system calls as the writes themselves): c->kernel
 * becomes an upper bound instead, the last measure plus what was written
 * since (the kernel cannot hold more than it was given, nor more than its
 * send buffer, twice SO_SNDBUF, itself capped at half the limit, or at
 * the limit once the connection has sent a large message). It is
 * measured when it may matter: output is still queued (the socket did not
 * take everything, so the peer is behind), or the bound plus the queue
 * reaches a quarter of the limit. So a sender is refused for the kernel's
 * share only when the queue itself is past three quarters of the limit, or
 * on a measured figure.
 */
static void kernel_after_write(struct ws_conn *c, size_t w)
{
    int64_t cap = (int64_t)ws_limit(c) < 2 * (int64_t)ws_sndbuf(c) ? (int64_t)ws_limit(c) : 2 * (int64_t)ws_sndbuf(c);
    int64_t k = atomic_load_explicit(&c->kernel, memory_order_relaxed) + (int64_t)w;
    if (k > cap)
        k = cap;
    int64_t q = atomic_load_explicit(&c->queued, memory_order_relaxed);
    if (!ws_outq_empty(&c->lv->q) || (uint64_t)(k + q) >= ws_limit(c) / 4)
        ws_conn_measure_kernel(c);
    else
        atomic_store_explicit(&c->kernel, k, memory_order_relaxed);
}

bool ws_call(struct ws_conn *c, void (*fn)(void *), void *arg)
{
    if (actor_catch(fn, arg) != SNOW_EXIT_PANIC)
        return false;
    rt_log(RT_LOG_WARN, "ws: handler panicked: %s", actor_panic_message());
    c->panicked = true;
    if (!c->lv->fail_code)
        c->lv->fail_code = WS_CLOSE_INTERNAL_ERROR;
    return true;
}

/* ---- flow control (the owner's sends are in conn_large.c) ---- */

/* Flow control: reading pauses while half the limit is queued, so a peer
 * that sends faster than it reads is slowed down by TCP instead of having
 * the answers to its messages refused. Only the queue counts here, not the
 * kernel's share: the queue is what a writable wake-up drains, so the
 * pause always ends by an event. */
static bool over_half(const struct ws_conn *c)
{
    return (uint64_t)atomic_load_explicit(&c->queued, memory_order_relaxed) >= ws_limit(c) / 2;
}

static void flush(struct ws_conn *c);

void ws_conn_flush(struct ws_conn *c)
{
    flush(c);
}

/* ---- reading ---- */

/*
 * The one place that calls the frame decoder. Returns the event kind
 * (> 0), 0 when the buffered bytes are used up, or < 0 on a protocol error
 * (the decoder's close code says which).
 */
static int decode(struct ws_conn *c, struct ws_event *ev)
{
    ssize_t n = ws_decoder_next(&c->lv->dec, c->lv->rbuf + c->lv->roff, c->lv->rlen - c->lv->roff, ev);
    if (n == RT_PARSE_INCOMPLETE) {
        /* Every buffered byte is in the decoder's state. */
        c->lv->roff = c->lv->rlen;
        return WS_EV_NONE;
    }
    if (n < 0)
        return SNOW_EPROTOCOL;
    c->lv->roff += (size_t)n;
    return (int)ev->kind;
}

struct msg_call {
    struct ws_conn *c;
    const void *p;
    size_t n;
    int is_text;
};

/*
 * The connection whose on_message runs on this thread, so that the sends
 * of a handler to its own connection find it without the table's lock.
 * Each access is a function of its own that is never inlined: the handler
 * may park and resume on another worker thread, and an address of this
 * thread's slot kept across the call would then name the wrong thread's.
 * A slot left behind that way (the handler went on elsewhere) names its
 * actor's PID, which only that actor can match (ws_conn_current compares
 * it with the caller), and its connection lives as long as that actor
 * runs its loop.
 */
static _Thread_local struct {
    SnowPid pid;
    struct ws_conn *c;
} current;

RT_NOINLINE static void current_set(struct ws_conn *c)
{
    current.pid = c->pid;
    current.c = c;
}

RT_NOINLINE static void current_clear(struct ws_conn *c)
{
    if (current.c == c) {
        current.pid = 0;
        current.c = NULL;
    }
}

RT_NOINLINE struct ws_conn *ws_conn_current(SnowPid pid)
{
    if (pid && current.pid == pid && pid == snow_actor_self())
        return current.c;
    return NULL;
}

static void call_message(void *arg)
{
    struct msg_call *m = arg;
    m->c->h->on_message(ws_handle(m->c->pid), m->p, m->n, m->is_text, m->c->h->arg);
}

static void deliver_message(struct ws_conn *c, const uint8_t *p, size_t n, unsigned opcode)
{
    uint16_t code = ws_pmd_inbound(c, &p, &n, opcode);
    if (code) {
        c->lv->dec_failed = true;
        ws_conn_fail(c, code);
        return;
    }
    ws_count(&c->route->msgs_in, 1);
    ws_count(&c->route->bytes_in, n);
    if (!c->h->on_message || c->lv->close.state != WS_STATE_OPEN || c->panicked)
        return;
    struct msg_call m = {c, p ? (const void *)p : (const void *)"", n, opcode == WS_OP_TEXT};
    c->lv->msg = m.p;
    c->lv->msg_len = n;
    c->lv->msg_text = m.is_text;
    current_set(c);
    ws_call(c, call_message, &m);
    current_clear(c);
    c->lv->msg = NULL;
    c->lv->msg_len = 0;
    ws_conn_message_done(c);
    ws_pmd_after_message(c);
}

static void process(struct ws_conn *c)
{
    while (!c->lv->dec_failed && !c->lv->hold) {
        struct ws_event ev;
        /* Nothing buffered and nothing half decoded: no event can come (a
         * frame whose last byte was handed out still reports its end). */
        if (c->lv->roff == c->lv->rlen && c->lv->dec.state == WS_DEC_HEADER && !c->lv->dec.have)
            break;
        /* A whole small message in the buffer, the common case, in one
         * step (with permessage-deflate each message's first frame goes
         * through ws_pmd_on_frame instead). */
        if (!c->pmd.on && !c->lv->reasm.in_message) {
            ssize_t n = ws_decoder_whole(&c->lv->dec, c->lv->rbuf + c->lv->roff, c->lv->rlen - c->lv->roff, &ev);
            if (n < 0) {
                c->lv->dec_failed = true;
                ws_conn_fail(c, ws_decoder_close_code(&c->lv->dec));
                break;
            }
            if (n > 0) {
                c->lv->roff += (size_t)n;
                c->lv->got_data = true;
                deliver_message(c, ev.data, ev.len, ev.opcode);
                if (over_half(c)) {
                    c->lv->paused = true; /* the rest stays in the buffer */
                    break;
                }
                continue;
            }
        }
        int rc = decode(c, &ev);
        if (rc == WS_EV_NONE)
            break;
        if (rc < 0) {
            c->lv->dec_failed = true;
            ws_conn_fail(c, ws_decoder_close_code(&c->lv->dec));
            break;
        }
        int r = 0;
        if (ev.kind != WS_EV_CONTROL)
            c->lv->got_data = true;
        if (ev.kind == WS_EV_FRAME || ev.kind == WS_EV_CONTROL) {
            uint16_t code = ws_pmd_on_frame(c, &ev);
            if (code) {
                c->lv->dec_failed = true;
                ws_conn_fail(c, code);
                break;
            }
        }
        switch (ev.kind) {
        case WS_EV_FRAME:
            /* A whole unfragmented message that is (or will be) in the
             * read buffer is handed out as a view, without a copy. */
            c->lv->direct_ok = ev.fin && ev.opcode != WS_OP_CONT && !c->lv->reasm.in_message;
            c->lv->direct = NULL;
            c->lv->frame_ev = ev;
            if (c->lv->direct_ok && ev.frame_len > c->lv->rlen - c->lv->roff) {
                /* Binary can wait for the rest in the buffer; text is
                 * decoded (and validated) as it arrives, so a bad byte
                 * fails the connection at once (§8.1, fail fast). */
                if (ev.frame_len <= WS_RBUF_LARGE && ev.opcode == WS_OP_BINARY)
                    c->lv->hold = true; /* read the rest before decoding on */
                else
                    c->lv->direct_ok = false;
            }
            if (!c->lv->direct_ok)
                r = ws_reasm_feed(&c->lv->reasm, &ev);
            break;
        case WS_EV_DATA:
            if (c->lv->direct_ok && !c->lv->direct && ev.len == c->lv->frame_ev.frame_len) {
                c->lv->direct = ev.data;
                break;
            }
            if (c->lv->direct_ok) {
                c->lv->direct_ok = false;
                r = ws_reasm_feed(&c->lv->reasm, &c->lv->frame_ev);
            }
            if (r >= 0)
                r = ws_reasm_feed(&c->lv->reasm, &ev);
            break;
        case WS_EV_FRAME_END:
            if (c->lv->direct_ok) {
                c->lv->direct_ok = false;
                deliver_message(c, c->lv->direct, (size_t)c->lv->frame_ev.frame_len, c->lv->frame_ev.opcode);
                c->lv->direct = NULL;
                break;
            }
            r = ws_reasm_feed(&c->lv->reasm, &ev);
            if (r == WS_REASM_MESSAGE)
                deliver_message(c, c->lv->reasm.buf.data, c->lv->reasm.buf.len, c->lv->reasm.opcode);
            break;
        case WS_EV_CONTROL:
            ws_conn_on_control(c, &ev);
            break;
        default:
            break;
        }
        if (r < 0) {
            c->lv->dec_failed = true;
            ws_conn_fail(c, c->lv->reasm.close_code);
        }
        if (ev.kind == WS_EV_FRAME_END && over_half(c)) {
            c->lv->paused = true; /* the rest stays in the buffer */
            break;
        }
    }
    if (c->lv->roff == c->lv->rlen)
        c->lv->roff = c->lv->rlen = 0;
}

static int ensure_rbuf(struct ws_conn *c, size_t want)
{
    if (c->lv->rcap >= want)
        return 0;
    uint8_t *p = realloc(c->lv->rbuf, want);
    if (!p)
        return -ENOMEM;
    c->lv->rbuf = p;
    c->lv->rcap = want;
    return 0;
}

/* Reads until the socket has nothing more (or the budget is spent),
 * handling frames as they complete. */
static void read_some(struct ws_conn *c)
{
    size_t budget = http_stream_turn_bytes(c->stream, WS_IO_BUDGET);
    while (c->rd_more && budget && !c->lv->paused) {
        if (c->lv->hold) {
            /* Make room for the whole held frame behind its header. */
            memmove(c->lv->rbuf, c->lv->rbuf + c->lv->roff, c->lv->rlen - c->lv->roff);
            c->lv->rlen -= c->lv->roff;
            c->lv->roff = 0;
            if (ensure_rbuf(c, WS_RBUF_LARGE) < 0) {
                ws_conn_fail(c, WS_CLOSE_INTERNAL_ERROR);
                return;
            }
        }
        size_t room;
        uint8_t *direct = ws_conn_payload_room(c, &room);
        if (!direct) {
            if (ensure_rbuf(c, WS_RBUF_SMALL) < 0) {
                ws_conn_fail(c, WS_CLOSE_INTERNAL_ERROR);
                return;
            }
            room = c->lv->rcap - c->lv->rlen;
            if (!room)
                break; /* a read of 0 bytes would look like the end of stream */
        }
        uint8_t *dst = direct ? direct : c->lv->rbuf + c->lv->rlen;
        ssize_t n = http_stream_read_nb(c->stream, dst, room);
        if (n == -EAGAIN) {
            c->rd_more = false;
            break;
        }
        if (n <= 0) {
            c->eof = true;
            c->rd_more = false;
            break;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        /* Fewer bytes than asked from a plain socket: it is empty now, and
         * the next bytes raise a new (latched) edge, so the read that would
         * only say EAGAIN is skipped (http_stream_reads_whole). Not once
         * the peer has shut its side: that edge came with the bytes just
         * read, and only the next read sees the end of the stream. */
        if ((size_t)n < room && http_stream_reads_whole(c->stream) && !actor_io_peer_shut(c->stream->io))
            c->rd_more = false;
        if (c->lingering || c->lv->dec_failed) {
            c->lv->rlen = c->lv->roff = 0; /* nothing more is read after a close */
            continue;
        }
        if (direct) {
            c->lv->got_data = true;
            uint16_t code = ws_conn_take_payload(c, direct, (size_t)n);
            if (code)
                ws_conn_fail(c, code);
            else
                process(c);
        } else {
            c->lv->rlen += (size_t)n;
            if (c->lv->hold && (uint64_t)(c->lv->rlen - c->lv->roff) >= c->lv->frame_ev.frame_len)
                c->lv->hold = false;
            process(c);
        }
        /* A long burst of input: let its answers start going out. */
        if (c->lv->q.bytes >= WS_FLUSH_AT && !c->wr_blocked && !c->wr_failed)
            flush(c);
        if (!direct && (size_t)n == room && c->lv->rcap < WS_RBUF_LARGE)
            ensure_rbuf(c, WS_RBUF_LARGE); /* a busy connection gets bigger reads */
    }
}

/* ---- writing ---- */

static void flush(struct ws_conn *c)
{
    size_t budget = http_stream_turn_bytes(c->stream, WS_IO_BUDGET), written = 0;
    bool wrote = false;
    /* A Close after which the connection ends at once (the reply to the
     * peer's, or ours after failing it) goes with MSG_MORE on plain TCP,
     * and linger's shutdown sends it: the FIN leaves in its segment, one
     * packet fewer per connection, and the peer learns of both at once. */
    c->stream->more = (c->lv->close.state == WS_STATE_CLOSED || c->lv->dec_failed) &&
                      ws_outq_close_queued(&c->lv->q);
    while (!ws_outq_empty(&c->lv->q) && !c->wr_blocked && !c->wr_failed && budget) {
        struct iovec iov[64];
        int n = ws_outq_gather(&c->lv->q, iov, 64, budget);
        if (n == 0)
            break;
        ssize_t w = c->stream->ops->writev(c->stream, iov, n);
        if (w == -EAGAIN) {
            c->wr_blocked = true;
            break;
        }
        if (w < 0) {
            c->wr_failed = true;
            break;
        }
        bool close_out;
        size_t before = c->lv->q.bytes;
        ws_outq_consume(&c->lv->q, (size_t)w, &close_out);
        ws_conn_sync_queued(c, before);
        budget -= (size_t)w < budget ? (size_t)w : budget;
        written += (size_t)w;
        wrote = true;
        if (close_out)
            c->close_written = true;
    }
    if (!c->wr_failed) {
        /* TLS: bytes taken by writev may still sit in the record buffer. */
        int f = c->stream->ops->flush(c->stream);
        c->unflushed = f == -EAGAIN;
        if (f == -EAGAIN)
            c->wr_blocked = true;
        else if (f < 0)
            c->wr_failed = true;
    }
    if (wrote)
        kernel_after_write(c, written);
    else if (!ws_outq_empty(&c->lv->q) && atomic_load_explicit(&c->kernel, memory_order_relaxed))
        ws_conn_measure_kernel(c); /* blocked: the peer may be reading meanwhile */
    /* The stall clock runs only while output waits, in the queue or, after
     * a refusal, in the kernel alone (ws_conn_refuse_backpressure); progress
     * restarts it. */
    if (!ws_outq_empty(&c->lv->q)) {
        c->lv->stall_kernel = -1;
        if (wrote || c->lv->stall_due < 0)
            c->lv->stall_due = ws_deadline_ms(c->h->write_timeout_ms);
    } else if (c->lv->stall_kernel < 0) {
        c->lv->stall_due = -1;
    }
}

/* ---- the loop ---- */

static void conn_resume(void *arg);

/* Parks with the stack given back when nothing is in flight. Returns only
 * when that is not possible. */
static void maybe_hibernate(struct ws_conn *c, int64_t deadline)
{
    if (c->lv->now < c->lv->hot_until)
        return;
    if (!ws_outq_empty(&c->lv->q) || c->lv->rlen != c->lv->roff || c->lv->reasm.in_message || c->lv->hold ||
        ws_decoder_in_message(&c->lv->dec) || c->lv->dec.state != WS_DEC_HEADER || c->lv->dec.have ||
        c->lv->close.state != WS_STATE_OPEN || c->lv->fail_code || c->draining || c->unflushed ||
        c->lv->stall_due >= 0)
        return;
    unsigned ev = c->stream->ops->idle_events(c->stream);
    if (!ev)
        return;
    /* Senders judge the limit by c->kernel while we sleep: the bound kept
     * by kernel_after_write, measured already when it neared the limit. */
    ws_live_free(c);
    /* The HTTP connection's stack frames go with this stack: from here on
     * its record is needed only for the exit path, in its compact form. */
    c->hc = http_conn_compact(c->hc);
    ws_idle_enter(c);
    /* From here on a deliverer may write frames itself (deliver_direct);
     * the store publishes direct_fd with it. */
    c->direct_fd = http_stream_reads_whole(c->stream) ? http_stream_fd(c->stream) : -1;
    atomic_store(&c->parked, WS_PARKED_YES);
    actor_hibernate(c->stream->io, ev | SNOW_WAIT_MAILBOX, deadline, conn_resume, c);
}

static bool finished(struct ws_conn *c)
{
    if (c->wr_failed || c->timed_out)
        return true;
    if (c->eof && !c->lingering)
        return true;
    /* Our Close is out only once the stream has passed it to the socket. */
    if (c->unflushed)
        return false;
    /* §7.1.7: after failing the connection, close once our Close is out. */
    if (c->lv->dec_failed && c->close_written)
        return true;
    /* §7.1.1: once both Closes are exchanged the server closes TCP. */
    return c->lv->close.state == WS_STATE_CLOSED && (c->close_written || !ws_outq_close_queued(&c->lv->q)) &&
           ws_outq_empty(&c->lv->q);
}

static void conn_loop(struct ws_conn *c)
{
    /* Bytes that came with the upgrade request are the first frames. */
    if (c->lv->rlen > c->lv->roff)
        process(c);
    /* Whether the mailbox may hold something. A plain socket's wait is
     * actor_wait itself, which reports every condition that holds, so when
     * it did not report mail the mailbox is left unread (a receive that
     * finds nothing costs a clock read and the mailbox's locks); mail that
     * comes later ends the next wait at once. A TLS stream's wait may
     * return for bytes the engine holds without looking at the mailbox. */
    bool mail = true;
    bool wait_says_mail = http_stream_reads_whole(c->stream);
    for (;;) {
        if (c->rd_more && !c->eof && !c->lv->paused)
            read_some(c);
        if (mail)
            mail = ws_conn_take_mail(c);
        if (c->lv->fail_code) {
            ws_conn_fail(c, c->lv->fail_code);
            c->lv->fail_code = 0;
        }
        ws_conn_check_deadlines(c);
        if (!c->wr_failed)
            flush(c);
        if (c->lv->paused && !over_half(c)) {
            /* The peer read enough: decode what waited, then read again. */
            c->lv->paused = false;
            c->rd_more = true;
            process(c);
        }
        if (finished(c))
            return;
        bool reading = c->rd_more && !c->lv->paused;
        if (reading || (!ws_outq_empty(&c->lv->q) && !c->wr_blocked)) {
            /* More to do at once: let other actors run first. */
            snow_actor_yield();
            mail = true;
            continue;
        }
        int64_t deadline = actor_deadline_earliest(actor_deadline_earliest(c->ping_due, c->pong_due), actor_deadline_earliest(c->lv->close_due, c->lv->stall_due));
        deadline = actor_deadline_earliest(deadline, actor_deadline_earliest(c->lv->drain_due, c->lv->spread_due));
        /* A busy connection does not hibernate between its messages: freeing
         * the awake part and the stack only to build them again at the next
         * message cost about a third of the instructions of a 64-byte echo.
         * It waits with its stack until WS_HOT_MS after the last data frame,
         * and hibernates at the first turn after that (the wait's deadline).
         * Control frames alone do not make it busy: the heartbeat's pong,
         * or a peer's keep-alive ping, comes once in tens of seconds, and
         * staying awake after it only cost a third wake-up per round.
         * Not after a message larger than the read buffer: rebuilding is a
         * small share of such a message's cost, and staying awake would keep
         * its message buffer, which made the allocator hand out fresh pages
         * for every large reply (1 MiB echo: 1,000-1,300 MB/s awake against
         * 2,200 hibernating). */
        if (c->lv->got_data) {
            c->lv->got_data = false;
            if (c->lv->reasm.buf.cap <= WS_RBUF_LARGE)
                c->lv->hot_until = c->lv->now + (int64_t)WS_HOT_MS * 1000000;
        }
        maybe_hibernate(c, deadline);
        if (c->lv->now < c->lv->hot_until)
            deadline = actor_deadline_earliest(deadline, c->lv->hot_until);
        unsigned events = SNOW_WAIT_MAILBOX;
        if (!c->eof && !c->lv->paused)
            events |= SNOW_WAIT_READABLE;
        if (c->wr_blocked)
            events |= SNOW_WAIT_WRITABLE;
        int w = c->stream->ops->wait(c->stream, events, deadline);
        if (w < 0) {
            c->wr_failed = true;
            return;
        }
        if (w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP))
            c->rd_more = true;
        if (w & (SNOW_WAIT_WRITABLE | SNOW_WAIT_HANGUP))
            c->wr_blocked = false;
        if ((w & SNOW_WAIT_MAILBOX) || !wait_says_mail)
            mail = true;
    }
}

/* After the close: FIN, then read (and drop) what the peer still sends
 * until it closes too, so our last frames are not destroyed by a reset
 * caused by unread input (bounded in time and bytes). */
static void linger(struct ws_conn *c)
{
    if (c->wr_failed || !c->stream)
        return;
    /* A clean close over plain TCP: both Close frames exchanged and every
     * byte up to the peer's read. A peer sends nothing after its Close
     * (RFC 6455 §5.5.1), so no unread input can turn the close into a
     * reset: no read of the peer's FIN, no wait for it. The FIN goes now
     * if our Close waits for it (flush, MSG_MORE), else with the close of
     * the socket. TLS still lingers: a close_notify may follow the peer's
     * Close. */
    bool clean = c->lv->close.state == WS_STATE_CLOSED && !c->lv->dec_failed && c->lv->rlen == c->lv->roff &&
                 http_stream_reads_whole(c->stream);
    if (c->eof || clean) {
        if (c->stream->more)
            c->stream->ops->shutdown(c->stream);
        return;
    }
    c->stream->ops->shutdown(c->stream);
    c->lingering = true;
    int64_t deadline = actor_deadline_after_ms(LINGER_MS);
    uint8_t buf[2048];
    size_t total = 0;
    while (total < LINGER_BYTES) {
        ssize_t n = http_stream_read(c->stream, buf, sizeof buf, deadline);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}

void ws_conn_run(struct ws_conn *c)
{
    conn_loop(c);
    if (!c->timed_out)
        linger(c);
    ws_conn_finish(c);
}

static void conn_resume(void *arg)
{
    struct ws_conn *c = arg;
    unsigned was = ws_conn_reclaim(c);
    ws_idle_leave(c);
    if (ws_live_new(c) < 0) {
        c->wr_failed = true; /* no memory to go on: drop the connection */
        ws_conn_finish(c);
        return;
    }
    if (was == WS_PARKED_REST) {
        /* The rest of a frame a deliverer began: before anything else
         * (no other frame was in the mailbox ahead of it). */
        uint64_t tag = SNOW_TAG_WS_BROADCAST;
        SnowMessage *m = snow_actor_receive_match(&tag, 1, 0);
        if (m && m->len == sizeof(struct ws_rest))
            ws_conn_take_frame(c, m);
        else
            c->wr_failed = true; /* torn and nothing to finish it with */
    }
    /* Woken by mail or a deadline, a plain socket has nothing to read: its
     * readiness is still latched for the next wait (actor_woke_ready). */
    c->rd_more = !http_stream_reads_whole(c->stream) ||
                 (actor_woke_ready() & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP));
    ws_conn_run(c);
}
