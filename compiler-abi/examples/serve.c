/*
 * serve.c: the start and stop the WebSocket examples share (serve.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "serve.h"

void serve_init(struct serve *s, const char *name, int exit_ms)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->host = "127.0.0.1";
    s->port = 8080;
    snow_http_opts_init(&s->opts);
    /* WebSocket connections count against the server's limit; the process
     * file limit (20,000 here) is the real bound. */
    s->opts.max_connections = 1 << 20;
    s->exit_ms = exit_ms;
    s->sfd = -1;
}

int serve_flag(struct serve *s, const char *opt, const char *val)
{
    if (strcmp(opt, "--host") == 0)
        s->host = val;
    else if (strcmp(opt, "--port") == 0)
        s->port = atoi(val);
    else if (strcmp(opt, "--tls-cert") == 0)
        s->opts.tls_cert_file = val;
    else if (strcmp(opt, "--tls-key") == 0)
        s->opts.tls_key_file = val;
    else
        return 0;
    return 1;
}

int serve_start_runtime(struct serve *s)
{
    /* Signals go to the signalfd: blocked in every thread (the workers
     * inherit this mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sfd < 0) {
        fprintf(stderr, "%s: signalfd: %s\n", s->name, strerror(errno));
        return -1;
    }
    int err = snow_rt_init(0);
    if (err < 0) {
        fprintf(stderr, "%s: runtime: %s\n", s->name, snow_strerror(err));
        return -1;
    }
    return 0;
}

void serve_health(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    snow_http_res_send(res, 200, "text/plain", "ok", 2);
}

/* An actor waiting on the signalfd. */
static void signal_actor(void *arg)
{
    struct serve *s = *(struct serve **)arg;
    int err;
    SnowIo *io = snow_io_open(s->sfd, &err);
    if (!io)
        return;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(s->sfd, &si, sizeof si);
        if (r == (ssize_t)sizeof si)
            break;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return;
        snow_wait(io, SNOW_WAIT_READABLE, -1);
    }
    /* Drain: the server sends 1001 to every connection and answers new
     * upgrades with 503; then wait for the closes, bounded. */
    int64_t end = snow_now_ms() + s->exit_ms;
    snow_http_server_stop(atomic_exchange(&s->server, NULL));
    while (snow_ws_connection_count() > 0 && snow_now_ms() < end)
        snow_sleep(20);
    snow_rt_shutdown();
}

int serve_listen(struct serve *s, SnowRouter *router)
{
    int err;
    s->server = snow_http_server_start(router, s->host, s->port, &s->opts, &err);
    snow_router_free(router); /* the server holds its own reference */
    if (!s->server) {
        fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", s->name, s->host, s->port, snow_strerror(err));
        snow_rt_shutdown();
        snow_rt_run();
        return -1;
    }
    int bound = snow_http_server_port(s->server);
    if (!snow_actor_spawn(signal_actor, &s, sizeof s)) {
        fprintf(stderr, "%s: cannot start the signal watcher\n", s->name);
        return -1;
    }
    printf("listening on %d\n", bound);
    fflush(stdout);
    return bound;
}

int serve_run(struct serve *s)
{
    snow_rt_run(); /* until a signal drained the server */
    snow_http_server_stop(atomic_exchange(&s->server, NULL));
    return 0;
}
