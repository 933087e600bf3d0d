/*
 * pmd_conn.c: permessage-deflate in the connection loop. conn.c calls
 * these at its decode/deliver point and where it queues own messages; the
 * protocol rules (RFC 7692 §6) and the memory policy live here.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ws/conn.h"
#include "ws/pmd.h"

_Static_assert(sizeof(((struct ws_handshake *)0)->ext_answer) >= WS_PMD_RESPONSE_MAX,
               "the handshake must hold the longest answer");

/* An inflate buffer up to this size stays with an awake connection for the
 * next message; a larger one is freed after its message. */
#define KEEP_INFLATE_BUF (64 * 1024)

/* Open connections with c->pmd.on && c->pmd.p.server_nct. */
static atomic_size_t shared_members;

static void opts_of(const SnowWsHandler *h, struct ws_pmd_opts *o)
{
    memset(o, 0, sizeof *o);
    o->enabled = h->deflate != 0;
    o->window_bits = (uint8_t)(h->deflate_window_bits >= 8 && h->deflate_window_bits <= 15 ? h->deflate_window_bits : 15);
    o->mem_level = (uint8_t)(h->deflate_mem_level >= 1 && h->deflate_mem_level <= 9 ? h->deflate_mem_level : 8);
    o->no_context_takeover = h->deflate_no_context_takeover != 0;
    o->threshold = h->deflate_threshold;
}

/* What the context-takeover streams of p would cost. */
static size_t takeover_cost(const struct ws_pmd_params *p)
{
    size_t n = 0;
    if (!p->server_nct)
        n += ws_zout_cost(p->server_bits, p->mem_level);
    if (!p->client_nct)
        n += ws_zin_cost(p->client_bits);
    return n;
}

void ws_pmd_accept(struct ws_conn *c, struct ws_handshake *hs)
{
    struct ws_pmd_opts o;
    opts_of(c->h, &o);
    struct ws_pmd_params p;
    hs->ext_answer_len = 0;
    if (ws_pmd_negotiate(hs, &o, true, &p) < 0)
        return;
    size_t cost = takeover_cost(&p);
    if (cost && !ws_pmd_reserve(cost)) {
        /* Past the cap: the same offer without context takeover, which
         * holds nothing per connection. */
        if (ws_pmd_negotiate(hs, &o, false, &p) < 0)
            return;
        cost = 0;
    }
    int len = ws_pmd_response(&p, hs->ext_answer, sizeof hs->ext_answer);
    if (len < 0) {
        ws_pmd_release(cost);
        return;
    }
    hs->ext_answer_len = (uint8_t)len;
    c->pmd.on = true;
    c->pmd.p = p;
    c->pmd.reserved = cost;
    if (p.server_nct)
        atomic_fetch_add_explicit(&shared_members, 1, memory_order_relaxed);
    if (c->lv)
        ws_pmd_live_init(c);
}

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

void ws_pmd_live_init(struct ws_conn *c)
{
    struct ws_live *lv = c->lv;
    /* §6: RSV1 means "compressed" only once the extension is agreed;
     * without it the decoder keeps refusing it (1002). */
    lv->dec.rsv_allowed = c->pmd.on ? WS_RSV1 : 0;
    lv->pmd.msg = false;
    size_t limit = c->h->max_message ? c->h->max_message : (size_t)WS_DEFAULT_MAX_MESSAGE;
    ws_msgbuf_init(&lv->pmd.out, NULL, 0, limit, grow, NULL);
}

void ws_pmd_live_free(struct ws_live *lv)
{
    free(lv->pmd.out.data);
    lv->pmd.out.data = NULL;
    lv->pmd.out.cap = lv->pmd.out.len = 0;
}

void ws_pmd_conn_fini(struct ws_conn *c)
{
    ws_zin_free(c->pmd.zin);
    ws_zout_free(c->pmd.zout);
    c->pmd.zin = NULL;
    c->pmd.zout = NULL;
    ws_pmd_release(c->pmd.reserved);
    c->pmd.reserved = 0;
    if (c->pmd.on && c->pmd.p.server_nct)
        atomic_fetch_sub_explicit(&shared_members, 1, memory_order_relaxed);
    c->pmd.on = false;
}

uint16_t ws_pmd_on_frame(struct ws_conn *c, const struct ws_event *ev)
{
    if (!c->pmd.on)
        return 0; /* the decoder refuses RSV1 by itself (rsv_allowed 0) */
    bool rsv1 = (ev->rsv & WS_RSV1) != 0;
    if (ev->kind == WS_EV_CONTROL || ev->opcode == WS_OP_CONT)
        /* §6.1: the "Per-Message Compressed" bit belongs to the first
         * frame of a data message only. */
        return rsv1 ? WS_CLOSE_PROTOCOL_ERROR : 0;
    c->lv->pmd.msg = rsv1;
    /* A compressed message's wire bytes are DEFLATE data: its text is
     * checked after inflating (ws_inflate_msg); a plain one's by the
     * decoder as usual. The decoder reads the flag from the frame after
     * this header event, for the whole message. */
    c->lv->dec.check_utf8 = !rsv1;
    return 0;
}

uint16_t ws_pmd_inbound(struct ws_conn *c, const uint8_t **p, size_t *n, unsigned opcode)
{
    struct ws_live *lv = c->lv;
    if (!lv->pmd.msg)
        return 0;
    lv->pmd.msg = false;
    struct ws_zin *z = NULL;
    if (!c->pmd.p.client_nct) {
        if (!c->pmd.zin && !(c->pmd.zin = ws_zin_new(c->pmd.p.client_bits)))
            return WS_CLOSE_INTERNAL_ERROR;
        z = c->pmd.zin;
    }
    uint16_t code = ws_inflate_msg(z, *p, *n, opcode == WS_OP_TEXT, &lv->pmd.out);
    if (code)
        return code;
    *p = lv->pmd.out.data;
    *n = lv->pmd.out.len;
    return 0;
}

void ws_pmd_after_message(struct ws_conn *c)
{
    struct ws_msgbuf *b = &c->lv->pmd.out;
    b->len = 0;
    if (b->cap > KEEP_INFLATE_BUF)
        ws_pmd_live_free(c->lv);
}

int ws_pmd_send(struct ws_conn *c, unsigned opcode, const void *p, size_t n)
{
    if (!c->pmd.on || n < c->pmd.p.threshold || !c->lv)
        return 1;
    struct ws_zout *z = NULL;
    if (!c->pmd.p.server_nct) {
        if (!c->pmd.zout && !(c->pmd.zout = ws_zout_new(c->pmd.p.server_bits, c->pmd.p.mem_level)))
            return 1; /* no memory for a stream: this message goes plain */
        z = c->pmd.zout;
    }
    uint8_t *out;
    size_t len;
    if (ws_deflate_msg(z, c->pmd.p.server_bits, c->pmd.p.mem_level, p, n, &out, &len) < 0)
        return 1;
    int r = ws_outq_message_rsv(&c->lv->q, opcode, WS_RSV1, out, len);
    free(out);
    if (r < 0 && z)
        /* The compressor's window holds a message the peer will never
         * see: start an empty window, which the peer's (older, larger)
         * one decodes just as well. */
        ws_zout_reset(z);
    return r;
}

bool ws_pmd_frame_ok(const struct ws_conn *c, const struct ws_shared_frame *f)
{
    if (!(f->rsv & WS_RSV1))
        return true;
    return c->pmd.on && c->pmd.p.server_nct;
}

static int member_info(struct ws_conn *c, void *arg)
{
    struct ws_pmd_member *m = arg;
    if (!c || !atomic_load(&c->accepting))
        return SNOW_ECLOSED;
    /* pmd is written once, before the 101, by the owner; the table lock
     * orders that write before this read. */
    bool shared = c->pmd.on && c->pmd.p.server_nct;
    m->bits = shared ? c->pmd.p.server_bits : 0;
    m->threshold = shared ? c->pmd.p.threshold : 0;
    return 0;
}

int ws_pmd_member_info(SnowPid pid, struct ws_pmd_member *m)
{
    *m = (struct ws_pmd_member){0};
    return ws_table_with(pid, member_info, m);
}

int ws_pmd_member_bits(SnowPid pid)
{
    struct ws_pmd_member m;
    int r = ws_pmd_member_info(pid, &m);
    return r < 0 ? r : m.bits;
}

size_t ws_pmd_shared_members(void)
{
    return atomic_load_explicit(&shared_members, memory_order_relaxed);
}
