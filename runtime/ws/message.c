#include "ws/message.h"

#include <errno.h>
#include <string.h>

#include "rt.h"
#include "ws/close.h"

void ws_msgbuf_init(struct ws_msgbuf *b, void *data, size_t cap, size_t limit, ws_grow_fn grow, void *ctx)
{
    b->data = data;
    b->len = 0;
    b->cap = data ? cap : 0;
    b->limit = limit ? limit : (size_t)WS_DEFAULT_MAX_MESSAGE;
    b->grow = grow;
    b->ctx = ctx;
}

int ws_msgbuf_reserve(struct ws_msgbuf *b, size_t n)
{
    if (n > b->limit - b->len)
        return SNOW_ELIMIT;
    if (n <= b->cap - b->len)
        return 0;
    if (!b->grow)
        return -ENOMEM;
    /* Doubling keeps appends amortised O(1); the cap never passes the
     * limit, so a peer cannot make us hold more than it. */
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > b->limit)
        cap = b->limit;
    void *nd = b->grow(b->ctx, b->data, cap);
    if (!nd)
        return -ENOMEM;
    b->data = nd;
    b->cap = cap;
    return 0;
}

int ws_msgbuf_append(struct ws_msgbuf *b, const void *p, size_t n)
{
    int rc = ws_msgbuf_reserve(b, n);
    if (rc < 0)
        return rc;
    /* Bytes read straight into the free room (ws_msgbuf_room) are there
     * already. */
    if (n && p != b->data + b->len)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ws_reasm_init(struct ws_reasm *r, void *data, size_t cap, size_t limit, ws_grow_fn grow, void *ctx)
{
    ws_msgbuf_init(&r->buf, data, cap, limit, grow, ctx);
    r->opcode = 0;
    r->in_message = false;
    r->ready = false;
    r->close_code = 0;
}

static int fail(struct ws_reasm *r, uint16_t code)
{
    r->close_code = code;
    r->in_message = false;
    return ws_fail_error(code);
}

int ws_reasm_feed(struct ws_reasm *r, const struct ws_event *ev)
{
    if (r->close_code)
        return ws_fail_error(r->close_code);
    if (r->ready) {
        r->ready = false;
        ws_msgbuf_clear(&r->buf);
    }
    switch (ev->kind) {
    case WS_EV_FRAME:
        /* The decoder enforces §5.4 already; checking again keeps this
         * helper safe to drive from any event source. */
        if (ev->opcode == WS_OP_CONT) {
            if (!r->in_message)
                return fail(r, WS_CLOSE_PROTOCOL_ERROR);
        } else {
            if (r->in_message || (ev->opcode != WS_OP_TEXT && ev->opcode != WS_OP_BINARY))
                return fail(r, WS_CLOSE_PROTOCOL_ERROR);
            r->opcode = ev->opcode;
            r->in_message = true;
            ws_msgbuf_clear(&r->buf);
        }
        return WS_REASM_MORE;

    case WS_EV_DATA: {
        if (!r->in_message)
            return fail(r, WS_CLOSE_PROTOCOL_ERROR);
        int rc = ws_msgbuf_append(&r->buf, ev->data, ev->len);
        if (rc < 0)
            return fail(r, ws_fail_code(rc)); /* 1009 over the limit, 1011 out of memory */
        return WS_REASM_MORE;
    }

    case WS_EV_FRAME_END:
        if (!r->in_message)
            return fail(r, WS_CLOSE_PROTOCOL_ERROR);
        if (!ev->fin)
            return WS_REASM_MORE;
        r->in_message = false;
        r->ready = true;
        return WS_REASM_MESSAGE;

    case WS_EV_CONTROL:
    case WS_EV_NONE:
    default:
        return WS_REASM_MORE;
    }
}
