/*
 * steal.c: when an idle worker takes actors from another worker (the
 * stealing policy), and the taking itself: from a stealable queue or
 * from a runnext slot whose worker did not switch for a while.
 */
#include "actor/internal.h"
#include "actor/runq.h"

/* Taking an actor from another worker's queue moves its record, its stack
 * and its messages to this core, and the messages it sends back make the
 * owner's lines travel too: for a short-lived actor (a child that sends
 * one message and ends, 100-200 ns of work) that costs several times
 * its work on both workers, and two workers exchanging such actors ran
 * slower than one (bench/README.md). So a queue is taken from when it is
 * worth it: when the actors its worker runs take STEAL_SLICE_NS or more
 * on average (the move is cheap beside them), when what waits there adds
 * up to STEAL_BACKLOG_NS or more at that rate, or when its worker started
 * and spawned nothing for the whole window (one long slice or C call, or
 * a thread the kernel descheduled: everything behind it waits). The rate
 * is what the thief saw: the other worker's count of actors started
 * (`slices`) and spawned (`spawned`, one writer each, read relaxed)
 * between two looks at least WATCH_MIN_NS apart. A spawn counts as an
 * event so that a spawner's slice, which fills the queue for as long as
 * it runs, is not taken for a stuck worker. */
#define STEAL_SLICE_NS 2000
#define STEAL_BACKLOG_NS 1000000
/* An idle worker that saw a queue not worth taking looks again after
 * WATCH_NS (a deadline on its blocking wait) instead of being woken by
 * every push: bounds how long a stuck worker's queue waits for a thief. */
#define WATCH_NS 100000
#define WATCH_MIN_NS 10000
/* A window longer than this says little about the rate now; a new one
 * opens. */
#define WATCH_MAX_NS 1000000

bool sched_steal_worth(uint32_t queued, int64_t dt_ns, uint64_t events)
{
    if (!queued)
        return false;
    if (!events)
        return true;
    uint64_t dt = dt_ns > 0 ? (uint64_t)dt_ns : 0;
    /* dt < WATCH_MAX_NS and events are far below 2^40: no overflow */
    return dt >= STEAL_SLICE_NS * events || (uint64_t)queued * dt >= STEAL_BACKLOG_NS * events;
}

/* w's look at v's stealable queue; *now is read once per caller (0: not
 * yet). A window opens at a look that finds the queue non-empty and is
 * judged at the first look at least WATCH_MIN_NS later (looks in between
 * give the last verdict); an empty queue closes it. */
static bool queue_worth(struct worker *w, struct worker *v, int64_t *now)
{
    /* by position, not v->index: a worker may look before snow_rt_init
     * has set up the ones started after it */
    struct steal_watch *o = &w->watch[v - rt.workers];
    uint32_t n = rq_len(&v->q);
    if (!n) {
        o->t = 0;
        return false;
    }
    if (!*now)
        *now = rt_now_ns();
    int64_t dt = *now - o->t;
    if (o->t && dt < WATCH_MIN_NS)
        return o->worth;
    /* relaxed: counts written by v alone, read as a rate */
    uint32_t sl = atomic_load_explicit(&v->slices, memory_order_relaxed);
    uint64_t sp = atomic_load_explicit(&v->spawned, memory_order_relaxed);
    bool open = o->t && dt <= WATCH_MAX_NS;
    o->worth = open && sched_steal_worth(n, dt, (uint64_t)(uint32_t)(sl - o->slices) + (sp - o->spawned));
    o->t = *now;
    o->slices = sl;
    o->spawned = sp;
    return o->worth;
}

bool sched_has_work(struct worker *w)
{
    w->watch_until = INT64_MAX;
    /* seq_cst stopping: stop_workers stores it before waking everyone; a
     * worker deciding to sleep must see it or be woken */
    if (local_work(w) || atomic_load(&rt.stopping))
        return true;
    int64_t now = 0;
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *v = &rt.workers[i];
        if (v == w)
            continue;
        if (queue_worth(w, v, &now))
            return true;
        if (now && rq_len(&v->q))
            w->watch_until = now + WATCH_NS;
    }
    return false;
}


/* Looks at the other workers' runnext slots. A slot counts as stuck when it
 * holds the same actor while its worker started no other actor for
 * RUNNEXT_GRACE_NS (this worker's own observation, kept in w->rn_*). With
 * take, a stuck actor is taken (CAS to NULL) and returned. Returns NULL, or
 * with !take, (struct actor *)1 when a slot is stuck. pending is set when
 * some slot is occupied at all. */
struct actor *sched_steal_runnext(struct worker *w, bool take, bool *pending)
{
    int64_t now = 0;
    bool seen = false;
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *v = &rt.workers[i];
        if (v == w)
            continue;
        /* acquire: the actor was made RUNNABLE (seq_cst CAS) before it was
         * published here; a thief that runs it must see that. */
        struct actor *a = atomic_load_explicit(&v->runnext, memory_order_acquire);
        if (!a)
            continue;
        seen = true;
        uint32_t sl = atomic_load_explicit(&v->slices, memory_order_relaxed);
        if (w->rn_victim != v || w->rn_actor != a || w->rn_slices != sl) {
            /* A new occupant, or the victim switched: the grace period
             * starts when the next look finds it unchanged. No clock read
             * here: next to a busy worker (a ring, request/response) the
             * slot changes between almost every two looks of a spinner. */
            w->rn_victim = v;
            w->rn_actor = a;
            w->rn_slices = sl;
            w->rn_seen_ns = 0;
            continue;
        }
        if (!now)
            now = rt_now_ns();
        if (!w->rn_seen_ns)
            w->rn_seen_ns = now;
        if (now - w->rn_seen_ns < RUNNEXT_GRACE_NS)
            continue;
        if (!take) {
            if (pending)
                *pending = true;
            return (struct actor *)1;
        }
        /* acq_rel: acquire as above; the release side is the owner's
         * exchange that published a. */
        if (atomic_compare_exchange_strong_explicit(&v->runnext, &a, NULL, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            w->rn_victim = NULL;
            return a;
        }
    }
    if (pending)
        *pending = seen;
    return NULL;
}

/* An actor from another worker: from a queue worth taking (the victims in
 * an order that changes per call), else from a stuck runnext slot. */
struct actor *sched_steal(struct worker *w)
{
    struct actor *a;
    w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int start = (int)((w->rng >> 33) % (uint64_t)rt.nworkers);
    int64_t now = 0;
    for (int i = 0; i < rt.nworkers; i++) {
        struct worker *v = &rt.workers[(start + i) % rt.nworkers];
        if (v != w && queue_worth(w, v, &now) && (a = rq_steal(w, v))) {
            /* The chain filled this worker's empty queue: another
             * idle worker watches it (wake_queue_owner). */
            if (rq_len(&w->q))
                wake_queue_owner(w, w);
            return a;
        }
    }
    return sched_steal_runnext(w, true, NULL);
}
