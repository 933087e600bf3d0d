/*
 * snow-hello: the HTTP example, written the way generated code calls the
 * runtime (only snow_rt.h).
 *
 *   snow-hello --host H --port P [--tls-cert F --tls-key F]
 *
 *   GET  /           -> 200 text/plain "Hello, World!"
 *   GET  /users/:id  -> 200 text/plain "user <id>"
 *   POST /echo       -> 200 with the request body (and its Content-Type)
 *
 * Prints "listening on PORT" once ready; SIGINT/SIGTERM stop it with exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snow_rt.h"

static void hello(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)req;
    (void)arg;
    snow_http_res_send(res, 200, "text/plain", "Hello, World!", 13);
}

static void user(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    const char *id = snow_http_req_param(req, "id", &n);
    snow_http_res_status(res, 200);
    snow_http_res_header(res, "Content-Type", "text/plain; charset=utf-8");
    snow_http_res_write(res, "user ", 5);
    snow_http_res_write(res, id, n);
}

static void echo(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n, tn;
    const void *body = snow_http_req_body(req, &n);
    const char *type = snow_http_req_header(req, "content-type", &tn);
    char ct[256];
    if (type && tn < sizeof ct) {
        memcpy(ct, type, tn);
        ct[tn] = 0;
    } else {
        strcpy(ct, "application/octet-stream");
    }
    snow_http_res_send(res, 200, ct, body, n);
}

static void on_signal(int sig)
{
    (void)sig;
    snow_rt_shutdown();
}

static void usage(void)
{
    fprintf(stderr, "usage: snow-hello --host H --port P [--tls-cert F --tls-key F]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080;
    SnowHttpOpts opts;
    snow_http_opts_init(&opts);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tls-cert") == 0)
            opts.tls_cert_file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0)
            opts.tls_key_file = argv[++i];
        else
            usage();
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int err = snow_rt_init(0);
    if (err < 0) {
        fprintf(stderr, "snow-hello: runtime: %s\n", snow_strerror(err));
        return 1;
    }
    SnowRouter *router = snow_router_new();
    if (!router || snow_router_route(router, "GET", "/", hello, NULL) < 0 ||
        snow_router_route(router, "GET", "/users/:id", user, NULL) < 0 ||
        snow_router_route(router, "POST", "/echo", echo, NULL) < 0) {
        fprintf(stderr, "snow-hello: cannot build the router\n");
        return 1;
    }
    SnowHttpServer *srv = snow_http_server_start(router, host, port, &opts, &err);
    snow_router_free(router); /* the server holds its own reference */
    if (!srv) {
        fprintf(stderr, "snow-hello: cannot listen on %s:%d: %s\n", host, port, snow_strerror(err));
        snow_rt_shutdown();
        snow_rt_run();
        return 1;
    }
    printf("listening on %d\n", snow_http_server_port(srv));
    fflush(stdout);
    snow_rt_run(); /* until SIGINT / SIGTERM */
    snow_http_server_stop(srv);
    return 0;
}
