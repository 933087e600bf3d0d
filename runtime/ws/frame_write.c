/*
 * frame_write.c: the write path of RFC 6455 framing. A server never masks
 * (§5.1: "A server MUST NOT mask any frames"), so nothing here knows about
 * mask keys; the MASK bit is always clear.
 */
#include <errno.h>
#include <string.h>

#include "rt.h"
#include "ws/frame.h"

static bool opcode_known(unsigned op)
{
    switch (op) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        return true;
    default:
        return false;
    }
}

int ws_frame_header(uint8_t out[WS_SERVER_HEADER_MAX], unsigned opcode, bool fin, uint64_t len)
{
    if (!opcode_known(opcode) || len >> 63)
        return -EINVAL;
    if (ws_opcode_is_control(opcode) && (!fin || len > WS_CONTROL_MAX))
        return -EINVAL;

    out[0] = (uint8_t)((fin ? 0x80u : 0) | opcode);
    /* §5.2: lengths in network byte order, in the shortest form. */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

ssize_t ws_frame_encode(uint8_t *out, size_t cap, unsigned opcode, bool fin, const void *payload, size_t n)
{
    uint8_t hdr[WS_SERVER_HEADER_MAX];
    int h = ws_frame_header(hdr, opcode, fin, n);
    if (h < 0)
        return h;
    if (cap < (size_t)h || cap - (size_t)h < n)
        return -ENOBUFS;
    memcpy(out, hdr, (size_t)h);
    if (n)
        memcpy(out + h, payload, n);
    return (ssize_t)((size_t)h + n);
}

int ws_frame_control(uint8_t out[WS_CONTROL_FRAME_MAX], unsigned opcode, const void *payload, size_t n)
{
    if (!ws_opcode_is_control(opcode))
        return -EINVAL;
    ssize_t r = ws_frame_encode(out, WS_CONTROL_FRAME_MAX, opcode, true, payload, n);
    return r == -ENOBUFS ? -EINVAL : (int)r;
}

void ws_fragmenter_init(struct ws_fragmenter *f, unsigned opcode, const void *payload, size_t n, size_t frag)
{
    f->p = payload;
    f->left = n;
    f->frag = frag ? frag : SIZE_MAX;
    f->opcode = (uint8_t)opcode;
    f->done = false;
}

int ws_fragmenter_next(struct ws_fragmenter *f, uint8_t hdr[WS_SERVER_HEADER_MAX], size_t *hdr_len,
                       const uint8_t **payload, size_t *n)
{
    if (f->done)
        return 0;
    size_t take = f->left < f->frag ? f->left : f->frag;
    bool fin = take == f->left;
    int h = ws_frame_header(hdr, f->opcode, fin, take);
    if (h < 0)
        return h;
    *hdr_len = (size_t)h;
    *payload = f->p;
    *n = take;
    if (take)
        f->p += take;
    f->left -= take;
    /* §5.4: every fragment after the first is a continuation. */
    f->opcode = WS_OP_CONT;
    f->done = fin;
    return 1;
}
