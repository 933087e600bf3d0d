/*
 * serve.h: the start and stop of a WebSocket example server (snow-echo,
 * snow-chat), written like the programs against snow_rt.h alone: the flags
 * every one of them takes (--host H, --port P, --tls-cert F, --tls-key F),
 * SIGINT and SIGTERM turned into a drain, the listener and the line
 * "listening on PORT" that scripts and tests wait for.
 *
 * A program calls serve_init, passes its arguments through serve_flag,
 * starts the runtime with serve_start_runtime, builds its router,
 * serve_listen, then serve_run.
 */
#ifndef SNOW_EXAMPLE_SERVE_H
#define SNOW_EXAMPLE_SERVE_H

#include "snow_rt.h"

struct serve {
    const char *name; /* the program, for its messages ("snow-echo") */
    const char *host; /* --host, 127.0.0.1 by default */
    int port;         /* --port, 8080 by default; 0 picks a free one */
    SnowHttpOpts opts; /* --tls-cert, --tls-key; room for every connection */
    int exit_ms;      /* how long a stop waits for the WebSocket closes */
    int sfd;          /* the signalfd SIGINT and SIGTERM go to */
    SnowHttpServer *_Atomic server;
};

void serve_init(struct serve *s, const char *name, int exit_ms);
/* Takes the common flag opt with its value val: 1 when opt is one, else 0. */
int serve_flag(struct serve *s, const char *opt, const char *val);
/* Sends SIGINT and SIGTERM to a signalfd (blocked in every thread: this
 * runs before the workers start), ignores SIGPIPE, and starts the runtime.
 * Returns 0, or -1 after saying why on stderr. */
int serve_start_runtime(struct serve *s);
/* Starts the server on router (the caller's reference is given up) and the
 * actor that drains it on a signal, then prints "listening on PORT".
 * Returns the port, or -1 after saying why on stderr. */
int serve_listen(struct serve *s, SnowRouter *router);
/* GET /health: 200 "ok". */
void serve_health(SnowHttpReq *req, SnowHttpRes *res, void *arg);
/* Runs the runtime until a signal has drained the server; returns 0, the
 * program's exit status. */
int serve_run(struct serve *s);

#endif
