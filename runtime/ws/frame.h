/*
 * frame.h: RFC 6455 §5 framing, as two separate paths.
 *
 * Read path (frame.c): an incremental decoder for frames sent by a client.
 * It is fed whatever the socket produced, down to one byte at a time, keeps
 * partial headers across calls, unmasks payload in place in the caller's
 * buffer and hands it out as views. It never allocates; limits are checked
 * against the declared lengths as soon as the header arrives.
 *
 * Write path (frame_write.c): encoders for frames sent by the server, which
 * are never masked (§5.1), so that path contains no masking code at all.
 */
#ifndef SNOW_WS_FRAME_H
#define SNOW_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rt.h"
#include "utf8.h"

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* RSV bits as they sit in the first header byte. */
#define WS_RSV1 0x40u
#define WS_RSV2 0x20u
#define WS_RSV3 0x10u

/* §5.5: control frame payloads are at most 125 bytes. */
#define WS_CONTROL_MAX 125
/* A client header: 2 + 8 (64-bit length) + 4 (mask key). */
#define WS_CLIENT_HEADER_MAX 14
/* A server header: no mask key. */
#define WS_SERVER_HEADER_MAX 10
/* A whole server control frame: header (2) + payload. */
#define WS_CONTROL_FRAME_MAX (2 + WS_CONTROL_MAX)

#define WS_DEFAULT_MAX_MESSAGE (UINT64_C(16) << 20)

static inline bool ws_opcode_is_control(unsigned op)
{
    return (op & 0x8u) != 0;
}

/* ---------------------------------------------------------------- read path */

struct ws_decoder_config {
    uint64_t max_message; /* bytes in one (reassembled) message; 0: 16 MiB */
    uint64_t max_frame;   /* bytes in one data frame; 0: max_message */
    uint8_t rsv_allowed;  /* WS_RSV* bits a negotiated extension defines */
    bool no_utf8;         /* text is validated elsewhere (after inflation) */
};

enum ws_event_kind {
    WS_EV_NONE = 0,   /* no event (never reported by ws_decoder_next) */
    WS_EV_FRAME,      /* a data frame's header: opcode, fin, frame_len */
    WS_EV_DATA,       /* a piece of a data frame's payload, unmasked */
    WS_EV_FRAME_END,  /* the data frame is complete; fin ends the message */
    WS_EV_CONTROL,    /* a whole control frame: opcode, data, len */
    WS_EV_MESSAGE,    /* ws_decoder_whole only: a whole unfragmented message */
};

struct ws_event {
    enum ws_event_kind kind;
    uint8_t opcode;     /* the frame's own opcode (CONT for continuations) */
    uint8_t msg_opcode; /* data events: TEXT or BINARY, the message's type */
    bool fin;
    uint8_t rsv;
    uint64_t frame_len;
    /* WS_EV_DATA: a view into the caller's buffer, valid until it is
     * compacted. WS_EV_CONTROL: a view into the decoder, valid until the
     * next call. */
    uint8_t *data;
    size_t len;
};

enum ws_decoder_state {
    WS_DEC_HEADER,   /* the two fixed header bytes */
    WS_DEC_EXTLEN,   /* the 16- or 64-bit extended length */
    WS_DEC_MASKKEY,  /* the four mask key bytes */
    WS_DEC_PAYLOAD,  /* a data frame's payload, handed out as it arrives */
    WS_DEC_CONTROL,  /* a control frame's payload, collected whole */
    WS_DEC_FRAME_END,/* a data frame is complete; its end is reported next */
    WS_DEC_CLOSED,   /* a Close frame was received; later bytes are ignored */
    WS_DEC_FAILED,   /* a protocol error; close_code says which */
};

struct ws_decoder {
    enum ws_decoder_state state;
    uint64_t max_message;
    uint64_t max_frame;
    uint8_t rsv_allowed;
    bool check_utf8;

    /* current frame */
    uint8_t hdr[8]; /* the piece of header being collected */
    uint8_t have;   /* bytes of it collected */
    uint8_t need;   /* bytes the current state collects */
    uint8_t b0, b1; /* the fixed header bytes */
    uint8_t key[4];
    uint64_t frame_len;
    uint64_t frame_done;

    /* current message (fragments) */
    uint8_t msg_opcode; /* 0 when no message is in progress */
    uint64_t msg_len;
    struct rt_utf8 utf8;

    uint16_t close_code;
    uint64_t consumed; /* stream bytes taken so far, the failing one included */
    uint8_t control[WS_CONTROL_MAX];
};

/* cfg may be NULL for the defaults. */
void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg);

/*
 * Decodes from buf[0..len) until one event is ready, with the return
 * convention of all parsers (rt.h):
 *
 *   >= 0                 one event in *ev; the value is the bytes consumed
 *                        (possibly 0), the caller advances by it and calls
 *                        again;
 *   RT_PARSE_INCOMPLETE  all len bytes are consumed (kept in the decoder
 *                        or handed out earlier) and no event is ready;
 *   RT_PARSE_ERROR       the peer broke the protocol or a limit; sticky.
 *                        ws_decoder_close_code gives the code to close with
 *                        (1002, 1007 or 1009), ws_fail_error the error to
 *                        report for it.
 *
 * Payload is unmasked in place, so buf must be writable. Call it until it
 * returns < 0, also with len == 0: the end of a frame whose last byte has
 * just been handed out is reported by the next call.
 */
ssize_t ws_decoder_next(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev);

/*
 * The usual case in one step: when buf starts with a whole unfragmented
 * TEXT or BINARY frame without RSV bits (header and payload all there) and
 * no message is in progress, decodes it as ws_decoder_next's FRAME, DATA
 * and FRAME_END events would, with the same checks and the same failures,
 * and returns the bytes it took, with one WS_EV_MESSAGE event in *ev whose
 * data and len are the whole unmasked payload. Returns 0 with nothing
 * taken and the decoder unchanged for anything else (a partial frame, a
 * fragment, a control frame, a header that will fail): ws_decoder_next
 * handles it. RT_PARSE_ERROR as ws_decoder_next.
 */
ssize_t ws_decoder_whole(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev);

/* The error a function reports for a connection failed with close code
 * code (1009: SNOW_ELIMIT, 1011: -ENOMEM, others SNOW_EPROTOCOL), and the
 * close code for an error (SNOW_EPROTOCOL: 1002, SNOW_ELIMIT: 1009, others
 * 1011). One table in frame.c holds both directions. */
int ws_fail_error(uint16_t code);
uint16_t ws_fail_code(int err);

static inline uint16_t ws_decoder_close_code(const struct ws_decoder *d)
{
    return d->close_code;
}

/* A fragmented message has started and not yet ended. */
static inline bool ws_decoder_in_message(const struct ws_decoder *d)
{
    return d->msg_opcode != 0;
}

/* Payload bytes of the current frame still to come. */
static inline uint64_t ws_decoder_frame_left(const struct ws_decoder *d)
{
    return d->frame_len - d->frame_done;
}

/*
 * XORs p[0..n) with the 4-byte key starting at key byte `phase` (0..3) and
 * returns the phase for the byte after p[n-1], so a payload can be unmasked
 * in pieces. Used by the read path only (§5.3).
 */
unsigned ws_unmask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase);

/* --------------------------------------------------------------- write path */

/* Header length for a server frame carrying len bytes: 2, 4 or 10. */
static inline size_t ws_frame_header_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
}

/*
 * Writes the header of an unmasked server frame to out and returns its
 * length; the payload follows separately (writev). -EINVAL for an opcode
 * that is not one of enum ws_opcode, a control frame without fin or over
 * 125 bytes, or len >= 2^63.
 */
int ws_frame_header(uint8_t out[WS_SERVER_HEADER_MAX], unsigned opcode, bool fin, uint64_t len);

/* Header and payload into out[0..cap). Returns the frame length, -ENOBUFS
 * when cap is too small, or -EINVAL as ws_frame_header. */
ssize_t ws_frame_encode(uint8_t *out, size_t cap, unsigned opcode, bool fin, const void *payload, size_t n);

/* A whole ping, pong or close frame in one buffer, so that it goes out in
 * one write. Returns the frame length or -EINVAL. Close payloads should be
 * built with ws_close_frame (close.h), which checks the code. */
int ws_frame_control(uint8_t out[WS_CONTROL_FRAME_MAX], unsigned opcode, const void *payload, size_t n);

/*
 * Splits one outgoing message into frames of at most frag payload bytes
 * (§5.4): the first carries the opcode, the rest are continuations, the
 * last has fin. Each step yields a header and a view of the payload, for
 * writev without copying. An empty message is one empty frame.
 */
struct ws_fragmenter {
    const uint8_t *p;
    size_t left;
    size_t frag;
    uint8_t opcode;
    bool done;
};

/* frag == 0 means no fragmentation. opcode is TEXT or BINARY. */
void ws_fragmenter_init(struct ws_fragmenter *f, unsigned opcode, const void *payload, size_t n, size_t frag);
/* 1 with the next frame (*hdr_len header bytes in hdr, then *n bytes at
 * *payload), or 0 when the message is exhausted. */
int ws_fragmenter_next(struct ws_fragmenter *f, uint8_t hdr[WS_SERVER_HEADER_MAX], size_t *hdr_len,
                       const uint8_t **payload, size_t *n);

#endif
