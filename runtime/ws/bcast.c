/*
 * bcast.c: reference-counted broadcast frames (bcast.h).
 */
#include "ws/bcast.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

struct ws_shared_frame *ws_shared_frame_new(unsigned opcode, unsigned rsv, const void *payload, size_t n)
{
    if ((opcode != WS_OP_TEXT && opcode != WS_OP_BINARY) || (rsv & ~(WS_RSV1 | WS_RSV2 | WS_RSV3)))
        return NULL;
    size_t hlen = ws_frame_header_len(n);
    if (n > SIZE_MAX - sizeof(struct ws_shared_frame) - hlen)
        return NULL;
    struct ws_shared_frame *f = malloc(sizeof *f + hlen + n);
    if (!f)
        return NULL;
    int h = ws_frame_header(f->bytes, opcode, true, n);
    if (h < 0) {
        free(f);
        return NULL;
    }
    f->bytes[0] |= (uint8_t)rsv;
    if (n)
        memcpy(f->bytes + h, payload, n);
    /* Relaxed: the frame is published to other threads only through a
     * mailbox send or a lock, which orders these plain writes. */
    atomic_init(&f->refs, 1);
    f->room_epoch = 0;
    f->room_seq = 0;
    f->ext = NULL;
    f->hold = NULL;
    f->opcode = (uint8_t)opcode;
    f->rsv = (uint8_t)rsv;
    f->payload_len = n;
    f->len = (size_t)h + n;
    return f;
}

void ws_shared_frame_ref(struct ws_shared_frame *f)
{
    /* Relaxed: a new reference is taken only by a holder of one. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void ws_shared_frame_unref(struct ws_shared_frame *f)
{
    if (!f)
        return;
    /* Release so every holder's reads happen before the free, acquire so
     * the last holder's free happens after them (acq_rel rather than a
     * separate fence: ThreadSanitizer does not model fences). */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}
