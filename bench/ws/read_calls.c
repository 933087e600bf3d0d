/*
 * snow-bench-read-calls: what one read of a small message from a loopback
 * TCP socket costs with each of the calls a stream can use: readv into two
 * buffers (the TLS reader's call mid-record: the record's rest, then the
 * staging buffer), recvmsg with the same two buffers, and recv into one
 * (the plain stream's call, and the TLS reader's at a record's start).
 *
 *   snow-bench-read-calls [--rounds N] [--reads N] [--size BYTES]
 *
 * Each read is timed alone (the clock around the call only): a send of
 * --size bytes (69, a 64-byte masked frame's length) from the other end
 * of the connection, then the read of them. The calls take turns in
 * blocks of --reads (100,000), --rounds (12) times. Prints one line:
 * each call's nanoseconds per read, the median over the rounds.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { CALL_READV, CALL_RECVMSG, CALL_RECV, NCALLS };
/* The TLS reader's buffers: a record's room and the staging buffer, each
 * BR_SSL_BUFSIZE_INPUT. A send is read whole by every call, so no larger. */
enum { STAGE_BYTES = 16709 };
static const char *const call_names[NCALLS] = {"readv", "recvmsg", "recv"};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* A connected pair over 127.0.0.1: *tx sends, *rx reads. */
static void connect_pair(int *tx, int *rx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        die("listen");
    *tx = socket(AF_INET, SOCK_STREAM, 0);
    if (*tx < 0 || connect(*tx, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    *rx = accept(l, NULL, NULL);
    if (*rx < 0)
        die("accept");
    close(l);
    int one = 1;
    setsockopt(*tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Mean seconds per read of size bytes with call, over n reads. */
static double time_reads(int call, int tx, int rx, size_t size, long n)
{
    static unsigned char msg[STAGE_BYTES], engine[STAGE_BYTES], stage[STAGE_BYTES];
    double in_calls = 0;
    for (long i = 0; i < n; i++) {
        if (send(tx, msg, size, 0) != (ssize_t)size)
            die("send");
        struct iovec v[2] = {{engine, sizeof engine}, {stage, sizeof stage}};
        struct msghdr h = {.msg_iov = v, .msg_iovlen = 2};
        double t0 = now_s();
        ssize_t got;
        switch (call) {
        case CALL_READV: got = readv(rx, v, 2); break;
        case CALL_RECVMSG: got = recvmsg(rx, &h, MSG_DONTWAIT); break;
        default: got = recv(rx, stage, sizeof stage, MSG_DONTWAIT); break;
        }
        in_calls += now_s() - t0;
        if (got != (ssize_t)size) {
            fprintf(stderr, "snow-bench-read-calls: %s read %zd of %zu bytes\n", call_names[call], got, size);
            exit(1);
        }
    }
    return in_calls / (double)n;
}

int main(int argc, char **argv)
{
    int rounds = 12;
    long reads = 100000;
    size_t size = 69;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--reads") == 0)
            reads = atol(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--size") == 0)
            size = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: snow-bench-read-calls [--rounds N] [--reads N] [--size BYTES]\n");
            return 2;
        }
    }
    if (rounds < 1 || reads < 1 || size < 1 || size > STAGE_BYTES) {
        fprintf(stderr, "snow-bench-read-calls: rounds and reads at least 1, size 1 to %d\n", STAGE_BYTES);
        return 2;
    }
    int tx, rx;
    connect_pair(&tx, &rx);
    double *ns = calloc((size_t)rounds * NCALLS, sizeof *ns);
    if (!ns)
        die("calloc");
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < NCALLS; c++)
            ns[c * rounds + r] = time_reads(c, tx, rx, size, reads) * 1e9;
    printf("bench read_calls size=%zu rounds=%d reads=%ld", size, rounds, reads);
    for (int c = 0; c < NCALLS; c++) {
        qsort(ns + c * rounds, (size_t)rounds, sizeof *ns, cmp_double);
        double med = rounds % 2 ? ns[c * rounds + rounds / 2]
                                : (ns[c * rounds + rounds / 2 - 1] + ns[c * rounds + rounds / 2]) / 2;
        printf(" %s_ns=%.0f", call_names[c], med);
    }
    printf("\n");
    free(ns);
    return 0;
}
