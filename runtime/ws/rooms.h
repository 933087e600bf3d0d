/*
 * rooms.h: the room registry's internal interface (rooms.c: membership,
 * rooms_fanout.c: delivery, history and replay, rooms_abi.c: the ABI).
 *
 * Model (redis pubsub.c): two indexes, member -> rooms and room -> members,
 * each sharded by hash with its own mutexes so that joins and broadcasts on
 * different rooms, and joins of different members, do not contend. A room
 * lives while it has members (or a history ring, see snow_room_configure)
 * and is deleted with its last member; a room created again gets a new
 * epoch, so sequence numbers from its earlier life are never mistaken for
 * current ones.
 *
 * Lock order: member shard -> room shard. Never two shards of the same
 * index at once, and no lock is held while delivering or sending.
 */
#ifndef SNOW_WS_ROOMS_H
#define SNOW_WS_ROOMS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rt.h"
#include "ws/bcast.h"

enum room_kind { ROOM_KIND_WS = 1, ROOM_KIND_ACTOR = 2 };

struct room_member {
    SnowPid pid;       /* 0: empty hash slot */
    uint64_t join_seq; /* room seq at join: frames <= this are not live for it */
    /* A connection's record when it joined (ws_conn_hint): only for the
     * deliverer to prefetch it (ws_table_prefetch), never dereferenced,
     * since only the table says whether it is still that connection's. */
    const void *conn;
    uint8_t kind;
    /* The room's join count at this join (struct room joins): a snapshot
     * lists its members in this order (room_members.c, rooms_snapshot_locked). */
    uint32_t order;
};

/* Members as seen by one delivery: immutable once built, shared by every
 * job delivered while the membership does not change. */
struct room_snap_pmd;
struct room_snap {
    atomic_uint refs;
    uint32_t n;
    /* The members' permessage-deflate agreements (rooms_fanout.c), looked
     * up by the room's deliverer at the first broadcast that needs them,
     * outside every lock; one flat block, freed with the snapshot. */
    struct room_snap_pmd *pmd;
    struct room_member v[];
};

struct room_job {
    struct room_job *next;
    struct ws_shared_frame *frame; /* broadcast: the frame; replay: unused */
    SnowPid except;                /* broadcast: member skipped (0: none) */
    SnowPid replay_to;             /* replay: the one member, else 0 */
    uint8_t replay_kind;
    uint32_t nreplay;              /* replay: frames, oldest first */
    struct ws_shared_frame **replay;
};

struct room {
    struct room *next;      /* shard bucket chain */
    uint64_t hash;
    uint32_t refs;          /* [shard] index + each member + deliverer */
    bool dead;              /* [shard] no longer in the index */
    uint64_t epoch;         /* fixed at creation */
    uint64_t seq;           /* [shard] last sequence number handed out */
    /* members: open addressing by pid, linear probing, backward-shift delete */
    struct room_member *mv; /* [shard] */
    uint32_t mcap, mn;      /* [shard] mcap a power of two (or 0) */
    uint32_t joins;         /* [shard] joins so far (wraps): room_member order */
    struct room_snap *snap; /* [shard] cached, dropped when members change */
    /* history ring: the last hcap broadcast frames (0: off) */
    struct ws_shared_frame **hist; /* [shard] */
    uint32_t hcap, hn, hhead;      /* [shard] hhead: index of the oldest */
    size_t hbytes, hmax;           /* [shard] frame bytes held, and the bound */
    /* delivery queue: jobs in sequence order, run by one deliverer at once */
    struct room_job *qhead, *qtail; /* [shard] */
    uint32_t qn;                    /* [shard] */
    bool delivering;                /* [shard] a deliverer owns the queue */
    struct room_shard *shard;
    size_t name_len;
    char name[];
};

struct room_shard {
    pthread_mutex_t lock;
    struct room **buckets;
    uint32_t nbuckets, n;
};

/* Pending broadcasts per room before snow_ws_broadcast refuses with
 * SNOW_EBACKPRESSURE: the queue of a room whose deliverer falls behind is
 * bounded (a publisher faster than the fanout is told so). */
#define ROOM_QUEUE_MAX 4096
/* The most a publisher delivers itself before handing the rest to a
 * deliverer actor. */
#define ROOM_BATCH 256
/* The most consecutive broadcasts a deliverer actor delivers together,
 * member by member (rooms_fanout.c deliver_jobs). */
#define ROOM_MERGE 64
#define ROOM_HISTORY_MAX 65536
/* Default bound on the bytes a room's ring holds (SnowRoomOpts.history_kib). */
#define ROOM_HISTORY_KIB_DEFAULT 8192

struct room_shard *rooms_shard_of(uint64_t hash);
static inline uint64_t rooms_pid_hash(SnowPid pid)
{
    uint64_t h = pid * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 31);
}
/* With the shard locked (room_members.c): adds m to r's member table
 * (0, or -ENOMEM); removes pid from it (false: not a member). */
int rooms_member_add(struct room *r, const struct room_member *m);
bool rooms_member_del(struct room *r, SnowPid pid);
/* With the shard locked (room_members.c): the members now, in join
 * order, shared (one reference for the caller), or NULL on ENOMEM. */
struct room_snap *rooms_snapshot_locked(struct room *r);
uint64_t rooms_hash(const void *name, size_t len);
/* With the shard locked: the live room named name, or NULL. */
struct room *rooms_find_locked(struct room_shard *sh, uint64_t hash, const void *name, size_t len);
/* With the shard locked: drops a reference; the last one frees the room. */
void rooms_unref_locked(struct room *r);
/* With the shard locked: a membership change makes the snapshot stale. */
void rooms_snap_drop_locked(struct room *r);
void rooms_snap_unref(struct room_snap *s);
/* With the shard locked: deletes the room from the index when it has no
 * members and nothing that keeps it (a history ring). */
void rooms_maybe_delete_locked(struct room *r);

/* rooms_fanout.c */
/* With the shard locked: appends a job. Returns true when the caller must
 * start delivery (no deliverer owned the queue; the caller now does). */
bool fanout_enqueue_locked(struct room *r, struct room_job *j);
/* Runs the queue of r (the caller became its deliverer). Delivers up to
 * ROOM_BATCH itself, then hands the rest to a deliverer actor. */
void fanout_run(struct room *r);
void fanout_job_free(struct room_job *j);
/* With the shard locked: stores f in the history ring (takes a reference). */
void fanout_history_push_locked(struct room *r, struct ws_shared_frame *f);
void fanout_history_clear_locked(struct room *r);
/* With the shard locked: a ring of cap frames (0: none) and at most max
 * bytes, keeping the newest. */
int fanout_history_resize_locked(struct room *r, uint32_t cap, size_t max);
/* With the shard locked: what a member resuming from (epoch, seq) missed.
 * *out and *n get the ring's frames after seq (all of the ring when epoch is
 * not the room's), oldest first, with references taken. Returns 1 when
 * they are everything published after that position (recovered), 0 when
 * the ring no longer reaches back that far, the epoch is another one, or
 * seq lies in the future; -ENOMEM. */
int fanout_history_since_locked(struct room *r, uint64_t epoch, uint64_t seq, struct ws_shared_frame ***out,
                                uint32_t *n);

/* rooms.c: membership by pid (the ABI resolves connections to pids) */
struct room_join_result {
    uint64_t epoch, seq; /* the room's epoch and last seq when joined */
    bool recovered;
};
/* Joins pid to room. since_epoch/since_seq: replay what was missed after
 * that position (resume); resume false: a plain join. */
int rooms_join(SnowPid pid, enum room_kind kind, const void *room, size_t len, bool resume, uint64_t since_epoch,
               uint64_t since_seq, struct room_join_result *res);
int rooms_leave(SnowPid pid, const void *room, size_t len);
/* Copies pid's room names into a new buffer of (uint32 len, bytes) records. */
int rooms_list(SnowPid pid, char **buf, size_t *size);
/* Sets the room's history ring size (creating the room when needed). */
int rooms_configure(const void *name, size_t len, uint32_t history, size_t max_bytes);
/* Removes the member from every room and forgets it. */
void rooms_member_drop(SnowPid pid);

/* rooms_conn.c: true while the connection whose actor is pid takes frames
 * (CONNECTING or OPEN, no Close queued). */
bool ws_conn_accepting(SnowPid pid);
/* The record of the connection whose actor is pid, as an address to
 * prefetch (struct room_member.conn), or NULL. */
const void *ws_conn_hint(SnowPid pid);

/* Counters (all relaxed atomics: statistics, not synchronisation). */
struct rooms_counters {
    atomic_uint_fast64_t rooms, members, broadcasts, deliveries, skipped_backpressure, skipped_closed,
        replayed, refused_backpressure, deliverers, compressed,
        direct, direct_partial, /* written by the deliverer itself (deliver.c), in part */
        direct_writes;          /* the writevs that wrote them */
};
extern struct rooms_counters rooms_stats;

/*
 * The backend seam. The in-process registry is the whole story by default;
 * a backend for several processes (Redis) hooks in here: told when a room
 * gains its first or loses its last local member (to subscribe or
 * unsubscribe upstream) and of every local broadcast (to publish it for the
 * other nodes), and hands remote broadcasts to local members through
 * rooms_publish.
 * Hooks run outside every registry lock and must not park. Calls made on
 * different threads may arrive out of order (an "opened" after the
 * "closed" of a member that left at once): a backend acts on the room's
 * state (snow_ws_room_size), not on the order of the calls.
 */
struct room_publish;
struct ws_rooms_backend {
    const char *name;
    void (*room_opened)(const char *room, size_t len);
    void (*room_closed)(const char *room, size_t len);
    /* epoch 0, seq 0: the room has no local life (no member, no ring); the
     * publish is still for the other nodes. p: except and stamp offsets. */
    void (*published)(const char *room, size_t len, uint64_t epoch, uint64_t seq,
                      const struct ws_shared_frame *f, const struct room_publish *p);
};
/* NULL restores the in-process default. Call before serving. The first
 * look at the seam also reads SNOW_ROOMS_REDIS (rooms_redis.c). */
void ws_rooms_set_backend(const struct ws_rooms_backend *b);
const struct ws_rooms_backend *ws_rooms_backend(void);
/* rooms_redis.c: installs the Redis backend when SNOW_ROOMS_REDIS is set. */
void rooms_redis_from_env(void);

/* Publishes payload to room's local members. except: member skipped.
 * stamp_at: offsets in payload where the runtime writes the sequence
 * number and the epoch as 20 decimal digits (SIZE_MAX: none). Returns the
 * sequence number (> 0), 0 when the room does not exist here, or an error. */
struct room_publish {
    SnowPid except;
    size_t seq_at, epoch_at;
};
int64_t rooms_publish(const void *room, size_t len, const void *data, size_t n, bool is_text,
                      const struct room_publish *p);

#endif
