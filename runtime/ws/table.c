/*
 * table.c: the process-wide index of WebSocket connections by PID, which
 * is what makes handles safe: a SnowWsConn carries a PID (never reused),
 * and every use from another actor looks the PID up here under a shard
 * lock. A connection removes itself before it frees anything, so a lookup
 * either finds a live connection, which stays live until the lock is
 * dropped, or nothing (SNOW_ECLOSED). The same module keeps the per-route
 * counters and the number of open connections.
 *
 * 64 shards by PID hash: sends to different connections rarely meet on a
 * lock, and a lock is held only for a lookup plus a mailbox append (or a
 * deliverer's one write). Each shard is an open-addressing table of (pid,
 * connection) pairs, at most half full, with backward-shift deletion: a
 * lookup reads the pids from the table itself, a run of slots in one or
 * two cache lines, and touches only the connection it finds (a room's
 * deliverer does one lookup per member of a 10,000-member room; chained
 * buckets cost a miss per connection walked past).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "ws/conn.h"

#define SHARDS 64

struct slot {
    SnowPid pid; /* 0: empty */
    struct ws_conn *c;
};

struct shard {
    pthread_mutex_t lock;
    struct slot *v; /* cap slots, a power of two (or none) */
    size_t cap, n;
};

static struct {
    struct shard s[SHARDS];
    atomic_int open;
    pthread_mutex_t routes_lock;
    struct ws_route *routes;
} tab = {
    .s = {[0 ... SHARDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}},
    .routes_lock = PTHREAD_MUTEX_INITIALIZER,
};

static uint64_t mix(SnowPid pid)
{
    uint64_t x = pid * UINT64_C(0x9E3779B97F4A7C15);
    return x ^ (x >> 29);
}

static struct shard *shard_of(SnowPid pid)
{
    return &tab.s[mix(pid) % SHARDS];
}

static size_t home_in(size_t cap, SnowPid pid)
{
    return (size_t)(mix(pid) / SHARDS) & (cap - 1);
}

static size_t home_of(const struct shard *s, SnowPid pid)
{
    return home_in(s->cap, pid);
}

/* The slot holding pid, or NULL. */
static struct slot *find(struct shard *s, SnowPid pid)
{
    if (!s->cap)
        return NULL;
    for (size_t i = home_of(s, pid);; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i].pid == pid)
            return &s->v[i];
        if (!s->v[i].pid)
            return NULL;
    }
}

static void put(struct shard *s, SnowPid pid, struct ws_conn *c)
{
    size_t i = home_of(s, pid);
    while (s->v[i].pid)
        i = (i + 1) & (s->cap - 1);
    s->v[i] = (struct slot){pid, c};
}

static int grow(struct shard *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    struct slot *v = calloc(cap, sizeof *v), *old = s->v;
    if (!v)
        return -ENOMEM;
    size_t ocap = s->cap;
    /* Atomic stores (under the lock, like every write): ws_table_prefetch
     * reads these two without it. */
    __atomic_store_n(&s->v, v, __ATOMIC_RELAXED);
    __atomic_store_n(&s->cap, cap, __ATOMIC_RELAXED);
    for (size_t i = 0; i < ocap; i++)
        if (old[i].pid)
            put(s, old[i].pid, old[i].c);
    free(old);
    return 0;
}

/* Backward-shift deletion: later entries of the probe run move up, so a
 * lookup never needs tombstones. */
static void del(struct shard *s, struct slot *at)
{
    size_t mask = s->cap - 1, i = (size_t)(at - s->v), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->v[j].pid)
            break;
        if (rt_probe_moves(i, j, home_of(s, s->v[j].pid))) {
            s->v[i] = s->v[j];
            i = j;
        }
    }
    s->v[i] = (struct slot){0};
    s->n--;
}

int ws_table_add(struct ws_conn *c)
{
    struct shard *s = shard_of(c->pid);
    pthread_mutex_lock(&s->lock);
    int r = 0;
    /* Load factor at most 1/2 keeps probe runs short. */
    if ((s->n + 1) * 2 > s->cap)
        r = grow(s);
    if (r == 0) {
        put(s, c->pid, c);
        s->n++;
        c->in_table = true;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

void ws_table_remove(struct ws_conn *c)
{
    if (!c->in_table)
        return;
    struct shard *s = shard_of(c->pid);
    pthread_mutex_lock(&s->lock);
    struct slot *at = find(s, c->pid);
    if (at && at->c == c)
        del(s, at);
    c->in_table = false;
    pthread_mutex_unlock(&s->lock);
}

void ws_table_set_phase(struct ws_conn *c, uint8_t phase)
{
    if (!c->in_table) {
        c->phase = phase;
        return;
    }
    struct shard *s = shard_of(c->pid);
    pthread_mutex_lock(&s->lock);
    c->phase = phase;
    pthread_mutex_unlock(&s->lock);
}

int ws_table_with(SnowPid pid, int (*fn)(struct ws_conn *c, void *arg), void *arg)
{
    if (!pid)
        return fn(NULL, arg);
    struct shard *s = shard_of(pid);
    pthread_mutex_lock(&s->lock);
    struct slot *at = find(s, pid);
    int r = fn(at ? at->c : NULL, arg);
    pthread_mutex_unlock(&s->lock);
    return r;
}

struct ws_conn *ws_table_lock(SnowPid pid, struct ws_table_held *held)
{
    held->lock = NULL;
    if (!pid)
        return NULL;
    struct shard *s = shard_of(pid);
    pthread_mutex_lock(&s->lock);
    held->lock = &s->lock;
    struct slot *at = find(s, pid);
    return at ? at->c : NULL;
}

void ws_table_unlock(struct ws_table_held *held)
{
    if (held->lock)
        pthread_mutex_unlock(held->lock);
    held->lock = NULL;
}

void ws_table_prefetch(SnowPid pid, const void *conn)
{
    /*
     * Without the lock on purpose: this only asks the cache for the lines
     * that ws_table_lock(pid) and the deliverer will read next, and a
     * prefetch never faults and changes nothing the program sees. The
     * array and its size may be a grow apart (the address is then one in
     * the old array, or past it: a wasted prefetch), so the address is
     * formed as an integer, never as a pointer into the array.
     */
    struct shard *s = shard_of(pid);
    struct slot *v = __atomic_load_n(&s->v, __ATOMIC_RELAXED);
    size_t cap = __atomic_load_n(&s->cap, __ATOMIC_RELAXED);
    if (cap)
        __builtin_prefetch((const void *)((uintptr_t)v + home_in(cap, pid) * sizeof *v));
    if (conn)
        __builtin_prefetch(conn, 1);
}

struct ws_conn *ws_conn_self(SnowPid pid)
{
    /* Only the owner may keep the pointer past the lock: it is the one
     * that frees the connection, and it is busy calling us. */
    if (!pid || pid != snow_actor_self())
        return NULL;
    struct shard *s = shard_of(pid);
    pthread_mutex_lock(&s->lock);
    struct slot *at = find(s, pid);
    struct ws_conn *c = at ? at->c : NULL;
    pthread_mutex_unlock(&s->lock);
    return c;
}

void ws_conn_count_add(int d)
{
    atomic_fetch_add_explicit(&tab.open, d, memory_order_relaxed);
}

int snow_ws_connection_count(void)
{
    return atomic_load_explicit(&tab.open, memory_order_relaxed);
}

/* ---- routes ---- */

struct ws_route *ws_route_get(const SnowWsHandler *h)
{
    pthread_mutex_lock(&tab.routes_lock);
    struct ws_route *r = tab.routes;
    while (r && r->h != h)
        r = r->next;
    if (!r && (r = calloc(1, sizeof *r)) != NULL) {
        /* Kept for the life of the process, like the handler it counts. */
        r->h = h;
        r->next = tab.routes;
        tab.routes = r;
    }
    pthread_mutex_unlock(&tab.routes_lock);
    return r;
}

void ws_route_closed(struct ws_route *r, unsigned code)
{
    static const uint16_t codes[11] = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011};
    size_t i = 0;
    while (i < RT_ARRAY_LEN(codes) && codes[i] != code)
        i++;
    ws_count(&r->by_code[i], 1);
    ws_count(&r->closed, 1);
    atomic_fetch_sub_explicit(&r->open, 1, memory_order_relaxed);
}

static void add_route(SnowWsStats *o, struct ws_route *r)
{
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
    o->open += LOAD(r->open);
    o->opened += LOAD(r->opened);
    o->refused += LOAD(r->refused);
    o->closed += LOAD(r->closed);
    uint64_t *by[12] = {&o->closed_1000, &o->closed_1001, &o->closed_1002, &o->closed_1003,
                        &o->closed_1005, &o->closed_1006, &o->closed_1007, &o->closed_1008,
                        &o->closed_1009, &o->closed_1010, &o->closed_1011, &o->closed_other};
    for (size_t i = 0; i < 12; i++)
        *by[i] += LOAD(r->by_code[i]);
    o->msgs_in += LOAD(r->msgs_in);
    o->bytes_in += LOAD(r->bytes_in);
    o->msgs_out += LOAD(r->msgs_out);
    o->bytes_out += LOAD(r->bytes_out);
    o->backpressure_refused += LOAD(r->bp_refused);
    o->closed_backpressure += LOAD(r->closed_bp);
    o->closed_heartbeat += LOAD(r->closed_heartbeat);
    o->closed_write_stall += LOAD(r->closed_stall);
#undef LOAD
}

int snow_ws_route_stats(const SnowWsHandler *h, SnowWsStats *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&tab.routes_lock);
    for (struct ws_route *r = tab.routes; r; r = r->next)
        if (!h || r->h == h)
            add_route(out, r);
    pthread_mutex_unlock(&tab.routes_lock);
    return 0;
}
