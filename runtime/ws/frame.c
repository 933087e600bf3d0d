/*
 * frame.c: the read path of RFC 6455 framing. See frame.h for the contract
 * and README.md for the invariants this file keeps.
 */
#include "ws/frame.h"

#include <errno.h>
#include <string.h>

#include "rt.h"
#include "ws/close.h"

void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg)
{
    memset(d, 0, offsetof(struct ws_decoder, control));
    d->state = WS_DEC_HEADER;
    d->need = 2;
    d->max_message = WS_DEFAULT_MAX_MESSAGE;
    d->check_utf8 = true;
    if (cfg) {
        if (cfg->max_message)
            d->max_message = cfg->max_message;
        d->rsv_allowed = cfg->rsv_allowed & (WS_RSV1 | WS_RSV2 | WS_RSV3);
        d->check_utf8 = !cfg->no_utf8;
    }
    d->max_frame = cfg && cfg->max_frame ? cfg->max_frame : d->max_message;
    rt_utf8_init(&d->utf8);
}

/*
 * The one mapping between the close code that fails a connection (RFC 6455
 * §7.4.1) and the error a function reports for it. The decoder and the
 * reassembler record the code; callers that return an error convert here.
 * From an error, the first row that names it wins.
 */
static const struct {
    uint16_t code;
    int err;
} fail_table[] = {
    {WS_CLOSE_PROTOCOL_ERROR, SNOW_EPROTOCOL},
    {WS_CLOSE_INVALID_DATA, SNOW_EPROTOCOL},
    {WS_CLOSE_TOO_BIG, SNOW_ELIMIT},
    {WS_CLOSE_INTERNAL_ERROR, -ENOMEM},
};

int ws_fail_error(uint16_t code)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(fail_table); i++)
        if (fail_table[i].code == code)
            return fail_table[i].err;
    return SNOW_EPROTOCOL;
}

uint16_t ws_fail_code(int err)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(fail_table); i++)
        if (fail_table[i].err == err)
            return fail_table[i].code;
    return WS_CLOSE_INTERNAL_ERROR;
}

/* Internal steps return an event kind, WS_EV_NONE, or this. */
#define STEP_FAILED (-1)

static int fail(struct ws_decoder *d, uint16_t code)
{
    d->state = WS_DEC_FAILED;
    d->close_code = code;
    return STEP_FAILED;
}

static void expect(struct ws_decoder *d, enum ws_decoder_state state, uint8_t need)
{
    d->state = state;
    d->need = need;
    d->have = 0;
}

/*
 * Limits are checked against the declared length, before any payload
 * arrives, so a peer announcing 2^62 bytes is refused after its header and
 * nothing is ever sized from the length.
 */
static int check_length(struct ws_decoder *d)
{
    if (ws_opcode_is_control(d->b0 & 0xFu))
        return WS_EV_NONE;
    uint64_t so_far = d->msg_opcode ? d->msg_len : 0;
    if (d->frame_len > d->max_frame || d->frame_len > d->max_message - so_far)
        return fail(d, WS_CLOSE_TOO_BIG);
    return WS_EV_NONE;
}

static int on_fixed_header(struct ws_decoder *d)
{
    uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
    unsigned op = b0 & 0xFu;
    bool fin = b0 & 0x80u;
    unsigned len7 = b1 & 0x7Fu;

    d->b0 = b0;
    d->b1 = b1;
    /* §5.2: RSV bits MUST be 0 unless an extension defining them was
     * negotiated; the receiver MUST fail the connection otherwise. */
    if ((b0 & 0x70u) & ~(unsigned)d->rsv_allowed)
        return fail(d, WS_CLOSE_PROTOCOL_ERROR);
    switch (op) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        break;
    default:
        /* §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved. */
        return fail(d, WS_CLOSE_PROTOCOL_ERROR);
    }
    if (ws_opcode_is_control(op)) {
        /* §5.5: control frames are never fragmented and carry at most
         * 125 bytes, so the 7-bit length is the only legal form. */
        if (!fin || len7 > WS_CONTROL_MAX)
            return fail(d, WS_CLOSE_PROTOCOL_ERROR);
    } else if (op == WS_OP_CONT ? !d->msg_opcode : d->msg_opcode != 0) {
        /* §5.4: a continuation needs a message in progress, and a new
         * message may not start inside a fragmented one. */
        return fail(d, WS_CLOSE_PROTOCOL_ERROR);
    }
    /* §5.1: a server MUST close the connection on an unmasked frame. */
    if (!(b1 & 0x80u))
        return fail(d, WS_CLOSE_PROTOCOL_ERROR);

    if (len7 == 126) {
        expect(d, WS_DEC_EXTLEN, 2);
        return WS_EV_NONE;
    }
    if (len7 == 127) {
        expect(d, WS_DEC_EXTLEN, 8);
        return WS_EV_NONE;
    }
    d->frame_len = len7;
    expect(d, WS_DEC_MASKKEY, 4);
    return check_length(d);
}

static int on_extended_length(struct ws_decoder *d)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < d->need; i++)
        v = v << 8 | d->hdr[i];
    /* §5.2: "the most significant bit MUST be 0" in the 64-bit form, and
     * "the minimal number of bytes MUST be used to encode the length", so a
     * 16-bit length below 126 or a 64-bit one below 65536 is an error. */
    if (d->need == 2 ? v < 126 : (v >> 63) != 0 || v <= 0xFFFF)
        return fail(d, WS_CLOSE_PROTOCOL_ERROR);
    d->frame_len = v;
    expect(d, WS_DEC_MASKKEY, 4);
    return check_length(d);
}

static int control_event(struct ws_decoder *d, struct ws_event *ev)
{
    unsigned op = d->b0 & 0xFu;
    ev->kind = WS_EV_CONTROL;
    ev->opcode = (uint8_t)op;
    ev->msg_opcode = 0;
    ev->fin = true;
    ev->rsv = d->b0 & 0x70u;
    ev->frame_len = d->frame_len;
    ev->data = d->control;
    ev->len = (size_t)d->frame_len;
    /* §5.5.1: after a Close the endpoint sends nothing more, so whatever
     * follows it on the wire is not read. */
    if (op == WS_OP_CLOSE)
        d->state = WS_DEC_CLOSED;
    else
        expect(d, WS_DEC_HEADER, 2);
    return WS_EV_CONTROL;
}

static void data_event(struct ws_decoder *d, struct ws_event *ev, enum ws_event_kind kind)
{
    ev->kind = kind;
    ev->opcode = d->b0 & 0xFu;
    ev->msg_opcode = d->msg_opcode;
    ev->fin = d->b0 & 0x80u;
    ev->rsv = d->b0 & 0x70u;
    ev->frame_len = d->frame_len;
    ev->data = NULL;
    ev->len = 0;
}

static int on_mask_key(struct ws_decoder *d, struct ws_event *ev)
{
    unsigned op = d->b0 & 0xFu;
    memcpy(d->key, d->hdr, 4);
    d->frame_done = 0;
    if (ws_opcode_is_control(op)) {
        if (d->frame_len == 0)
            return control_event(d, ev);
        d->state = WS_DEC_CONTROL;
        return WS_EV_NONE;
    }
    if (op != WS_OP_CONT) {
        d->msg_opcode = (uint8_t)op;
        d->msg_len = 0;
        rt_utf8_init(&d->utf8);
    }
    d->msg_len += d->frame_len;
    d->state = d->frame_len ? WS_DEC_PAYLOAD : WS_DEC_FRAME_END;
    data_event(d, ev, WS_EV_FRAME);
    return WS_EV_FRAME;
}

static int frame_end(struct ws_decoder *d, struct ws_event *ev)
{
    data_event(d, ev, WS_EV_FRAME_END);
    if (ev->fin) {
        /* §8.1: a text message that ends inside a character is invalid,
         * even though each byte so far was a valid prefix. */
        if (d->msg_opcode == WS_OP_TEXT && d->check_utf8 && !rt_utf8_complete(&d->utf8))
            return fail(d, WS_CLOSE_INVALID_DATA);
        d->msg_opcode = 0;
        d->msg_len = 0;
    }
    expect(d, WS_DEC_HEADER, 2);
    return WS_EV_FRAME_END;
}

/*
 * The usual case, a whole header at the start of buf: the same steps as the
 * collecting path below (on_fixed_header, on_extended_length, on_mask_key,
 * failing at the same byte), without copying the header piece by piece.
 * Returns what next_event would for it, with *off past the header, or
 * WS_EV_NONE with *off 0 when the header is not all there.
 */
static int whole_header(struct ws_decoder *d, const uint8_t *buf, size_t len, size_t *off, struct ws_event *ev)
{
    *off = 0;
    if (len < 6)
        return WS_EV_NONE;
    unsigned len7 = buf[1] & 0x7Fu;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (len < 6 + ext)
        return WS_EV_NONE;
    d->hdr[0] = buf[0];
    d->hdr[1] = buf[1];
    *off = 2;
    int rc = on_fixed_header(d);
    if (rc != WS_EV_NONE)
        return rc;
    if (ext) {
        memcpy(d->hdr, buf + 2, ext);
        *off += ext;
        if ((rc = on_extended_length(d)) != WS_EV_NONE)
            return rc;
    }
    memcpy(d->hdr, buf + *off, 4);
    *off += 4;
    return on_mask_key(d, ev);
}

/* One step of the decoder: an event kind (> 0) with *used bytes taken,
 * WS_EV_NONE with all len bytes taken, or STEP_FAILED. */
static int next_event(struct ws_decoder *d, uint8_t *buf, size_t len, size_t *used, struct ws_event *ev)
{
    size_t off = 0;
    int rc;

    if (d->state == WS_DEC_HEADER && d->have == 0) {
        rc = whole_header(d, buf, len, &off, ev);
        if (rc != WS_EV_NONE) {
            *used = off;
            return rc;
        }
        /* off > 0: a control frame's payload follows (state CONTROL). */
    }
    for (;;) {
        switch (d->state) {
        case WS_DEC_HEADER:
        case WS_DEC_EXTLEN:
        case WS_DEC_MASKKEY: {
            size_t take = (size_t)(d->need - d->have);
            if (take > len - off)
                take = len - off;
            if (take)
                memcpy(d->hdr + d->have, buf + off, take);
            d->have = (uint8_t)(d->have + take);
            off += take;
            if (d->have < d->need) {
                *used = off;
                return WS_EV_NONE;
            }
            if (d->state == WS_DEC_HEADER)
                rc = on_fixed_header(d);
            else if (d->state == WS_DEC_EXTLEN)
                rc = on_extended_length(d);
            else
                rc = on_mask_key(d, ev);
            if (rc != WS_EV_NONE) {
                *used = off;
                return rc;
            }
            continue;
        }

        case WS_DEC_PAYLOAD: {
            uint64_t left = d->frame_len - d->frame_done;
            size_t n = len - off;
            if (n == 0) {
                *used = off;
                return WS_EV_NONE;
            }
            if (left < n)
                n = (size_t)left;
            uint8_t *p = buf + off;
            ws_unmask(p, n, d->key, (unsigned)(d->frame_done & 3));
            if (d->msg_opcode == WS_OP_TEXT && d->check_utf8) {
                size_t ok = rt_utf8_feed(&d->utf8, p, n);
                if (ok < n) {
                    *used = off + ok + 1;
                    return fail(d, WS_CLOSE_INVALID_DATA);
                }
            }
            off += n;
            d->frame_done += n;
            if (d->frame_done == d->frame_len)
                d->state = WS_DEC_FRAME_END;
            data_event(d, ev, WS_EV_DATA);
            ev->data = p;
            ev->len = n;
            *used = off;
            return WS_EV_DATA;
        }

        case WS_DEC_CONTROL: {
            size_t left = (size_t)(d->frame_len - d->frame_done);
            size_t n = len - off;
            if (n == 0) {
                *used = off;
                return WS_EV_NONE;
            }
            if (left < n)
                n = left;
            uint8_t *p = d->control + d->frame_done;
            memcpy(p, buf + off, n);
            ws_unmask(p, n, d->key, (unsigned)(d->frame_done & 3));
            off += n;
            d->frame_done += n;
            if (d->frame_done < d->frame_len)
                continue;
            *used = off;
            return control_event(d, ev);
        }

        case WS_DEC_FRAME_END:
            *used = off;
            return frame_end(d, ev);

        case WS_DEC_CLOSED:
            *used = len;
            return WS_EV_NONE;

        case WS_DEC_FAILED:
        default:
            *used = off;
            return STEP_FAILED;
        }
    }
}

ssize_t ws_decoder_next(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev)
{
    size_t used = 0;
    int rc = next_event(d, buf, len, &used, ev);
    d->consumed += used;
    if (rc == STEP_FAILED)
        return RT_PARSE_ERROR;
    if (rc == WS_EV_NONE)
        return RT_PARSE_INCOMPLETE;
    return (ssize_t)used;
}

/*
 * Only a frame that will decode without error up to its payload takes this
 * path: anything the header checks of on_fixed_header, on_extended_length
 * or check_length would refuse returns 0 untouched, and the incremental
 * path then fails it at the same byte with the same code. The payload's
 * UTF-8 is the one failure decided here (the bytes are unmasked by then).
 */
ssize_t ws_decoder_whole(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev)
{
    if (d->state != WS_DEC_HEADER || d->have || d->msg_opcode || len < 6)
        return 0;
    unsigned b0 = buf[0], b1 = buf[1], op = b0 & 0xFu;
    /* FIN, no RSV bit, TEXT or BINARY (§5.2), masked (§5.1). */
    if ((b0 & 0xF0u) != 0x80u || (op != WS_OP_TEXT && op != WS_OP_BINARY) || !(b1 & 0x80u))
        return 0;
    unsigned len7 = b1 & 0x7Fu;
    size_t hlen = 6;
    uint64_t n = len7;
    if (len7 == 126) {
        if (len < 8)
            return 0;
        n = (uint64_t)buf[2] << 8 | buf[3];
        if (n < 126)
            return 0; /* not minimal */
        hlen = 8;
    } else if (len7 == 127) {
        if (len < 14)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | buf[2 + i];
        if ((n >> 63) || n <= 0xFFFF)
            return 0; /* MSB set or not minimal */
        hlen = 14;
    }
    if (n > len - hlen || n > d->max_frame || n > d->max_message)
        return 0;
    /* The state the incremental path leaves after the frame's end. */
    d->b0 = (uint8_t)b0;
    d->b1 = (uint8_t)b1;
    memcpy(d->key, buf + hlen - 4, 4);
    d->frame_len = d->frame_done = n;
    d->msg_len = 0;
    uint8_t *p = buf + hlen;
    ws_unmask(p, (size_t)n, d->key, 0);
    if (op == WS_OP_TEXT && d->check_utf8) {
        rt_utf8_init(&d->utf8);
        size_t ok = rt_utf8_feed(&d->utf8, p, (size_t)n);
        if (ok < n) {
            d->consumed += hlen + ok + 1;
            fail(d, WS_CLOSE_INVALID_DATA);
            return RT_PARSE_ERROR;
        }
        if (!rt_utf8_complete(&d->utf8)) {
            /* §8.1: ends inside a character. */
            d->consumed += hlen + n;
            fail(d, WS_CLOSE_INVALID_DATA);
            return RT_PARSE_ERROR;
        }
    }
    d->need = 2;
    d->consumed += hlen + n;
    ev->kind = WS_EV_MESSAGE;
    ev->opcode = (uint8_t)op;
    ev->msg_opcode = (uint8_t)op;
    ev->fin = true;
    ev->rsv = 0;
    ev->frame_len = n;
    ev->data = p;
    ev->len = (size_t)n;
    return (ssize_t)(hlen + n);
}

/*
 * The key repeats every 4 bytes, so 8 bytes at a time XOR with the key
 * rotated to the current phase, written twice into a 64-bit word; the words
 * are loaded and stored unaligned (memcpy), so no byte-by-byte head is
 * needed, and byte i of the tail takes key byte (phase + i) & 3 like the
 * words.
 */
unsigned ws_unmask(uint8_t *p, size_t n, const uint8_t key[4], unsigned phase)
{
    phase &= 3;
    uint8_t k8[8];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Byte j of a little-endian word is its bits 8j..8j+7: rotating the
     * key right by 8 * phase bits starts it at key byte phase. */
    uint32_t k;
    memcpy(&k, key, 4);
    if (phase)
        k = k >> (8 * phase) | k << (32 - 8 * phase);
    uint64_t m = (uint64_t)k << 32 | k;
    memcpy(k8, &m, 8);
#else
    for (unsigned j = 0; j < 8; j++)
        k8[j] = key[(phase + j) & 3];
    uint64_t m;
    memcpy(&m, k8, 8);
#endif
    size_t i = 0;
    for (; n - i >= 32; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        w[0] ^= m;
        w[1] ^= m;
        w[2] ^= m;
        w[3] ^= m;
        memcpy(p + i, w, 32);
    }
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k8[i & 7];
    return (unsigned)((phase + n) & 3);
}
