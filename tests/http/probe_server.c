/*
 * probe-server: the HTTP server with every limit on the command line, for
 * the black-box tests in hardening.py (plain and TLS).
 *
 *   probe-server [--tls-cert F --tls-key F] [--write-timeout-ms N]
 *                [--body-timeout-ms N] [--request-timeout-ms N]
 *                [--header-timeout-ms N] [--max-body N] [--max-buffered N]
 *
 *   GET  /         -> 200 "Hello, World!"
 *   GET  /big?n=N  -> 200 with N bytes (a repeating pattern)
 *   POST /echo     -> 200 with the request body
 *
 * Listens on 127.0.0.1, port 0; prints "listening on PORT"; SIGTERM stops it.
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

static void big(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    const char *q = snow_http_req_query(req, "n", &n);
    char num[32];
    if (!q || n == 0 || n >= sizeof num) {
        snow_http_res_send(res, 400, "text/plain", "n?\n", 3);
        return;
    }
    memcpy(num, q, n);
    num[n] = 0;
    size_t len = strtoul(num, NULL, 10);
    char *body = malloc(len ? len : 1);
    if (!body) {
        snow_http_res_send(res, 500, "text/plain", "no memory\n", 10);
        return;
    }
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + i % 26);
    snow_http_res_send(res, 200, "application/octet-stream", body, len);
    free(body);
}

static void echo(SnowHttpReq *req, SnowHttpRes *res, void *arg)
{
    (void)arg;
    size_t n;
    const void *b = snow_http_req_body(req, &n);
    snow_http_res_send(res, 200, "application/octet-stream", b, n);
}

static void on_signal(int sig)
{
    (void)sig;
    snow_rt_shutdown();
}

int main(int argc, char **argv)
{
    SnowHttpOpts o;
    snow_http_opts_init(&o);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--tls-cert") == 0)
            o.tls_cert_file = v;
        else if (strcmp(k, "--tls-key") == 0)
            o.tls_key_file = v;
        else if (strcmp(k, "--write-timeout-ms") == 0)
            o.write_timeout_ms = atoi(v);
        else if (strcmp(k, "--body-timeout-ms") == 0)
            o.body_timeout_ms = atoi(v);
        else if (strcmp(k, "--request-timeout-ms") == 0)
            o.request_timeout_ms = atoi(v);
        else if (strcmp(k, "--header-timeout-ms") == 0)
            o.header_timeout_ms = atoi(v);
        else if (strcmp(k, "--max-body") == 0)
            o.max_body = strtoul(v, NULL, 10);
        else if (strcmp(k, "--max-buffered") == 0)
            o.max_buffered_bytes = strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "probe-server: unknown option %s\n", k);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int err = snow_rt_init(2);
    if (err < 0)
        return 1;
    SnowRouter *r = snow_router_new();
    if (!r || snow_router_route(r, "GET", "/", hello, NULL) < 0 || snow_router_route(r, "GET", "/big", big, NULL) < 0 ||
        snow_router_route(r, "POST", "/echo", echo, NULL) < 0)
        return 1;
    SnowHttpServer *srv = snow_http_server_start(r, "127.0.0.1", 0, &o, &err);
    snow_router_free(r);
    if (!srv) {
        fprintf(stderr, "probe-server: %s\n", snow_strerror(err));
        snow_rt_shutdown();
        snow_rt_run();
        return 1;
    }
    printf("listening on %d\n", snow_http_server_port(srv));
    fflush(stdout);
    snow_rt_run();
    snow_http_server_stop(srv);
    return 0;
}
