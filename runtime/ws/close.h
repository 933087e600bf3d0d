/*
 * close.h: the closing handshake (RFC 6455 §5.5.1, §7). One enum holds the
 * status codes the runtime uses; a small state machine records who started
 * the close and what to report to on_close.
 */
#ifndef SNOW_WS_CLOSE_H
#define SNOW_WS_CLOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws/frame.h"

/* §7.4.1. The last three are reported locally and never sent (§7.4.1:
 * "MUST NOT be set as a status code in a Close control frame"). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED_DATA = 1003,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_MANDATORY_EXT = 1010,
    WS_CLOSE_INTERNAL_ERROR = 1011,

    WS_CLOSE_NO_STATUS = 1005, /* a Close frame arrived without a code */
    WS_CLOSE_ABNORMAL = 1006,  /* the connection ended without a Close */
    WS_CLOSE_TLS_FAILED = 1015,
};

/* §5.5.1: at most 125 bytes of payload, two of them the code. */
#define WS_CLOSE_REASON_MAX 123

/* May the code appear in a Close frame? 1000-1003, 1007-1014 (1012-1014
 * were registered with IANA after the RFC) and 3000-4999 (§7.4.2). */
bool ws_close_code_valid(unsigned code);

struct ws_close_payload {
    uint16_t code; /* WS_CLOSE_NO_STATUS for an empty payload */
    const uint8_t *reason;
    size_t reason_len;
};

/*
 * Parses a received Close payload. Returns 0, or SNOW_EPROTOCOL with
 * out->code set to the code to answer with: 1002 for a one-byte payload or
 * a code that may not be sent, 1007 for a reason that is not UTF-8.
 */
int ws_close_parse(const uint8_t *p, size_t n, struct ws_close_payload *out);

/*
 * Builds a whole Close frame. code 0 sends an empty payload. The reason is
 * cut to 123 bytes on a character boundary. Refuses a code that may not be
 * sent (1005, 1006, 1015 and the other invalid ones): that is a bug in the
 * caller, so it asserts, and returns -EINVAL in builds without assertions.
 * A reason that is not UTF-8 gives -EILSEQ. Returns the frame length.
 */
int ws_close_frame(uint8_t out[WS_CONTROL_FRAME_MAX], unsigned code, const char *reason, size_t n);

enum ws_close_state { WS_STATE_OPEN, WS_STATE_CLOSING, WS_STATE_CLOSED };
enum ws_close_initiator { WS_BY_NONE, WS_BY_LOCAL, WS_BY_REMOTE };

struct ws_close {
    enum ws_close_state state;
    enum ws_close_initiator initiator;
    uint16_t sent_code; /* what we put in our Close (0: empty) */
    /* The code and reason for on_close: §7.1.5 and §7.1.6 make them those
     * of the first Close received; 1006 when none arrived; the code we
     * failed with when the peer's Close was itself invalid. */
    uint16_t code;
    uint8_t reason_len;
    char reason[WS_CLOSE_REASON_MAX];
};

void ws_close_init(struct ws_close *c);

/* We start the close (application request, protocol error, timeout).
 * OPEN -> CLOSING. Writes our Close frame to out; returns its length, or
 * SNOW_ECLOSED when a Close was already sent, or as ws_close_frame. */
int ws_close_start(struct ws_close *c, unsigned code, const char *reason, size_t n,
                   uint8_t out[WS_CONTROL_FRAME_MAX]);

/*
 * A Close frame arrived with payload p[0..n). Always ends in CLOSED: after
 * it the server closes the TCP connection (§7.1.1). Returns the length of
 * the reply written to out when one is due (the peer started the close),
 * 0 when our own Close already went out.
 */
int ws_close_received(struct ws_close *c, const uint8_t *p, size_t n, uint8_t out[WS_CONTROL_FRAME_MAX]);

/* The transport ended or the close timed out: CLOSED, reporting 1006 if no
 * Close was received. */
void ws_close_abort(struct ws_close *c);

/* §5.5.1: no data frames after our Close. */
static inline bool ws_close_may_send(const struct ws_close *c)
{
    return c->state == WS_STATE_OPEN;
}

/* Data is still read while our Close awaits its answer (§7.1.2), and is
 * ignored once the peer's Close has arrived. */
static inline bool ws_close_may_receive(const struct ws_close *c)
{
    return c->state != WS_STATE_CLOSED;
}

#endif
