/*
 * rooms.c: the room registry's membership: the two sharded indexes, joins,
 * leaves, and the removal of a member on every exit path.
 *
 * How a member leaves every room when it ends:
 *   - A WebSocket connection's exit path (close, error, heartbeat reap,
 *     crash, kill, refusal after a join in on_connect) stops taking frames
 *     and then calls ws_rooms_member_gone, which empties its rooms and
 *     forgets it. A join racing with that (from another actor holding the
 *     handle) checks, once it is in, that the connection still takes
 *     frames, and undoes itself if not: either the exit path's removal
 *     comes after the join, or the join sees the connection closed.
 *   - A plain actor (snow_room_subscribe) is monitored, from its first
 *     subscribe, by the registry's janitor actor: SNOW_TAG_DOWN removes it
 *     from every room and forgets it. Connections are not monitored: their
 *     exit path is enough, and 20,000 monitors on one actor would make a
 *     mass disconnect quadratic in the janitor's monitor list.
 *   - A delivery that finds the member ended (SNOW_ECLOSED, SNOW_ENOPROC)
 *     removes it from that room right away, before either of the above.
 * The janitor is spawned on demand and ends when it watches nobody, so it
 * never keeps snow_rt_run from returning.
 */
#include "ws/rooms.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actor/actor.h"

#define SHARDS 64 /* per index; a power of two */

struct member {
    struct member *next;
    SnowPid pid;
    uint8_t kind;
    bool watched; /* the janitor monitors it (a plain actor subscribed) */
    struct room **rooms; /* each holds a room reference */
    uint32_t n, cap;
};

struct member_shard {
    pthread_mutex_t lock;
    struct member **buckets;
    uint32_t nbuckets, n;
};

static struct room_shard room_shards[SHARDS];
static struct member_shard member_shards[SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;
static atomic_uint_fast64_t epoch_counter;
struct rooms_counters rooms_stats;

static void shards_init(void)
{
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&room_shards[i].lock, NULL);
        pthread_mutex_init(&member_shards[i].lock, NULL);
    }
}

uint64_t rooms_hash(const void *name, size_t len)
{
    const unsigned char *p = name;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

struct room_shard *rooms_shard_of(uint64_t hash)
{
    pthread_once(&shards_once, shards_init);
    return &room_shards[hash & (SHARDS - 1)];
}

static struct member_shard *member_shard_of(SnowPid pid)
{
    pthread_once(&shards_once, shards_init);
    return &member_shards[rooms_pid_hash(pid) & (SHARDS - 1)];
}

/* A room's epoch differs from every earlier epoch of a room of that name,
 * also across restarts of the program: wall-clock time mixed with a
 * counter. Kept below 2^53 so JavaScript numbers hold it exactly. */
static uint64_t new_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    uint64_t c = atomic_fetch_add_explicit(&epoch_counter, 1, memory_order_relaxed);
    uint64_t e = (t + c) & ((UINT64_C(1) << 53) - 1);
    return e ? e : 1;
}

/* ---- the room index ----------------------------------------------------- */

struct room *rooms_find_locked(struct room_shard *sh, uint64_t hash, const void *name, size_t len)
{
    if (!sh->nbuckets)
        return NULL;
    for (struct room *r = sh->buckets[(hash >> 6) & (sh->nbuckets - 1)]; r; r = r->next)
        if (r->hash == hash && r->name_len == len && !memcmp(r->name, name, len))
            return r;
    return NULL;
}

static int room_index_grow_locked(struct room_shard *sh)
{
    uint32_t nb = sh->nbuckets ? sh->nbuckets * 2 : 16;
    struct room **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < sh->nbuckets; i++)
        for (struct room *r = sh->buckets[i], *nx; r; r = nx) {
            nx = r->next;
            uint32_t j = (uint32_t)(r->hash >> 6) & (nb - 1);
            r->next = b[j];
            b[j] = r;
        }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = nb;
    return 0;
}

static struct room *room_create_locked(struct room_shard *sh, uint64_t hash, const void *name, size_t len)
{
    if (sh->n >= sh->nbuckets && room_index_grow_locked(sh))
        return NULL;
    struct room *r = calloc(1, sizeof *r + len);
    if (!r)
        return NULL;
    r->hash = hash;
    r->refs = 1; /* the index */
    r->epoch = new_epoch();
    r->shard = sh;
    r->name_len = len;
    memcpy(r->name, name, len);
    uint32_t j = (uint32_t)(hash >> 6) & (sh->nbuckets - 1);
    r->next = sh->buckets[j];
    sh->buckets[j] = r;
    sh->n++;
    atomic_fetch_add_explicit(&rooms_stats.rooms, 1, memory_order_relaxed);
    return r;
}

void rooms_snap_unref(struct room_snap *s)
{
    /* acq_rel: the last holder frees what the others read. */
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        free(s->pmd);
        free(s);
    }
}

void rooms_snap_drop_locked(struct room *r)
{
    rooms_snap_unref(r->snap);
    r->snap = NULL;
}

void rooms_unref_locked(struct room *r)
{
    if (--r->refs)
        return;
    fanout_history_clear_locked(r);
    rooms_snap_drop_locked(r);
    free(r->hist);
    free(r->mv);
    free(r);
}

/* With the shard locked: takes r out of the index when nothing keeps it
 * there (no member, no ring). Returns true when it did: the index's
 * reference is then the caller's to drop. */
static bool room_unlink_locked(struct room *r)
{
    if (r->dead || r->mn || r->hcap)
        return false;
    struct room_shard *sh = r->shard;
    struct room **pp = &sh->buckets[(r->hash >> 6) & (sh->nbuckets - 1)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    sh->n--;
    r->dead = true;
    atomic_fetch_sub_explicit(&rooms_stats.rooms, 1, memory_order_relaxed);
    return true;
}

void rooms_maybe_delete_locked(struct room *r)
{
    if (room_unlink_locked(r))
        rooms_unref_locked(r);
}

/* With the shard locked: a leaving member drops its reference, and the
 * index drops its own when the room has nothing left to keep it. The
 * member's reference outlives the index's, so the two go in one step: the
 * room is freed, if at all, by the last of them. */
static void room_release_locked(struct room *r)
{
    if (room_unlink_locked(r)) {
        assert(r->refs > 1); /* never the last: the member's is still held */
        r->refs--;
    }
    rooms_unref_locked(r);
}

/* ---- the member index ---------------------------------------------------------- */

static struct member **member_lookup_locked(struct member_shard *sh, SnowPid pid)
{
    if (!sh->nbuckets)
        return NULL;
    struct member **pp = &sh->buckets[(rooms_pid_hash(pid) >> 6) & (sh->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->pid == pid)
            return pp;
    return NULL;
}

static struct member *member_create_locked(struct member_shard *sh, SnowPid pid, uint8_t kind)
{
    if (sh->n >= sh->nbuckets) {
        uint32_t nb = sh->nbuckets ? sh->nbuckets * 2 : 16;
        struct member **b = calloc(nb, sizeof *b);
        if (!b)
            return NULL;
        for (uint32_t i = 0; i < sh->nbuckets; i++)
            for (struct member *m = sh->buckets[i], *nx; m; m = nx) {
                nx = m->next;
                uint32_t j = (uint32_t)(rooms_pid_hash(m->pid) >> 6) & (nb - 1);
                m->next = b[j];
                b[j] = m;
            }
        free(sh->buckets);
        sh->buckets = b;
        sh->nbuckets = nb;
    }
    struct member *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->pid = pid;
    m->kind = kind;
    uint32_t j = (uint32_t)(rooms_pid_hash(pid) >> 6) & (sh->nbuckets - 1);
    m->next = sh->buckets[j];
    sh->buckets[j] = m;
    sh->n++;
    return m;
}

static void member_destroy_locked(struct member_shard *sh, struct member **pp)
{
    struct member *m = *pp;
    *pp = m->next;
    sh->n--;
    free(m->rooms);
    free(m);
}

/* ---- the janitor: monitors every member pid ----------------------------------------- */

#define JANITOR_WATCH 1u /* private request tag: payload one SnowPid */

static struct {
    pthread_mutex_t lock;
    SnowPid pid;      /* 0: not running */
    uint32_t pending; /* watch requests sent, not yet taken */
    uint64_t watched; /* monitors held */
} jan = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void janitor_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&jan.lock);
        if (!jan.pending && !jan.watched) {
            /* Nobody to watch and nothing on the way (requests are sent
             * under this lock): end, the next watch spawns a new one. */
            jan.pid = 0;
            pthread_mutex_unlock(&jan.lock);
            return;
        }
        pthread_mutex_unlock(&jan.lock);
        SnowMessage *msg = snow_actor_receive(-1);
        if (!msg)
            continue;
        if (msg->tag == JANITOR_WATCH && msg->len == sizeof(SnowPid)) {
            SnowPid pid;
            memcpy(&pid, msg->data, sizeof pid);
            snow_actor_monitor(pid); /* a pid already gone gets an immediate DOWN */
            pthread_mutex_lock(&jan.lock);
            jan.pending--;
            jan.watched++;
            pthread_mutex_unlock(&jan.lock);
        } else if (msg->tag == SNOW_TAG_DOWN && msg->len == sizeof(SnowDownMsg)) {
            SnowDownMsg dm;
            memcpy(&dm, msg->data, sizeof dm);
            rooms_member_drop(dm.pid);
            pthread_mutex_lock(&jan.lock);
            jan.watched--;
            pthread_mutex_unlock(&jan.lock);
        }
    }
}

/* The runtime is stopping and takes every actor with it, so the DOWNs the
 * janitor would have handled never come: drop the plain actor members now,
 * so that no pid of this run (the next run's process table starts afresh)
 * stays in a room. Connections leave through their own exit paths. */
static void sweep_at_shutdown(void)
{
    for (int i = 0; i < SHARDS; i++) {
        struct member_shard *ms = &member_shards[i];
        pthread_mutex_lock(&ms->lock);
        SnowPid *v = ms->n ? malloc(ms->n * sizeof *v) : NULL;
        uint32_t n = 0;
        for (uint32_t b = 0; v && b < ms->nbuckets; b++)
            for (struct member *m = ms->buckets[b]; m; m = m->next)
                if (m->watched)
                    v[n++] = m->pid;
        pthread_mutex_unlock(&ms->lock);
        for (uint32_t k = 0; k < n; k++)
            rooms_member_drop(v[k]);
        free(v);
    }
}

static void janitor_terminate(int reason, void *arg)
{
    (void)arg;
    /* Killed: its monitors die with it. */
    pthread_mutex_lock(&jan.lock);
    if (jan.pid == snow_actor_self()) {
        jan.pid = 0;
        jan.pending = 0;
        jan.watched = 0;
    }
    pthread_mutex_unlock(&jan.lock);
    if (reason == SNOW_EXIT_SHUTDOWN)
        sweep_at_shutdown();
}

static int janitor_watch(SnowPid pid)
{
    pthread_mutex_lock(&jan.lock);
    if (!jan.pid) {
        struct actor_spawn_opts o = {.worker = -1, .terminate = janitor_terminate};
        jan.pid = actor_spawn(janitor_main, NULL, 0, &o);
        if (!jan.pid) {
            pthread_mutex_unlock(&jan.lock);
            return SNOW_ENOT_RUNNING;
        }
    }
    int err = actor_send_raw(jan.pid, JANITOR_WATCH, 0, &pid, sizeof pid);
    if (!err)
        jan.pending++;
    pthread_mutex_unlock(&jan.lock);
    return err;
}

/* ---- joins and leaves ----------------------------------------------------------------- */

static int member_add_room(struct member *m, struct room *r)
{
    if (m->n == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 4;
        struct room **v = realloc(m->rooms, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        m->rooms = v;
        m->cap = cap;
    }
    m->rooms[m->n++] = r;
    return 0;
}

static int member_room_index(const struct member *m, uint64_t hash, const void *name, size_t len)
{
    for (uint32_t i = 0; i < m->n; i++) {
        const struct room *r = m->rooms[i];
        if (r->hash == hash && r->name_len == len && !memcmp(r->name, name, len))
            return (int)i;
    }
    return -1;
}

/* Tells the backend, outside the locks, holding a reference taken under
 * the lock (the member may leave meanwhile). */
static void report_opened(struct room *r)
{
    const struct ws_rooms_backend *b = ws_rooms_backend();
    if (b && b->room_opened)
        b->room_opened(r->name, r->name_len);
    pthread_mutex_lock(&r->shard->lock);
    struct room_shard *rs = r->shard;
    rooms_unref_locked(r);
    pthread_mutex_unlock(&rs->lock);
}

int rooms_join(SnowPid pid, enum room_kind kind, const void *name, size_t len, bool resume, uint64_t since_epoch,
               uint64_t since_seq, struct room_join_result *res)
{
    struct room_join_result out = {0};
    /* Outside the registry's locks: the table has its own. */
    const void *conn = kind == ROOM_KIND_WS ? ws_conn_hint(pid) : NULL;
    uint64_t hash = rooms_hash(name, len);
    struct member_shard *ms = member_shard_of(pid);
    struct room_shard *rs = rooms_shard_of(hash);
    pthread_mutex_lock(&ms->lock);
    struct member **mp = member_lookup_locked(ms, pid);
    bool new_member = !mp;
    struct member *m = mp ? *mp : member_create_locked(ms, pid, (uint8_t)kind);
    if (!m) {
        pthread_mutex_unlock(&ms->lock);
        return -ENOMEM;
    }
    bool watch = kind == ROOM_KIND_ACTOR && !m->watched;
    int err = 0;
    bool opened = false, run = false;
    struct room *room = NULL;
    struct room_job *replay = NULL;
    pthread_mutex_lock(&rs->lock);
    int idx = member_room_index(m, hash, name, len);
    if (idx >= 0) {
        /* Already a member: nothing is replayed, its stream is unbroken. */
        room = m->rooms[idx];
        out.epoch = room->epoch;
        out.seq = room->seq;
        out.recovered = resume && since_epoch == room->epoch && since_seq <= room->seq;
        pthread_mutex_unlock(&rs->lock);
        goto done;
    }
    room = rooms_find_locked(rs, hash, name, len);
    if (!room) {
        room = room_create_locked(rs, hash, name, len);
        if (!room) {
            err = -ENOMEM;
            goto unlock;
        }
    }
    if (m->n == m->cap) {
        /* Grow first, so nothing below can fail after the room changed. */
        err = member_add_room(m, room);
        if (err)
            goto unlock_maybe_delete;
        m->n--;
    }
    if (resume) {
        struct ws_shared_frame **v = NULL;
        uint32_t nv = 0;
        int hr = fanout_history_since_locked(room, since_epoch, since_seq, &v, &nv);
        if (hr < 0) {
            err = hr;
            goto unlock_maybe_delete;
        }
        out.recovered = hr == 1;
        if (nv) {
            replay = calloc(1, sizeof *replay);
            if (!replay) {
                for (uint32_t i = 0; i < nv; i++)
                    ws_shared_frame_unref(v[i]);
                free(v);
                err = -ENOMEM;
                goto unlock_maybe_delete;
            }
            replay->replay_to = pid;
            replay->replay_kind = (uint8_t)kind;
            replay->replay = v;
            replay->nreplay = nv;
        }
    }
    struct room_member rm = {
        .pid = pid, .join_seq = room->seq, .conn = conn, .kind = (uint8_t)kind, .order = room->joins++};
    err = rooms_member_add(room, &rm);
    if (err) {
        if (replay)
            fanout_job_free(replay);
        goto unlock_maybe_delete;
    }
    opened = room->mn == 1 && ws_rooms_backend();
    if (opened)
        room->refs++; /* report_opened's */
    rooms_snap_drop_locked(room);
    room->refs++; /* the member's */
    m->rooms[m->n++] = room;
    if (watch)
        m->watched = true;
    out.epoch = room->epoch;
    out.seq = room->seq;
    /* The replay goes through the room's queue, behind every frame that
     * was published before this join and ahead of every later one: the
     * member sees the missed messages, then the live ones, in order. */
    if (replay)
        run = fanout_enqueue_locked(room, replay);
    if (run)
        room->refs++; /* the deliverer's, dropped when it finishes */
    atomic_fetch_add_explicit(&rooms_stats.members, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rs->lock);
    goto done;

unlock_maybe_delete:
    rooms_maybe_delete_locked(room);
unlock:
    pthread_mutex_unlock(&rs->lock);
    if (new_member && !m->n)
        member_destroy_locked(ms, member_lookup_locked(ms, pid));
    pthread_mutex_unlock(&ms->lock);
    return err;

done:
    pthread_mutex_unlock(&ms->lock);
    if (opened)
        report_opened(room);
    if (run)
        fanout_run(room);
    if (watch) {
        /* Without its monitor nothing would remove the member at its exit:
         * undo the join (only when the runtime is stopping). */
        err = janitor_watch(pid);
        if (err) {
            rooms_member_drop(pid);
            return err;
        }
    }
    if (kind == ROOM_KIND_WS && !ws_conn_accepting(pid)) {
        /* The connection closed meanwhile; its exit path may have run
         * before this join was in. */
        rooms_member_drop(pid);
        return SNOW_ECLOSED;
    }
    if (res)
        *res = out;
    return 0;
}

/* With both shards locked: takes pid out of room; returns true when the
 * room lost its last local member. */
static bool room_remove_locked(struct room *room, SnowPid pid)
{
    if (!rooms_member_del(room, pid))
        return false;
    atomic_fetch_sub_explicit(&rooms_stats.members, 1, memory_order_relaxed);
    rooms_snap_drop_locked(room);
    return room->mn == 0;
}

static void report_closed(const char *name, size_t len)
{
    const struct ws_rooms_backend *b = ws_rooms_backend();
    if (b && b->room_closed)
        b->room_closed(name, len);
}

int rooms_leave(SnowPid pid, const void *name, size_t len)
{
    uint64_t hash = rooms_hash(name, len);
    struct member_shard *ms = member_shard_of(pid);
    pthread_mutex_lock(&ms->lock);
    struct member **mp = member_lookup_locked(ms, pid);
    int idx = mp ? member_room_index(*mp, hash, name, len) : -1;
    if (idx < 0) {
        pthread_mutex_unlock(&ms->lock);
        return SNOW_ENOPROC;
    }
    struct member *m = *mp;
    struct room *room = m->rooms[idx];
    m->rooms[idx] = m->rooms[--m->n];
    struct room_shard *rs = room->shard; /* room may be freed below */
    pthread_mutex_lock(&rs->lock);
    bool closed = room_remove_locked(room, pid);
    room_release_locked(room);
    pthread_mutex_unlock(&rs->lock);
    pthread_mutex_unlock(&ms->lock);
    if (closed)
        report_closed(name, len);
    return 0;
}

void rooms_member_drop(SnowPid pid)
{
    struct member_shard *ms = member_shard_of(pid);
    pthread_mutex_lock(&ms->lock);
    struct member **mp = member_lookup_locked(ms, pid);
    if (!mp) {
        pthread_mutex_unlock(&ms->lock);
        return;
    }
    struct member *m = *mp;
    /* Names of rooms that lost their last member, reported after unlocking. */
    char *closed = NULL;
    size_t csize = 0, cused = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        struct room *room = m->rooms[i];
        struct room_shard *rs = room->shard; /* room may be freed below */
        pthread_mutex_lock(&rs->lock);
        if (room_remove_locked(room, pid) && ws_rooms_backend()) {
            size_t need = cused + sizeof(uint32_t) + room->name_len;
            if (need > csize) {
                size_t ns = need * 2;
                char *nb = realloc(closed, ns);
                if (nb) {
                    closed = nb;
                    csize = ns;
                }
            }
            if (need <= csize) {
                uint32_t l = (uint32_t)room->name_len;
                memcpy(closed + cused, &l, sizeof l);
                memcpy(closed + cused + sizeof l, room->name, l);
                cused = need;
            }
        }
        room_release_locked(room);
        pthread_mutex_unlock(&rs->lock);
    }
    m->n = 0;
    member_destroy_locked(ms, mp);
    pthread_mutex_unlock(&ms->lock);
    for (size_t off = 0; off < cused;) {
        uint32_t l;
        memcpy(&l, closed + off, sizeof l);
        report_closed(closed + off + sizeof l, l);
        off += sizeof l + l;
    }
    free(closed);
}

void ws_rooms_member_gone(SnowPid pid)
{
    rooms_member_drop(pid);
}

int rooms_list(SnowPid pid, char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    struct member_shard *ms = member_shard_of(pid);
    pthread_mutex_lock(&ms->lock);
    struct member **mp = member_lookup_locked(ms, pid);
    if (!mp || !(*mp)->n) {
        pthread_mutex_unlock(&ms->lock);
        return 0;
    }
    struct member *m = *mp;
    size_t total = 0;
    for (uint32_t i = 0; i < m->n; i++)
        total += sizeof(uint32_t) + m->rooms[i]->name_len;
    char *b = malloc(total);
    if (!b) {
        pthread_mutex_unlock(&ms->lock);
        return -ENOMEM;
    }
    size_t off = 0;
    /* The names are fixed at a room's creation and the member's references
     * keep the rooms alive: no room lock is needed to read them. */
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t l = (uint32_t)m->rooms[i]->name_len;
        memcpy(b + off, &l, sizeof l);
        memcpy(b + off + sizeof l, m->rooms[i]->name, l);
        off += sizeof l + l;
    }
    int n = (int)m->n;
    pthread_mutex_unlock(&ms->lock);
    *buf = b;
    *size = total;
    return n;
}

int rooms_configure(const void *name, size_t len, uint32_t history, size_t max_bytes)
{
    uint64_t hash = rooms_hash(name, len);
    struct room_shard *sh = rooms_shard_of(hash);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, hash, name, len);
    if (!r && !history) {
        pthread_mutex_unlock(&sh->lock);
        return 0;
    }
    if (!r)
        r = room_create_locked(sh, hash, name, len);
    int err = r ? fanout_history_resize_locked(r, history, max_bytes) : -ENOMEM;
    if (r)
        rooms_maybe_delete_locked(r);
    pthread_mutex_unlock(&sh->lock);
    return err;
}

/* ---- the backend seam ------------------------------------------------------------------ */

static const struct ws_rooms_backend *_Atomic backend;

void ws_rooms_set_backend(const struct ws_rooms_backend *b)
{
    atomic_store_explicit(&backend, b, memory_order_release);
}

static pthread_once_t backend_env_once = PTHREAD_ONCE_INIT;

const struct ws_rooms_backend *ws_rooms_backend(void)
{
    pthread_once(&backend_env_once, rooms_redis_from_env);
    return atomic_load_explicit(&backend, memory_order_acquire);
}
