/*
 * close.c: Close payloads and the closing handshake (RFC 6455 §5.5.1, §7).
 */
#include "ws/close.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "rt.h"
#include "utf8.h"

bool ws_close_code_valid(unsigned code)
{
    /* §7.4.1 defines 1000-1003 and 1007-1011; 1004 is reserved and
     * 1005/1006/1015 are for local reporting only. 1012-1014 are assigned
     * in the IANA registry (§11.7). The rest of 1000-2999 is unassigned and
     * 3000-4999 belongs to libraries and applications (§7.4.2). */
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

int ws_close_parse(const uint8_t *p, size_t n, struct ws_close_payload *out)
{
    out->reason = NULL;
    out->reason_len = 0;
    if (n == 0) {
        /* §7.1.5: no status code in the Close is reported as 1005. */
        out->code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    /* §5.5.1: if there is a body, its first two bytes are the code. */
    if (n == 1) {
        out->code = WS_CLOSE_PROTOCOL_ERROR;
        return SNOW_EPROTOCOL;
    }
    unsigned code = (unsigned)p[0] << 8 | p[1];
    if (!ws_close_code_valid(code)) {
        out->code = WS_CLOSE_PROTOCOL_ERROR;
        return SNOW_EPROTOCOL;
    }
    /* §5.5.1: the reason is UTF-8; §8.1 makes invalid text fatal (1007). */
    if (!rt_utf8_valid(p + 2, n - 2, NULL)) {
        out->code = WS_CLOSE_INVALID_DATA;
        return SNOW_EPROTOCOL;
    }
    out->code = (uint16_t)code;
    out->reason = p + 2;
    out->reason_len = n - 2;
    return 0;
}

int ws_close_frame(uint8_t out[WS_CONTROL_FRAME_MAX], unsigned code, const char *reason, size_t n)
{
    uint8_t body[WS_CONTROL_MAX];
    if (code == 0)
        return ws_frame_control(out, WS_OP_CLOSE, NULL, 0);
    assert(ws_close_code_valid(code) && "close code may not be sent");
    if (!ws_close_code_valid(code))
        return -EINVAL;
    if (n && !rt_utf8_valid(reason, n, NULL))
        return -EILSEQ;
    n = rt_utf8_prefix(reason, n, WS_CLOSE_REASON_MAX);
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (n)
        memcpy(body + 2, reason, n);
    return ws_frame_control(out, WS_OP_CLOSE, body, n + 2);
}

void ws_close_init(struct ws_close *c)
{
    memset(c, 0, sizeof *c);
    c->state = WS_STATE_OPEN;
    c->initiator = WS_BY_NONE;
}

int ws_close_start(struct ws_close *c, unsigned code, const char *reason, size_t n,
                   uint8_t out[WS_CONTROL_FRAME_MAX])
{
    if (c->state != WS_STATE_OPEN)
        return SNOW_ECLOSED;
    int len = ws_close_frame(out, code, reason, n);
    if (len < 0)
        return len;
    c->state = WS_STATE_CLOSING;
    c->initiator = WS_BY_LOCAL;
    c->sent_code = (uint16_t)code;
    return len;
}

static void record(struct ws_close *c, uint16_t code, const uint8_t *reason, size_t n)
{
    c->code = code;
    if (n > WS_CLOSE_REASON_MAX)
        n = WS_CLOSE_REASON_MAX;
    if (n)
        memcpy(c->reason, reason, n);
    c->reason_len = (uint8_t)n;
}

int ws_close_received(struct ws_close *c, const uint8_t *p, size_t n, uint8_t out[WS_CONTROL_FRAME_MAX])
{
    struct ws_close_payload cp;
    int bad = ws_close_parse(p, n, &cp);

    if (c->state == WS_STATE_CLOSED)
        return 0;
    if (bad)
        record(c, cp.code, NULL, 0);
    else
        record(c, cp.code, cp.reason, cp.reason_len);

    if (c->state == WS_STATE_CLOSING) {
        /* Our Close was already sent; this completes the handshake. */
        c->state = WS_STATE_CLOSED;
        return 0;
    }

    c->state = WS_STATE_CLOSED;
    c->initiator = WS_BY_REMOTE;
    /*
     * §5.5.1: the reply "typically echos the status code it received". A
     * Close without a code is answered with an empty Close: there is no code
     * to echo, and 1005 may not be sent (§7.4.1), while inventing 1000
     * would claim a reason the peer never gave. An invalid Close is
     * answered with the error it caused (§7.1.7: fail the connection).
     */
    unsigned reply = bad ? cp.code : cp.code == WS_CLOSE_NO_STATUS ? 0 : cp.code;
    c->sent_code = (uint16_t)reply;
    return ws_close_frame(out, reply, NULL, 0);
}

void ws_close_abort(struct ws_close *c)
{
    if (c->state == WS_STATE_CLOSED)
        return;
    /* §7.1.5: no Close frame was received. */
    c->state = WS_STATE_CLOSED;
    c->code = WS_CLOSE_ABNORMAL;
    c->reason_len = 0;
}
