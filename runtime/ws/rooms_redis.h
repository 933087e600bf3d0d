/*
 * rooms_redis.h: the Redis room backend's internal interface
 * (rooms_redis.c: URL, connections, envelope, publisher, hooks;
 * rooms_redis_sub.c: the subscriber). REDIS.md describes the design.
 */
#ifndef SNOW_WS_ROOMS_REDIS_H
#define SNOW_WS_ROOMS_REDIS_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "rt.h"

/* Limits and timings (REDIS.md). */
#define REDIS_PREFIX_DEFAULT "snow:room:"
#define REDIS_PREFIX_MAX 64
#define REDIS_MSG_MAX (4u << 20)          /* largest message sent to other nodes */
#define REDIS_PENDING_MAX (32u << 20)     /* bytes queued for the publisher */
#define REDIS_CONNECT_TIMEOUT_MS 2000
#define REDIS_WRITE_TIMEOUT_MS 5000
#define REDIS_BACKOFF_MIN_MS 50
#define REDIS_BACKOFF_MAX_MS 1000
#define REDIS_IDLE_MS 2000                /* an idle publisher ends after this */
#define REDIS_ORIGINS_MAX 32              /* origin nodes tracked per room */
#define REDIS_MAXLEN_DEFAULT 10000        /* streams: entries kept per room */
#define REDIS_XREAD_BLOCK_MS 200          /* streams: one XREAD waits this long */
#define REDIS_XREAD_COUNT 32              /* streams: entries per room per XREAD */
#define REDIS_XREAD_ROOMS 64              /* streams: rooms per XREAD */

/* Private message tags of the two actors. */
#define REDIS_TAG_PUBLISH 1u /* payload: u32 room length, room, envelope */
#define REDIS_TAG_SYNC 2u    /* payload: a room whose local membership changed */

struct redis_url {
    struct sockaddr_storage addr;
    socklen_t alen;
    int db;
    char user[128], pass[256];
    char prefix[REDIS_PREFIX_MAX];
    bool streams; /* mode=streams: XADD / XREAD instead of pub/sub */
    long maxlen;  /* streams: entries kept per room (MAXLEN ~) */
};
/* redis://[[user]:password@]host[:port][/db][?prefix=P&mode=M&maxlen=N],
 * host an IPv4 literal, [IPv6] or localhost, M pubsub (default) or
 * streams. 0 or -EINVAL. */
int redis_url_parse(const char *s, struct redis_url *u);

/* The envelope in front of every published payload (56 bytes, little
 * endian): magic "SNR1" + flags, node, epoch, pseq, seq, seq_at, epoch_at. */
#define REDIS_ENV_HEADER 56
#define REDIS_ENV_TEXT 1u
struct redis_env {
    uint32_t flags;
    uint64_t node;     /* the publishing process */
    uint64_t epoch;    /* its room's epoch (0: no local room there) */
    uint64_t pseq;     /* its publish counter for the room at that epoch (0: none) */
    uint64_t seq;      /* its room sequence number */
    uint64_t seq_at, epoch_at; /* stamp offsets (SIZE_MAX: none) */
    const unsigned char *payload;
    size_t len;
};
void redis_env_encode(unsigned char *h, const struct redis_env *e);
int redis_env_decode(const unsigned char *b, size_t n, struct redis_env *e);

struct pcount {
    struct pcount *next;
    uint64_t epoch, pseq;
    size_t len;
    char name[];
};

struct redis_state {
    pthread_mutex_t lock;
    struct redis_url url;
    uint64_t node;
    SnowPid pub_pid;     /* 0: not running */
    size_t pub_bytes;    /* in the publisher's mailbox */
    SnowPid sub_pid;     /* 0: not running */
    uint32_t sub_pending; /* sync requests sent, not yet taken */
    struct pcount **pc;  /* per-room publish counters of this node */
    uint32_t npc, pcap;
};
extern struct redis_state redis_rt;

struct redis_counters {
    atomic_uint_fast64_t pub_running, pub_connected, sub_connected, connects, connect_failures, published, dropped,
        publish_errors, received, own_skipped, gaps, gap_events, subscribed, subscribes, unsubscribes,
        resubscribes, protocol_errors, dropped_local;
};
extern struct redis_counters redis_stats;

static inline void redis_count(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* One connection to the server, owned by one actor. */
struct redis_conn {
    struct http_stream *s; /* NULL: not connected */
    char *rbuf;
    size_t rlen, rcap, rmax;
};
/* Connects (parking) and authenticates; 0 or an error (counted). */
int redis_conn_open(struct redis_conn *c);
void redis_conn_close(struct redis_conn *c);
/* Reads what the socket has into rbuf (growing it up to rmax): > 0 bytes
 * (rlen not yet advanced), -EAGAIN, 0 at the end, an error. */
ssize_t redis_conn_fill(struct redis_conn *c);
void redis_conn_consume(struct redis_conn *c, size_t n);
int redis_backoff_ms(unsigned attempt);

/* Installs the backend for url (NULL: back to in-process). 0, -EINVAL,
 * -EBUSY while its actors run. */
int redis_backend_start(const char *url);

/* rooms_redis_sub.c. The actor's arguments (copied into its own heap):
 * the state is malloc'd so that the terminate callback finds it when the
 * runtime kills the actor. */
struct redis_sub_args {
    struct subscriber *st;
};
void redis_subscriber_main(void *arg);
void redis_subscriber_terminate(int reason, void *arg);

#endif
