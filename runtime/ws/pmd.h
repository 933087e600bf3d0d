/*
 * pmd.h: permessage-deflate (RFC 7692).
 *
 *   pmd_offer.c  negotiation over the handshake's parsed offers (§7.1) and
 *                the Sec-WebSocket-Extensions answer; pure, no allocation
 *   deflate.c    the zlib side: inflate in bounded chunks with the message
 *                limit on the inflated size and UTF-8 checked as bytes come
 *                out, deflate with the §7.2.1 tail removed, the calling
 *                thread's shared streams, the process-wide memory cap, and
 *                compressed shared frames for broadcasts
 *   pmd_conn.c   what the connection loop calls: the RSV1 rules, inflating
 *                a received message, compressing a sent one
 *
 * Memory: a connection that negotiated no context takeover in a direction
 * holds no zlib state for it; every message is (de)compressed with the
 * calling worker thread's shared stream, reset per message, within one
 * call that never parks. Only context takeover keeps a stream per
 * connection (created at its first compressed message, kept across
 * hibernation, since its window is the context), sized by the agreed
 * window bits and memory level and reserved against a process-wide cap.
 */
#ifndef SNOW_WS_PMD_H
#define SNOW_WS_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws/handshake.h"
#include "ws/message.h"

/* Longest answer ws_pmd_response writes (all four parameters). */
#define WS_PMD_RESPONSE_MAX 160
/* Messages shorter than this go uncompressed unless the route says. */
#define WS_PMD_DEFAULT_THRESHOLD 64
/* zlib compression level used for sending. */
#define WS_PMD_LEVEL 6
/* Process-wide cap on zlib state memory, bytes; SNOW_WS_DEFLATE_MEM_MB
 * overrides it at the first negotiation. */
#define WS_PMD_DEFAULT_MEM_CAP ((size_t)256 << 20)

/* A route's policy (from SnowWsHandler). */
struct ws_pmd_opts {
    bool enabled;
    uint8_t window_bits;      /* 8..15, largest window either side may use; 0: 15 */
    uint8_t mem_level;        /* 1..9, deflate memLevel; 0: 8 */
    bool no_context_takeover; /* both sides reset per message */
    size_t threshold;         /* shorter messages are sent uncompressed */
};

/* What one offer asks for (§7.1); a parameter may appear once. */
struct ws_pmd_offer {
    bool server_nct, client_nct;
    uint8_t server_bits;   /* 0: not given */
    bool client_bits_given;
    uint8_t client_bits;   /* 0: given without a value */
};

/* The agreed parameters of a connection. */
struct ws_pmd_params {
    bool server_nct;         /* we reset our compressor per message */
    bool client_nct;         /* the client resets its compressor per message */
    uint8_t server_bits;     /* window we promise (8..15); zlib uses max(9, it) */
    uint8_t client_bits;     /* window the client compresses within (8..15) */
    bool answer_server_bits; /* say server_max_window_bits in the answer */
    bool answer_client_bits; /* say client_max_window_bits in the answer */
    uint8_t mem_level;
    uint32_t threshold;
};

/*
 * Parses one offer's parameters. Returns 0, or -1 when the offer is not
 * acceptable: not permessage-deflate, an unknown or repeated parameter, a
 * value where none belongs, none where one is needed, or a window size
 * outside 8..15 (written as 1*DIGIT without a leading zero, §7.1.2, also
 * inside quotes).
 */
int ws_pmd_offer_parse(const struct ws_handshake *hs, const struct ws_ext_offer *off, struct ws_pmd_offer *out);

/*
 * §7.1: the first acceptable permessage-deflate offer of hs wins. opts is
 * the route's policy; allow_takeover false (the memory cap was reached)
 * answers with both no-context-takeover parameters. Returns the index of
 * the accepted offer with *out filled, or -1 (no compression).
 */
int ws_pmd_negotiate(const struct ws_handshake *hs, const struct ws_pmd_opts *opts, bool allow_takeover,
                     struct ws_pmd_params *out);

/* The Sec-WebSocket-Extensions value for p, without CRLF, and a NUL.
 * Returns its length or -ENOBUFS. */
int ws_pmd_response(const struct ws_pmd_params *p, char *buf, size_t cap);

/* ------------------------------------------------------------- deflate.c */

struct ws_zin;  /* one inflate stream */
struct ws_zout; /* one deflate stream */

/* zlib window bits for a promised window (zlib's raw deflate has no 8). */
static inline unsigned ws_pmd_zbits(unsigned bits)
{
    return bits < 9 ? 9 : bits;
}

/* Bytes a stream with these parameters holds, as reserved against the cap
 * (zlib's own formula plus its fixed state; bench/README.md has measured
 * figures). */
size_t ws_zin_cost(unsigned bits);
size_t ws_zout_cost(unsigned bits, unsigned mem_level);

struct ws_zin *ws_zin_new(unsigned bits);
void ws_zin_free(struct ws_zin *z);
struct ws_zout *ws_zout_new(unsigned bits, unsigned mem_level);
void ws_zout_free(struct ws_zout *z);
/* Forgets z's window: later messages refer to nothing sent before. */
void ws_zout_reset(struct ws_zout *z);

/*
 * Inflates one message: in[0..n) followed by the 00 00 ff ff that §7.2.2
 * says to append, into out (its limit is the message limit), in chunks of
 * at most 64 KiB, never sized from the input. z NULL uses the calling
 * thread's shared stream and resets it (no context takeover); otherwise z
 * keeps its window for the next message. text checks UTF-8 as the bytes
 * come out. Returns 0, or the close code: 1009 as soon as the output
 * passes the limit, 1007 for text that is not UTF-8 or data that is not
 * DEFLATE, 1011 when memory runs out. out is cleared first.
 */
uint16_t ws_inflate_msg(struct ws_zin *z, const uint8_t *in, size_t n, bool text, struct ws_msgbuf *out);

/*
 * Compresses p[0..n) as one message (§7.2.1: sync flush, the trailing
 * 00 00 ff ff removed). z NULL uses the calling thread's shared stream
 * with these parameters, reset after (no context takeover). On success
 * *out is a malloc'd block of *outlen bytes the caller frees. Returns 0 or
 * -ENOMEM (nothing to free).
 */
int ws_deflate_msg(struct ws_zout *z, unsigned bits, unsigned mem_level, const void *p, size_t n, uint8_t **out,
                   size_t *outlen);

/*
 * For the room registry: one compressed FIN frame (rsv = WS_RSV1) of
 * opcode carrying p[0..n), compressed without context with a window of
 * bits (8..15) and mem_level (0: 8), shared by every member whose
 * ws_pmd_member_bits is >= bits. NULL on ENOMEM or a bad argument.
 */
struct ws_shared_frame *ws_pmd_shared_frame(unsigned opcode, const void *p, size_t n, unsigned bits,
                                            unsigned mem_level);

/* The process-wide cap: bytes reserved by connections with context
 * takeover plus the shared streams, and the cap itself. */
size_t ws_pmd_mem_reserved(void);
size_t ws_pmd_mem_cap(void);
/* Sets the cap (tests, programs); 0 restores the default. */
void ws_pmd_set_mem_cap(size_t bytes);
/* Reserves / releases n bytes; reserve returns false past the cap. */
bool ws_pmd_reserve(size_t n);
void ws_pmd_release(size_t n);
/* Bytes zlib holds right now in the whole process (measured). */
size_t ws_pmd_mem_held(void);

/* ------------------------------------------------------------ pmd_conn.c */

/* A connection's agreement and its context-takeover streams (in the hot
 * part, struct ws_conn: kept across hibernation). */
struct ws_pmd {
    bool on;
    struct ws_pmd_params p;
    struct ws_zin *zin;   /* client context takeover: created at first use */
    struct ws_zout *zout; /* server context takeover: created at first use */
    size_t reserved;      /* bytes reserved against the cap */
};

/* The awake part's share (struct ws_live), freed while hibernating. */
struct ws_pmd_live {
    bool msg;             /* the message being received is compressed */
    struct ws_msgbuf out; /* its inflated bytes */
};

struct ws_conn;
struct ws_live;
struct ws_event;
struct ws_shared_frame;

/* Before the 101: negotiates with the route's options and puts the answer
 * in hs->ext_answer. Never fails: no agreement means no compression. */
void ws_pmd_accept(struct ws_conn *c, struct ws_handshake *hs);
/* The decoder of a (new or woken) live part allows RSV1 when agreed. */
void ws_pmd_live_init(struct ws_conn *c);
void ws_pmd_live_free(struct ws_live *lv);
/* The connection ends: streams freed, reservation given back. */
void ws_pmd_conn_fini(struct ws_conn *c);
/* §6.1 on a frame header or control frame event: 0, or 1002 for RSV1 on a
 * control frame or a continuation. Marks a compressed message and turns
 * the decoder's own UTF-8 check off for it. */
uint16_t ws_pmd_on_frame(struct ws_conn *c, const struct ws_event *ev);
/* A whole received message: inflated in place of *p, *n when it was
 * compressed. 0 or the close code (1007, 1009, 1011). */
uint16_t ws_pmd_inbound(struct ws_conn *c, const uint8_t **p, size_t *n, unsigned opcode);
/* After on_message: large inflate buffers are not kept. */
void ws_pmd_after_message(struct ws_conn *c);
/* Queues an own data message compressed when agreed and at least the
 * threshold long. 1: not compressed, the caller queues it plain; 0: queued;
 * -ENOMEM. */
int ws_pmd_send(struct ws_conn *c, unsigned opcode, const void *p, size_t n);
/* A frame with RSV1 may go to c only when it agreed no server context
 * takeover (a frame compressed elsewhere would break a shared context). */
bool ws_pmd_frame_ok(const struct ws_conn *c, const struct ws_shared_frame *f);

/*
 * For the room registry: the server window a connection's shared frames
 * must fit in: 8..15 when it agreed permessage-deflate without server
 * context takeover (any ws_pmd_shared_frame made with bits <= this value
 * may be delivered to it), 0 when it needs frames of its own (context
 * takeover, or no compression: plain frames), SNOW_ECLOSED when pid is not
 * an open connection. Any actor.
 */
int ws_pmd_member_bits(SnowPid pid);

/* What a room delivery needs to know of a member: bits as
 * ws_pmd_member_bits says (0: plain frames only), threshold: its route's
 * size under which messages go uncompressed. 0 or SNOW_ECLOSED. */
struct ws_pmd_member {
    uint8_t bits;
    uint32_t threshold;
};
int ws_pmd_member_info(SnowPid pid, struct ws_pmd_member *m);

/* Open connections that agreed permessage-deflate without server context
 * takeover (the ones a shared compressed frame is for): while 0, a
 * broadcast needs no look at its members' agreements. */
size_t ws_pmd_shared_members(void);

#endif
