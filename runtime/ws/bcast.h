/*
 * bcast.h: what the connection loop (conn.c) and the room registry
 * (rooms.c) agree on.
 *
 * A broadcast is encoded once into an immutable, reference-counted server
 * frame. Every member's outbound queue holds a reference to the same bytes,
 * so a broadcast to N members costs O(N + size) memory with one copy of the
 * payload. The frame is never written after ws_shared_frame_new returns, so
 * readers on any thread need no lock; the count is the only shared state.
 */
#ifndef SNOW_WS_BCAST_H
#define SNOW_WS_BCAST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rt.h"

struct ws_shared_frame {
    atomic_size_t refs;
    uint64_t room_epoch; /* 0 when the frame does not come from a room */
    uint64_t room_seq;   /* the room's sequence number of this message */
    uint8_t opcode;      /* WS_OP_TEXT or WS_OP_BINARY */
    uint8_t rsv;         /* RSV bits set on the frame (WS_RSV1: compressed) */
    size_t payload_len;  /* payload bytes, after the header */
    size_t len;          /* bytes[0..len): one whole unmasked server frame */
    /* Only in a connection's own queue (outq.c), never shared: a frame of
     * an own large message whose payload is not behind its header but at
     * ext[0..payload_len), bytes holding the header alone. hold keeps
     * those bytes alive; NULL while they are the sender's own, lent for
     * the duration of its send call. ext is NULL in every other frame. */
    const uint8_t *ext;
    struct ws_payload *hold;
    uint8_t bytes[];
};

/* One FIN frame carrying payload[0..n) with opcode (TEXT or BINARY) and
 * rsv bits; one reference held by the caller. NULL on ENOMEM or a bad
 * opcode. Text is not validated here: the caller does it once. */
struct ws_shared_frame *ws_shared_frame_new(unsigned opcode, unsigned rsv, const void *payload, size_t n);
void ws_shared_frame_ref(struct ws_shared_frame *f);
/* Drops a reference; the last one frees the frame. NULL is ignored. */
void ws_shared_frame_unref(struct ws_shared_frame *f);

/*
 * Queues f on the outbound queue of the WebSocket connection whose actor is
 * pid. Callable from any actor or thread; it never touches the socket (the
 * connection's own actor writes it) and never parks. On success the queue
 * holds its own reference. Returns 0, SNOW_EBACKPRESSURE when the
 * connection's outbound limit would be passed (nothing queued; the
 * connection applies its route's backpressure policy), or SNOW_ECLOSED when
 * pid is not an open WebSocket connection. Implemented by deliver.c.
 */
int ws_conn_deliver(SnowPid pid, struct ws_shared_frame *f);
/* What became of a batch (ws_conn_deliver_batch), frame by frame. */
struct ws_batch_result {
    uint32_t delivered; /* taken: written, or queued for the connection */
    uint32_t direct;    /* of those, written by the caller itself (whole or in part) */
    uint32_t partial;   /* of those, cut short: the connection writes the rest */
    uint32_t refused;   /* over the outbound limit (SNOW_EBACKPRESSURE) */
    uint32_t failed;    /* the connection is gone or cannot take the frame */
    uint32_t writes;    /* writevs the caller made */
};
/* Who delivers batches: its own pid (ordering of its mailbox sends) and a
 * scratch buffer cork[0..cork_cap) (NULL: none) for writing several small
 * frames with one send. laid (NULL: not so): the frames of the next call,
 * at most WS_DIRECT_MAX, are already laid out back to back there, as a
 * caller that gives many members the same frames keeps them, so that a
 * write of several is sent from there without a copy per member. */
struct ws_deliverer {
    SnowPid self;
    uint8_t *cork;
    size_t cork_cap;
    const uint8_t *laid;
};
/* Frames f[0..n) for one connection, in this order, with one table look-up
 * per WS_DIRECT_MAX frames, each taken or refused as ws_conn_deliver would;
 * the counts are added to *out. A connection that hibernates with nothing
 * queued on a plain socket gets as many of them as fit written at once in
 * one write, without waking its actor (conn.h, "direct delivery"); the
 * rest go through its mailbox, behind them. */
void ws_conn_deliver_batch(const struct ws_deliverer *by, SnowPid pid, struct ws_shared_frame *const *f, uint32_t n,
                           struct ws_batch_result *out);
/* Asks the cache for what delivering to pid reads: its slot in the
 * connection table and the first line of conn, the record pid had when the
 * caller took it (ws_conn_hint, rooms.h); conn may be stale or NULL, it is
 * never dereferenced. No lock and no effect but timing. Implemented by
 * table.c. */
void ws_table_prefetch(SnowPid pid, const void *conn);

/*
 * pid (a WebSocket connection or a plain subscriber) is ending: remove it
 * from every room. Called on every exit path of a connection actor; safe to
 * call for a pid that is in no room. Implemented by rooms.c.
 */
void ws_rooms_member_gone(SnowPid pid);

#endif
