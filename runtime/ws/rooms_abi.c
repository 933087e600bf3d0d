/*
 * rooms_abi.c: the Rooms section of snow_rt.h over the registry
 * (rooms.c, rooms_fanout.c). Connections are named by their PIDs here; a
 * handle that no longer names an open connection is SNOW_ECLOSED.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "ws/rooms.h"

static bool name_ok(const char *room, size_t len)
{
    return room && len && len <= SNOW_ROOM_NAME_MAX;
}

static SnowPid conn_pid(SnowWsConn *conn)
{
    if (!conn)
        return 0;
    SnowPid pid = snow_ws_pid(conn);
    /* Only an open connection joins: its exit path is what removes it. */
    return pid && snow_ws_conn(pid) ? pid : 0;
}

static int join(SnowPid pid, enum room_kind kind, const char *room, size_t len, bool resume, uint64_t epoch,
                uint64_t seq, SnowRoomPos *pos)
{
    if (!name_ok(room, len))
        return -EINVAL;
    if (!pid)
        return kind == ROOM_KIND_WS ? SNOW_ECLOSED : SNOW_ENOPROC;
    struct room_join_result res;
    int err = rooms_join(pid, kind, room, len, resume, epoch, seq, &res);
    if (err)
        return err;
    if (pos)
        *pos = (SnowRoomPos){res.epoch, res.seq};
    return resume ? (res.recovered ? 1 : 0) : 0;
}

int snow_ws_join(SnowWsConn *conn, const char *room, size_t room_len, SnowRoomPos *pos)
{
    return join(conn_pid(conn), ROOM_KIND_WS, room, room_len, false, 0, 0, pos);
}

int snow_ws_join_since(SnowWsConn *conn, const char *room, size_t room_len, uint64_t epoch, uint64_t seq,
                       SnowRoomPos *pos)
{
    return join(conn_pid(conn), ROOM_KIND_WS, room, room_len, true, epoch, seq, pos);
}

int snow_ws_leave(SnowWsConn *conn, const char *room, size_t room_len)
{
    if (!name_ok(room, room_len))
        return -EINVAL;
    return conn ? rooms_leave(snow_ws_pid(conn), room, room_len) : SNOW_ENOPROC;
}

int snow_room_subscribe(SnowPid pid, const char *room, size_t room_len, SnowRoomPos *pos)
{
    return join(pid, ROOM_KIND_ACTOR, room, room_len, false, 0, 0, pos);
}

int snow_room_subscribe_since(SnowPid pid, const char *room, size_t room_len, uint64_t epoch, uint64_t seq,
                              SnowRoomPos *pos)
{
    return join(pid, ROOM_KIND_ACTOR, room, room_len, true, epoch, seq, pos);
}

int snow_room_unsubscribe(SnowPid pid, const char *room, size_t room_len)
{
    if (!name_ok(room, room_len))
        return -EINVAL;
    return rooms_leave(pid, room, room_len);
}

int snow_room_backlog_limit(SnowPid pid, size_t max_messages, size_t max_bytes)
{
    if (!pid)
        return SNOW_ENOPROC;
    return actor_set_backlog(pid, max_messages, max_bytes);
}

void snow_room_publish_init(SnowRoomPublish *opts)
{
    *opts = (SnowRoomPublish){.seq_at = SNOW_ROOM_NO_STAMP, .epoch_at = SNOW_ROOM_NO_STAMP};
}

int64_t snow_room_publish(const char *room, size_t room_len, const void *data, size_t len,
                          const SnowRoomPublish *opts)
{
    SnowRoomPublish d;
    if (!opts) {
        snow_room_publish_init(&d);
        opts = &d;
    }
    struct room_publish p = {.except = opts->except, .seq_at = opts->seq_at, .epoch_at = opts->epoch_at};
    return rooms_publish(room, room_len, data, len, opts->is_text != 0, &p);
}

int64_t snow_ws_broadcast(const char *room, size_t room_len, const void *data, size_t len, int is_text)
{
    struct room_publish p = {.seq_at = SIZE_MAX, .epoch_at = SIZE_MAX};
    return rooms_publish(room, room_len, data, len, is_text != 0, &p);
}

int64_t snow_ws_broadcast_except(const char *room, size_t room_len, const void *data, size_t len, int is_text,
                                 SnowWsConn *except)
{
    struct room_publish p = {.except = except ? snow_ws_pid(except) : 0, .seq_at = SIZE_MAX, .epoch_at = SIZE_MAX};
    return rooms_publish(room, room_len, data, len, is_text != 0, &p);
}

int64_t snow_ws_room_size(const char *room, size_t room_len)
{
    if (!name_ok(room, room_len))
        return -EINVAL;
    uint64_t hash = rooms_hash(room, room_len);
    struct room_shard *sh = rooms_shard_of(hash);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, hash, room, room_len);
    int64_t n = r ? r->mn : 0;
    pthread_mutex_unlock(&sh->lock);
    return n;
}

int snow_room_position(const char *room, size_t room_len, SnowRoomPos *pos)
{
    if (!name_ok(room, room_len) || !pos)
        return -EINVAL;
    uint64_t hash = rooms_hash(room, room_len);
    struct room_shard *sh = rooms_shard_of(hash);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, hash, room, room_len);
    *pos = r ? (SnowRoomPos){r->epoch, r->seq} : (SnowRoomPos){0, 0};
    pthread_mutex_unlock(&sh->lock);
    return r ? 1 : 0;
}

int snow_room_list(SnowPid pid, SnowRoomNameFn fn, void *arg)
{
    char *buf;
    size_t size;
    int n = rooms_list(pid, &buf, &size);
    if (n <= 0)
        return n;
    /* The names were copied out: fn runs with no registry lock held. */
    for (size_t off = 0; off < size;) {
        uint32_t l;
        memcpy(&l, buf + off, sizeof l);
        if (fn)
            fn(buf + off + sizeof l, l, arg);
        off += sizeof l + l;
    }
    free(buf);
    return n;
}

int snow_ws_rooms(SnowWsConn *conn, SnowRoomNameFn fn, void *arg)
{
    return conn ? snow_room_list(snow_ws_pid(conn), fn, arg) : 0;
}

int snow_room_configure(const char *room, size_t room_len, const SnowRoomOpts *opts)
{
    if (!name_ok(room, room_len) || !opts || opts->history > ROOM_HISTORY_MAX)
        return -EINVAL;
    size_t kib = opts->history_kib ? opts->history_kib : ROOM_HISTORY_KIB_DEFAULT;
    return rooms_configure(room, room_len, opts->history, kib * 1024);
}

void snow_room_counters(SnowRoomCounters *out)
{
    struct rooms_counters *c = &rooms_stats;
    *out = (SnowRoomCounters){
        .rooms = atomic_load_explicit(&c->rooms, memory_order_relaxed),
        .members = atomic_load_explicit(&c->members, memory_order_relaxed),
        .broadcasts = atomic_load_explicit(&c->broadcasts, memory_order_relaxed),
        .deliveries = atomic_load_explicit(&c->deliveries, memory_order_relaxed),
        .skipped_backpressure = atomic_load_explicit(&c->skipped_backpressure, memory_order_relaxed),
        .skipped_closed = atomic_load_explicit(&c->skipped_closed, memory_order_relaxed),
        .replayed = atomic_load_explicit(&c->replayed, memory_order_relaxed),
        .refused_backpressure = atomic_load_explicit(&c->refused_backpressure, memory_order_relaxed),
        .deliverers = atomic_load_explicit(&c->deliverers, memory_order_relaxed),
    };
}
