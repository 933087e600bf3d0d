/*
 * rooms_fanout.c: publishing to a room and delivering to its members.
 *
 * A broadcast is encoded once (ws_shared_frame) outside every lock; under
 * the room's shard lock it gets the room's next sequence number, a place in
 * the history ring and a place in the room's delivery queue. Whoever finds
 * the queue without a deliverer becomes it. Delivery runs with no lock held
 * over a snapshot of the members (built once and reused until the
 * membership changes), so a broadcast to 10,000 members never blocks joins,
 * leaves or broadcasts of other rooms, and never waits for a member: a
 * delivery queues a reference, or writes to a sleeping member's socket what
 * it takes at once, and a member over its outbound limit is skipped and
 * counted.
 *
 * Why one deliverer per room: every member then sees the room's messages in
 * sequence order, which is what makes a resumed join exact (a member that
 * saw seq n has seen everything before it) and keeps each publisher's order
 * as a consequence.
 *
 * Who delivers: the publisher itself while the work is small (at most
 * ROOM_BATCH deliveries: a chat room costs no extra actor and no extra
 * hop) and it is not a receiving WebSocket member itself (see
 * delivers_to_self), otherwise a deliverer actor spawned for the room,
 * which counts a reduction per member (a yield every SNOW_REDUCTIONS
 * members) so a 10,000-member room shares its worker with everything
 * else, and ends when the queue is empty. The publisher
 * returns at once and never parks; it only learns SNOW_EBACKPRESSURE when
 * the room's queue holds ROOM_QUEUE_MAX undelivered broadcasts. A deliverer
 * actor rather than bounded batches in the publisher: a publisher that
 * yields mid-broadcast could be killed there and leave the queue owned by
 * nobody, and a publisher on a connection would stall its own socket for
 * the length of the fanout.
 *
 * permessage-deflate: members without server context takeover share one
 * compressed copy of each broadcast (see "compressed once" below).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "utf8.h"
#include "ws/frame.h"
#include "ws/pmd.h"
#include "ws/rooms.h"

/* ---- history ring ---------------------------------------------------------------- */

static void drop_oldest_locked(struct room *r)
{
    struct ws_shared_frame *f = r->hist[r->hhead];
    r->hbytes -= f->len;
    ws_shared_frame_unref(f);
    r->hhead = (r->hhead + 1) % r->hcap;
    r->hn--;
}

void fanout_history_push_locked(struct room *r, struct ws_shared_frame *f)
{
    if (!r->hcap)
        return;
    if (r->hn == r->hcap)
        drop_oldest_locked(r);
    ws_shared_frame_ref(f);
    r->hist[(r->hhead + r->hn) % r->hcap] = f;
    r->hn++;
    r->hbytes += f->len;
    /* The byte bound drops the oldest too, but keeps the newest frame: the
     * ring stays a run of consecutive sequence numbers. */
    while (r->hbytes > r->hmax && r->hn > 1)
        drop_oldest_locked(r);
}

int fanout_history_resize_locked(struct room *r, uint32_t cap, size_t max)
{
    r->hmax = max;
    while (r->hn && r->hbytes > r->hmax && r->hn > 1)
        drop_oldest_locked(r);
    if (cap == r->hcap)
        return 0;
    struct ws_shared_frame **v = NULL;
    if (cap) {
        v = calloc(cap, sizeof *v);
        if (!v)
            return -ENOMEM;
    }
    uint32_t keep = r->hn < cap ? r->hn : cap;
    for (uint32_t i = 0; i < r->hn; i++) {
        struct ws_shared_frame *f = r->hist[(r->hhead + i) % r->hcap];
        if (i >= r->hn - keep) {
            v[i - (r->hn - keep)] = f;
        } else {
            r->hbytes -= f->len;
            ws_shared_frame_unref(f);
        }
    }
    free(r->hist);
    r->hist = v;
    r->hcap = cap;
    r->hn = keep;
    r->hhead = 0;
    return 0;
}

void fanout_history_clear_locked(struct room *r)
{
    for (uint32_t i = 0; i < r->hn; i++)
        ws_shared_frame_unref(r->hist[(r->hhead + i) % r->hcap]);
    r->hn = 0;
    r->hhead = 0;
    r->hbytes = 0;
}

int fanout_history_since_locked(struct room *r, uint64_t epoch, uint64_t seq, struct ws_shared_frame ***out,
                                uint32_t *n)
{
    *out = NULL;
    *n = 0;
    /* The ring holds the seqs (oldest, room->seq]: every broadcast since it
     * was enabled goes in, so they are consecutive. */
    uint64_t oldest = r->seq - r->hn;
    bool same = epoch == r->epoch && seq <= r->seq;
    uint64_t from = same ? seq : 0;
    bool recovered = same ? from >= oldest : (epoch == 0 && oldest == 0);
    if (from < oldest)
        from = oldest;
    uint32_t k = (uint32_t)(r->seq - from);
    if (k) {
        struct ws_shared_frame **v = malloc(k * sizeof *v);
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < k; i++) {
            v[i] = r->hist[(r->hhead + (r->hn - k) + i) % r->hcap];
            ws_shared_frame_ref(v[i]);
        }
        *out = v;
        *n = k;
    }
    return recovered ? 1 : 0;
}

/* ---- the queue ---------------------------------------------------------------------- */

bool fanout_enqueue_locked(struct room *r, struct room_job *j)
{
    j->next = NULL;
    if (r->qtail)
        r->qtail->next = j;
    else
        r->qhead = j;
    r->qtail = j;
    r->qn++;
    if (r->delivering)
        return false;
    r->delivering = true;
    return true;
}

static struct room_job *dequeue_locked(struct room *r)
{
    struct room_job *j = r->qhead;
    if (j) {
        r->qhead = j->next;
        if (!r->qhead)
            r->qtail = NULL;
        r->qn--;
    }
    return j;
}

static void push_front_locked(struct room *r, struct room_job *j)
{
    j->next = r->qhead;
    r->qhead = j;
    if (!r->qtail)
        r->qtail = j;
    r->qn++;
}

void fanout_job_free(struct room_job *j)
{
    if (!j)
        return;
    ws_shared_frame_unref(j->frame);
    for (uint32_t i = 0; i < j->nreplay; i++)
        ws_shared_frame_unref(j->replay[i]);
    free(j->replay);
    free(j);
}

/* ---- delivering one job ---------------------------------------------------------------- */

/* Members found dead while delivering, removed from the room once the job
 * is done. Beyond the first 16 of one job (a mass disconnect), the later
 * jobs find the rest, and their own exit paths remove them anyway. */
struct dead_list {
    SnowPid v[16];
    uint32_t n;
};

/* A deliverer actor's buffer for writing a member's small frames with one
 * send (ws_conn_deliver_batch), and as much again for the frames of its
 * batch laid out once for every member (lay_out); a publisher, which
 * delivers one broadcast at a time, needs neither. */
#define DELIVERY_CORK (8 * 1024)

struct delivery {
    struct room *room;
    bool yields;        /* a deliverer actor: counts reductions */
    struct ws_deliverer by;      /* pid, and DELIVERY_CORK bytes of buffer or none */
    uint8_t *lay;                /* DELIVERY_CORK bytes after by.cork, or NULL */
    struct ws_batch_result tally; /* added to rooms_stats once per batch of jobs */
    /* The mailbox form for plain actor members, built at the first one. */
    unsigned char *amsg;
    size_t amsg_len;
    const struct ws_shared_frame *amsg_of;
    struct dead_list dead;
};

static void note_dead(struct delivery *d, SnowPid pid)
{
    if (d->dead.n < RT_ARRAY_LEN(d->dead.v))
        d->dead.v[d->dead.n++] = pid;
}

static int actor_form(struct delivery *d, const struct ws_shared_frame *f)
{
    if (d->amsg_of == f)
        return 0;
    free(d->amsg);
    d->amsg = NULL;
    d->amsg_of = NULL;
    const struct room *r = d->room;
    size_t n = sizeof(SnowRoomMsg) + r->name_len + f->payload_len;
    unsigned char *b = malloc(n);
    if (!b)
        return -ENOMEM;
    SnowRoomMsg h = {
        .epoch = f->room_epoch,
        .seq = f->room_seq,
        .room_len = (uint32_t)r->name_len,
        .is_text = f->opcode == WS_OP_TEXT,
        .len = f->payload_len,
    };
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, r->name, r->name_len);
    memcpy(b + sizeof h + r->name_len, f->bytes + (f->len - f->payload_len), f->payload_len);
    d->amsg = b;
    d->amsg_len = n;
    d->amsg_of = f;
    return 0;
}

/*
 * Frames f[0..n) (in sequence order) to one member: a connection gets them
 * with one table look-up and, while it hibernates, in one writev from here
 * (ws_conn_deliver_batch); a plain actor one mailbox message each. The
 * counters are added once per member, not per frame.
 */
static void deliver_member(struct delivery *d, SnowPid pid, uint8_t kind, struct ws_shared_frame *const *f,
                           uint32_t n)
{
    struct ws_batch_result *r = &d->tally;
    uint32_t failed = r->failed;
    if (kind == ROOM_KIND_WS) {
        ws_conn_deliver_batch(&d->by, pid, f, n, r);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            int rc = actor_form(d, f[i]);
            if (!rc)
                rc = actor_send_backlog(pid, SNOW_TAG_ROOM_MESSAGE, d->amsg, d->amsg_len);
            if (rc == 0)
                r->delivered++;
            else if (rc == SNOW_EBACKPRESSURE || rc == -ENOMEM)
                r->refused++;
            else
                r->failed++;
        }
    }
    /* Gone (or cannot take the frames): counted per frame, removed from
     * the room once. */
    if (r->failed != failed)
        note_dead(d, pid);
    /* One reduction per member: the deliverer shares its worker like
     * compiled code does (a yield every SNOW_REDUCTIONS, 4000 by default).
     * A member's batch costs about the same whatever its number of frames
     * (one system call, or one wake-up of the member), so the count follows
     * members. Yielding much more often would wake every member once per
     * message instead of once per batch of messages, and cost each a
     * write. */
    if (d->yields)
        snow_reduction_check();
}

/* The counts of the deliveries so far, into rooms_stats: once per batch of
 * jobs, not once per member. */
static void flush_tally(struct delivery *d)
{
    struct ws_batch_result *r = &d->tally;
#define ADD(field, v)                                                                    \
    do {                                                                                 \
        if (v)                                                                           \
            atomic_fetch_add_explicit(&rooms_stats.field, (v), memory_order_relaxed);    \
    } while (0)
    ADD(deliveries, r->delivered);
    ADD(direct, r->direct);
    ADD(direct_partial, r->partial);
    ADD(direct_writes, r->writes);
    ADD(skipped_backpressure, r->refused);
    ADD(skipped_closed, r->failed);
#undef ADD
    *r = (struct ws_batch_result){0};
}

/* ---- compressed once (permessage-deflate) -------------------------------------------------- */

/*
 * Members that agreed permessage-deflate without server context takeover
 * share one compressed frame per broadcast: made at the smallest window
 * any of them agreed (a frame compressed within 2^b bytes inflates in any
 * window of 2^b or more, RFC 7692 §7.1.2.1), so one compression serves
 * them all. It is made at the first such member whose route's threshold
 * the message reaches, outside every lock, and not at all when no member
 * needs it. Every other member (no compression, context takeover, a
 * plain actor) gets the plain frame: an uncompressed message is always
 * valid (§6), and a frame compressed elsewhere would break a takeover
 * context. When compressing does not make the frame smaller, everyone
 * gets the plain frame.
 */
struct room_snap_pmd {
    uint8_t min_bits;       /* smallest window among shared members */
    uint32_t min_threshold; /* smallest threshold among them */
    uint32_t shared;        /* members that take the shared frame */
    struct ws_pmd_member v[];
};

/* The room's deliverer fills s->pmd once per snapshot; the shard lock
 * that hands the queue from one deliverer to the next orders the write
 * before later reads. NULL: no member takes compressed frames (or no
 * memory to find out, which only costs compression). */
static const struct room_snap_pmd *snap_pmd(struct room_snap *s)
{
    if (s->pmd)
        return s->pmd->shared ? s->pmd : NULL;
    if (!ws_pmd_shared_members())
        return NULL; /* nobody in the process could take one: no look-ups */
    struct room_snap_pmd *z = malloc(sizeof *z + (size_t)s->n * sizeof z->v[0]);
    if (!z)
        return NULL;
    *z = (struct room_snap_pmd){.min_bits = 15, .min_threshold = UINT32_MAX};
    for (uint32_t i = 0; i < s->n; i++) {
        struct ws_pmd_member *m = &z->v[i];
        *m = (struct ws_pmd_member){0};
        /* A member that is gone or not open yet counts as plain. */
        if (s->v[i].kind != ROOM_KIND_WS || ws_pmd_member_info(s->v[i].pid, m) < 0 || !m->bits) {
            *m = (struct ws_pmd_member){0};
            continue;
        }
        z->shared++;
        if (m->bits < z->min_bits)
            z->min_bits = m->bits;
        if (m->threshold < z->min_threshold)
            z->min_threshold = m->threshold;
    }
    s->pmd = z;
    return z->shared ? z : NULL;
}

/* The shared compressed form of the plain frame f, or NULL (no memory, or
 * no smaller than f). */
static struct ws_shared_frame *compressed_of(const struct ws_shared_frame *f, unsigned bits)
{
    struct ws_shared_frame *c =
        ws_pmd_shared_frame(f->opcode, f->bytes + (f->len - f->payload_len), f->payload_len, bits, 0);
    if (!c)
        return NULL;
    if (c->len >= f->len) {
        ws_shared_frame_unref(c);
        return NULL;
    }
    /* Not shared yet: these are its last writes. */
    c->room_epoch = f->room_epoch;
    c->room_seq = f->room_seq;
    atomic_fetch_add_explicit(&rooms_stats.compressed, 1, memory_order_relaxed);
    return c;
}

/*
 * Members whose table slot and connection record are fetched into the
 * cache while an earlier one is served. In a 10,000-member room those are
 * a cache miss each per member (the records alone are 10,000 lines, more
 * than a core's L2 holds next to the kernel's socket state), and a member
 * takes a system call to serve: a few members ahead is early enough and
 * not so early that the lines are gone again when their turn comes.
 */
#define PREFETCH_AHEAD 4

static inline void prefetch_member(const struct room_member *m)
{
    if (m->kind == ROOM_KIND_WS)
        ws_table_prefetch(m->pid, m->conn);
}

/*
 * Delivers the broadcasts of the list jobs (consecutive in the room's
 * queue, one snapshot) member by member: each member gets all of them in
 * sequence order before the next member gets any, in one call: a sleeping
 * member gets them in one write from here, an awake one finds them all in
 * its mailbox and writes them in one writev. Job by job, a member of a
 * large room would be woken (and write) once per broadcast whenever the
 * deliverer yields between two of them. Every member still sees the room's
 * sequence order.
 */
/*
 * The plain frames of the n jobs back to back in d->lay, once per batch
 * of jobs, or NULL (one job, no buffer, more than it holds). A member that
 * takes all of them as they are (by far the common case: no except, no
 * late join, no compression) is written from there, so the copy into one
 * buffer for one send is made once, not once per member (at 8 frames of
 * 64 bytes, most of the deliverer's own work per member).
 */
static const uint8_t *lay_out(struct delivery *d, const struct room_job *jobs, uint32_t n)
{
    if (!d->lay || n < 2)
        return NULL;
    size_t total = 0;
    for (const struct room_job *j = jobs; j; j = j->next)
        total += j->frame->len;
    if (total > DELIVERY_CORK)
        return NULL;
    size_t at = 0;
    for (const struct room_job *j = jobs; j; j = j->next) {
        memcpy(d->lay + at, j->frame->bytes, j->frame->len);
        at += j->frame->len;
    }
    return d->lay;
}

static void deliver_jobs(struct delivery *d, struct room_job *jobs, struct room_snap *s)
{
    if (jobs->replay_to) {
        struct room_job *j = jobs; /* a replay is always alone */
        atomic_fetch_add_explicit(&rooms_stats.replayed, j->nreplay, memory_order_relaxed);
        for (uint32_t i = 0; i < j->nreplay; i += ROOM_MERGE)
            deliver_member(d, j->replay_to, j->replay_kind, j->replay + i,
                           j->nreplay - i < ROOM_MERGE ? j->nreplay - i : ROOM_MERGE);
        flush_tally(d);
        return;
    }
    const struct room_snap_pmd *z = snap_pmd(s);
    struct job_form {
        struct ws_shared_frame *cf; /* the compressed form, once tried */
        bool tried, compress;
    } form[ROOM_MERGE];
    struct ws_shared_frame *use[ROOM_MERGE];
    uint32_t k = 0;
    for (struct room_job *j = jobs; j; j = j->next, k++)
        form[k] = (struct job_form){.compress = z && j->frame->payload_len >= z->min_threshold};
    const uint32_t njobs = k;
    const uint8_t *laid = lay_out(d, jobs, njobs);
    for (uint32_t i = 0; i < s->n && i < PREFETCH_AHEAD; i++)
        prefetch_member(&s->v[i]);
    for (uint32_t i = 0; i < s->n; i++) {
        const struct room_member *m = &s->v[i];
        if (i + PREFETCH_AHEAD < s->n)
            prefetch_member(&s->v[i + PREFETCH_AHEAD]);
        uint32_t n = 0;
        bool as_laid = laid != NULL;
        k = 0;
        for (struct room_job *j = jobs; j; j = j->next, k++) {
            struct ws_shared_frame *f = j->frame;
            /* A member that joined after this frame was published gets it,
             * if at all, from its replay: live delivery starts after
             * join_seq. */
            if (m->pid == j->except || m->join_seq >= f->room_seq)
                continue;
            if (form[k].compress && z->v[i].bits && f->payload_len >= z->v[i].threshold) {
                if (!form[k].tried) {
                    form[k].tried = true;
                    form[k].cf = compressed_of(f, z->min_bits);
                }
                if (form[k].cf) {
                    f = form[k].cf;
                    as_laid = false;
                }
            }
            use[n++] = f;
        }
        d->by.laid = as_laid && n == njobs ? laid : NULL;
        if (n)
            deliver_member(d, m->pid, m->kind, use, n);
    }
    d->by.laid = NULL;
    flush_tally(d);
    k = 0;
    for (struct room_job *j = jobs; j; j = j->next, k++)
        ws_shared_frame_unref(form[k].cf);
}

static void free_jobs(struct room_job *j)
{
    while (j) {
        struct room_job *nx = j->next;
        fanout_job_free(j);
        j = nx;
    }
}

static void sweep_dead(struct delivery *d)
{
    const struct room *r = d->room;
    for (uint32_t i = 0; i < d->dead.n; i++)
        rooms_leave(d->dead.v[i], r->name, r->name_len);
    d->dead.n = 0;
}

/* ---- the deliverer ------------------------------------------------------------------------ */

/* The deliverer actor's state lives in its args (its own heap) so that its
 * terminate callback can give everything back if the runtime kills it
 * between two batches. */
struct deliverer {
    struct room *room;
    struct room_job *cur; /* the jobs being delivered (a list) */
    struct room_snap *snap;
    struct delivery d;
};

static void release_queue(struct room *r, struct room_job *cur, struct room_snap *snap)
{
    struct room_shard *sh = r->shard;
    pthread_mutex_lock(&sh->lock);
    struct room_job *list = r->qhead;
    r->qhead = r->qtail = NULL;
    r->qn = 0;
    r->delivering = false;
    rooms_unref_locked(r);
    pthread_mutex_unlock(&sh->lock);
    free_jobs(cur);
    rooms_snap_unref(snap);
    while (list) {
        struct room_job *nx = list->next;
        fanout_job_free(list);
        list = nx;
    }
}

static void deliverer_terminate(int reason, void *arg)
{
    (void)reason;
    struct deliverer *dv = arg;
    if (dv->room)
        release_queue(dv->room, dv->cur, dv->snap);
    dv->room = NULL;
    free(dv->d.amsg);
    dv->d.amsg = NULL;
    free(dv->d.by.cork);
    dv->d.by.cork = NULL;
    dv->d.lay = NULL;
}

/* Runs r's queue until it is empty. budget: deliveries this caller may make
 * before handing the rest to a deliverer actor (0: no limit). dv: the
 * deliverer's own state, or NULL for a publisher. */
static void run_queue(struct room *r, uint32_t budget, struct deliverer *dv);

static void deliverer_main(void *arg)
{
    struct deliverer *dv = arg;
    run_queue(dv->room, 0, dv);
    dv->room = NULL; /* run_queue gave the queue and the reference back */
}

static bool hand_off(struct room *r)
{
    struct deliverer init = {.room = r};
    struct actor_spawn_opts o = {.worker = -1, .terminate = deliverer_terminate};
    if (!actor_spawn(deliverer_main, &init, sizeof init, &o))
        return false;
    atomic_fetch_add_explicit(&rooms_stats.deliverers, 1, memory_order_relaxed);
    return true;
}

/*
 * A publisher that is itself a WebSocket member of the room must not
 * deliver to itself: ws_conn_deliver from a connection's own actor queues
 * the frame at once, ahead of earlier frames of this room that other
 * actors delivered through its mailbox and that it has not taken yet.
 * Such a job goes to a deliverer actor, whose deliveries travel the
 * mailbox like every other.
 */
static bool delivers_to_self(const struct room_job *j, const struct room_snap *s)
{
    SnowPid self = snow_actor_self();
    if (!self || self == j->except)
        return false;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->v[i].pid == self)
            return s->v[i].kind == ROOM_KIND_WS && s->v[i].join_seq < j->frame->room_seq;
    return false;
}

static void run_queue(struct room *r, uint32_t budget, struct deliverer *dv)
{
    struct room_shard *sh = r->shard;
    struct delivery local = {.room = r, .by = {.self = snow_actor_self()}}, *d = &local;
    if (dv) {
        d = &dv->d;
        /* Without memory for the buffer, frames go out as an iovec. */
        uint8_t *cork = malloc(2 * DELIVERY_CORK);
        *d = (struct delivery){.room = r, .yields = true,
                               .by = {.self = local.by.self, .cork = cork, .cork_cap = DELIVERY_CORK},
                               .lay = cork ? cork + DELIVERY_CORK : NULL};
    }
    pthread_mutex_lock(&sh->lock);
    for (;;) {
        struct room_job *j = dequeue_locked(r);
        if (!j) {
            r->delivering = false;
            rooms_unref_locked(r); /* the deliverer's reference */
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        struct room_snap *s = NULL;
        if (!j->replay_to) {
            s = rooms_snapshot_locked(r);
            if (!s) {
                atomic_fetch_add_explicit(&rooms_stats.skipped_backpressure, r->mn, memory_order_relaxed);
                pthread_mutex_unlock(&sh->lock);
                fanout_job_free(j);
                pthread_mutex_lock(&sh->lock);
                continue;
            }
        }
        uint32_t cost = s ? s->n : j->nreplay;
        if (budget && (cost > budget || (s && delivers_to_self(j, s)))) {
            /* Too much for the publisher, or the publisher is a member:
             * give the queue, this job first, to a deliverer actor. If
             * none can be had (the runtime is stopping, memory), carry on
             * here without a budget. */
            push_front_locked(r, j);
            pthread_mutex_unlock(&sh->lock);
            rooms_snap_unref(s);
            if (hand_off(r))
                break;
            budget = 0;
            pthread_mutex_lock(&sh->lock);
            continue;
        }
        if (budget)
            budget -= cost;
        j->next = NULL;
        if (dv && s) {
            /* The deliverer takes the broadcasts queued behind this one
             * too (the lock is held: the same members), up to a replay. */
            struct room_job *tail = j;
            for (uint32_t n = 1; n < ROOM_MERGE && r->qhead && !r->qhead->replay_to; n++) {
                tail->next = dequeue_locked(r);
                tail = tail->next;
                tail->next = NULL;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        if (dv) {
            dv->cur = j;
            dv->snap = s;
        }
        deliver_jobs(d, j, s);
        if (dv) {
            dv->cur = NULL;
            dv->snap = NULL;
        }
        free_jobs(j);
        rooms_snap_unref(s);
        sweep_dead(d);
        pthread_mutex_lock(&sh->lock);
    }
    free(d->amsg);
    d->amsg = NULL;
    free(d->by.cork);
    d->by.cork = NULL;
    d->lay = NULL;
}

void fanout_run(struct room *r)
{
    run_queue(r, ROOM_BATCH, NULL);
}

/* ---- publishing ---------------------------------------------------------------------------- */

static void stamp(unsigned char *p, uint64_t v)
{
    char digits[21];
    snprintf(digits, sizeof digits, "%020llu", (unsigned long long)v);
    memcpy(p, digits, 20);
}

static bool stamp_ok(const unsigned char *data, size_t n, size_t at)
{
    if (at == SIZE_MAX)
        return true;
    if (at > n || n - at < 20)
        return false;
    /* ASCII under the stamp keeps validated text valid once it is written. */
    for (size_t i = 0; i < 20; i++)
        if (data[at + i] >= 0x80)
            return false;
    return true;
}

int64_t rooms_publish(const void *name, size_t len, const void *data, size_t n, bool is_text,
                      const struct room_publish *p)
{
    static const struct room_publish none = {.seq_at = SIZE_MAX, .epoch_at = SIZE_MAX};
    if (!p)
        p = &none;
    if (!len || len > SNOW_ROOM_NAME_MAX || !name || (n && !data))
        return -EINVAL;
    if (!stamp_ok(data, n, p->seq_at) || !stamp_ok(data, n, p->epoch_at))
        return -EINVAL;
    if (is_text && !rt_utf8_valid(data, n, NULL))
        return -EINVAL;
    struct ws_shared_frame *f = ws_shared_frame_new(is_text ? WS_OP_TEXT : WS_OP_BINARY, 0, data, n);
    struct room_job *j = malloc(sizeof *j);
    if (!f || !j) {
        ws_shared_frame_unref(f);
        free(j);
        return -ENOMEM;
    }
    uint64_t hash = rooms_hash(name, len);
    struct room_shard *sh = rooms_shard_of(hash);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, hash, name, len);
    if (!r || (!r->mn && !r->hcap)) {
        pthread_mutex_unlock(&sh->lock);
        const struct ws_rooms_backend *b = ws_rooms_backend();
        if (b && b->published)
            b->published(name, len, 0, 0, f, p);
        ws_shared_frame_unref(f);
        free(j);
        return 0;
    }
    if (r->qn >= ROOM_QUEUE_MAX) {
        pthread_mutex_unlock(&sh->lock);
        atomic_fetch_add_explicit(&rooms_stats.refused_backpressure, 1, memory_order_relaxed);
        ws_shared_frame_unref(f);
        free(j);
        return SNOW_EBACKPRESSURE;
    }
    uint64_t seq = ++r->seq;
    /* The frame is not shared yet: its last writes happen here, published
     * to other threads by this lock and the deliveries' own locks. */
    f->room_epoch = r->epoch;
    f->room_seq = seq;
    unsigned char *payload = f->bytes + (f->len - f->payload_len);
    if (p->seq_at != SIZE_MAX)
        stamp(payload + p->seq_at, seq);
    if (p->epoch_at != SIZE_MAX)
        stamp(payload + p->epoch_at, r->epoch);
    fanout_history_push_locked(r, f);
    bool run = false;
    if (r->mn) {
        *j = (struct room_job){.frame = f, .except = p->except};
        ws_shared_frame_ref(f);
        run = fanout_enqueue_locked(r, j);
        if (run)
            r->refs++;
    } else {
        free(j);
    }
    atomic_fetch_add_explicit(&rooms_stats.broadcasts, 1, memory_order_relaxed);
    uint64_t epoch = r->epoch;
    pthread_mutex_unlock(&sh->lock);
    const struct ws_rooms_backend *b = ws_rooms_backend();
    if (b && b->published)
        b->published(name, len, epoch, seq, f, p);
    ws_shared_frame_unref(f);
    if (run)
        fanout_run(r);
    return (int64_t)seq;
}
