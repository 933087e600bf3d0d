/*
 * loadgen.c: WebSocket load generator (snow-ws-loadgen). One thread, one
 * epoll loop, non-blocking sockets; see bench/README.md ("WebSocket") for
 * what each mode measures. Every payload that comes back is compared byte
 * for byte with what was sent; any difference, any protocol error and any
 * failed handshake ends the run with exit status 1 and a message naming
 * the connection.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

struct lg g;

/* --- time, CPU and /proc */

int64_t lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double lg_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

double lg_proc_cpu(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* After the command name: field 3 (state) onwards; utime and stime
     * are fields 14 and 15, in clock ticks (proc(5)). */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long lg_proc_rss_kib(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

void lg_cpu_mark(struct lg_cpu *m)
{
    m->t = lg_now();
    m->self = lg_self_cpu();
    m->server = lg_proc_cpu(g.o.server_pid);
}

void lg_cpu_span(const struct lg_cpu *a, const struct lg_cpu *b, double *self_pct, double *server_pct)
{
    double wall = (double)(b->t - a->t) / 1e9;
    *self_pct = wall > 0 ? 100.0 * (b->self - a->self) / wall : 0;
    *server_pct = (a->server >= 0 && b->server >= 0 && wall > 0) ? 100.0 * (b->server - a->server) / wall : -1;
}

/* --- latency histogram: 128 linear sub-buckets per power of two, so a
 * reported percentile is within 0.8 % of the true sample value. */

static int hist_index(int64_t v)
{
    if (v < 256)
        return v < 0 ? 0 : (int)v;
    int e = 63 - __builtin_clzll((unsigned long long)v);
    int shift = e - 7;
    int idx = (shift + 1) * 128 + (int)((v >> shift) - 128);
    return idx < LG_HIST_BUCKETS ? idx : LG_HIST_BUCKETS - 1;
}

static double hist_value(int idx)
{
    if (idx < 256)
        return idx;
    int shift = idx / 128 - 1;
    double lo = (double)((int64_t)(128 + idx % 128) << shift);
    return lo + (double)((int64_t)1 << shift) / 2;
}

void lg_hist_add(struct lg_hist *h, int64_t ns)
{
    h->b[hist_index(ns)]++;
    h->n++;
}

double lg_hist_pct_us(const struct lg_hist *h, double p)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)ceil(p * (double)h->n), acc = 0;
    if (rank < 1)
        rank = 1;
    for (int i = 0; i < LG_HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= rank)
            return hist_value(i) / 1000.0;
    }
    return hist_value(LG_HIST_BUCKETS - 1) / 1000.0;
}

/* --- failures */

void lg_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void lg_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- payloads */

const uint8_t *lg_expected(int text, uint64_t seq, int id, size_t n)
{
    if (n == 0)
        return g.tmpl_bin;
    size_t span = g.tmpl_size / 2;
    size_t off = (size_t)((seq * 131u + (uint64_t)id * 17u) % (span ? span : 1));
    return (text ? g.tmpl_txt : g.tmpl_bin) + off;
}

static void make_templates(size_t max)
{
    /* Each message is a window of max bytes into a 2*max template, offset
     * by its sequence number, so consecutive messages differ. */
    g.tmpl_size = 2 * (max ? max : 1);
    g.tmpl_bin = malloc(g.tmpl_size);
    g.tmpl_txt = malloc(g.tmpl_size);
    if (!g.tmpl_bin || !g.tmpl_txt)
        lg_fail("out of memory for %zu-byte payloads", max);
    for (size_t i = 0; i < g.tmpl_size; i++) {
        uint64_t r = wsc_rand(&g.sh);
        g.tmpl_bin[i] = (uint8_t)(r >> 56);
        g.tmpl_txt[i] = (uint8_t)(' ' + (r >> 40) % 95);
    }
}

/* --- connections and the loop */

static const char *src_for(int i)
{
    static char buf[32];
    if (g.o.src_addrs <= 1)
        return NULL;
    snprintf(buf, sizeof buf, "127.0.0.%d", 1 + i % g.o.src_addrs);
    return buf;
}

static void release_conns(void)
{
    for (int i = 0; i < g.nconns; i++) {
        struct wsc_conn *c = &g.conns[i];
        if (c->state != WSC_DONE) {
            close(c->fd);
            c->state = WSC_DONE;
        }
        wsc_release(c);
        free(c->user);
        c->user = NULL;
    }
    g.nconns = 0;
}

struct wsc_conn *lg_conns(int n)
{
    release_conns();
    if (n > g.cap) {
        struct wsc_conn *c = calloc((size_t)n, sizeof *c);
        if (!c)
            lg_fail("out of memory for %d connections", n);
        free(g.conns);
        g.conns = c;
        g.cap = n;
    }
    memset(g.conns, 0, (size_t)n * sizeof *g.conns);
    for (int i = 0; i < n; i++) {
        g.conns[i].fd = -1;
        g.conns[i].state = WSC_DONE;
        g.conns[i].id = i;
    }
    g.nconns = n;
    return g.conns;
}

int lg_connect(struct wsc_conn *c, const struct wsc_ops *ops, const char *path, int role)
{
    c->role = role;
    c->sent = c->recvd = 0;
    c->t0 = lg_now();
    int r = wsc_connect(c, &g.sh, ops, path, src_for(c->id));
    if (r < 0)
        return r;
    return 0;
}

bool lg_loop(bool (*done)(void), int64_t deadline)
{
    struct epoll_event evs[256];
    for (;;) {
        if (done && done())
            return true;
        int64_t now = lg_now();
        if (deadline && now >= deadline)
            return done ? done() : true;
        int64_t wait_ns = deadline ? deadline - now : INT64_C(50000000);
        if (g.tick_ns && g.tick_ns < wait_ns)
            wait_ns = g.tick_ns;
        if (wait_ns > INT64_C(50000000))
            wait_ns = INT64_C(50000000);
        /* Connections with bytes still to read are not reported again
         * (wsc_run_more): only look, then read them. */
        int ms = g.sh.nmore ? 0 : (int)((wait_ns + 999999) / 1000000);
        int n = epoll_wait(g.sh.epfd, evs, 256, ms);
        if (n < 0 && errno != EINTR)
            lg_fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            wsc_event(evs[i].data.ptr, evs[i].events);
        wsc_run_more(&g.sh);
        if (g.tick)
            g.tick();
    }
}

static int open_target;

static bool batch_settled(void)
{
    return g.opened + g.failed >= open_target;
}

int lg_open_batches(int n, const struct wsc_ops *ops, const char *path, int role, int first, bool fatal)
{
    int batch = g.o.batch > 0 ? g.o.batch : 500;
    for (int i = 0; i < n; i += batch) {
        int end = i + batch < n ? i + batch : n;
        open_target = g.opened + g.failed + (end - i);
        for (int k = i; k < end; k++) {
            int r = lg_connect(&g.conns[first + k], ops, path, role);
            if (r < 0) {
                if (fatal)
                    lg_fail("connection %d: connect: %s", first + k, strerror(-r));
                g.failed++;
            }
        }
        if (!lg_loop(batch_settled, lg_now() + INT64_C(30000000000)))
            lg_fail("%d of %d connections not upgraded within 30 s", open_target - g.opened - g.failed,
                    end - i);
        if (fatal && g.failed)
            lg_fail("%s", g.first_error);
    }
    return g.opened;
}

static int closing_left;

static bool all_closed(void)
{
    return closing_left == 0;
}

void lg_close_all(void)
{
    closing_left = 0;
    for (int i = 0; i < g.nconns; i++) {
        struct wsc_conn *c = &g.conns[i];
        if (c->state == WSC_DONE)
            continue;
        closing_left++;
        if (c->state == WSC_OPEN)
            wsc_close(c, 1000);
    }
    g.closing = true;
    lg_loop(all_closed, lg_now() + INT64_C(10000000000));
    for (int i = 0; i < g.nconns; i++)
        if (g.conns[i].state != WSC_DONE)
            wsc_abort(&g.conns[i], "no close from the server within 10 s");
    g.closing = false;
}

void lg_record_done(struct wsc_conn *c, bool clean, const char *why)
{
    if (g.closing && closing_left > 0)
        closing_left--;
    if (clean)
        g.clean_closes++;
    else {
        g.unclean++;
        if (!g.first_error[0])
            snprintf(g.first_error, sizeof g.first_error, "connection %d (%s): %s", c->id, c->path, why);
    }
}

/* --- the result line */

static char result[2048];
static size_t rlen;

void lg_result(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(result + rlen, sizeof result - rlen, fmt, ap);
    va_end(ap);
    if (n > 0)
        rlen += (size_t)n < sizeof result - rlen ? (size_t)n : sizeof result - rlen - 1;
}

static void print_result(void)
{
    if (g.o.label)
        lg_result(" %s", g.o.label);
    printf("%s\n", result);
    fflush(stdout);
}

/* --- options */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: snow-ws-loadgen MODE --port P [options]\n"
            "modes: echo | idle | handshake | fanout | smoke\n"
            "  --host A          server address (127.0.0.1)\n"
            "  --port P          server port (required)\n"
            "  --path P          request path (/echo; /broadcast for fanout)\n"
            "  --conns N         echo: connections (100); idle: connections (1000)\n"
            "  --size B          message payload bytes (64)\n"
            "  --depth D         echo: messages in flight per connection; fanout: broadcasts in flight (1)\n"
            "  --seconds S       measured time (10); --warmup S before it (1)\n"
            "  --concurrency C   handshake: connections at a time (32)\n"
            "  --subscribers N   fanout: subscribers (1000)\n"
            "  --batch B         connections opened at a time (500)\n"
            "  --hold S          idle: seconds held for the CPU figure (5)\n"
            "  --server-pid PID  read the server's RSS and CPU time from /proc/PID\n"
            "  --src-addrs K     spread connections over source addresses 127.0.0.1..K\n"
            "                    (idle default: one per 25,000 connections)\n"
            "  --text            echo text frames (ASCII payloads) instead of binary\n"
            "  --tls             wss: TLS 1.2 with BearSSL; needs --tls-ca\n"
            "  --tls-ca FILE     the server's certificate (PEM); its key is pinned\n"
            "  --sni NAME        server name sent in TLS (localhost)\n"
            "  --label TEXT      appended to the result line (e.g. server=snow-rt)\n");
}

static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "loadgen: %s %s: expected a number in %g..%g\n", opt, v, lo, hi);
        exit(2);
    }
    return d;
}

static void parse_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},   {"path", 1, 0, 'P'},
        {"conns", 1, 0, 'c'},       {"size", 1, 0, 's'},   {"depth", 1, 0, 'd'},
        {"seconds", 1, 0, 't'},     {"warmup", 1, 0, 'w'}, {"concurrency", 1, 0, 'C'},
        {"subscribers", 1, 0, 'n'}, {"batch", 1, 0, 'b'},  {"hold", 1, 0, 'o'},
        {"server-pid", 1, 0, 'i'},  {"src-addrs", 1, 0, 'a'}, {"text", 0, 0, 'x'},
        {"tls", 0, 0, 'T'},         {"tls-ca", 1, 0, 'A'}, {"sni", 1, 0, 'S'},
        {"label", 1, 0, 'L'},       {"smoke", 0, 0, 'k'},  {"help", 0, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct lg_opts *o = &g.o;
    o->host = "127.0.0.1";
    o->size = 64;
    o->depth = 1;
    o->seconds = 10;
    o->warmup = 1;
    o->concurrency = 32;
    o->subscribers = 1000;
    o->batch = 500;
    o->hold = 5;
    o->sni = "localhost";
    o->conns = -1;
    o->src_addrs = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = (int)num("--port", optarg, 1, 65535); break;
        case 'P': o->path = optarg; break;
        case 'c': o->conns = (int)num("--conns", optarg, 1, 1000000); break;
        case 's': o->size = (size_t)num("--size", optarg, 0, 64 << 20); break;
        case 'd': o->depth = (int)num("--depth", optarg, 1, 4096); break;
        case 't': o->seconds = num("--seconds", optarg, 0.01, 86400); break;
        case 'w': o->warmup = num("--warmup", optarg, 0, 3600); break;
        case 'C': o->concurrency = (int)num("--concurrency", optarg, 1, 100000); break;
        case 'n': o->subscribers = (int)num("--subscribers", optarg, 1, 1000000); break;
        case 'b': o->batch = (int)num("--batch", optarg, 1, 1000000); break;
        case 'o': o->hold = num("--hold", optarg, 0, 3600); break;
        case 'i': o->server_pid = (int)num("--server-pid", optarg, 1, 1 << 30); break;
        case 'a': o->src_addrs = (int)num("--src-addrs", optarg, 1, 254); break;
        case 'x': o->text = true; break;
        case 'T': o->tls = true; break;
        case 'A': o->tls_ca = optarg; break;
        case 'S': o->sni = optarg; break;
        case 'L': o->label = optarg; break;
        case 'k': o->mode = "smoke"; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (!o->mode && optind < argc)
        o->mode = argv[optind++];
    if (!o->mode || optind != argc || !o->port) {
        usage(stderr);
        exit(2);
    }
    if (o->tls && !o->tls_ca) {
        fprintf(stderr, "loadgen: --tls needs --tls-ca (the server's certificate)\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    parse_opts(argc, argv);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    g.sh.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.sh.epfd < 0)
        lg_fail("epoll_create1: %s", strerror(errno));
    g.sh.host = g.o.host;
    g.sh.port = g.o.port;
    g.sh.max_message = (uint64_t)g.o.size + (64u << 20);
    g.sh.scratch_cap = 256 * 1024;
    g.sh.scratch = malloc(g.sh.scratch_cap);
    wsc_shared_seed(&g.sh);
    if (g.o.tls) {
        g.sh.tls = true;
        g.sh.pinned = wsc_load_pinned_key(g.o.tls_ca);
        if (!g.sh.pinned)
            return 2;
        g.sh.sni = g.o.sni;
        wsc_pick_suites(&g.sh);
    }
    size_t max = g.o.size;
    if (strcmp(g.o.mode, "smoke") == 0 && max < LG_SMOKE_MAX)
        max = LG_SMOKE_MAX;
    make_templates(max);

    int rc;
    if (strcmp(g.o.mode, "echo") == 0)
        rc = lg_mode_echo();
    else if (strcmp(g.o.mode, "idle") == 0)
        rc = lg_mode_idle();
    else if (strcmp(g.o.mode, "handshake") == 0)
        rc = lg_mode_handshake();
    else if (strcmp(g.o.mode, "fanout") == 0)
        rc = lg_mode_fanout();
    else if (strcmp(g.o.mode, "smoke") == 0)
        rc = lg_mode_smoke();
    else {
        usage(stderr);
        return 2;
    }
    if (rlen)
        print_result();
    release_conns();
    free(g.conns);
    free(g.tmpl_bin);
    free(g.tmpl_txt);
    free(g.sh.scratch);
    close(g.sh.epfd);
    return rc;
}
