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
#include <stdio.h>
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
    bool need_id;  /* streams: its last id is still to be asked */
    uint8_t idlen; /* streams: id[0..idlen) the last entry read */
    char id[46];
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
    /* streams mode: the request in flight, the rooms named by its
     * XREVRANGE replies ((u32 len, name) records), the XREAD rotation and
     * sizes, the value list for replies */
    enum { Q_NONE, Q_REV, Q_XREAD } q;
    uint32_t qn;
    char *rev;
    size_t revlen, revoff;
    uint32_t rot, rot_skip, xrooms, xcount;
    struct resp_val *vals;
    size_t vcap;
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
    free(s->rev);
    free(s->vals);
    free(s);
}

/* ---- commands ------------------------------------------------------------------------------ */

static int queue_argv(struct subscriber *s, int argc, const char *const *argv, const size_t *lens)
{
    size_t need = resp_encoded_size(argc, lens);
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
    s->olen += resp_encode(s->out + s->olen, argc, argv, lens);
    return 0;
}

static int queue_cmd(struct subscriber *s, const char *verb, const char *room, size_t len)
{
    char chan[REDIS_PREFIX_MAX + SNOW_ROOM_NAME_MAX];
    size_t pl = strlen(redis_rt.url.prefix);
    memcpy(chan, redis_rt.url.prefix, pl);
    memcpy(chan + pl, room, len);
    const char *argv[2] = {verb, chan};
    size_t lens[2] = {strlen(verb), pl + len};
    return queue_argv(s, 2, argv, lens);
}

static void lost(struct subscriber *s)
{
    redis_conn_close(&s->c);
    s->olen = 0;
    s->q = Q_NONE;
    s->qn = 0;
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
    bool streams = redis_rt.url.streams;
    if (want && !pp) {
        struct sroom *r = add(s, name, len);
        if (!r)
            return;
        r->need_id = true;
        redis_count(&redis_stats.subscribes, 1);
        if (!streams && s->c.s && queue_cmd(s, "SUBSCRIBE", name, len))
            lost(s);
    } else if (!want && pp) {
        struct sroom *r = *pp;
        *pp = r->next;
        s->n--;
        redis_count(&redis_stats.unsubscribes, 1);
        if (!streams && s->c.s && queue_cmd(s, "UNSUBSCRIBE", name, len))
            lost(s);
        free(r);
    }
    if (streams)
        atomic_store_explicit(&redis_stats.subscribed, s->n, memory_order_relaxed);
}

static void connected(struct subscriber *s)
{
    s->attempt = 0;
    atomic_store_explicit(&redis_stats.sub_connected, 1, memory_order_relaxed);
    if (s->ever_connected)
        redis_count(&redis_stats.resubscribes, 1);
    if (redis_rt.url.streams) {
        /* Every room goes on from the last id it read: what was added
         * meanwhile is read now, and a real loss (the server lost its
         * data) shows as a gap in the counters. */
        s->ever_connected = true;
        atomic_store_explicit(&redis_stats.subscribed, s->n, memory_order_relaxed);
        return;
    }
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

/* ---- streams mode: XREVRANGE for a room's starting id, XREAD for entries ---------------------- */

/* One request at a time is in flight on the reading connection (XREAD
 * BLOCK holds it): first the last id of every room that has none yet
 * (XREVRANGE key + - COUNT 1, so entries from before the room opened here
 * are not delivered as live), then XREAD of up to REDIS_XREAD_ROOMS rooms
 * from their last ids, in rotation, blocking at most REDIS_XREAD_BLOCK_MS
 * so that rooms opened meanwhile wait no longer than that. */

static size_t vals_needed(const struct subscriber *s)
{
    /* reply: array; per stream: pair, key, entries; per entry: pair, id,
     * fields, one field name and value */
    return 1 + (size_t)s->xrooms * (3 + 5 * (size_t)s->xcount) + 8;
}

/* A reply did not fit (an entry near REDIS_MSG_MAX, or foreign fields):
 * from now on one room and one entry per XREAD, which always fits. */
static void streams_shrink(struct subscriber *s)
{
    s->xrooms = 1;
    s->xcount = 1;
}

static int streams_setup(struct subscriber *s)
{
    if (!s->xrooms) {
        s->xrooms = REDIS_XREAD_ROOMS;
        s->xcount = REDIS_XREAD_COUNT;
    }
    size_t need = vals_needed(s);
    if (s->vcap < need) {
        struct resp_val *v = realloc(s->vals, need * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->vals = v;
        s->vcap = need;
    }
    return 0;
}

static size_t key_of(char *key, const struct sroom *r)
{
    size_t pl = strlen(redis_rt.url.prefix);
    memcpy(key, redis_rt.url.prefix, pl);
    memcpy(key + pl, r->name, r->len);
    return pl + r->len;
}

/* Queues the next request. Returns 0 (maybe nothing to ask) or -ENOMEM. */
static int streams_next(struct subscriber *s)
{
    if (s->q != Q_NONE || !s->n || streams_setup(s))
        return 0;
    char key[REDIS_PREFIX_MAX + SNOW_ROOM_NAME_MAX];
    s->revlen = s->revoff = 0;
    uint32_t nrev = 0;
    for (uint32_t i = 0; i < s->nb && nrev < 256; i++)
        for (struct sroom *r = s->b[i]; r && nrev < 256; r = r->next) {
            if (!r->need_id)
                continue;
            size_t kl = key_of(key, r);
            const char *argv[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
            size_t lens[6] = {9, kl, 1, 1, 5, 1};
            char *nb = realloc(s->rev, s->revlen + sizeof(uint32_t) + r->len);
            if (!nb || queue_argv(s, 6, argv, lens)) {
                if (nb)
                    s->rev = nb;
                return -ENOMEM;
            }
            s->rev = nb;
            uint32_t l = (uint32_t)r->len;
            memcpy(s->rev + s->revlen, &l, sizeof l);
            memcpy(s->rev + s->revlen + sizeof l, r->name, r->len);
            s->revlen += sizeof l + r->len;
            nrev++;
        }
    if (nrev) {
        s->q = Q_REV;
        s->qn = nrev;
        return 0;
    }
    /* XREAD COUNT c BLOCK ms STREAMS k1..kn id1..idn */
    uint32_t want = s->n < s->xrooms ? s->n : s->xrooms;
    size_t argc = 6 + 2 * (size_t)want;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char *keys = malloc((size_t)want * sizeof key);
    if (!argv || !lens || !keys) {
        free(argv);
        free(lens);
        free(keys);
        return -ENOMEM;
    }
    char count[16], block[16];
    int cl = snprintf(count, sizeof count, "%u", s->xcount);
    int bl = snprintf(block, sizeof block, "%d", REDIS_XREAD_BLOCK_MS);
    const char *head[6] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS"};
    size_t hl[6] = {5, 5, (size_t)cl, 5, (size_t)bl, 7};
    memcpy(argv, head, sizeof head);
    memcpy(lens, hl, sizeof hl);
    /* The rotation resumes where the last XREAD stopped, also inside a
     * bucket's chain, so every room gets its turn. */
    uint32_t k = 0, skip = s->rot_skip;
    for (uint32_t step = 0; step <= s->nb && k < want; step++) {
        uint32_t i = (s->rot + step) & (s->nb - 1), pos = 0;
        struct sroom *r = s->b[i];
        for (; r && pos < skip; r = r->next)
            pos++;
        skip = 0;
        for (; r && k < want; r = r->next, pos++) {
            char *kp = keys + (size_t)k * sizeof key;
            lens[6 + k] = key_of(kp, r);
            argv[6 + k] = kp;
            argv[6 + want + k] = r->id;
            lens[6 + want + k] = r->idlen;
            k++;
        }
        if (r) {
            s->rot = i;
            s->rot_skip = pos;
        } else {
            s->rot = (i + 1) & (s->nb - 1);
            s->rot_skip = 0;
        }
    }
    /* The keys come first, then the ids: close the gap left when fewer
     * rooms than asked were found. */
    if (k < want)
        for (uint32_t j = 0; j < k; j++) {
            argv[6 + k + j] = argv[6 + want + j];
            lens[6 + k + j] = lens[6 + want + j];
        }
    int rc = queue_argv(s, (int)(6 + 2 * k), argv, lens);
    free(argv);
    free(lens);
    free(keys);
    if (rc)
        return rc;
    s->q = Q_XREAD;
    s->qn = 1;
    return 0;
}

static bool set_id(struct sroom *r, const struct resp_val *id)
{
    if (id->type != RESP_BULK || id->len >= sizeof r->id)
        return false;
    memcpy(r->id, id->str, id->len);
    r->idlen = (uint8_t)id->len;
    return true;
}

/* An XREVRANGE reply: the room's starting id ("0-0" for an empty
 * stream). */
static int rev_reply(struct subscriber *s, const struct resp_val *v, size_t nv)
{
    uint32_t l;
    if (s->revoff + sizeof l > s->revlen)
        return SNOW_EPROTOCOL;
    memcpy(&l, s->rev + s->revoff, sizeof l);
    const char *name = s->rev + s->revoff + sizeof l;
    s->revoff += sizeof l + l;
    if (--s->qn == 0)
        s->q = Q_NONE;
    struct sroom **pp = find(s, name, l);
    if (v[0].type != RESP_ARRAY)
        return SNOW_EPROTOCOL;
    if (!pp)
        return 0; /* gone meanwhile */
    if (v[0].ival == 0) {
        memcpy((*pp)->id, "0-0", 3);
        (*pp)->idlen = 3;
    } else if (nv < 3 || v[1].type != RESP_ARRAY || v[1].ival != 2 || !set_id(*pp, &v[2])) {
        return SNOW_EPROTOCOL;
    }
    (*pp)->need_id = false;
    return 0;
}

/* An XREAD reply: entries of each stream, delivered in order. Returns the
 * entries delivered, or < 0 for a reply of the wrong shape. */
static int xread_reply(struct subscriber *s, const struct resp_val *v, size_t nv)
{
    s->q = Q_NONE;
    if (v[0].type == RESP_NULL)
        return 0; /* BLOCK passed with nothing new */
    if (v[0].type != RESP_ARRAY)
        return SNOW_EPROTOCOL;
    size_t pl = strlen(redis_rt.url.prefix), i = 1;
    int delivered = 0;
    for (int64_t st = 0; st < v[0].ival; st++) {
        if (i + 2 >= nv || v[i].type != RESP_ARRAY || v[i].ival != 2 || v[i + 1].type != RESP_BULK ||
            v[i + 2].type != RESP_ARRAY)
            return SNOW_EPROTOCOL;
        const struct resp_val *key = &v[i + 1];
        int64_t m = v[i + 2].ival;
        i += 3;
        struct sroom **pp = key->len > pl && !memcmp(key->str, redis_rt.url.prefix, pl)
                                ? find(s, key->str + pl, key->len - pl)
                                : NULL;
        for (int64_t e = 0; e < m; e++) {
            if (i + 2 >= nv || v[i].type != RESP_ARRAY || v[i].ival != 2 || v[i + 2].type != RESP_ARRAY)
                return SNOW_EPROTOCOL;
            const struct resp_val *id = &v[i + 1];
            int64_t nf = v[i + 2].ival;
            i += 3;
            const struct resp_val *env = NULL;
            for (int64_t f = 0; f + 1 < nf; f += 2, i += 2) {
                if (i + 1 >= nv || v[i].type != RESP_BULK || v[i + 1].type != RESP_BULK)
                    return SNOW_EPROTOCOL;
                if (v[i].len == 1 && v[i].str[0] == 'e')
                    env = &v[i + 1];
            }
            if (nf % 2)
                return SNOW_EPROTOCOL;
            if (!pp)
                continue; /* the room closed here meanwhile */
            if (!set_id(*pp, id))
                return SNOW_EPROTOCOL;
            if (env) {
                deliver(s, key->str, key->len, (const unsigned char *)env->str, env->len);
                delivered++;
            }
        }
    }
    return delivered;
}

static int streams_reply(struct subscriber *s, const struct resp_val *v, size_t nv)
{
    if (v[0].type == RESP_ERROR) {
        rt_log(RT_LOG_WARN, "rooms redis reader: %.*s", (int)(v[0].len > 200 ? 200 : v[0].len), v[0].str);
        redis_count(&redis_stats.protocol_errors, 1);
        return SNOW_EPROTOCOL; /* reconnect after backoff rather than retry at once */
    }
    int rc = s->q == Q_REV ? rev_reply(s, v, nv) : s->q == Q_XREAD ? xread_reply(s, v, nv) : SNOW_EPROTOCOL;
    if (rc < 0)
        redis_count(&redis_stats.protocol_errors, 1);
    return rc;
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
            if (r == RESP_ETOOBIG) {
                if (redis_rt.url.streams)
                    streams_shrink(s);
                redis_count(&redis_stats.protocol_errors, 1);
            }
            return r ? (int)r : -ECONNRESET;
        }
        s->c.rlen += (size_t)r;
        size_t off = 0;
        for (;;) {
            struct resp_val local[8], *v = local;
            size_t nv;
            struct resp_limits lim = {RT_ARRAY_LEN(local), REDIS_MSG_MAX + REDIS_ENV_HEADER};
            if (redis_rt.url.streams) {
                v = s->vals;
                lim.max_vals = s->vcap;
            }
            ssize_t k = resp_parse(s->c.rbuf + off, s->c.rlen - off, &lim, v, &nv);
            if (k == RESP_INCOMPLETE)
                break;
            if (k < 0) {
                if (k == RESP_ETOOBIG && redis_rt.url.streams)
                    streams_shrink(s);
                redis_count(&redis_stats.protocol_errors, 1);
                return SNOW_EPROTOCOL;
            }
            off += (size_t)k;
            if (redis_rt.url.streams) {
                int rc = streams_reply(s, v, nv);
                if (rc < 0)
                    return rc;
                handled += (unsigned)rc;
                continue;
            }
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
    if (redis_rt.url.streams)
        s->c.rmax = 4 * (REDIS_MSG_MAX + REDIS_ENV_HEADER + 4096);
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
        if (s->c.s && redis_rt.url.streams && streams_next(s))
            lost(s);
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
        if (s->c.s && redis_rt.url.streams && s->q == Q_NONE && s->n)
            continue; /* the next request goes out first */
        if (s->c.s)
            http_stream_wait(s->c.s, SNOW_WAIT_READABLE | SNOW_WAIT_MAILBOX, -1);
        else
            actor_wait(NULL, SNOW_WAIT_MAILBOX, s->retry_at);
    }
    redis_subscriber_terminate(0, a);
}
