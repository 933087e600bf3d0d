/*
 * rooms_redis_sub.c: the Redis backend's subscriber actor. It keeps the
 * set of rooms that have local members (asked of the registry each time
 * the hooks say a room's local membership changed: the hooks may arrive
 * out of order, the room's state does not), subscribes to exactly those
 * channels, and hands every message from another node to the local
 * members through rooms_publish.
 *
 * Loss detection: each origin node numbers its publishes per room and room
 * epoch (pseq). A pseq that skips ahead means messages were lost (the
 * broker restarted, or the origin dropped them while disconnected): the
 * gap is counted and the room's history ring here is cleared, so a client
 * resuming from before the gap gets recovered = false. A reconnect of this
 * subscriber clears the rings of all its rooms for the same reason: what
 * was published meanwhile never arrives.
 *
 * The actor lives while it has rooms or sync requests on the way; with
 * neither it closes its connection (which unsubscribes everything) and
 * ends, so it never keeps snow_rt_run from returning.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "http/stream.h"
#include "ws/redis_resp.h"
#include "ws/rooms.h"
#include "ws/rooms_redis.h"

struct origin {
    uint64_t node, epoch, pseq, used;
};

struct sroom {
    struct sroom *next;
    uint32_t norig;
    struct origin orig[REDIS_ORIGINS_MAX];
    size_t len;
    char name[];
};

struct subscriber {
    struct redis_conn c;
    struct sroom **b;
    uint32_t nb, n;
    unsigned attempt;
    int64_t retry_at;
    bool ever_connected;
    uint64_t tick; /* for the origins' least-recently-used order */
    char *out;
    size_t olen, ocap;
};

/* ---- the room table ---------------------------------------------------------------------- */

static struct sroom **find(struct subscriber *s, const char *name, size_t len)
{
    if (!s->nb)
        return NULL;
    struct sroom **pp = &s->b[rooms_hash(name, len) & (s->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->len == len && !memcmp((*pp)->name, name, len))
            return pp;
    return NULL;
}

static struct sroom *add(struct subscriber *s, const char *name, size_t len)
{
    if (s->n >= s->nb) {
        uint32_t nb = s->nb ? s->nb * 2 : 64;
        struct sroom **v = calloc(nb, sizeof *v);
        if (!v)
            return NULL;
        for (uint32_t i = 0; i < s->nb; i++)
            for (struct sroom *r = s->b[i], *nx; r; r = nx) {
                nx = r->next;
                uint32_t j = (uint32_t)rooms_hash(r->name, r->len) & (nb - 1);
                r->next = v[j];
                v[j] = r;
            }
        free(s->b);
        s->b = v;
        s->nb = nb;
    }
    struct sroom *r = calloc(1, sizeof *r + len);
    if (!r)
        return NULL;
    r->len = len;
    memcpy(r->name, name, len);
    uint32_t j = (uint32_t)rooms_hash(name, len) & (s->nb - 1);
    r->next = s->b[j];
    s->b[j] = r;
    s->n++;
    return r;
}

static void free_state(struct subscriber *s)
{
    redis_conn_close(&s->c);
    for (uint32_t i = 0; i < s->nb; i++)
        for (struct sroom *r = s->b[i], *nx; r; r = nx) {
            nx = r->next;
            free(r);
        }
    free(s->b);
    free(s->c.rbuf);
    free(s->out);
    free(s);
}

/* ---- commands ------------------------------------------------------------------------------ */

static int queue_cmd(struct subscriber *s, const char *verb, const char *room, size_t len)
{
    char chan[REDIS_PREFIX_MAX + SNOW_ROOM_NAME_MAX];
    size_t pl = strlen(redis_rt.url.prefix);
    memcpy(chan, redis_rt.url.prefix, pl);
    memcpy(chan + pl, room, len);
    const char *argv[2] = {verb, chan};
    size_t lens[2] = {strlen(verb), pl + len};
    size_t need = resp_encoded_size(2, lens);
    if (s->ocap - s->olen < need) {
        size_t nc = s->ocap ? s->ocap * 2 : 4096;
        while (nc - s->olen < need)
            nc *= 2;
        char *nb = realloc(s->out, nc);
        if (!nb)
            return -ENOMEM;
        s->out = nb;
        s->ocap = nc;
    }
    s->olen += resp_encode(s->out + s->olen, 2, argv, lens);
    return 0;
}

static void lost(struct subscriber *s)
{
    redis_conn_close(&s->c);
    s->olen = 0;
    atomic_store_explicit(&redis_stats.sub_connected, 0, memory_order_relaxed);
    atomic_store_explicit(&redis_stats.subscribed, 0, memory_order_relaxed);
    s->retry_at = actor_deadline_after_ms(redis_backoff_ms(s->attempt++));
}

/* Clears the room's history ring here: what it holds no longer runs on
 * without a hole into what comes next. */
static void history_break(const char *name, size_t len)
{
    uint64_t h = rooms_hash(name, len);
    struct room_shard *sh = rooms_shard_of(h);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, h, name, len);
    if (r)
        fanout_history_clear_locked(r);
    pthread_mutex_unlock(&sh->lock);
}

/* The room's local membership changed: subscribe or unsubscribe to match. */
static void sync_room(struct subscriber *s, const char *name, size_t len)
{
    bool want = snow_ws_room_size(name, len) > 0;
    struct sroom **pp = find(s, name, len);
    if (want && !pp) {
        if (!add(s, name, len))
            return;
        redis_count(&redis_stats.subscribes, 1);
        if (s->c.s && queue_cmd(s, "SUBSCRIBE", name, len))
            lost(s);
    } else if (!want && pp) {
        struct sroom *r = *pp;
        *pp = r->next;
        s->n--;
        redis_count(&redis_stats.unsubscribes, 1);
        if (s->c.s && queue_cmd(s, "UNSUBSCRIBE", name, len))
            lost(s);
        free(r);
    }
}

static void connected(struct subscriber *s)
{
    s->attempt = 0;
    atomic_store_explicit(&redis_stats.sub_connected, 1, memory_order_relaxed);
    if (s->ever_connected)
        redis_count(&redis_stats.resubscribes, 1);
    for (uint32_t i = 0; i < s->nb; i++)
        for (struct sroom *r = s->b[i]; r; r = r->next) {
            if (s->ever_connected)
                history_break(r->name, r->len);
            if (queue_cmd(s, "SUBSCRIBE", r->name, r->len)) {
                lost(s);
                return;
            }
        }
    s->ever_connected = true;
}

/* ---- messages ------------------------------------------------------------------------------ */

static struct origin *origin_of(struct subscriber *s, struct sroom *r, uint64_t node, bool *fresh)
{
    *fresh = false;
    struct origin *o = NULL;
    for (uint32_t i = 0; i < r->norig; i++)
        if (r->orig[i].node == node)
            o = &r->orig[i];
    if (!o) {
        *fresh = true;
        if (r->norig < REDIS_ORIGINS_MAX) {
            o = &r->orig[r->norig++];
        } else {
            /* Past the bound the least recently heard origin is forgotten:
             * its next message starts it afresh, without a gap check. */
            o = &r->orig[0];
            for (uint32_t i = 1; i < r->norig; i++)
                if (r->orig[i].used < o->used)
                    o = &r->orig[i];
        }
        *o = (struct origin){.node = node};
    }
    o->used = ++s->tick;
    return o;
}

static void deliver(struct subscriber *s, const char *chan, size_t clen, const unsigned char *data, size_t n)
{
    size_t pl = strlen(redis_rt.url.prefix);
    struct redis_env e;
    if (clen <= pl || memcmp(chan, redis_rt.url.prefix, pl) || redis_env_decode(data, n, &e)) {
        redis_count(&redis_stats.protocol_errors, 1);
        return;
    }
    if (e.node == redis_rt.node) {
        redis_count(&redis_stats.own_skipped, 1);
        return;
    }
    const char *room = chan + pl;
    size_t rlen = clen - pl;
    struct sroom **pp = find(s, room, rlen);
    if (!pp)
        return; /* in flight when the room was unsubscribed */
    if (e.pseq) {
        bool fresh;
        struct origin *o = origin_of(s, *pp, e.node, &fresh);
        if (!fresh && o->epoch == e.epoch) {
            if (e.pseq <= o->pseq)
                return; /* not newer than what was delivered: never twice */
            if (e.pseq > o->pseq + 1) {
                redis_count(&redis_stats.gaps, e.pseq - o->pseq - 1);
                redis_count(&redis_stats.gap_events, 1);
                history_break(room, rlen);
            }
        } else if (!fresh && e.pseq > 1) {
            /* The origin's room began a new life (epoch) while this node
             * listened: its counter started at 1 there. */
            redis_count(&redis_stats.gaps, e.pseq - 1);
            redis_count(&redis_stats.gap_events, 1);
            history_break(room, rlen);
        }
        o->epoch = e.epoch;
        o->pseq = e.pseq;
    }
    struct room_publish p = {
        .except = 0, /* a pid of the origin means nothing here */
        .seq_at = e.seq_at > SIZE_MAX ? SIZE_MAX : (size_t)e.seq_at,
        .epoch_at = e.epoch_at > SIZE_MAX ? SIZE_MAX : (size_t)e.epoch_at,
    };
    int64_t rc = rooms_publish(room, rlen, e.payload, e.len, (e.flags & REDIS_ENV_TEXT) != 0, &p);
    if (rc > 0)
        redis_count(&redis_stats.received, 1);
    else if (rc < 0)
        redis_count(&redis_stats.dropped_local, 1);
}

static bool is(const struct resp_val *v, const char *s)
{
    return (v->type == RESP_BULK || v->type == RESP_SIMPLE) && v->len == strlen(s) && !memcmp(v->str, s, v->len);
}

/* Messages handled per turn before the mailbox (subscription changes) is
 * looked at again. */
#define TURN_MESSAGES 1024

/* Reads and handles what the socket has: 0 when it has nothing more
 * (EAGAIN: the poller will say when it has), 1 when the turn ended first
 * (the caller must come back without waiting: readiness is edge
 * triggered), < 0 when the connection is lost. */
static int read_messages(struct subscriber *s)
{
    unsigned handled = 0;
    for (;;) {
        if (handled >= TURN_MESSAGES)
            return 1;
        ssize_t r = redis_conn_fill(&s->c);
        if (r == -EAGAIN)
            return 0;
        if (r <= 0) {
            if (r == RESP_ETOOBIG)
                redis_count(&redis_stats.protocol_errors, 1);
            return r ? (int)r : -ECONNRESET;
        }
        s->c.rlen += (size_t)r;
        size_t off = 0;
        for (;;) {
            struct resp_val v[8];
            size_t nv;
            struct resp_limits lim = {RT_ARRAY_LEN(v), REDIS_MSG_MAX + REDIS_ENV_HEADER};
            ssize_t k = resp_parse(s->c.rbuf + off, s->c.rlen - off, &lim, v, &nv);
            if (k == RESP_INCOMPLETE)
                break;
            if (k < 0) {
                redis_count(&redis_stats.protocol_errors, 1);
                return SNOW_EPROTOCOL;
            }
            off += (size_t)k;
            bool agg = v[0].type == RESP_ARRAY || v[0].type == RESP_PUSH;
            if (agg && nv == 4 && v[0].ival == 3 && is(&v[1], "message") && v[2].type == RESP_BULK &&
                v[3].type == RESP_BULK) {
                deliver(s, v[2].str, v[2].len, (const unsigned char *)v[3].str, v[3].len);
                handled++;
                snow_reduction_check();
            } else if (agg && nv == 4 && v[3].type == RESP_INT && (is(&v[1], "subscribe") || is(&v[1], "unsubscribe"))) {
                atomic_store_explicit(&redis_stats.subscribed, (uint64_t)v[3].ival, memory_order_relaxed);
            } else if (v[0].type == RESP_ERROR) {
                rt_log(RT_LOG_WARN, "rooms redis subscriber: %.*s", (int)(v[0].len > 200 ? 200 : v[0].len), v[0].str);
                redis_count(&redis_stats.protocol_errors, 1);
            }
        }
        redis_conn_consume(&s->c, off);
    }
}

/* ---- the actor ---------------------------------------------------------------------------- */

void redis_subscriber_terminate(int reason, void *arg)
{
    (void)reason;
    struct redis_sub_args *a = arg;
    pthread_mutex_lock(&redis_rt.lock);
    if (redis_rt.sub_pid == snow_actor_self()) {
        redis_rt.sub_pid = 0;
        redis_rt.sub_pending = 0;
    }
    pthread_mutex_unlock(&redis_rt.lock);
    if (a && a->st) {
        free_state(a->st);
        a->st = NULL;
        atomic_store_explicit(&redis_stats.sub_connected, 0, memory_order_relaxed);
        atomic_store_explicit(&redis_stats.subscribed, 0, memory_order_relaxed);
    }
}

void redis_subscriber_main(void *arg)
{
    struct redis_sub_args *a = arg;
    struct subscriber *s = a->st = calloc(1, sizeof *s);
    if (!s) {
        redis_subscriber_terminate(0, a);
        return;
    }
    s->c.rmax = REDIS_MSG_MAX + REDIS_ENV_HEADER + 4096;
    for (;;) {
        SnowMessage *m;
        while ((m = snow_actor_receive(0))) {
            if (m->tag != REDIS_TAG_SYNC)
                continue;
            pthread_mutex_lock(&redis_rt.lock);
            redis_rt.sub_pending--;
            pthread_mutex_unlock(&redis_rt.lock);
            if (m->len && m->len <= SNOW_ROOM_NAME_MAX)
                sync_room(s, (const char *)m->data, m->len);
        }
        pthread_mutex_lock(&redis_rt.lock);
        if (!s->n && !redis_rt.sub_pending) {
            /* Nothing to watch and nothing on the way (requests are sent
             * under this lock): close, which unsubscribes everything. */
            redis_rt.sub_pid = 0;
            pthread_mutex_unlock(&redis_rt.lock);
            break;
        }
        pthread_mutex_unlock(&redis_rt.lock);
        if (!s->c.s && rt_now_ns() >= s->retry_at) {
            if (redis_conn_open(&s->c) == 0)
                connected(s);
            else
                s->retry_at = actor_deadline_after_ms(redis_backoff_ms(s->attempt++));
        }
        if (s->c.s && s->olen) {
            int rc = http_stream_write(s->c.s, s->out, s->olen, actor_deadline_after_ms(REDIS_WRITE_TIMEOUT_MS));
            s->olen = 0;
            if (rc) {
                lost(s);
                continue;
            }
        }
        int rd = s->c.s ? read_messages(s) : 0;
        if (rd < 0) {
            lost(s);
            continue;
        }
        if (rd > 0)
            continue; /* more to read: the mailbox first, then on */
        if (s->c.s)
            http_stream_wait(s->c.s, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, -1);
        else
            actor_wait(NULL, SNOW_WAIT_MAILBOX, s->retry_at);
    }
    redis_subscriber_terminate(0, a);
}
