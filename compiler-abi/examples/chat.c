/*
 * snow-chat: a chat server for browsers, written the way generated code
 * calls the runtime (only snow_rt.h).
 *
 *   snow-chat --host H --port P [--tls-cert F --tls-key F]
 *
 *   GET /        -> the chat page (chat_page.h: HTML, CSS, JavaScript inline)
 *   GET /health  -> 200 "ok"
 *   WebSocket /ws?name=N&room=R&epoch=E&seq=S
 *
 * A person picks a name and a room; every message goes to everyone in the
 * room (the sender too, so every page shows the room in one order);
 * presence (who joined, who left, who is here) is broadcast to the room's
 * presence room (its name, a NUL byte, "presence": live only, so it never
 * pushes chat messages out of the history); a room keeps its last 50
 * messages, which a joining page gets first. A
 * page that reconnects (network drop, server restart) passes the position
 * of the last message it showed and the resumable join replays exactly what
 * it missed, or says it cannot (the history moved on, or the server
 * restarted: another epoch), and the page shows what the room still has.
 * Every name and text reaches the page as an escaped JSON string and is
 * shown with textContent. A message over MAX_TEXT bytes, or over the rate
 * (RATE_PER_S, bursts of RATE_BURST), is refused with an error the page
 * shows; a client that keeps flooding is closed with 1008, one that sends
 * more than MAX_FRAME bytes at once with 1009. Pages that offer
 * permessage-deflate (every browser does) get it without context takeover.
 *
 * Prints "listening on PORT" and the URL to open once ready (port 0 picks a
 * free one). SIGINT/SIGTERM: close every connection with 1001, exit 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_page.h"
#include "serve.h"
#include "snow_rt.h"

#define HISTORY 50          /* messages a room keeps for joins and resumes */
#define MAX_NAME 32         /* bytes of UTF-8 */
#define MAX_ROOM 32         /* [A-Za-z0-9_-] */
#define MAX_TEXT 1000       /* bytes of one chat message */
#define MAX_FRAME 16384     /* bigger WebSocket messages close with 1009 */
#define MAX_ROOMS 1000      /* rooms (each keeps its history while empty) */
#define RATE_PER_S 5        /* messages a client may send per second ... */
#define RATE_BURST 10       /* ... in bursts of at most this many */
#define FLOOD_STRIKES 30    /* refused in a row: the client is closed (1008) */
#define MAX_HERE 200        /* names listed in a presence message */
#define DRAIN_MS 2000
#define DEFLATE_MIN 128     /* shorter messages are sent uncompressed */
#define EXIT_MS 4000

/* Message tags between the connections and the presence actor. */
enum { TAG_PRESENCE_JOIN = 1, TAG_PRESENCE_LEAVE = 2 };

struct client {
    char name[MAX_NAME + 1];
    size_t name_len;
    char room[MAX_ROOM + 1];
    size_t room_len;
    uint64_t epoch, seq; /* where the page resumes from */
    int64_t bucket_ms;   /* token bucket: time at which the bucket is full */
    int strikes;
};

/* What a connection tells the presence actor. */
struct presence_note {
    SnowPid pid;
    uint32_t name_len, room_len;
    char name[MAX_NAME];
    char room[MAX_ROOM];
};

static SnowPid presence_pid;

/* ---- JSON ---------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
    int failed;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n > b->cap) {
        size_t cap = (b->cap ? b->cap : 256);
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A JSON string (RFC 8259 section 7). <, > and & are escaped too, so the
 * text stays inert even if some page were to insert it as HTML. */
static void put_json_string(struct buf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, &s[i], 1);
        }
    }
    put(b, "\"", 1);
}

/* The 20 zeros the runtime overwrites with the sequence number or the epoch
 * (SnowRoomPublish.seq_at / epoch_at): their offset in the payload. */
static size_t put_stamp(struct buf *b)
{
    put(b, "\"", 1);
    size_t at = b->n;
    put(b, "00000000000000000000", 20);
    put(b, "\"", 1);
    return at;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t publish(const char *room, size_t room_len, struct buf *b, size_t seq_at, size_t epoch_at)
{
    SnowRoomPublish o;
    snow_room_publish_init(&o);
    o.is_text = 1;
    o.seq_at = seq_at;
    o.epoch_at = epoch_at;
    return snow_room_publish(room, room_len, b->p, b->n, &o);
}

static void send_json_error(SnowWsConn *conn, const char *text)
{
    struct buf b = {0};
    puts_(&b, "{\"t\":\"error\",\"text\":");
    put_json_string(&b, text, strlen(text));
    puts_(&b, "}");
    if (!b.failed)
        snow_ws_send_text(conn, b.p, b.n);
    free(b.p);
}

/* ---- input checks ---------------------------------------------------------------- */

/* Shortest-form UTF-8 without control characters. */
static int name_ok(const unsigned char *s, size_t n)
{
    if (n == 0 || n > MAX_NAME)
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

static int room_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_ROOM)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static uint64_t number(const char *s, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 20; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

static int refuse(SnowHttpRes *res, int status, const char *text)
{
    snow_http_res_send(res, status, "text/plain; charset=utf-8", text, strlen(text));
    return SNOW_WS_REFUSE;
}

/* ---- the WebSocket route ------------------------------------------------------------- */

static int chat_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t nl, rl, el, sl;
    const char *name = snow_http_req_query(req, "name", &nl);
    const char *room = snow_http_req_query(req, "room", &rl);
    const char *epoch = snow_http_req_query(req, "epoch", &el);
    const char *seq = snow_http_req_query(req, "seq", &sl);
    if (!name || !name_ok((const unsigned char *)name, nl))
        return refuse(res, 400, "name: 1 to 32 bytes of text without control characters\n");
    if (!room || !room_ok(room, rl))
        return refuse(res, 400, "room: 1 to 32 letters, digits, - or _\n");
    SnowRoomPos pos;
    SnowRoomCounters c;
    snow_room_counters(&c);
    if (snow_room_position(room, rl, &pos) == 0 && c.rooms >= MAX_ROOMS)
        return refuse(res, 503, "too many rooms\n");
    struct client *cl = snow_gc_alloc(sizeof *cl);
    if (!cl)
        return refuse(res, 503, "out of memory\n");
    memcpy(cl->name, name, nl);
    cl->name_len = nl;
    memcpy(cl->room, room, rl);
    cl->room_len = rl;
    cl->epoch = epoch ? number(epoch, el) : 0;
    cl->seq = seq ? number(seq, sl) : 0;
    cl->bucket_ms = snow_now_ms() - (int64_t)RATE_BURST * (1000 / RATE_PER_S); /* starts full */
    snow_ws_set_user(conn, cl);
    return SNOW_WS_ACCEPT;
}

/* The room's presence room: "<room>\0presence" (room names have no NUL). */
static size_t presence_room(const char *room, size_t len, char *out)
{
    memcpy(out, room, len);
    memcpy(out + len, "\0presence", 9);
    return len + 9;
}

static void presence_join(SnowWsConn *conn, const struct client *cl)
{
    struct presence_note n = {.pid = snow_ws_pid(conn), .name_len = (uint32_t)cl->name_len,
                              .room_len = (uint32_t)cl->room_len};
    memcpy(n.name, cl->name, cl->name_len);
    memcpy(n.room, cl->room, cl->room_len);
    snow_actor_send(presence_pid, TAG_PRESENCE_JOIN, &n, sizeof n);
}

static void chat_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    struct client *cl = snow_ws_user(conn);
    SnowRoomOpts o = {.history = HISTORY};
    SnowRoomPos pos = {0, 0};
    char pr[MAX_ROOM + 9];
    size_t prl = presence_room(cl->room, cl->room_len, pr);
    int rc = snow_room_configure(cl->room, cl->room_len, &o);
    if (rc >= 0)
        rc = snow_ws_join(conn, pr, prl, NULL);
    if (rc >= 0)
        rc = snow_ws_join_since(conn, cl->room, cl->room_len, cl->epoch, cl->seq, &pos);
    if (rc < 0) {
        snow_ws_close(conn, 1011, "cannot join the room", 20);
        return;
    }
    char msg[160];
    int n = snprintf(msg, sizeof msg, "{\"t\":\"joined\",\"epoch\":\"%020llu\",\"seq\":\"%020llu\",\"recovered\":%s}",
                     (unsigned long long)pos.epoch, (unsigned long long)pos.seq, rc == 1 ? "true" : "false");
    snow_ws_send_text(conn, msg, (size_t)n);
    presence_join(conn, cl);
}

/* Token bucket: RATE_PER_S messages a second, RATE_BURST at once. The
 * bucket is a time: full at bucket_ms, each message moves it forward. */
static int take_token(struct client *cl)
{
    int64_t now = snow_now_ms(), cost = 1000 / RATE_PER_S;
    int64_t floor = now - (int64_t)RATE_BURST * cost;
    if (cl->bucket_ms < floor)
        cl->bucket_ms = floor;
    if (cl->bucket_ms + cost > now)
        return 0;
    cl->bucket_ms += cost;
    return 1;
}

static void chat_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    struct client *cl = snow_ws_user(conn);
    char err[128];
    if (!is_text) {
        send_json_error(conn, "Only text messages are accepted.");
        return;
    }
    if (len > MAX_TEXT) {
        snprintf(err, sizeof err, "Message refused: %zu bytes, the limit is %d.", len, MAX_TEXT);
        send_json_error(conn, err);
        return;
    }
    if (!take_token(cl)) {
        if (++cl->strikes >= FLOOD_STRIKES) {
            snow_ws_close(conn, 1008, "flooding", 8);
            return;
        }
        snprintf(err, sizeof err, "Slow down: at most %d messages a second (bursts of %d).", RATE_PER_S,
                 RATE_BURST);
        send_json_error(conn, err);
        return;
    }
    cl->strikes = 0;
    if (len == 0)
        return;
    struct buf b = {0};
    puts_(&b, "{\"t\":\"msg\",\"seq\":");
    size_t seq_at = put_stamp(&b);
    puts_(&b, ",\"epoch\":");
    size_t epoch_at = put_stamp(&b);
    puts_(&b, ",\"name\":");
    put_json_string(&b, cl->name, cl->name_len);
    puts_(&b, ",\"text\":");
    put_json_string(&b, data, len);
    char ts[48];
    snprintf(ts, sizeof ts, ",\"ts\":%lld}", (long long)wall_ms());
    puts_(&b, ts);
    int64_t rc = b.failed ? -ENOMEM : publish(cl->room, cl->room_len, &b, seq_at, epoch_at);
    if (rc == SNOW_EBACKPRESSURE)
        send_json_error(conn, "The room is busy; the message was not sent.");
    else if (rc < 0)
        send_json_error(conn, "The message could not be sent.");
    free(b.p);
}

static void chat_close(SnowWsConn *conn, int code, const char *reason, size_t len, void *arg)
{
    (void)code;
    (void)reason;
    (void)len;
    (void)arg;
    /* The presence actor knows the connection by its pid. */
    struct presence_note n = {.pid = snow_ws_pid(conn)};
    snow_actor_send(presence_pid, TAG_PRESENCE_LEAVE, &n, sizeof n);
}

/* ---- presence: one actor knows who is in which room ------------------------------------------ */

struct person {
    SnowPid pid;
    char name[MAX_NAME];
    uint32_t name_len;
    char room[MAX_ROOM];
    uint32_t room_len;
};

static void presence_broadcast(const struct person *v, size_t n, const struct presence_note *who, int joined)
{
    struct buf b = {0};
    puts_(&b, joined ? "{\"t\":\"presence\",\"event\":\"join\",\"name\":"
                     : "{\"t\":\"presence\",\"event\":\"leave\",\"name\":");
    put_json_string(&b, who->name, who->name_len);
    puts_(&b, ",\"here\":[");
    size_t listed = 0, others = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].room_len != who->room_len || memcmp(v[i].room, who->room, who->room_len))
            continue;
        if (listed == MAX_HERE) {
            others++;
            continue;
        }
        if (listed++)
            puts_(&b, ",");
        put_json_string(&b, v[i].name, v[i].name_len);
    }
    char tail[48];
    snprintf(tail, sizeof tail, "],\"others\":%zu}", others);
    puts_(&b, tail);
    char pr[MAX_ROOM + 9];
    size_t prl = presence_room(who->room, who->room_len, pr);
    if (!b.failed)
        snow_ws_broadcast(pr, prl, b.p, b.n, 1);
    free(b.p);
}

/* The presence actor's table, given back when the runtime stops it. */
static struct {
    struct person *v;
    size_t n, cap;
} people;

static void presence_end(int reason, void *arg)
{
    (void)reason;
    (void)arg;
    free(people.v);
    people.v = NULL;
}

static void presence_main(void *arg)
{
    (void)arg;
    snow_actor_set_terminate(presence_end, NULL);
    for (;;) {
        struct person *v = people.v;
        size_t n = people.n, cap = people.cap;
        SnowMessage *m = snow_actor_receive(-1);
        if (!m || m->len != sizeof(struct presence_note))
            continue;
        struct presence_note note;
        memcpy(&note, m->data, sizeof note);
        if (m->tag == TAG_PRESENCE_JOIN) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct person *nv = realloc(v, nc * sizeof *nv);
                if (!nv)
                    continue;
                people.v = v = nv;
                people.cap = cap = nc;
            }
            struct person *p = &v[n++];
            people.n = n;
            p->pid = note.pid;
            memcpy(p->name, note.name, note.name_len);
            p->name_len = note.name_len;
            memcpy(p->room, note.room, note.room_len);
            p->room_len = note.room_len;
            presence_broadcast(v, n, &note, 1);
        } else if (m->tag == TAG_PRESENCE_LEAVE) {
            for (size_t i = 0; i < n; i++)
                if (v[i].pid == note.pid) {
                    struct presence_note gone = {.pid = note.pid, .name_len = v[i].name_len,
                                                 .room_len = v[i].room_len};
                    memcpy(gone.name, v[i].name, v[i].name_len);
                    memcpy(gone.room, v[i].room, v[i].room_len);
                    v[i] = v[--n];
                    people.n = n;
                    presence_broadcast(v, n, &gone, 0);
                    break;
                }
        }
    }
}

/* ---- HTTP ------------------------------------------------------------------------------------- */

static void page(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    snow_http_res_header(res, "Cache-Control", "no-store");
    snow_http_res_header(res, "Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                         "connect-src 'self' ws: wss:");
    snow_http_res_send(res, 200, "text/html; charset=utf-8", chat_page, sizeof chat_page - 1);
}

/* ---- main ---------------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: snow-chat --host H --port P [--tls-cert F --tls-key F]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct serve srv;
    serve_init(&srv, "snow-chat", EXIT_MS);
    for (int i = 1; i < argc; i += 2)
        if (i + 1 >= argc || !serve_flag(&srv, argv[i], argv[i + 1]))
            usage();

    static SnowWsHandler route;
    snow_ws_handler_init(&route);
    route.on_connect = chat_connect;
    route.on_open = chat_open;
    route.on_message = chat_message;
    route.on_close = chat_close;
    route.max_message = MAX_FRAME;
    route.drain_timeout_ms = DRAIN_MS;
    /* permessage-deflate without context takeover: an idle page holds no
     * compression state, and a room broadcast is compressed once for all
     * its pages. Short messages (a one-line chat message with its stamps)
     * gain little from it and go plain. */
    route.deflate = 1;
    route.deflate_no_context_takeover = 1;
    route.deflate_threshold = DEFLATE_MIN;

    if (serve_start_runtime(&srv) < 0)
        return 1;
    presence_pid = snow_actor_spawn(presence_main, NULL, 0);
    SnowRouter *router = snow_router_new();
    if (!presence_pid || !router || snow_router_route(router, "GET", "/", page, NULL) < 0 ||
        snow_router_route(router, "GET", "/health", serve_health, NULL) < 0 || snow_router_ws(router, "/ws", &route) < 0) {
        fprintf(stderr, "snow-chat: cannot start\n");
        return 1;
    }
    int bound = serve_listen(&srv, router);
    if (bound < 0)
        return 1;
    const char *host = srv.host;
    const char *shown = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "127.0.0.1" : host;
    printf("open %s://%s:%d/ in a browser (Ctrl-C stops)\n", srv.opts.tls_cert_file ? "https" : "http", shown, bound);
    fflush(stdout);
    return serve_run(&srv);
}
