/*
 * conn.h: one WebSocket connection after the HTTP layer handed it over, as
 * shared by the files of the connection loop:
 *
 *   upgrade.c  the entry point: handshake, Origin, on_connect, 101 / refusal
 *   conn.c     the loop on the connection actor: read, frames, mailbox,
 *              hibernation, the end of the stream, ws_conn_deliver
 *   conn_control.c  our Close, the peer's control frames, the deadlines
 *   conn_large.c  large payloads: read in place, sent without a copy;
 *              the owner's sends
 *   life.c     the awake part's allocation, and the one end of every path
 *   outq.c     the outbound queue: control lane + data lane, iovec batches
 *   table.c    PID -> connection table (handles), route counters, count
 *   api.c      the snow_ws_* functions of the ABI
 *
 * Threads: a struct ws_conn belongs to its connection actor. Other actors
 * reach it only through the table, under the table's shard lock, and touch
 * only the fields marked [atomic] there; the socket and everything else is
 * the actor's own. The actor removes the connection from the table (under
 * the same lock) before it frees anything, so a lookup that found it may
 * use those fields until it drops the lock.
 */
#ifndef SNOW_WS_CONN_H
#define SNOW_WS_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/router.h"
#include "http/stream.h"
#include "ws/bcast.h"
#include "ws/close.h"
#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/message.h"
#include "ws/pmd.h"

/* Large own messages are cut into frames of this many payload bytes so
 * control frames can go out between them (§5.4, §5.5). */
#define WS_SEND_FRAGMENT (64 * 1024)
/* Read buffer: allocated when the connection wakes, grown to the larger
 * size after a read that filled it, released when it hibernates. */
#define WS_RBUF_SMALL (16 * 1024)
#define WS_RBUF_LARGE (64 * 1024)
/* One wake-up reads or writes at most this much before letting others run. */
#define WS_IO_BUDGET (1024 * 1024)
/* Queued bytes at which reading pauses to write what is answered so far. */
#define WS_FLUSH_AT (256 * 1024)
/* Mailbox messages handled per wake-up before the loop looks at the socket. */
#define WS_MAIL_BUDGET 256
/* Own messages of at least this many bytes are sent without a copy into
 * their frames (conn_large.c). */
#define WS_SEND_LARGE WS_SEND_FRAGMENT
/* A connection whose peer sent bytes less than this long ago waits with its
 * stack and awake part instead of hibernating (conn.c, maybe_hibernate). */
#define WS_HOT_MS 20
/* The kernel's share of a connection's outbound limit: SO_SNDBUF is capped
 * at this (the kernel doubles it for its bookkeeping), and at half the
 * limit. */
#define WS_SNDBUF_MAX (128 * 1024)
/* The cap once the connection has sent a large own message (conn_large.c),
 * and at the whole limit rather than half of it: those bytes are its own,
 * not shared with a room's other members, so the kernel holding more of
 * them costs no more memory than the queue would, and the pending bytes
 * stay bounded by the limit either way. A 1 MiB message then goes to the
 * socket in one write instead of three, two of them after a wait for
 * writable. */
#define WS_SNDBUF_LARGE (1024 * 1024)

/* ---- per-route counters (table.c) ---- */

struct ws_route {
    struct ws_route *next;
    const SnowWsHandler *h;
    _Atomic uint64_t open, opened, refused, closed;
    _Atomic uint64_t by_code[12]; /* order of SnowWsStats closed_1000..closed_other */
    _Atomic uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    _Atomic uint64_t bp_refused, closed_bp, closed_heartbeat, closed_stall;
};

struct ws_route *ws_route_get(const SnowWsHandler *h);
void ws_route_closed(struct ws_route *r, unsigned code);
static inline void ws_count(_Atomic uint64_t *c, uint64_t n)
{
    /* Relaxed: counters are statistics; nothing is ordered by them. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- the outbound queue (outq.c) ---- */

/* Data frames held in the queue's own slots before it needs an array. */
#define WS_OUTQ_INLINE 8
/* Own frames of up to WS_BATCH_FRAME bytes are written back to back into
 * the queue's batch buffer of WS_BATCH_CAP bytes (outq.c). */
#define WS_BATCH_CAP (16 * 1024 - 64)
#define WS_BATCH_FRAME 4096

struct ws_outq {
    /* Data lane: a ring of frame references (one each), oldest at first;
     * in inl until more are queued at once, then in a heap array of cap
     * slots (ring), so queueing a frame allocates nothing. */
    struct ws_shared_frame **ring; /* NULL: inl */
    struct ws_shared_frame *inl[WS_OUTQ_INLINE];
    uint32_t first, n, cap;        /* cap 0: WS_OUTQ_INLINE */
    size_t off;                    /* bytes of the oldest frame already written */
    /* Control lane: one pending pong (§5.5.3 lets the latest ping win),
     * one ping, one close. Each is a whole frame, written only at a frame
     * boundary of the data lane; the close goes last, after the data lane
     * unless it was queued as an abort. */
    uint8_t ctl[3][WS_CONTROL_FRAME_MAX];
    uint8_t ctl_len[3];
    uint8_t ctl_off;             /* bytes of the frame being written */
    int8_t ctl_cur;              /* lane being written, -1 none */
    bool close_now;              /* the close overtakes queued data (which is dropped) */
    size_t bytes;                /* bytes queued in both lanes */
    /* Small own frames are not a malloc each: they are appended, whole, to
     * this one buffer while it is the newest entry of the data lane, so the
     * replies of one turn are one contiguous piece of one writev. It is the
     * queue's own (never shared, refs unused), kept while the connection is
     * awake, and an entry of the ring only while batch_queued. */
    struct ws_shared_frame *batch;
    bool batch_queued;
};

enum { WS_CTL_PONG = 0, WS_CTL_PING = 1, WS_CTL_CLOSE = 2 };

void ws_outq_init(struct ws_outq *q);
/* Frees everything queued (dropping frame references). */
void ws_outq_clear(struct ws_outq *q);
/* Appends f; on success the queue owns the caller's reference. 0 or
 * -ENOMEM (f untouched). */
int ws_outq_push(struct ws_outq *q, struct ws_shared_frame *f);
/* Puts a whole control frame in its lane (replacing a pending one). */
void ws_outq_control(struct ws_outq *q, int lane, const uint8_t *frame, size_t n);
bool ws_outq_close_queued(const struct ws_outq *q);
/* Drops queued data (all but a frame already partly written) so that the
 * Close goes next. Returns the bytes dropped. */
size_t ws_outq_abort(struct ws_outq *q);
static inline bool ws_outq_empty(const struct ws_outq *q)
{
    return q->bytes == 0;
}
/* Fills up to max iovecs with what goes out next, at most budget bytes.
 * Returns the count. */
int ws_outq_gather(struct ws_outq *q, struct iovec *iov, int max, size_t budget);
/* n bytes of what ws_outq_gather offered were written; finished data
 * frames are released. Sets *close_out when the Close has gone out whole. */
void ws_outq_consume(struct ws_outq *q, size_t n, bool *close_out);
/* A whole own data message as frames of at most WS_SEND_FRAGMENT payload
 * bytes. Returns 0 or -ENOMEM (nothing queued). */
int ws_outq_message(struct ws_outq *q, unsigned opcode, const void *p, size_t n);
/* The same with rsv bits on the first frame only (RFC 7692 §6: RSV1 marks
 * a compressed message). */
int ws_outq_message_rsv(struct ws_outq *q, unsigned opcode, unsigned rsv, const void *p, size_t n);

/*
 * Large own messages without a copy into frames (conn_large.c). The
 * fragments of such a message are frames of a header each, whose payload
 * stays where the message is: in a block kept by a struct ws_payload (one
 * reference per frame, and one for whoever else still looks at it), or,
 * for the length of one send call, in the sender's own buffer ("lent":
 * hold NULL). Only the connection's own actor uses these, so the count is
 * a plain one.
 */
struct ws_payload {
    size_t refs;
    uint8_t *data; /* malloc'd; freed with the last reference */
};
/* A holder of block (malloc'd, len bytes), which it now owns, with one
 * reference; NULL on ENOMEM (block untouched). */
struct ws_payload *ws_payload_adopt(uint8_t *block);
void ws_payload_drop(struct ws_payload *h);
/* The message p[0..n) as fragments of at most WS_SEND_FRAGMENT bytes
 * whose payload stays at p, kept by hold (a reference per fragment), or
 * lent when hold is NULL: then, before the sender's call returns, either
 * ws_outq_keep or ws_outq_unlend. 0 or -ENOMEM (nothing queued). */
int ws_outq_message_at(struct ws_outq *q, unsigned opcode, const uint8_t *p, size_t n, struct ws_payload *hold);
/* The lent fragments' bytes not yet written are copied into a block of
 * their own, so the sender may have its buffer back. 0 or -ENOMEM
 * (nothing changed). */
int ws_outq_keep(struct ws_outq *q);
/* Drops the lent fragments (after ws_outq_keep failed). Returns true when
 * one was partly written already: the stream is then torn. */
bool ws_outq_unlend(struct ws_outq *q);

/* ---- the connection ---- */

enum ws_phase {
    WS_PHASE_CONNECTING, /* before the 101: on_connect running */
    WS_PHASE_OPEN,       /* the 101 went out */
    WS_PHASE_DONE,       /* the loop finished; on_close ran or will not */
};

/* The awake part of a connection (struct ws_conn.lv). */
struct ws_live {
    /* reading */
    uint8_t *rbuf;
    size_t rcap, rlen, roff;  /* undecoded bytes at rbuf[roff..rlen) */
    struct ws_decoder dec;
    struct ws_reasm reasm;    /* fragmented / split messages */
    const uint8_t *direct;    /* a whole unfragmented payload still in rbuf */
    bool direct_ok;           /* the current frame is such a message */
    bool hold;                /* wait for the rest of that frame before decoding on */
    bool dec_failed;          /* a protocol error: input is dropped from now on */
    bool paused;              /* reading waits for the queue to drain (flow control) */
    struct ws_event frame_ev; /* the current frame's header event */

    struct ws_close close;
    struct ws_outq q;

    /* deadlines, absolute rt_now_ns(), -1 when not armed */
    int64_t close_due, stall_due, drain_due, spread_due;
    /* The kernel's unacknowledged bytes when a refusal found the queue
     * empty (all of the pending output in the kernel) and started the
     * stall clock on them; -1 when the clock is not watching the kernel. */
    int64_t stall_kernel;
    const uint8_t *msg;       /* the message on_message is looking at */
    size_t msg_len;
    struct ws_payload *msg_hold; /* it, handed over to frames (conn_large.c) */
    bool msg_text;            /* it is text (valid UTF-8: checked as it came) */
    struct ws_handshake *hs;  /* during CONNECTING only */
    const SnowHttpReq *req;   /* during CONNECTING only */
    uint16_t fail_code;       /* a close we must start at the next step */
    bool got_data;            /* this turn decoded data frames (not control frames alone) */
    int64_t now;              /* rt_now_ns() of this turn's deadline check */
    int64_t hot_until;        /* no hibernation before this (WS_HOT_MS after data) */
    struct ws_pmd_live pmd;   /* permessage-deflate: the message being inflated */
};

struct ws_conn {
    /* The first cache line holds what a room's deliverer reads for each
     * member (deliver.c): a 10,000-member room walks 10,000 records per
     * broadcast, so each costs it one line, not two (upgrade.c allocates
     * the record at this alignment). */
    _Alignas(64) SnowPid pid;
    const SnowWsHandler *h;

    /* [atomic] read and written under the table lock by other actors */
    _Atomic int64_t queued;   /* bytes accepted for sending, not yet written
                                 (own queue + frames still in the mailbox) */
    _Atomic int64_t kernel;   /* bytes in the socket's send queue (SIOCOUTQ) */
    _Atomic int rtt_ms;       /* -ENODATA until the first pong */
    atomic_bool accepting;    /* sends are taken (OPEN or CONNECTING, no Close queued) */
    atomic_bool close_asked;  /* a close request is already in the mailbox */
    /* enum ws_phase. Other actors read it under the table lock (api.c), so
     * once the connection is in the table it changes only under that lock
     * (ws_table_set_phase); the owner, its only writer, reads it freely. */
    uint8_t phase;
    /* [atomic] who may write the socket while the actor hibernates
     * (conn.c, direct delivery): enum ws_parked. */
    _Atomic uint8_t parked;
    /* The socket a deliverer may write while parked is YES: set by the
     * actor before it stores YES (which publishes it), -1 for a stream
     * that is not a plain socket (TLS: the engine is the actor's). Kept
     * here so a deliverer reads one cache line of the connection, not the
     * stream's. */
    int direct_fd;
    /* (end of the deliverer's line) */

    struct ws_route *route;
    struct http_conn *hc;
    struct http_stream *stream; /* NULL once closed */

    /* Everything a connection needs only while it is awake; freed while it
     * hibernates (at a frame boundary, nothing queued, close state OPEN,
     * so a fresh one is exactly equivalent) and NULL then. */
    struct ws_live *lv;

    /* heartbeat, absolute rt_now_ns(), -1 when not armed */
    int64_t ping_due, pong_due;
    int64_t ping_sent_ns;
    int64_t user_ping_ns;     /* the last snow_ws_ping, for its pong's round trip */
    uint64_t user_ping_hash;
    uint8_t user_ping_len;

    bool eof;                 /* the peer's TCP stream ended */
    bool rd_more;             /* the socket may have more: read before parking */
    bool wr_blocked;          /* the last write hit EAGAIN: wait for writable */
    bool closed_reported;     /* on_close ran */
    bool draining;            /* the server stops */
    bool panicked;
    bool lingering;           /* closed: reading only to drain the socket */
    bool timed_out;           /* a deadline ends the connection without waiting more */
    bool wr_failed;           /* the socket failed: nothing more can be written */
    bool close_written;       /* our Close went out whole */
    bool unflushed;           /* the stream still holds output (TLS records) */
    bool reaped_heartbeat, reaped_stall, reaped_bp;
    bool in_table;
    bool user_rooted;         /* &user is a root slot of the actor's heap */
    bool idle_counted;        /* hibernated: counted in ws_idle_totals */
    bool sndbuf_large;        /* SO_SNDBUF raised to WS_SNDBUF_LARGE's cap */
    uint16_t proto_len;       /* chosen subprotocol, in proto_buf */
    char *proto_buf;          /* malloc'd */
    /* The program's user data: a root slot of the actor's heap once set
     * (the record itself is malloc'd, see upgrade.c). */
    void *user;
    /* permessage-deflate: the agreement, and zlib streams only for
     * context takeover (pmd.h). */
    struct ws_pmd pmd;
};

/* Outbound limit in bytes. */
static inline size_t ws_limit(const struct ws_conn *c)
{
    return c->h->outbound_limit ? c->h->outbound_limit : (size_t)1 << 20;
}

/* The connection's SO_SNDBUF setting (the kernel doubles it). */
static inline int ws_sndbuf(const struct ws_conn *c)
{
    size_t cap = c->sndbuf_large ? WS_SNDBUF_LARGE : WS_SNDBUF_MAX;
    size_t share = c->sndbuf_large ? ws_limit(c) : ws_limit(c) / 2;
    size_t v = share < cap ? share : cap;
    return v < 4096 ? 4096 : (int)v;
}

/* FNV-1a of a control payload, to match a pong to the last ping. */
static inline uint64_t ws_payload_hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* table.c: registers c under c->pid / removes it. */
int ws_table_add(struct ws_conn *c);
void ws_table_remove(struct ws_conn *c);
/* Sets c->phase, under the table lock while c is in the table. */
void ws_table_set_phase(struct ws_conn *c, uint8_t phase);
/* Runs fn(c, arg) with the table lock of pid held, c NULL when pid is not a
 * live connection. Returns fn's result. */
int ws_table_with(SnowPid pid, int (*fn)(struct ws_conn *c, void *arg), void *arg);
/* The same without a callback: the live connection of pid (NULL when
 * none) with its shard's lock held until ws_table_unlock(held). */
struct ws_table_held {
    void *lock;
};
struct ws_conn *ws_table_lock(SnowPid pid, struct ws_table_held *held);
void ws_table_unlock(struct ws_table_held *held);
/* The calling actor's own connection (its table entry), or NULL. */
struct ws_conn *ws_conn_self(SnowPid pid);
/* The same without the table's lock while the caller is in its own
 * connection's on_message (conn.c), else NULL. */
struct ws_conn *ws_conn_current(SnowPid pid);
void ws_conn_count_add(int d);

/* Payload of the runtime's SNOW_TAG_WS_CLOSE request to a connection. */
struct ws_close_req {
    uint16_t code;
    uint8_t len;
    char reason[WS_CLOSE_REASON_MAX];
};

/* Handles carry the PID (never 0). */
static inline SnowWsConn *ws_handle(SnowPid pid)
{
    return (SnowWsConn *)(uintptr_t)pid;
}
static inline SnowPid ws_handle_pid(const SnowWsConn *h)
{
    return (SnowPid)(uintptr_t)h;
}

/* conn.c */
/* The upgrade entry point installed with http_set_upgrade_hook. */
int ws_upgrade_entry(struct http_upgrade *up);
/* Runs the open connection until it ends (hibernating on the way). */
void ws_conn_run(struct ws_conn *c);
/* Writes what is queued as far as the socket takes it now (the end of a
 * turn does this; a send may do it earlier). */
void ws_conn_flush(struct ws_conn *c);
/* conn_large.c: room in the message buffer to read the current frame's
 * payload into (NULL: read into the read buffer), and the n bytes read
 * there taken in (0, or the code to close with). */
uint8_t *ws_conn_payload_room(struct ws_conn *c, size_t *room);
uint16_t ws_conn_take_payload(struct ws_conn *c, uint8_t *p, size_t n);
/* on_message returned: the message's bytes may go (conn_large.c). */
void ws_conn_message_done(struct ws_conn *c);
/* Queues a data message / control frame / close from the owning actor. */
int ws_conn_send_own(struct ws_conn *c, unsigned opcode, const void *p, size_t n);
int ws_conn_ping_own(struct ws_conn *c, const void *p, size_t n);
/* Allocates and initialises c->lv (on the first run and on waking). */
int ws_live_new(struct ws_conn *c);
void ws_live_free(struct ws_conn *c);
/* Frees a connection object (not the stream). */
void ws_conn_free(struct ws_conn *c);
/* The one end of every connection: on_close (once, if it got its 101),
 * counters, rooms, table, the mailbox's frames, the stream, the memory. */
void ws_conn_finish(struct ws_conn *c);
/* Every exit path of the actor (http_conn_on_exit). */
void ws_conn_on_exit(int reason, void *arg);
/*
 * Direct delivery. Broadcasts to a member that hibernates (nothing queued,
 * no message half written, its stack given back) would wake it only for it
 * to write them and hibernate again: measured on the fanout bench, about
 * 2,500 instructions of waking, taking the mail and going back to sleep
 * around one sendmsg. So the deliverer writes them itself, all the frames
 * it has for the member at once (up to WS_DIRECT_MAX) in one writev, under
 * this handshake on c->parked:
 *
 *   WS_PARKED_NO     the actor is awake (or waits with its stack): it owns
 *                    the socket; nobody else writes it.
 *   WS_PARKED_YES    set by the actor as the last step before it
 *                    hibernates: a deliverer may take the socket by a CAS
 *                    to WS_PARKED_GUEST, write without waiting (one
 *                    sendmsg), and put YES back.
 *   WS_PARKED_REST   the socket took only part of a frame: the rest went
 *                    to the mailbox (struct ws_rest), and must go out
 *                    before anything else the actor writes; the frames of
 *                    the batch behind it follow it in the mailbox.
 *
 * The actor, waking or ending, CASes back to NO first (ws_conn_reclaim),
 * waiting out a write in progress (one non-blocking sendmsg). Only plain
 * sockets (a TLS engine is the actor's own), and only while nothing is in
 * the mailbox for the socket (c->queued is 0 under the table lock: no frame
 * that these would overtake) and the kernel's share stays small, so a
 * short write is rare. Frames of a batch that do not fit that share go
 * through the mailbox behind the ones written.
 */
/* The most frames one direct writev carries (a deliverer's batch). */
#define WS_DIRECT_MAX 64

enum ws_parked { WS_PARKED_NO = 0, WS_PARKED_YES = 1, WS_PARKED_GUEST = 2, WS_PARKED_REST = 3 };

/* The mailbox form of a frame the socket took only part of. */
struct ws_rest {
    struct ws_shared_frame *f; /* first, as in the plain form (life.c) */
    size_t off;
};


/* Owner-side changes to the queue keep the shared byte count in step. */
static inline void ws_conn_sync_queued(struct ws_conn *c, size_t before)
{
    atomic_fetch_add_explicit(&c->queued, (int64_t)c->lv->q.bytes - (int64_t)before, memory_order_relaxed);
}

/* What is pending for the peer: queued (own queue and frames in the
 * mailbox) plus the kernel's share. */
static inline int64_t ws_conn_pending(const struct ws_conn *c)
{
    return atomic_load_explicit(&c->queued, memory_order_relaxed) +
           atomic_load_explicit(&c->kernel, memory_order_relaxed);
}

/* The rule shared by the owner and every deliverer: a frame is taken while
 * what is pending is below the limit, so one message of any allowed size
 * can be sent and memory stays bounded by the limit plus one message; at
 * the limit everything is refused until the peer has read. */
static inline bool ws_conn_fits(const struct ws_conn *c)
{
    return (uint64_t)ws_conn_pending(c) < ws_limit(c);
}

/* SIOCOUTQ into c->kernel: bytes the kernel holds that the peer has not
 * acknowledged. */
void ws_conn_measure_kernel(struct ws_conn *c);
/* On the owner's actor, over the limit: writes what the socket takes now,
 * without waiting, and looks again. */
bool ws_conn_fits_after_flush(struct ws_conn *c);
/* Counts a refusal and closes with 1008 when the route says so. */
int ws_conn_refuse_backpressure(struct ws_conn *c);
/* On the owner's actor: a shared frame (already referenced) to the queue. */
void ws_conn_queue_frame(struct ws_conn *c, struct ws_shared_frame *f);

/* The owner takes its socket back from direct delivery (first thing on
 * waking or ending from hibernation). Returns the enum ws_parked it found. */
unsigned ws_conn_reclaim(struct ws_conn *c);

/* What hibernated connections held, by the runtime's own accounting
 * (malloc_usable_size of each block, the heap's chunk bytes), summed over
 * every wake-up from hibernation and every end while hibernated: taken
 * then, the state is exactly what the connection held while parked (after
 * the hibernation collection). An idle connection should hold its record,
 * the HTTP layer's compact record and its stream, and nothing awake. */
struct ws_idle_totals {
    uint64_t hibernated;  /* connections hibernated now */
    uint64_t samples;     /* wake-ups (and ends) the sums below cover */
    uint64_t record;      /* struct ws_conn and its subprotocol name */
    uint64_t live;        /* the awake part: decoder, reassembly, queue, read buffer */
    uint64_t http;        /* the HTTP connection record and its buffers */
    uint64_t stream;      /* the stream object */
    uint64_t heap_state;  /* the actor's collector state (actor_gc_state_bytes) */
    uint64_t heap_chunks; /* the actor's heap chunks */
    uint64_t pmd;         /* zlib streams kept for context takeover */
};
void ws_idle_totals(struct ws_idle_totals *out);
/* On the connection's actor: just before it hibernates / when it wakes or
 * ends hibernated. */
void ws_idle_enter(struct ws_conn *c);
void ws_idle_leave(struct ws_conn *c);

/* Runs a callback of the handler catching a panic. Returns true when it
 * panicked (the connection then closes with 1011). */
bool ws_call(struct ws_conn *c, void (*fn)(void *), void *arg);

/* conn_control.c */
/* The deadline ms from now, or -1 (none) when ms is 0 or less. */
int64_t ws_deadline_ms(int64_t ms);
/* A protocol error: starts our close with code, after what is queued. */
void ws_conn_fail(struct ws_conn *c, unsigned code);
/* Closes with code, dropping what is queued: a policy decision about the
 * output itself (backpressure, a stall, a dead peer). */
void ws_conn_cut(struct ws_conn *c, unsigned code);
/* Our close with the program's code and reason (snow_ws_close, on the
 * connection's actor or asked through its mailbox) or the server's stop:
 * SNOW_ECLOSED once closing, -EINVAL or -EILSEQ for a bad code or reason. */
int ws_conn_close_own(struct ws_conn *c, unsigned code, const char *reason, size_t n);
/* A ping, pong or Close from the peer. */
void ws_conn_on_control(struct ws_conn *c, const struct ws_event *ev);
/* Acts on every deadline that is due (c->lv->now is set here). */
void ws_conn_check_deadlines(struct ws_conn *c);

/* A broadcast frame from the mailbox, or the rest of one (struct
 * ws_rest), into the outbound queue (conn_mail.c). */
void ws_conn_take_frame(struct ws_conn *c, SnowMessage *m);
/* Takes up to WS_MAIL_BUDGET messages from the connection's mailbox
 * (conn_mail.c); true when it stopped at the budget (more may wait). */
bool ws_conn_take_mail(struct ws_conn *c);

#endif
