/*
 * room_members.c: a room's member table, open addressing by pid with
 * backward-shift deletion (no tombstones), and the snapshot of its
 * members in the order they joined that deliveries walk.
 */
#include "ws/rooms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t slot_of(const struct room *r, SnowPid pid)
{
    return (uint32_t)rooms_pid_hash(pid) & (r->mcap - 1);
}

static struct room_member *member_find(struct room *r, SnowPid pid)
{
    if (!r->mcap)
        return NULL;
    for (uint32_t i = slot_of(r, pid);; i = (i + 1) & (r->mcap - 1)) {
        if (r->mv[i].pid == pid)
            return &r->mv[i];
        if (!r->mv[i].pid)
            return NULL;
    }
}

static void member_put(struct room_member *v, uint32_t cap, const struct room_member *m)
{
    uint32_t i = (uint32_t)rooms_pid_hash(m->pid) & (cap - 1);
    while (v[i].pid)
        i = (i + 1) & (cap - 1);
    v[i] = *m;
}

int rooms_member_add(struct room *r, const struct room_member *m)
{
    /* Load factor at most 1/2 keeps probes short. */
    if ((r->mn + 1) * 2 > r->mcap) {
        uint32_t cap = r->mcap ? r->mcap * 2 : 8;
        struct room_member *v = calloc(cap, sizeof *v);
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < r->mcap; i++)
            if (r->mv[i].pid)
                member_put(v, cap, &r->mv[i]);
        free(r->mv);
        r->mv = v;
        r->mcap = cap;
    }
    member_put(r->mv, r->mcap, m);
    r->mn++;
    return 0;
}

bool rooms_member_del(struct room *r, SnowPid pid)
{
    struct room_member *m = member_find(r, pid);
    if (!m)
        return false;
    /* Backward-shift deletion: later entries of the probe run move up so
     * that lookups never need tombstones. */
    uint32_t mask = r->mcap - 1, i = (uint32_t)(m - r->mv), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!r->mv[j].pid)
            break;
        if (rt_probe_moves(i, j, slot_of(r, r->mv[j].pid))) {
            r->mv[i] = r->mv[j];
            i = j;
        }
    }
    r->mv[i].pid = 0;
    r->mn--;
    return true;
}

static int by_join(const void *a, const void *b)
{
    uint32_t x = ((const struct room_member *)a)->order, y = ((const struct room_member *)b)->order;
    return x < y ? -1 : x > y;
}

/* v[0..n) by order: a radix sort, a byte a pass (a pass whose byte is the
 * same in every entry is skipped), through tmp of n entries. */
static void sort_by_join(struct room_member *v, struct room_member *tmp, uint32_t n)
{
    struct room_member *src = v, *dst = tmp;
    for (unsigned shift = 0; shift < 32; shift += 8) {
        uint32_t at[256] = {0};
        for (uint32_t i = 0; i < n; i++)
            at[(src[i].order >> shift) & 255]++;
        if (at[(src[0].order >> shift) & 255] == n)
            continue;
        for (uint32_t b = 0, sum = 0; b < 256; b++) {
            uint32_t c = at[b];
            at[b] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < n; i++)
            dst[at[(src[i].order >> shift) & 255]++] = src[i];
        struct room_member *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, (size_t)n * sizeof *v);
}

/*
 * The members in the order they joined, not in the table's (hash) order.
 * A delivery touches each member's socket in the kernel (and its peer's,
 * on the same host), and those were mostly created in the order the
 * members joined: walked in that order, neighbours in memory come one
 * after the other; walked by hash, every member is a cold jump. Measured
 * on the 10,000-subscriber fanout (bench/README.md, "Fanout to 10,000
 * members in join order"): the same system calls and segments per
 * delivery, less kernel time per send. The sort runs only when the
 * membership changed, under the room's lock like the copy before it, and
 * is linear (a pass for each byte in which the join counts differ: two
 * up to 65,536 joins).
 * After 2^32 joins the count wraps: the order is then off for a while,
 * which costs locality, never correctness. Without memory for the sort's
 * buffer the snapshot is sorted in place (qsort), and it is never left
 * unsorted, so delivery order does not depend on an allocation.
 */
struct room_snap *rooms_snapshot_locked(struct room *r)
{
    if (!r->snap) {
        struct room_snap *s = malloc(sizeof *s + (size_t)r->mn * sizeof s->v[0]);
        if (!s)
            return NULL;
        atomic_init(&s->refs, 1);
        s->n = 0;
        s->pmd = NULL;
        for (uint32_t i = 0; i < r->mcap; i++)
            if (r->mv[i].pid)
                s->v[s->n++] = r->mv[i];
        struct room_member *tmp = s->n > 1 ? malloc((size_t)s->n * sizeof *tmp) : NULL;
        if (tmp)
            sort_by_join(s->v, tmp, s->n);
        else if (s->n > 1)
            qsort(s->v, s->n, sizeof s->v[0], by_join);
        free(tmp);
        r->snap = s;
    }
    atomic_fetch_add_explicit(&r->snap->refs, 1, memory_order_relaxed);
    return r->snap;
}
