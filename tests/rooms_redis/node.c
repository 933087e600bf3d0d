/*
 * node.c: one process of the rooms-redis cluster tests, written against
 * snow_rt.h only, like a program (the Redis backend comes from
 * SNOW_ROOMS_REDIS in the environment; the code is the same without it).
 *
 *   node --port P [--redis URL]
 *   --redis: the backend set through snow_rooms_redis instead of the
 *       environment (both ways must behave the same)
 *   WebSocket /broadcast: a member of the room "broadcast"; each message it
 *       sends goes to every other member, on every node (broadcast_except)
 *   WebSocket /room: commands, answered on the same connection:
 *       "join R" -> "joined R EPOCH SEQ"        "leave R" -> "left R"
 *       "history R N" -> "history R"            (a ring of N messages)
 *       "resume R EPOCH SEQ" -> "resumed R RECOVERED EPOCH SEQ"
 *       "pub R TEXT" -> TEXT to every other member of R, on every node
 *       members of R get the messages of R as they are
 *   GET /stats: the room and Redis backend counters as JSON
 *
 * Prints "listening on PORT" once ready; SIGTERM / SIGINT end it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "snow_rt.h"

static SnowWsHandler bcast_route, room_route;
static const char BCAST[] = "broadcast";

static void bcast_open(SnowWsConn *conn, void *arg)
{
    (void)arg;
    if (snow_ws_join(conn, BCAST, sizeof BCAST - 1, NULL) < 0)
        snow_ws_close(conn, 1011, "join", 4);
}

static void bcast_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    snow_ws_broadcast_except(BCAST, sizeof BCAST - 1, data, len, is_text, conn);
}

static void reply(SnowWsConn *conn, const char *fmt, const char *room, size_t rl, long long a, unsigned long long b,
                  unsigned long long c)
{
    char out[512];
    int n = snprintf(out, sizeof out, fmt, (int)rl, room, a, b, c);
    if (n > 0)
        snow_ws_send_text(conn, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
}

static void room_message(SnowWsConn *conn, const void *data, size_t len, int is_text, void *arg)
{
    (void)arg;
    (void)is_text;
    char cmd[600];
    if (len >= sizeof cmd) {
        snow_ws_close(conn, 1009, "long", 4);
        return;
    }
    memcpy(cmd, data, len);
    cmd[len] = 0;
    char *verb = cmd, *room = strchr(cmd, ' ');
    if (!room) {
        snow_ws_close(conn, 1008, "command", 7);
        return;
    }
    *room++ = 0;
    char *rest = strchr(room, ' ');
    size_t rl = rest ? (size_t)(rest - room) : strlen(room);
    if (rest)
        rest++;
    SnowRoomPos pos = {0, 0};
    if (!strcmp(verb, "join")) {
        int rc = snow_ws_join(conn, room, rl, &pos);
        reply(conn, "joined %.*s %lld %llu %llu", room, rl, rc, pos.epoch, pos.seq);
    } else if (!strcmp(verb, "leave")) {
        int rc = snow_ws_leave(conn, room, rl);
        reply(conn, "left %.*s %lld %llu %llu", room, rl, rc, 0, 0);
    } else if (!strcmp(verb, "history") && rest) {
        SnowRoomOpts o = {.history = (uint32_t)strtoul(rest, NULL, 10)};
        int rc = snow_room_configure(room, rl, &o);
        reply(conn, "history %.*s %lld %llu %llu", room, rl, rc, 0, 0);
    } else if (!strcmp(verb, "resume") && rest) {
        char *end;
        unsigned long long e = strtoull(rest, &end, 10), s = strtoull(end, NULL, 10);
        int rc = snow_ws_join_since(conn, room, rl, e, s, &pos);
        reply(conn, "resumed %.*s %lld %llu %llu", room, rl, rc, pos.epoch, pos.seq);
    } else if (!strcmp(verb, "pub") && rest) {
        snow_ws_broadcast_except(room, rl, rest, strlen(rest), 1, conn);
    } else {
        snow_ws_close(conn, 1008, "command", 7);
    }
}

static void stats(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    SnowRoomsRedisCounters c;
    snow_rooms_redis_counters(&c);
    SnowRoomCounters r;
    snow_room_counters(&r);
    char body[2048];
    int n = snprintf(
        body, sizeof body,
        "{\"pub_running\": %llu, \"pub_connected\": %llu, \"sub_connected\": %llu, \"connects\": %llu, \"connect_failures\": %llu, "
        "\"published\": %llu, \"dropped\": %llu, \"publish_errors\": %llu, \"received\": %llu, "
        "\"own_skipped\": %llu, \"gaps\": %llu, \"gap_events\": %llu, \"subscribed\": %llu, "
        "\"subscribes\": %llu, \"unsubscribes\": %llu, \"resubscribes\": %llu, \"protocol_errors\": %llu, "
        "\"dropped_local\": %llu, \"rooms\": %llu, \"members\": %llu, \"connections\": %d}\n",
        (unsigned long long)c.pub_running, (unsigned long long)c.pub_connected, (unsigned long long)c.sub_connected, (unsigned long long)c.connects,
        (unsigned long long)c.connect_failures, (unsigned long long)c.published, (unsigned long long)c.dropped,
        (unsigned long long)c.publish_errors, (unsigned long long)c.received, (unsigned long long)c.own_skipped,
        (unsigned long long)c.gaps, (unsigned long long)c.gap_events, (unsigned long long)c.subscribed,
        (unsigned long long)c.subscribes, (unsigned long long)c.unsubscribes, (unsigned long long)c.resubscribes,
        (unsigned long long)c.protocol_errors, (unsigned long long)c.dropped_local, (unsigned long long)r.rooms,
        (unsigned long long)r.members, snow_ws_connection_count());
    snow_http_res_send(res, 200, "application/json", body, (size_t)n);
}

static void signal_actor(void *arg)
{
    int fd = *(int *)arg;
    int err;
    SnowIo *io = snow_io_open(fd, &err);
    if (!io)
        return;
    for (;;) {
        struct signalfd_siginfo si;
        if (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
            break;
        snow_wait(io, SNOW_WAIT_READABLE, -1);
    }
    snow_rt_shutdown();
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *redis = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis"))
            redis = argv[i + 1];
    }
    if (redis && snow_rooms_redis(redis) < 0) {
        fprintf(stderr, "node: bad --redis URL\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || snow_rt_init(0) < 0)
        return 1;
    snow_ws_handler_init(&bcast_route);
    bcast_route.on_open = bcast_open;
    bcast_route.on_message = bcast_message;
    snow_ws_handler_init(&room_route);
    room_route.on_message = room_message;
    SnowHttpOpts opts;
    snow_http_opts_init(&opts);
    opts.max_connections = 1 << 20;
    SnowRouter *router = snow_router_new();
    if (!router || snow_router_route(router, "GET", "/stats", stats, NULL) < 0 ||
        snow_router_ws(router, "/broadcast", &bcast_route) < 0 || snow_router_ws(router, "/room", &room_route) < 0)
        return 1;
    int err;
    SnowHttpServer *srv = snow_http_server_start(router, "127.0.0.1", port, &opts, &err);
    snow_router_free(router);
    if (!srv) {
        fprintf(stderr, "node: cannot listen: %s\n", snow_strerror(err));
        return 1;
    }
    if (!snow_actor_spawn(signal_actor, &sfd, sizeof sfd))
        return 1;
    printf("listening on %d\n", snow_http_server_port(srv));
    fflush(stdout);
    snow_rt_run();
    snow_http_server_stop(srv);
    return 0;
}
