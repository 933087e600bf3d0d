/*
 * snow-echo: the WebSocket example, written the way generated code calls
 * the runtime (only snow_rt.h).
 *
 *   snow-echo --host H --port P [--tls-cert F --tls-key F]
 *             [--ping-interval S] [--pong-timeout S] [--max-message BYTES]
 *             [--outbound-limit BYTES] [--write-timeout S]
 *             [--deflate [--deflate-no-context-takeover] [--deflate-window-bits 8-15]
 *              [--deflate-mem-level 1-9] [--deflate-threshold BYTES]]
 *
 *   --deflate accepts permessage-deflate (RFC 7692) when a client offers it
 *
 *   WebSocket on /broadcast -> every message goes to every OTHER client
 *                              connected there, same opcode
 *   WebSocket on /proto     -> echo, with the subprotocols snow.v2 and
 *                              snow.v1 (in that order of preference; none
 *                              when the client offers neither)
 *   WebSocket on /private   -> echo for clients sending
 *                              "Authorization: Bearer snow-echo"; others are
 *                              refused before the 101 with 401,
 *                              WWW-Authenticate: Bearer realm="snow-echo"
 *                              and the body "unauthorized"
 *   WebSocket on /panic     -> echo, except that the text message "panic"
 *                              makes the handler panic: that connection
 *                              closes with 1011, the server goes on
 *   WebSocket on any other path (/, /echo, ...) -> every message echoed
 *                              with its opcode
 *   GET /health -> 200 "ok"
 *   GET /stats  -> 200 application/json: {"connections": N, ...counters,
 *                  "room": {the /broadcast room's members and the room counters},
 *                  "actors": the process table's size (snow_actor_count)}
 *
 * Prints "listening on PORT" once ready (port 0 picks a free one).
 * SIGINT/SIGTERM: close every WebSocket connection with 1001, answer new
 * requests with 503 meanwhile, wait for the closes (at most 3 s), exit 0
 * (within 5 s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "snow_rt.h"

#define DRAIN_MS 3000
#define EXIT_MS 4500

static SnowWsHandler echo_route, broadcast_route, proto_route, private_route, panic_route;

/* ---- echo ---- */

static void echo_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    if (is_text)
        snow_ws_send_text(conn, data, len);
    else
        snow_ws_send_binary(conn, data, len);
}

/* ---- /proto, /private, /panic ---- */

static const char *const protocols[] = {"snow.v2", "snow.v1"};

#define BEARER "Bearer snow-echo"

static int private_connect(SnowWsConn *conn, const SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)conn;
    (void)arg;
    size_t n;
    const char *auth = snow_http_req_header(req, "Authorization", &n);
    if (auth && n == strlen(BEARER) && memcmp(auth, BEARER, n) == 0)
        return SNOW_WS_ACCEPT;
    snow_http_res_status(res, 401);
    snow_http_res_header(res, "WWW-Authenticate", "Bearer realm=\"snow-echo\"");
    snow_http_res_header(res, "Content-Type", "text/plain");
    snow_http_res_body(res, "unauthorized", 12);
    return SNOW_WS_REFUSE;
}

static void panic_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    if (is_text && len == 5 && memcmp(data, "panic", 5) == 0)
        snow_panic("snow-echo: panic on request");
    echo_message(conn, data, len, is_text, arg);
}

/* ---- broadcast: the clients on /broadcast are the members of one room ---- */

#define BROADCAST_ROOM "broadcast"

static void member_add(SnowWsConn *conn, void *arg)
{
    (void)arg;
    /* The registry removes the connection on every exit path. */
    if (snow_ws_join(conn, BROADCAST_ROOM, strlen(BROADCAST_ROOM), NULL) < 0)
        snow_ws_close(conn, 1011, "cannot join", 11);
}

static void broadcast_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    /* One shared frame for every other member; members over their
     * outbound limit are skipped (and counted in the room counters). */
    snow_ws_broadcast_except(BROADCAST_ROOM, strlen(BROADCAST_ROOM), data, len, is_text, conn);
}

/* ---- HTTP ---- */

static void stats(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    SnowWsStats s;
    snow_ws_route_stats(NULL, &s);
    SnowRoomCounters rc;
    snow_room_counters(&rc);
    char body[1536];
    int n = snprintf(body, sizeof body,
                     "{\"connections\": %d, \"opened\": %llu, \"refused\": %llu, \"closed\": %llu, "
                     "\"closed_by_code\": {\"1000\": %llu, \"1001\": %llu, \"1002\": %llu, \"1003\": %llu, "
                     "\"1005\": %llu, \"1006\": %llu, \"1007\": %llu, \"1008\": %llu, \"1009\": %llu, "
                     "\"1010\": %llu, \"1011\": %llu, \"other\": %llu}, "
                     "\"msgs_in\": %llu, \"bytes_in\": %llu, \"msgs_out\": %llu, \"bytes_out\": %llu, "
                     "\"backpressure_refused\": %llu, \"closed_backpressure\": %llu, "
                     "\"closed_heartbeat\": %llu, \"closed_write_stall\": %llu, "
                     "\"room\": {\"members\": %lld, \"broadcasts\": %llu, \"deliveries\": %llu, "
                     "\"skipped_backpressure\": %llu, \"skipped_closed\": %llu}, \"actors\": %d}\n",
                     snow_ws_connection_count(), (unsigned long long)s.opened, (unsigned long long)s.refused,
                     (unsigned long long)s.closed, (unsigned long long)s.closed_1000,
                     (unsigned long long)s.closed_1001, (unsigned long long)s.closed_1002,
                     (unsigned long long)s.closed_1003, (unsigned long long)s.closed_1005,
                     (unsigned long long)s.closed_1006, (unsigned long long)s.closed_1007,
                     (unsigned long long)s.closed_1008, (unsigned long long)s.closed_1009,
                     (unsigned long long)s.closed_1010, (unsigned long long)s.closed_1011,
                     (unsigned long long)s.closed_other, (unsigned long long)s.msgs_in,
                     (unsigned long long)s.bytes_in, (unsigned long long)s.msgs_out,
                     (unsigned long long)s.bytes_out, (unsigned long long)s.backpressure_refused,
                     (unsigned long long)s.closed_backpressure, (unsigned long long)s.closed_heartbeat,
                     (unsigned long long)s.closed_write_stall,
                     (long long)snow_ws_room_size(BROADCAST_ROOM, strlen(BROADCAST_ROOM)),
                     (unsigned long long)rc.broadcasts, (unsigned long long)rc.deliveries,
                     (unsigned long long)rc.skipped_backpressure, (unsigned long long)rc.skipped_closed,
                     snow_actor_count());
    snow_http_res_send(res, 200, "application/json", body, (size_t)n);
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: snow-echo --host H --port P [--tls-cert F --tls-key F] [--ping-interval S]\n"
                    "                 [--pong-timeout S] [--max-message BYTES] [--outbound-limit BYTES]\n"
                    "                 [--write-timeout S] [--deflate [--deflate-no-context-takeover]\n"
                    "                 [--deflate-window-bits 8-15] [--deflate-mem-level 1-9]\n"
                    "                 [--deflate-threshold BYTES]]\n");
    exit(2);
}

static int seconds_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 86400 * 365)
        usage();
    return (int)(v * 1000 + 0.5);
}

static size_t bytes(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-')
        usage();
    return (size_t)v;
}

static int ranged(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return (int)v;
}

static void setup_route(SnowWsHandler *h)
{
    snow_ws_handler_init(h);
    h->drain_timeout_ms = DRAIN_MS;
}

int main(int argc, char **argv)
{
    struct serve srv;
    serve_init(&srv, "snow-echo", EXIT_MS);
    setup_route(&echo_route);
    echo_route.on_message = echo_message;
    setup_route(&broadcast_route);
    broadcast_route.on_open = member_add;
    broadcast_route.on_message = broadcast_message;
    setup_route(&proto_route);
    proto_route.on_message = echo_message;
    proto_route.protocols = protocols;
    proto_route.nprotocols = sizeof protocols / sizeof protocols[0];
    setup_route(&private_route);
    private_route.on_connect = private_connect;
    private_route.on_message = echo_message;
    setup_route(&panic_route);
    panic_route.on_message = panic_message;
    SnowWsHandler *routes[] = {&echo_route, &broadcast_route, &proto_route, &private_route, &panic_route};
    size_t nroutes = sizeof routes / sizeof routes[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deflate") == 0 || strcmp(argv[i], "--deflate-no-context-takeover") == 0) {
            for (int k = 0; k < 2; k++) {
                routes[k]->deflate = 1;
                if (argv[i][9])
                    routes[k]->deflate_no_context_takeover = 1;
            }
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *opt = argv[i], *val = argv[++i];
        if (!serve_flag(&srv, opt, val)) {
            for (size_t k = 0; k < nroutes; k++) {
                SnowWsHandler *h = routes[k];
                if (strcmp(opt, "--ping-interval") == 0)
                    h->ping_interval_ms = seconds_ms(val);
                else if (strcmp(opt, "--pong-timeout") == 0)
                    h->pong_timeout_ms = seconds_ms(val);
                else if (strcmp(opt, "--max-message") == 0)
                    h->max_message = bytes(val);
                else if (strcmp(opt, "--outbound-limit") == 0)
                    h->outbound_limit = bytes(val);
                else if (strcmp(opt, "--write-timeout") == 0)
                    h->write_timeout_ms = seconds_ms(val);
                else if (strcmp(opt, "--deflate-window-bits") == 0)
                    h->deflate_window_bits = ranged(val, 8, 15);
                else if (strcmp(opt, "--deflate-mem-level") == 0)
                    h->deflate_mem_level = ranged(val, 1, 9);
                else if (strcmp(opt, "--deflate-threshold") == 0)
                    h->deflate_threshold = bytes(val);
                else
                    usage();
            }
        }
    }

    if (serve_start_runtime(&srv) < 0)
        return 1;
    SnowRouter *router = snow_router_new();
    if (!router || snow_router_route(router, "GET", "/health", serve_health, NULL) < 0 ||
        snow_router_route(router, "GET", "/stats", stats, NULL) < 0 ||
        snow_router_ws(router, "/broadcast", &broadcast_route) < 0 || snow_router_ws(router, "/proto", &proto_route) < 0 ||
        snow_router_ws(router, "/private", &private_route) < 0 || snow_router_ws(router, "/panic", &panic_route) < 0 ||
        snow_router_ws(router, "/", &echo_route) < 0 ||
        snow_router_ws(router, "/*", &echo_route) < 0) {
        fprintf(stderr, "snow-echo: cannot build the router\n");
        return 1;
    }
    if (serve_listen(&srv, router) < 0)
        return 1;
    return serve_run(&srv);
}
