/*
 * fanout.c: cross-node room fanout load generator (no runtime: plain
 * sockets and one epoll loop, so it measures the servers, not itself).
 *
 *   snow-bench-redis-fanout --ports P1[,P2,...] [--subscribers N]
 *                           [--rate MSGS_PER_S] [--seconds S] [--path /broadcast]
 *
 * N subscriber WebSockets are spread round-robin over the ports (nodes on
 * 127.0.0.1); one publisher connection on the first port sends --rate text
 * messages a second for --seconds, each carrying its send time. Every node
 * delivers each message to its members of the room (the publisher itself
 * is skipped: broadcast_except). Prints the deliveries a second, the
 * deliveries expected and received, and latency percentiles (send ->
 * receipt, microseconds), as "bench redis_fanout key=value ...".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sub {
    int fd;
    size_t rlen;
    unsigned char rbuf[8192];
    int upgraded;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, port);
    if (write(fd, req, (size_t)n) != n) {
        perror("write");
        exit(1);
    }
    /* Read the 101 answer up to its blank line, byte by byte (setup only). */
    char c, last[4] = {0};
    while (memcmp(last, "\r\n\r\n", 4)) {
        if (read(fd, &c, 1) != 1) {
            fprintf(stderr, "handshake failed on port %d\n", port);
            exit(1);
        }
        memmove(last, last + 1, 3);
        last[3] = c;
    }
    return fd;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int ports[16], nports = 0, subs = 3000;
    double rate = 100, seconds = 5;
    const char *path = "/broadcast";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ports")) {
            for (char *t = strtok(argv[i + 1], ","); t && nports < 16; t = strtok(NULL, ","))
                ports[nports++] = atoi(t);
        } else if (!strcmp(argv[i], "--subscribers")) {
            subs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--rate")) {
            rate = atof(argv[i + 1]);
        } else if (!strcmp(argv[i], "--seconds")) {
            seconds = atof(argv[i + 1]);
        } else if (!strcmp(argv[i], "--path")) {
            path = argv[i + 1];
        }
    }
    if (!nports || subs < 1 || rate <= 0 || seconds <= 0) {
        fprintf(stderr, "usage: %s --ports P1[,P2..] [--subscribers N] [--rate R] [--seconds S]\n", argv[0]);
        return 2;
    }
    int ep = epoll_create1(0);
    struct sub *sv = calloc((size_t)subs, sizeof *sv);
    for (int i = 0; i < subs; i++) {
        sv[i].fd = dial(ports[i % nports], path);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sv[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, sv[i].fd, &ev);
    }
    int pub = dial(ports[0], path);
    /* Let every node finish subscribing before measuring. */
    usleep(1000 * 1000);
    long total = (long)(rate * seconds);
    size_t cap = (size_t)total * (size_t)subs;
    if (cap > 20000000)
        cap = 20000000;
    int64_t *lat = malloc(cap * sizeof *lat);
    size_t nlat = 0;
    long received = 0, sent = 0;
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate), last_rx = start;
    int64_t end_wait = 0;
    struct epoll_event evs[256];
    for (;;) {
        int64_t t = now_ns();
        while (sent < total && t >= start + sent * interval) {
            /* Masked text frame (mask 0: the payload goes as is). */
            char msg[32];
            int ml = snprintf(msg, sizeof msg, "%020lld", (long long)now_ns());
            unsigned char f[64] = {0x81, (unsigned char)(0x80 | ml), 0, 0, 0, 0};
            memcpy(f + 6, msg, (size_t)ml);
            if (write(pub, f, (size_t)(6 + ml)) != 6 + ml) {
                perror("publish");
                return 1;
            }
            sent++;
        }
        if (sent == total && !end_wait)
            end_wait = t + 3000000000LL; /* stragglers: up to 3 s after the last send */
        if (end_wait && (t >= end_wait || received == total * subs))
            break;
        int64_t next = sent < total ? start + sent * interval : t + 10000000;
        int to = (int)((next - t) / 1000000);
        int n = epoll_wait(ep, evs, 256, to < 0 ? 0 : to);
        for (int k = 0; k < n; k++) {
            struct sub *s = evs[k].data.ptr;
            ssize_t r = read(s->fd, s->rbuf + s->rlen, sizeof s->rbuf - s->rlen);
            if (r <= 0)
                continue;
            int64_t rx = now_ns();
            s->rlen += (size_t)r;
            size_t off = 0;
            while (s->rlen - off >= 2) {
                size_t pl = s->rbuf[off + 1] & 0x7f, h = 2;
                if (pl == 126) {
                    if (s->rlen - off < 4)
                        break;
                    pl = (size_t)s->rbuf[off + 2] << 8 | s->rbuf[off + 3];
                    h = 4;
                }
                if (s->rlen - off < h + pl)
                    break;
                if ((s->rbuf[off] & 0x0f) == 1 && pl == 20) {
                    char tmp[21];
                    memcpy(tmp, s->rbuf + off + h, 20);
                    tmp[20] = 0;
                    if (nlat < cap)
                        lat[nlat++] = rx - atoll(tmp);
                    received++;
                    last_rx = rx;
                }
                off += h + pl;
            }
            memmove(s->rbuf, s->rbuf + off, s->rlen - off);
            s->rlen -= off;
        }
    }
    double secs = (double)(last_rx - start) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp64);
    printf("bench redis_fanout nodes=%d subscribers=%d rate=%.0f seconds=%.1f expected=%ld received=%ld "
           "deliveries_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
           nports, subs, rate, seconds, total * subs, received, secs > 0 ? (double)received / secs : 0,
           nlat ? (double)lat[nlat / 2] / 1e3 : 0, nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0,
           nlat ? (double)lat[nlat - 1] / 1e3 : 0);
    return 0;
}
