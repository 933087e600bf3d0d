/*
 * rooms_redis.c: the Redis backend under the room registry's seam
 * (rooms.h, struct ws_rooms_backend): rooms spanning several processes
 * through one redis-server, over Redis pub/sub. REDIS.md has the whole
 * story; the short one:
 *
 *   - One channel per room, "<prefix><room>". The broker then filters:
 *     a node receives only the rooms it has members in, PUBSUB NUMSUB
 *     tells who listens, and a busy room costs nothing to a node without
 *     members in it. A fixed set of sharded channels would send every node
 *     every room's traffic to be filtered here.
 *   - Two actors, each with its own connection: the publisher (PUBLISH
 *     pipelined, replies read and counted) and the subscriber (SUBSCRIBE /
 *     UNSUBSCRIBE as rooms gain their first or lose their last local
 *     member, and the messages). The registry's hooks never park: they
 *     only send these actors a message, under a bound.
 *   - Every message carries an envelope: the origin node's id (its own
 *     publishes come back and are skipped), the origin room's epoch and a
 *     per-room publish counter of that node (gaps are detected from it),
 *     and the stamp offsets (each node writes its own room positions).
 *   - Delivery is at most once. A gap (broker restart, a publish dropped
 *     while disconnected) is counted and clears the room's history ring on
 *     the node that saw it, so a client resuming across it is told
 *     recovered = false instead of being shown a history with a hole.
 *
 * Nothing here blocks a worker: connect, AUTH, SUBSCRIBE, PUBLISH and the
 * reconnect backoff all park on the poller. The host must be an IP literal
 * (or "localhost"): name resolution (getaddrinfo) would block.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/stream.h"
#include "ws/frame.h"
#include "ws/redis_resp.h"
#include "ws/rooms.h"
#include "ws/rooms_redis.h"


/* Private message tags of the two actors. */
struct redis_state redis_rt = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct redis_counters redis_stats;

/* ---- URL -------------------------------------------------------------------------------- */

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -EINVAL;
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

int redis_url_parse(const char *s, struct redis_url *u)
{
    memset(u, 0, sizeof *u);
    static const char scheme[] = "redis://";
    if (!s || strncmp(s, scheme, sizeof scheme - 1))
        return -EINVAL; /* rediss:// (TLS) is not supported */
    s += sizeof scheme - 1;
    const char *end = s + strcspn(s, "/?#");
    const char *at = memchr(s, '@', (size_t)(end - s));
    if (at) {
        /* user:password@ or :password@ or password@ */
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon) {
            if (copy_part(u->user, sizeof u->user, s, (size_t)(colon - s)) ||
                copy_part(u->pass, sizeof u->pass, colon + 1, (size_t)(at - colon - 1)))
                return -EINVAL;
        } else if (copy_part(u->pass, sizeof u->pass, s, (size_t)(at - s))) {
            return -EINVAL;
        }
        s = at + 1;
    }
    char host[64];
    const char *hp_end = end, *port = NULL;
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb || copy_part(host, sizeof host, s + 1, (size_t)(rb - s - 1)))
            return -EINVAL;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return -EINVAL;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (colon) {
            port = colon + 1;
            hp_end = colon;
        }
        if (copy_part(host, sizeof host, s, (size_t)(hp_end - s)))
            return -EINVAL;
    }
    long pn = 6379;
    if (port) {
        char *pe;
        errno = 0;
        pn = strtol(port, &pe, 10);
        if (errno || pe != end || pe == port || pn < 1 || pn > 65535)
            return -EINVAL;
    }
    if (!*host || !strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *a4 = (struct sockaddr_in *)&u->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&u->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)pn);
        u->alen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)pn);
        u->alen = sizeof *a6;
    } else {
        return -EINVAL; /* names would need a blocking resolver */
    }
    /* The database number is accepted and checked; pub/sub channels are
     * not per database, so nothing else uses it. */
    u->db = 0;
    if (*end == '/' && end[1] && end[1] != '?') {
        char *de;
        errno = 0;
        long db = strtol(end + 1, &de, 10);
        if (errno || de == end + 1 || (*de && *de != '?') || db < 0 || db > 65535)
            return -EINVAL;
        u->db = (int)db;
        end = de;
    } else if (*end == '/') {
        end++;
    }
    strcpy(u->prefix, REDIS_PREFIX_DEFAULT);
    u->maxlen = REDIS_MAXLEN_DEFAULT;
    if (*end && *end != '?')
        return -EINVAL;
    /* ?prefix=P&mode=pubsub|streams&maxlen=N, in any order */
    for (const char *q = *end ? end + 1 : end; *q;) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return -EINVAL;
        size_t kl = (size_t)(eq - q), vl = n - kl - 1;
        const char *v = eq + 1;
        if (kl == 6 && !memcmp(q, "prefix", 6)) {
            if (copy_part(u->prefix, sizeof u->prefix, v, vl))
                return -EINVAL;
        } else if (kl == 4 && !memcmp(q, "mode", 4)) {
            if (vl == 7 && !memcmp(v, "streams", 7))
                u->streams = true;
            else if (vl == 6 && !memcmp(v, "pubsub", 6))
                u->streams = false;
            else
                return -EINVAL;
        } else if (kl == 6 && !memcmp(q, "maxlen", 6)) {
            char num[16];
            char *ne;
            if (copy_part(num, sizeof num, v, vl))
                return -EINVAL;
            errno = 0;
            long ml = strtol(num, &ne, 10);
            if (errno || ne == num || *ne || ml < 1 || ml > 100000000)
                return -EINVAL;
            u->maxlen = ml;
        } else {
            return -EINVAL;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* ---- the connection: connect, AUTH, read replies ------------------------------------------ */


void redis_conn_close(struct redis_conn *c)
{
    if (c->s)
        http_stream_close(c->s);
    c->s = NULL;
    c->rlen = 0;
}

static int connect_to(struct redis_conn *c, int64_t deadline)
{
    const struct redis_url *u = &redis_rt.url;
    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (const struct sockaddr *)&u->addr, u->alen);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != EINPROGRESS) {
        close(fd);
        return -err;
    }
    int oerr;
    SnowIo *io = snow_io_open(fd, &oerr);
    if (!io) {
        close(fd);
        return oerr;
    }
    c->s = http_stream_plain(io);
    if (!c->s) {
        snow_io_close(io);
        return -ENOMEM;
    }
    if (rc < 0) {
        /* Writable once the handshake finished, one way or the other. */
        int w = http_stream_wait(c->s, SNOW_WAIT_WRITABLE, deadline);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr ||
            !(w & (SNOW_WAIT_WRITABLE | SNOW_WAIT_HANGUP))) {
            redis_conn_close(c);
            return soerr ? -soerr : SNOW_ETIMEOUT;
        }
    }
    return 0;
}

/* Reads what the socket has into the buffer (growing it up to rmax).
 * Returns > 0 bytes read, -EAGAIN, 0 at end of stream, or an error. */
ssize_t redis_conn_fill(struct redis_conn *c)
{
    if (c->rlen == c->rcap) {
        if (c->rcap >= c->rmax)
            return RESP_ETOOBIG;
        size_t nc = c->rcap ? c->rcap * 2 : 16384;
        if (nc > c->rmax)
            nc = c->rmax;
        char *nb = realloc(c->rbuf, nc);
        if (!nb)
            return -ENOMEM;
        c->rbuf = nb;
        c->rcap = nc;
    }
    return http_stream_read_nb(c->s, c->rbuf + c->rlen, c->rcap - c->rlen);
}

void redis_conn_consume(struct redis_conn *c, size_t n)
{
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

/* Sends one command and parks for its reply (only used right after a
 * connect, before anything else is in flight). Returns 0 when the reply is
 * not an error. */
static int conn_command(struct redis_conn *c, int argc, const char *const *argv, const size_t *lens, int64_t deadline)
{
    char buf[1024];
    if (resp_encoded_size(argc, lens) > sizeof buf)
        return -EINVAL;
    size_t n = resp_encode(buf, argc, argv, lens);
    int rc = http_stream_write(c->s, buf, n, deadline);
    if (rc)
        return rc;
    for (;;) {
        struct resp_val v[8];
        size_t nv;
        struct resp_limits lim = {RT_ARRAY_LEN(v), 4096};
        ssize_t p = resp_parse(c->rbuf, c->rlen, &lim, v, &nv);
        if (p > 0) {
            bool err = v[0].type == RESP_ERROR;
            if (err)
                rt_log(RT_LOG_WARN, "rooms redis: %.*s", (int)(v[0].len > 200 ? 200 : v[0].len), v[0].str);
            redis_conn_consume(c, (size_t)p);
            return err ? SNOW_EPROTOCOL : 0;
        }
        if (p != RESP_INCOMPLETE)
            return SNOW_EPROTOCOL;
        ssize_t r = redis_conn_fill(c);
        if (r > 0) {
            c->rlen += (size_t)r;
            continue;
        }
        if (r != -EAGAIN)
            return r ? (int)r : -ECONNRESET;
        int w = http_stream_wait(c->s, SNOW_WAIT_READABLE, deadline);
        if (w < 0)
            return w;
        if (!(w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP)))
            return SNOW_ETIMEOUT;
    }
}

/* Connects and authenticates. */
int redis_conn_open(struct redis_conn *c)
{
    int64_t deadline = actor_deadline_after_ms(REDIS_CONNECT_TIMEOUT_MS);
    int rc = connect_to(c, deadline);
    if (!rc && redis_rt.url.pass[0]) {
        const char *argv[3] = {"AUTH", redis_rt.url.user, redis_rt.url.pass};
        size_t lens[3] = {4, strlen(redis_rt.url.user), strlen(redis_rt.url.pass)};
        rc = redis_rt.url.user[0] ? conn_command(c, 3, argv, lens, deadline)
                           : conn_command(c, 2, (const char *const[]){"AUTH", redis_rt.url.pass},
                                          (const size_t[]){4, lens[2]}, deadline);
    }
    if (rc) {
        redis_conn_close(c);
        redis_count(&redis_stats.connect_failures, 1);
        return rc;
    }
    redis_count(&redis_stats.connects, 1);
    return 0;
}

/* The wait before reconnect attempt k (0, 1, ...): doubling from
 * REDIS_BACKOFF_MIN_MS up to REDIS_BACKOFF_MAX_MS. */
int redis_backoff_ms(unsigned k)
{
    int64_t ms = REDIS_BACKOFF_MIN_MS;
    while (k-- && ms < REDIS_BACKOFF_MAX_MS)
        ms *= 2;
    return (int)(ms < REDIS_BACKOFF_MAX_MS ? ms : REDIS_BACKOFF_MAX_MS);
}

/* ---- the publisher -------------------------------------------------------------------- */

struct publisher {
    struct redis_conn c;
    char *out;
    size_t olen, ocap;
    unsigned attempt;
    int64_t retry_at; /* next connect attempt while disconnected */
    uint64_t batch;   /* envelopes in out */
};

static void publisher_terminate(int reason, void *arg)
{
    (void)reason;
    struct publisher *p = arg;
    redis_conn_close(&p->c);
    free(p->c.rbuf);
    free(p->out);
    p->c.rbuf = p->out = NULL;
    pthread_mutex_lock(&redis_rt.lock);
    if (redis_rt.pub_pid == snow_actor_self()) {
        redis_rt.pub_pid = 0;
        redis_rt.pub_bytes = 0;
        atomic_store_explicit(&redis_stats.pub_connected, 0, memory_order_relaxed);
        atomic_store_explicit(&redis_stats.pub_running, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&redis_rt.lock);
}

static int out_reserve(struct publisher *p, size_t n)
{
    if (p->ocap - p->olen >= n)
        return 0;
    size_t nc = p->ocap ? p->ocap : 65536;
    while (nc - p->olen < n)
        nc *= 2;
    char *nb = realloc(p->out, nc);
    if (!nb)
        return -ENOMEM;
    p->out = nb;
    p->ocap = nc;
    return 0;
}

/* One REDIS_TAG_PUBLISH message into the output as PUBLISH channel envelope, or
 * counted as dropped while there is no connection. */
static void take_publish(struct publisher *p, const SnowMessage *m)
{
    pthread_mutex_lock(&redis_rt.lock);
    redis_rt.pub_bytes -= m->len;
    pthread_mutex_unlock(&redis_rt.lock);
    uint32_t rl;
    memcpy(&rl, m->data, sizeof rl);
    const unsigned char *room = m->data + sizeof rl, *env = room + rl;
    size_t envlen = m->len - sizeof rl - rl;
    if (!p->c.s) {
        redis_count(&redis_stats.dropped, 1);
        return;
    }
    char chan[REDIS_PREFIX_MAX + SNOW_ROOM_NAME_MAX];
    size_t pl = strlen(redis_rt.url.prefix);
    memcpy(chan, redis_rt.url.prefix, pl);
    memcpy(chan + pl, room, rl);
    char maxlen[24];
    int ml = snprintf(maxlen, sizeof maxlen, "%ld", redis_rt.url.maxlen);
    /* Streams: XADD key MAXLEN ~ N * e envelope (the stream trimmed to
     * about N entries, in whole nodes, which is cheap for the server). */
    const char *xargv[7] = {"XADD", chan, "MAXLEN", "~", maxlen, "*", "e"};
    const char *argv[8];
    size_t lens[8];
    int argc;
    if (redis_rt.url.streams) {
        size_t xl[7] = {4, pl + rl, 6, 1, (size_t)ml, 1, 1};
        memcpy(argv, xargv, sizeof xargv);
        memcpy(lens, xl, sizeof xl);
        argv[7] = (const char *)env;
        lens[7] = envlen;
        argc = 8;
    } else {
        argv[0] = "PUBLISH";
        lens[0] = 7;
        argv[1] = chan;
        lens[1] = pl + rl;
        argv[2] = (const char *)env;
        lens[2] = envlen;
        argc = 3;
    }
    size_t need = resp_encoded_size(argc, lens);
    if (out_reserve(p, need)) {
        redis_count(&redis_stats.dropped, 1);
        return;
    }
    p->olen += resp_encode(p->out + p->olen, argc, argv, lens);
    p->batch++;
}

/* Reads and counts PUBLISH replies. Returns 0, or < 0 when the connection
 * is lost or speaks nonsense. */
static int read_replies(struct publisher *p)
{
    for (;;) {
        ssize_t r = redis_conn_fill(&p->c);
        if (r == -EAGAIN)
            return 0;
        if (r <= 0)
            return r ? (int)r : -ECONNRESET;
        p->c.rlen += (size_t)r;
        size_t off = 0;
        for (;;) {
            struct resp_val v[4];
            size_t nv;
            struct resp_limits lim = {RT_ARRAY_LEN(v), 4096};
            ssize_t k = resp_parse(p->c.rbuf + off, p->c.rlen - off, &lim, v, &nv);
            if (k == RESP_INCOMPLETE)
                break;
            if (k < 0) {
                redis_count(&redis_stats.protocol_errors, 1);
                return SNOW_EPROTOCOL;
            }
            if (v[0].type == RESP_ERROR)
                redis_count(&redis_stats.publish_errors, 1);
            off += (size_t)k;
        }
        redis_conn_consume(&p->c, off);
    }
}

static void publisher_lost(struct publisher *p)
{
    redis_conn_close(&p->c);
    atomic_store_explicit(&redis_stats.pub_connected, 0, memory_order_relaxed);
    p->retry_at = actor_deadline_after_ms(redis_backoff_ms(p->attempt++));
}

static void publisher_main(void *arg)
{
    struct publisher *p = arg;
    p->c.rmax = 1 << 20;
    atomic_store_explicit(&redis_stats.pub_running, 1, memory_order_relaxed);
    int64_t idle_since = rt_now_ns();
    for (;;) {
        if (!p->c.s && rt_now_ns() >= p->retry_at) {
            if (redis_conn_open(&p->c) == 0) {
                p->attempt = 0;
                atomic_store_explicit(&redis_stats.pub_connected, 1, memory_order_relaxed);
            } else {
                p->retry_at = actor_deadline_after_ms(redis_backoff_ms(p->attempt++));
            }
        }
        /* Take what is queued: a batch of at most 256 messages or 256 KiB
         * goes out in one write. */
        /* In streams mode nothing is taken while disconnected: the
         * mailbox is the buffer (bounded by REDIS_PENDING_MAX in the hook),
         * and a batch whose write failed is written again after the
         * reconnect (a message that had gone out is then skipped by the
         * readers: its counter is not newer). */
        bool streams = redis_rt.url.streams;
        SnowMessage *m;
        while (p->batch < 256 && p->olen < 262144 && (p->c.s || !streams) && (m = snow_actor_receive(0))) {
            if (m->tag == REDIS_TAG_PUBLISH && m->len >= sizeof(uint32_t))
                take_publish(p, m);
        }
        if (p->olen && p->c.s) {
            int rc = http_stream_write(p->c.s, p->out, p->olen, actor_deadline_after_ms(REDIS_WRITE_TIMEOUT_MS));
            if (rc) {
                publisher_lost(p);
                if (streams)
                    continue;
                redis_count(&redis_stats.dropped, p->batch);
            } else {
                redis_count(&redis_stats.published, p->batch);
            }
            p->olen = 0;
            p->batch = 0;
            idle_since = rt_now_ns();
            /* Replies are read between batches too, so that a steady
             * stream of publishes never leaves them piling up. */
            if (p->c.s && read_replies(p) < 0)
                publisher_lost(p);
            continue;
        }
        if (p->c.s && read_replies(p) < 0) {
            publisher_lost(p);
            continue;
        }
        /* Idle: end after REDIS_IDLE_MS with nothing queued, so that the
         * backend never keeps snow_rt_run from returning. */
        pthread_mutex_lock(&redis_rt.lock);
        if (!redis_rt.pub_bytes && !p->olen && rt_now_ns() - idle_since >= (int64_t)REDIS_IDLE_MS * 1000000) {
            redis_rt.pub_pid = 0;
            atomic_store_explicit(&redis_stats.pub_connected, 0, memory_order_relaxed);
            atomic_store_explicit(&redis_stats.pub_running, 0, memory_order_relaxed);
            pthread_mutex_unlock(&redis_rt.lock);
            break;
        }
        pthread_mutex_unlock(&redis_rt.lock);
        int64_t deadline = idle_since + (int64_t)REDIS_IDLE_MS * 1000000;
        if (!p->c.s && p->retry_at < deadline)
            deadline = p->retry_at;
        if (p->c.s)
            http_stream_wait(p->c.s, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, deadline);
        else
            actor_wait(NULL, streams ? 0 : SNOW_WAIT_MAILBOX, deadline);
    }
    publisher_terminate(0, p);
}

/* ---- the hooks ------------------------------------------------------------------------------ */

/* With redis_rt.lock held: the next publish counter of this node for the room at
 * that epoch (0: not counted, the room has no local life). */
/* With redis_rt.lock held: drops the counters of rooms that are gone (or
 * live again under another epoch). A room can end without a room_closed
 * call (a history ring switched off after its last member left), so the
 * table is swept before it grows: it stays bounded by the rooms that
 * exist. */
static void sweep_pseq_locked(void)
{
    for (uint32_t i = 0; i < redis_rt.pcap; i++)
        for (struct pcount **pp = &redis_rt.pc[i]; *pp;) {
            struct pcount *e = *pp;
            SnowRoomPos pos;
            if (snow_room_position(e->name, e->len, &pos) == 1 && pos.epoch == e->epoch) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            free(e);
            redis_rt.npc--;
        }
}

static uint64_t next_pseq_locked(const char *room, size_t len, uint64_t epoch)
{
    if (!epoch)
        return 0;
    uint64_t h = rooms_hash(room, len);
    /* Full: sweep, and grow unless the sweep freed half, so that a sweep
     * comes at most once per pcap / 2 new rooms. */
    bool full = redis_rt.npc >= redis_rt.pcap;
    if (full)
        sweep_pseq_locked();
    if (full && redis_rt.npc >= redis_rt.pcap / 2) {
        uint32_t nc = redis_rt.pcap ? redis_rt.pcap * 2 : 64;
        struct pcount **nb = calloc(nc, sizeof *nb);
        if (!nb)
            return 0;
        for (uint32_t i = 0; i < redis_rt.pcap; i++)
            for (struct pcount *e = redis_rt.pc[i], *nx; e; e = nx) {
                nx = e->next;
                uint32_t j = (uint32_t)rooms_hash(e->name, e->len) & (nc - 1);
                e->next = nb[j];
                nb[j] = e;
            }
        free(redis_rt.pc);
        redis_rt.pc = nb;
        redis_rt.pcap = nc;
    }
    struct pcount **b = &redis_rt.pc[h & (redis_rt.pcap - 1)], *e;
    for (e = *b; e; e = e->next)
        if (e->len == len && !memcmp(e->name, room, len))
            break;
    if (!e) {
        e = malloc(sizeof *e + len);
        if (!e)
            return 0;
        e->len = len;
        memcpy(e->name, room, len);
        e->epoch = 0;
        e->next = *b;
        *b = e;
        redis_rt.npc++;
    }
    if (e->epoch != epoch) {
        e->epoch = epoch;
        e->pseq = 0;
    }
    return ++e->pseq;
}

/* With redis_rt.lock held: forgets the room's counter when the room is gone (its
 * next life has another epoch and starts again at 1). */
static void forget_pseq_locked(const char *room, size_t len)
{
    if (!redis_rt.pcap)
        return;
    struct pcount **pp = &redis_rt.pc[rooms_hash(room, len) & (redis_rt.pcap - 1)];
    for (; *pp; pp = &(*pp)->next) {
        struct pcount *e = *pp;
        if (e->len == len && !memcmp(e->name, room, len)) {
            SnowRoomPos pos;
            if (snow_room_position(room, len, &pos) == 1 && pos.epoch == e->epoch)
                return; /* still alive (a history ring keeps it) */
            *pp = e->next;
            free(e);
            redis_rt.npc--;
            return;
        }
    }
}

static void hook_published(const char *room, size_t len, uint64_t epoch, uint64_t seq,
                           const struct ws_shared_frame *f, const struct room_publish *p)
{
    /* The subscriber hands remote messages to local members through
     * rooms_publish: those are not published again. */
    SnowPid self = snow_actor_self();
    if (self) {
        pthread_mutex_lock(&redis_rt.lock);
        bool inject = self == redis_rt.sub_pid;
        pthread_mutex_unlock(&redis_rt.lock);
        if (inject)
            return;
    }
    size_t pl = f->payload_len;
    if (f->rsv || pl > REDIS_MSG_MAX) {
        redis_count(&redis_stats.dropped, 1);
        return;
    }
    size_t n = sizeof(uint32_t) + len + REDIS_ENV_HEADER + pl;
    unsigned char *b = malloc(n);
    if (!b) {
        redis_count(&redis_stats.dropped, 1);
        return;
    }
    uint32_t rl = (uint32_t)len;
    memcpy(b, &rl, sizeof rl);
    memcpy(b + sizeof rl, room, len);
    memcpy(b + sizeof rl + len + REDIS_ENV_HEADER, f->bytes + (f->len - pl), pl);
    struct redis_env e = {
        .flags = f->opcode == WS_OP_TEXT ? REDIS_ENV_TEXT : 0,
        .node = redis_rt.node,
        .epoch = epoch,
        .seq = seq,
        .seq_at = p->seq_at,
        .epoch_at = p->epoch_at,
    };
    /* Under the lock: the counter order is the order of the publisher's
     * mailbox, so it is the order on the wire. */
    pthread_mutex_lock(&redis_rt.lock);
    e.pseq = next_pseq_locked(room, len, epoch);
    redis_env_encode(b + sizeof rl + len, &e);
    int err = 0;
    if (redis_rt.pub_bytes + n > REDIS_PENDING_MAX) {
        err = -ENOBUFS;
    } else {
        if (!redis_rt.pub_pid) {
            struct publisher init = {0};
            struct actor_spawn_opts o = {.worker = -1, .terminate = publisher_terminate};
            redis_rt.pub_pid = actor_spawn(publisher_main, &init, sizeof init, &o);
        }
        err = redis_rt.pub_pid ? actor_send_raw(redis_rt.pub_pid, REDIS_TAG_PUBLISH, 0, b, n) : SNOW_ENOT_RUNNING;
        if (!err)
            redis_rt.pub_bytes += n;
    }
    pthread_mutex_unlock(&redis_rt.lock);
    free(b);
    if (err)
        redis_count(&redis_stats.dropped, 1);
}

static void hook_changed(const char *room, size_t len)
{
    pthread_mutex_lock(&redis_rt.lock);
    if (!redis_rt.sub_pid) {
        struct actor_spawn_opts o = {.worker = -1, .terminate = redis_subscriber_terminate};
        struct redis_sub_args init = {0};
        redis_rt.sub_pid = actor_spawn(redis_subscriber_main, &init, sizeof init, &o);
    }
    if (redis_rt.sub_pid && !actor_send_raw(redis_rt.sub_pid, REDIS_TAG_SYNC, 0, room, len))
        redis_rt.sub_pending++;
    pthread_mutex_unlock(&redis_rt.lock);
}

static void hook_closed(const char *room, size_t len)
{
    hook_changed(room, len);
    pthread_mutex_lock(&redis_rt.lock);
    forget_pseq_locked(room, len);
    pthread_mutex_unlock(&redis_rt.lock);
}

static const struct ws_rooms_backend redis_backend = {
    .name = "redis",
    .room_opened = hook_changed,
    .room_closed = hook_closed,
    .published = hook_published,
};

/* ---- configuration ------------------------------------------------------------------------ */

int redis_backend_start(const char *url)
{
    if (!url) {
        ws_rooms_set_backend(NULL);
        return 0;
    }
    struct redis_url u;
    int err = redis_url_parse(url, &u);
    if (err)
        return err;
    pthread_mutex_lock(&redis_rt.lock);
    if (redis_rt.pub_pid || redis_rt.sub_pid) {
        pthread_mutex_unlock(&redis_rt.lock);
        return -EBUSY;
    }
    redis_rt.url = u;
    while (!redis_rt.node && getrandom(&redis_rt.node, sizeof redis_rt.node, 0) != sizeof redis_rt.node)
        ;
    pthread_mutex_unlock(&redis_rt.lock);
    ws_rooms_set_backend(&redis_backend);
    return 0;
}

void rooms_redis_from_env(void)
{
    const char *s = getenv("SNOW_ROOMS_REDIS");
    if (!s || !*s)
        return;
    int err = redis_backend_start(s);
    if (err)
        rt_log(RT_LOG_ERROR, "SNOW_ROOMS_REDIS: not a redis://host[:port][/db] URL with an IP address; rooms "
                             "stay in-process");
}

/* ---- the ABI ------------------------------------------------------------------------------ */

int snow_rooms_redis(const char *url)
{
    return redis_backend_start(url);
}

void snow_rooms_redis_counters(SnowRoomsRedisCounters *out)
{
    struct redis_counters *c = &redis_stats;
#define LOAD(f) .f = atomic_load_explicit(&c->f, memory_order_relaxed)
    *out = (SnowRoomsRedisCounters){
        LOAD(pub_running), LOAD(pub_connected), LOAD(sub_connected), LOAD(connects),     LOAD(connect_failures), LOAD(published),
        LOAD(dropped),       LOAD(publish_errors), LOAD(received),    LOAD(own_skipped),      LOAD(gaps),
        LOAD(gap_events),    LOAD(subscribed),    LOAD(subscribes),   LOAD(unsubscribes),     LOAD(resubscribes),
        LOAD(protocol_errors), LOAD(dropped_local),
    };
#undef LOAD
}

