/*
 * api.c: the snow_ws_* functions of the ABI. A call from the connection's
 * own actor works on the connection directly; a call from anywhere else
 * looks the handle's PID up in the table and reaches the connection
 * through its mailbox, so only the connection's actor ever touches its
 * socket and queue.
 */
#include <errno.h>
#include <string.h>

#include "actor/actor.h"
#include "utf8.h"
#include "ws/conn.h"

static void install_hook(void)
{
    http_set_upgrade_hook(ws_upgrade_entry);
}

/* A program linked with the WebSocket layer serves snow_router_ws routes
 * even when it never calls snow_ws_handler_init. */
__attribute__((constructor)) static void ws_api_init(void)
{
    install_hook();
}

void snow_ws_handler_init(SnowWsHandler *h)
{
    install_hook();
    if (!h)
        return;
    memset(h, 0, sizeof *h);
    h->origin_policy = SNOW_WS_ORIGIN_SAME;
    h->max_message = (size_t)WS_DEFAULT_MAX_MESSAGE;
    h->outbound_limit = (size_t)1 << 20;
    h->ping_interval_ms = 30000;
    h->pong_timeout_ms = 10000;
    h->close_timeout_ms = 5000;
    h->write_timeout_ms = 30000;
    h->drain_timeout_ms = 5000;
    h->drain_spread_ms = 0;
    h->deflate = 0;
    h->deflate_window_bits = 15;
    h->deflate_mem_level = 8;
    h->deflate_no_context_takeover = 0;
    h->deflate_threshold = WS_PMD_DEFAULT_THRESHOLD;
}

/* ---- sending ---- */

static int send_data(SnowWsConn *conn, unsigned opcode, const void *data, size_t len)
{
    SnowPid pid = ws_handle_pid(conn);
    if (!pid)
        return SNOW_ECLOSED;
    if (len && !data)
        return -EINVAL;
    struct ws_conn *c = ws_conn_current(pid);
    if (!c)
        c = ws_conn_self(pid);
    /* The text message on_message is looking at was validated as it
     * arrived: echoed whole, it needs no second pass. */
    bool valid = c && c->lv && c->lv->msg_text && data == c->lv->msg && len == c->lv->msg_len;
    if (opcode == WS_OP_TEXT && !valid && !rt_utf8_valid(data, len, NULL))
        return -EILSEQ;
    if (c)
        return ws_conn_send_own(c, opcode, data, len);
    /* Another actor: one whole frame through the mailbox, so that frames
     * of different senders can never interleave inside a message. */
    struct ws_shared_frame *f = ws_shared_frame_new(opcode, 0, data, len);
    if (!f)
        return -ENOMEM;
    int r = ws_conn_deliver(pid, f);
    ws_shared_frame_unref(f);
    return r;
}

int snow_ws_send_text(SnowWsConn *conn, const void *data, size_t len)
{
    return send_data(conn, WS_OP_TEXT, data, len);
}

int snow_ws_send_binary(SnowWsConn *conn, const void *data, size_t len)
{
    return send_data(conn, WS_OP_BINARY, data, len);
}

struct request {
    uint64_t tag;
    const void *p;
    size_t n;
};

static int request_locked(struct ws_conn *c, void *arg)
{
    struct request *r = arg;
    if (!c || !atomic_load(&c->accepting))
        return SNOW_ECLOSED;
    /* A Close on its way counts as pending output until the connection
     * takes it (conn.c take_mail): a frame this sender publishes after it
     * must not be written directly ahead of it (conn.c, direct delivery). */
    bool close = r->tag == SNOW_TAG_WS_CLOSE;
    if (close)
        atomic_fetch_add_explicit(&c->queued, 1, memory_order_relaxed);
    if (actor_send_raw(c->pid, r->tag, snow_actor_self(), r->p, r->n) < 0) {
        if (close)
            atomic_fetch_sub_explicit(&c->queued, 1, memory_order_relaxed);
        return SNOW_ECLOSED;
    }
    return 0;
}

int snow_ws_ping(SnowWsConn *conn, const void *data, size_t len)
{
    SnowPid pid = ws_handle_pid(conn);
    if (len > WS_CONTROL_MAX || (len && !data))
        return -EINVAL;
    struct ws_conn *c = ws_conn_self(pid);
    if (c)
        return ws_conn_ping_own(c, data, len);
    struct request r = {SNOW_TAG_WS_PING, data, len};
    return ws_table_with(pid, request_locked, &r);
}

int snow_ws_close(SnowWsConn *conn, int code, const char *reason, size_t len)
{
    SnowPid pid = ws_handle_pid(conn);
    if (code < 0 || (code && !ws_close_code_valid((unsigned)code)) || (len && !reason))
        return -EINVAL;
    if (len && !rt_utf8_valid(reason, len, NULL))
        return -EILSEQ;
    struct ws_conn *c = ws_conn_self(pid);
    if (c)
        return ws_conn_close_own(c, (unsigned)code, reason, len);
    struct ws_close_req req = {.code = (uint16_t)code};
    size_t n = rt_utf8_prefix(reason, len, WS_CLOSE_REASON_MAX);
    if (n)
        memcpy(req.reason, reason, n);
    req.len = (uint8_t)n;
    struct request r = {SNOW_TAG_WS_CLOSE, &req, sizeof req};
    return ws_table_with(pid, request_locked, &r);
}

/* ---- reading the connection's state ---- */

static int buffered_locked(struct ws_conn *c, void *arg)
{
    int64_t *out = arg;
    if (!c || c->phase == WS_PHASE_DONE)
        return SNOW_ECLOSED;
    *out = atomic_load_explicit(&c->queued, memory_order_relaxed) +
           atomic_load_explicit(&c->kernel, memory_order_relaxed);
    return 0;
}

int64_t snow_ws_buffered(const SnowWsConn *conn)
{
    int64_t v = 0;
    int r = ws_table_with(ws_handle_pid(conn), buffered_locked, &v);
    return r < 0 ? r : v;
}

static int rtt_locked(struct ws_conn *c, void *arg)
{
    (void)arg;
    if (!c || c->phase == WS_PHASE_DONE)
        return SNOW_ECLOSED;
    return atomic_load_explicit(&c->rtt_ms, memory_order_relaxed);
}

int snow_ws_rtt_ms(const SnowWsConn *conn)
{
    return ws_table_with(ws_handle_pid(conn), rtt_locked, NULL);
}

SnowPid snow_ws_pid(const SnowWsConn *conn)
{
    return ws_handle_pid(conn);
}

static int exists_locked(struct ws_conn *c, void *arg)
{
    (void)arg;
    return c && c->phase != WS_PHASE_DONE;
}

SnowWsConn *snow_ws_conn(SnowPid pid)
{
    return ws_table_with(pid, exists_locked, NULL) > 0 ? ws_handle(pid) : NULL;
}

/* ---- own-actor state ---- */

/* The connection of the handle when the caller is its actor. *err says
 * why not otherwise: -EPERM (another actor) or SNOW_ECLOSED (ended). */
static struct ws_conn *own(const SnowWsConn *conn, int *err)
{
    SnowPid pid = ws_handle_pid(conn);
    struct ws_conn *c = ws_conn_self(pid);
    if (c && c->phase != WS_PHASE_DONE)
        return c;
    *err = pid && pid == snow_actor_self() ? SNOW_ECLOSED : -EPERM;
    return NULL;
}

int snow_ws_set_user(SnowWsConn *conn, void *user)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    if (!c)
        return err;
    /* The record is not in the actor's heap, so the slot is made a root
     * of that heap's collector once it points into the heap: user data
     * allocated there stays alive while the connection holds it (one
     * slot, registered once; user data elsewhere needs none, and an actor
     * without a heap gets none for it). */
    if (user && !c->user_rooted && actor_gc_owns(user)) {
        int r = actor_gc_root_add(&c->user);
        if (r < 0)
            return r;
        c->user_rooted = true;
    }
    c->user = user;
    return 0;
}

void *snow_ws_user(const SnowWsConn *conn)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    return c ? c->user : NULL;
}

/* Sec-WebSocket-Protocol values, as one comma-separated list across all
 * header lines (RFC 7230 §7). Returns the i-th item. */
static bool offered(const struct ws_conn *c, size_t i, struct http_str *out)
{
    const struct http_request *r = &c->lv->req->r;
    for (size_t k = 0; k < r->nheaders; k++) {
        if (!http_str_eq_ci(r->headers[k].name, "Sec-WebSocket-Protocol"))
            continue;
        struct http_str v = r->headers[k].value;
        size_t pos = 0;
        while (pos < v.n) {
            while (pos < v.n && (v.p[pos] == ' ' || v.p[pos] == '\t' || v.p[pos] == ','))
                pos++;
            size_t start = pos;
            while (pos < v.n && v.p[pos] != ',' && v.p[pos] != ' ' && v.p[pos] != '\t')
                pos++;
            if (pos > start && i-- == 0) {
                *out = (struct http_str){v.p + start, pos - start};
                return true;
            }
        }
    }
    return false;
}

const char *snow_ws_protocol_offered(const SnowWsConn *conn, size_t i, size_t *len)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    struct http_str item;
    if (len)
        *len = 0;
    if (!c || c->phase != WS_PHASE_CONNECTING || !c->lv->req || !offered(c, i, &item))
        return NULL;
    if (len)
        *len = item.n;
    return item.p;
}

int snow_ws_select_protocol(SnowWsConn *conn, const char *name)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    if (!c)
        return err;
    if (c->phase != WS_PHASE_CONNECTING || !c->lv->hs)
        return -EINVAL;
    if (!name) {
        c->lv->hs->protocol = (struct http_str){NULL, 0};
        return 0;
    }
    size_t n = strlen(name);
    struct http_str item;
    for (size_t i = 0; offered(c, i, &item); i++)
        if (item.n == n && memcmp(item.p, name, n) == 0) {
            c->lv->hs->protocol = item;
            return 0;
        }
    return -EINVAL;
}

const char *snow_ws_protocol(const SnowWsConn *conn, size_t *len)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    if (len)
        *len = 0;
    if (!c || c->phase != WS_PHASE_OPEN || !c->proto_len)
        return NULL;
    if (len)
        *len = c->proto_len;
    return c->proto_buf;
}

void *snow_ws_msg_keep(SnowWsConn *conn, size_t *len)
{
    int err;
    struct ws_conn *c = own(conn, &err);
    if (len)
        *len = 0;
    if (!c || !c->lv || !c->lv->msg)
        return NULL;
    void *p = snow_gc_alloc(c->lv->msg_len ? c->lv->msg_len : 1);
    if (!p)
        return NULL;
    memcpy(p, c->lv->msg, c->lv->msg_len);
    if (len)
        *len = c->lv->msg_len;
    return p;
}
