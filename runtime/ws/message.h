/*
 * message.h: reassembly of fragmented data messages (RFC 6455 §5.4) from
 * the decoder's events into a growable buffer that the caller provides, so
 * the bytes can live wherever the connection wants them (its actor heap).
 * Growth follows the bytes that actually arrived, never a declared length.
 */
#ifndef SNOW_WS_MESSAGE_H
#define SNOW_WS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws/frame.h"

/* Resizes the block at old (NULL at first) to new_cap bytes, keeping its
 * contents, like realloc. Returns NULL when memory is exhausted; old stays
 * valid then. */
typedef void *(*ws_grow_fn)(void *ctx, void *old, size_t new_cap);

struct ws_msgbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit;
    ws_grow_fn grow;
    void *ctx;
};

/* data may hold an initial block of cap bytes (or NULL, 0). limit 0 means
 * WS_DEFAULT_MAX_MESSAGE. grow may be NULL for a fixed buffer. */
void ws_msgbuf_init(struct ws_msgbuf *b, void *data, size_t cap, size_t limit, ws_grow_fn grow, void *ctx);
/* 0, SNOW_ELIMIT when the total would pass the limit, -ENOMEM when the
 * buffer cannot grow. Nothing is appended on failure. */
int ws_msgbuf_append(struct ws_msgbuf *b, const void *p, size_t n);
/* Makes room for n more bytes (growing as ws_msgbuf_append would), without
 * appending: the same 0, SNOW_ELIMIT or -ENOMEM, nothing changed on
 * failure. Bytes then written at ws_msgbuf_room and appended from there
 * are not copied again. */
int ws_msgbuf_reserve(struct ws_msgbuf *b, size_t n);

static inline uint8_t *ws_msgbuf_room(struct ws_msgbuf *b)
{
    return b->data + b->len;
}

static inline void ws_msgbuf_clear(struct ws_msgbuf *b)
{
    b->len = 0;
}

enum { WS_REASM_MORE = 0, WS_REASM_MESSAGE = 1 };

struct ws_reasm {
    struct ws_msgbuf buf;
    uint8_t opcode;  /* TEXT or BINARY while a message is in progress or ready */
    bool in_message;
    bool ready;      /* buf holds a whole message until the next feed */
    uint16_t close_code;
};

void ws_reasm_init(struct ws_reasm *r, void *data, size_t cap, size_t limit, ws_grow_fn grow, void *ctx);

/*
 * Takes one decoder event. Returns WS_REASM_MESSAGE when a message is
 * complete (r->opcode, r->buf.data, r->buf.len; valid until the next call),
 * WS_REASM_MORE otherwise, or a negative error with r->close_code set: a
 * continuation with no message, a new message inside one (1002), the limit
 * (1009), no memory (1011). Control events pass through untouched, so a
 * ping between fragments does not disturb the message.
 */
int ws_reasm_feed(struct ws_reasm *r, const struct ws_event *ev);

#endif
