/*
 * life.c: the two ends of a connection's awake part and of the connection
 * itself. ws_live_new / ws_live_free bracket every period awake (the first
 * run and each wake-up from hibernation); ws_conn_finish is the one end of
 * every path: the loop finishing, a refusal in on_connect, a kill, a panic
 * outside a handler, the runtime shutting down.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "http/server.h"
#include "ws/conn.h"

struct close_call {
    struct ws_conn *c;
    unsigned code;
    const char *reason;
    size_t n;
};

static void call_close(void *arg)
{
    struct close_call *cc = arg;
    cc->c->h->on_close(ws_handle(cc->c->pid), (int)cc->code, cc->reason, cc->n, cc->c->h->arg);
}

static void report_close(struct ws_conn *c)
{
    if (c->phase != WS_PHASE_OPEN || c->closed_reported)
        return;
    c->closed_reported = true;
    ws_table_set_phase(c, WS_PHASE_DONE);
    atomic_store(&c->accepting, false);
    /* Killed while hibernating: no live part, the close state was OPEN. */
    struct ws_close idle;
    ws_close_init(&idle);
    struct ws_close *cl = c->lv ? &c->lv->close : &idle;
    unsigned code;
    if (c->panicked) {
        code = WS_CLOSE_INTERNAL_ERROR;
        cl->reason_len = 0;
    } else if (cl->state == WS_STATE_CLOSED && cl->code) {
        code = cl->code;
    } else if (cl->initiator == WS_BY_LOCAL && c->close_written) {
        /* Our Close went out and no answer came: report what we said. */
        code = cl->sent_code ? cl->sent_code : WS_CLOSE_NO_STATUS;
    } else {
        code = WS_CLOSE_ABNORMAL;
        cl->reason_len = 0;
    }
    ws_route_closed(c->route, code);
    if (c->reaped_heartbeat)
        ws_count(&c->route->closed_heartbeat, 1);
    if (c->reaped_stall)
        ws_count(&c->route->closed_stall, 1);
    if (c->reaped_bp)
        ws_count(&c->route->closed_bp, 1);
    ws_conn_count_add(-1);
    if (c->h->on_close) {
        struct close_call cc = {c, code, cl->reason, cl->reason_len};
        c->panicked = false; /* on_close still runs after a panic */
        ws_call(c, call_close, &cc);
    }
}

/* ---- accounting of hibernated connections ---- */

#define IDLE_PARTS 9

/* In the order of struct ws_idle_totals. Relaxed: statistics, nothing is
 * ordered by them. */
static _Atomic uint64_t idle[IDLE_PARTS];

static size_t usable(const void *p)
{
    return p ? malloc_usable_size((void *)p) : 0;
}

void ws_idle_enter(struct ws_conn *c)
{
    atomic_fetch_add_explicit(&idle[0], 1, memory_order_relaxed);
    c->idle_counted = true;
}

void ws_idle_leave(struct ws_conn *c)
{
    if (!c->idle_counted)
        return;
    c->idle_counted = false;
    size_t chunks;
    uint64_t v[IDLE_PARTS] = {0, 1};
    v[2] = usable(c) + usable(c->proto_buf);
    if (c->lv) {
        struct ws_live *lv = c->lv;
        v[3] = usable(lv) + usable(lv->rbuf) + usable(lv->reasm.buf.data) + lv->q.bytes;
    }
    v[4] = c->hc ? http_conn_bytes(c->hc) : 0;
    v[5] = usable(c->stream);
    v[6] = actor_gc_state_bytes(&chunks);
    v[7] = chunks;
    v[8] = c->pmd.reserved;
    atomic_fetch_sub_explicit(&idle[0], 1, memory_order_relaxed);
    for (int i = 1; i < IDLE_PARTS; i++)
        atomic_fetch_add_explicit(&idle[i], v[i], memory_order_relaxed);
}

void ws_idle_totals(struct ws_idle_totals *out)
{
    uint64_t *f[IDLE_PARTS] = {&out->hibernated, &out->samples,    &out->record,      &out->live, &out->http,
                               &out->stream,     &out->heap_state, &out->heap_chunks, &out->pmd};
    for (int i = 0; i < IDLE_PARTS; i++)
        *f[i] = atomic_load_explicit(&idle[i], memory_order_relaxed);
}

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

int ws_live_new(struct ws_conn *c)
{
    struct ws_live *lv = calloc(1, sizeof *lv);
    if (!lv)
        return -ENOMEM;
    /* The read buffer comes with the first read: a wake-up for a timer or
     * a mailbox message needs none. */
    const SnowWsHandler *h = c->h;
    struct ws_decoder_config dc = {.max_message = h->max_message ? h->max_message : WS_DEFAULT_MAX_MESSAGE};
    ws_decoder_init(&lv->dec, &dc);
    ws_reasm_init(&lv->reasm, NULL, 0, (size_t)dc.max_message, grow, NULL);
    ws_close_init(&lv->close);
    ws_outq_init(&lv->q);
    lv->close_due = lv->stall_due = lv->drain_due = lv->spread_due = -1;
    lv->stall_kernel = -1;
    c->lv = lv;
    ws_pmd_live_init(c);
    return 0;
}

void ws_live_free(struct ws_conn *c)
{
    struct ws_live *lv = c->lv;
    if (!lv)
        return;
    ws_outq_clear(&lv->q);
    ws_payload_drop(lv->msg_hold); /* ended inside on_message */
    free(lv->rbuf);
    free(lv->reasm.buf.data);
    ws_pmd_live_free(lv);
    free(lv);
    c->lv = NULL;
}

void ws_conn_free(struct ws_conn *c)
{
    ws_live_free(c);
    ws_pmd_conn_fini(c);
    /* The root slot goes with the record (on the owning actor: a
     * terminate callback elsewhere ends the heap with the actor). */
    if (c->user_rooted && snow_actor_self() == c->pid)
        actor_gc_root_remove(&c->user);
    free(c->proto_buf);
    free(c);
}

void ws_conn_finish(struct ws_conn *c)
{
    /* Ended while hibernated (a kill, the runtime stopping). */
    ws_idle_leave(c);
    report_close(c);
    atomic_store(&c->accepting, false);
    ws_rooms_member_gone(c->pid);
    /* Out of the table first: no other actor can queue a frame after this,
     * so the frames still in the mailbox are all there is to give back. */
    ws_table_remove(c);
    SnowMessage *m;
    while ((m = snow_actor_receive(0)) != NULL) {
        /* A frame, or the rest of one (conn.c, direct delivery): the
         * reference comes first in both. */
        if (m->tag == SNOW_TAG_WS_BROADCAST && m->len >= sizeof(struct ws_shared_frame *)) {
            struct ws_shared_frame *f;
            memcpy(&f, m->data, sizeof f);
            ws_shared_frame_unref(f);
        }
    }
    http_conn_on_exit(c->hc, NULL, NULL);
    if (c->stream)
        http_stream_close(c->stream);
    c->stream = NULL;
    ws_conn_free(c);
}

void ws_conn_on_exit(int reason, void *arg)
{
    struct ws_conn *c = arg;
    /* A kill, a crash outside a handler or the runtime stopping: the peer
     * gets no Close, on_close gets 1006 (1011 after a panic). */
    if (reason == SNOW_EXIT_PANIC)
        c->panicked = true;
    ws_conn_reclaim(c);
    ws_conn_finish(c);
}
