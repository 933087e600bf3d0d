/*
 * lws-server.c: peer server for bench/ws, on libwebsockets (one service
 * thread, the library's default buffer sizes).
 *
 *   lws-server --host H --port P
 *
 * /echo (and any other path) echoes every message; /broadcast sends every
 * message to the other clients on /broadcast, one shared reference-counted
 * copy queued on each; GET /stats answers {"connections": N}. Messages are
 * reassembled from lws's fragments before they are sent on, so the echo
 * of a message is one message whatever its size.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg {
    int refs;
    int binary;
    size_t len, cap;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct pss {
    struct lws *wsi;
    struct pss *prev, *next; /* the /broadcast room */
    int in_room;
    struct msg **q;          /* messages to send, a ring */
    size_t qh, qn, qcap;
    struct msg *rx;          /* message being received */
};

static struct pss *room;
static int connections;
static volatile sig_atomic_t stopping;
static struct lws_context *context;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "lws-server: out of memory\n");
        exit(1);
    }
    return q;
}

static void unref(struct msg *m)
{
    if (--m->refs == 0)
        free(m);
}

static void push(struct pss *p, struct msg *m)
{
    if (p->qn == p->qcap) {
        size_t cap = p->qcap ? p->qcap * 2 : 8;
        struct msg **q = xrealloc(NULL, cap * sizeof *q);
        for (size_t i = 0; i < p->qn; i++)
            q[i] = p->q[(p->qh + i) % p->qcap];
        free(p->q);
        p->q = q;
        p->qh = 0;
        p->qcap = cap;
    }
    p->q[(p->qh + p->qn++) % p->qcap] = m;
    m->refs++;
    lws_callback_on_writable(p->wsi);
}

static int on_receive(struct pss *p, struct lws *wsi, const void *in, size_t len)
{
    if (!p->rx) {
        p->rx = xrealloc(NULL, sizeof *p->rx + LWS_PRE + len + 256);
        p->rx->refs = 0;
        p->rx->len = 0;
        p->rx->cap = len + 256;
        p->rx->binary = lws_frame_is_binary(wsi);
    }
    struct msg *m = p->rx;
    if (m->len + len > m->cap) {
        size_t cap = m->cap * 2 > m->len + len ? m->cap * 2 : m->len + len;
        m = p->rx = xrealloc(m, sizeof *m + LWS_PRE + cap);
        m->cap = cap;
    }
    memcpy(m->buf + LWS_PRE + m->len, in, len);
    m->len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    p->rx = NULL;
    m->refs = 1; /* held while it is queued on the others */
    if (p->in_room) {
        for (struct pss *o = room; o; o = o->next)
            if (o != p)
                push(o, m);
    } else {
        push(p, m);
    }
    unref(m);
    return 0;
}

static int on_writeable(struct pss *p, struct lws *wsi)
{
    while (p->qn) {
        struct msg *m = p->q[p->qh];
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (n < (int)m->len)
            return -1;
        p->qh = (p->qh + 1) % p->qcap;
        p->qn--;
        unref(m);
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (p->qn)
        lws_callback_on_writable(wsi);
    return 0;
}

static int serve_stats(struct lws *wsi, const char *uri)
{
    if (strcmp(uri, "/stats") != 0)
        return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, "not a WebSocket request") ? -1 : 0;
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *q = start, *end = buf + sizeof buf - 1;
    unsigned char body[LWS_PRE + 64];
    int n = snprintf((char *)body + LWS_PRE, 64, "{\"connections\":%d}", connections);
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "application/json", (lws_filepos_t)n, &q, end) ||
        lws_finalize_write_http_header(wsi, start, &q, end))
        return -1;
    if (lws_write(wsi, body + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) != n)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return serve_stats(wsi, in);
    case LWS_CALLBACK_ESTABLISHED: {
        char uri[256];
        memset(p, 0, sizeof *p);
        p->wsi = wsi;
        connections++;
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) > 0 && strcmp(uri, "/broadcast") == 0) {
            p->in_room = 1;
            p->next = room;
            if (room)
                room->prev = p;
            room = p;
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return on_receive(p, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(p, wsi);
    case LWS_CALLBACK_CLOSED:
        connections--;
        if (p->in_room) {
            if (p->prev)
                p->prev->next = p->next;
            else
                room = p->next;
            if (p->next)
                p->next->prev = p->prev;
        }
        while (p->qn) {
            unref(p->q[p->qh]);
            p->qh = (p->qh + 1) % p->qcap;
            p->qn--;
        }
        free(p->q);
        free(p->rx);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, sizeof(struct pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
    if (context)
        lws_cancel_service(context);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: lws-server --host H --port P\n");
            return 2;
        }
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "lws-server: lws_create_context failed\n");
        return 1;
    }
    printf("listening on %d\n", lws_get_vhost_listen_port(lws_get_vhost_by_name(context, "default")));
    fflush(stdout);
    while (!stopping && lws_service(context, 0) >= 0)
        ;
    lws_context_destroy(context);
    return 0;
}
