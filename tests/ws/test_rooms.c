/*
 * test_rooms.c: the room registry through the ABI, with plain actor
 * members (mailbox delivery): join/leave/publish semantics, cleanup on
 * every exit path of an actor, order per publisher, a room too large for
 * the publisher to deliver itself, snapshots in join order, and
 * concurrent joins, leaves and broadcasts from many actors on several
 * workers. History, resumable subscribes, stamps and the backend seam are
 * in test_rooms_history.c, the WebSocket members in test_rooms_ws.c. Assertions run on the main thread once the runtime
 * stopped; actors record what they saw.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rooms_test.h"
#include "ws/rooms.h"

#define R(s) (s), (sizeof(s) - 1)

/* ---- helpers ---------------------------------------------------------------- */

bool rt_wait_until(bool (*cond)(void *), void *arg)
{
    /* Cleanup happens on other actors (the janitor); give it time, not a
     * deadline that asserts speed: 20 s is far beyond any real delay. */
    for (int i = 0; i < 10000; i++) {
        if (cond(arg))
            return true;
        snow_sleep(2);
    }
    return cond(arg);
}

static bool room_empty(void *arg)
{
    const char *name = arg;
    return snow_ws_room_size(name, strlen(name)) == 0;
}

static bool registry_empty(void *arg)
{
    (void)arg;
    SnowRoomCounters c;
    snow_room_counters(&c);
    return c.rooms == 0 && c.members == 0;
}

const unsigned char *rooms_test_recv(SnowRoomMsg *h, const char *room, int timeout_ms)
{
    uint64_t tag = SNOW_TAG_ROOM_MESSAGE;
    SnowMessage *m = snow_actor_receive_match(&tag, 1, timeout_ms);
    if (!m || m->len < sizeof *h)
        return NULL;
    memcpy(h, m->data, sizeof *h);
    if (m->len != sizeof *h + h->room_len + h->len)
        return NULL;
    if (h->room_len != strlen(room) || memcmp(m->data + sizeof *h, room, h->room_len))
        return NULL;
    return m->data + sizeof *h + h->room_len;
}

/* ---- semantics ------------------------------------------------------------------ */

static struct {
    int sub1, sub2, size1, size2, list_n, leave, leave_again, size_after;
    int64_t pub_missing, seq1, seq2, bad_name0, bad_name256, bad_utf8;
    SnowRoomMsg h1, h2;
    char p1[16], p2[16];
    int list_seen;
    uint64_t rooms_after;
    int got_after_leave;
} sem;

static void count_names(const char *room, size_t len, void *arg)
{
    int *n = arg;
    if ((len == 1 && room[0] == 'a') || (len == 3 && !memcmp(room, "b\0c", 3)))
        (*n)++;
}

static void semantics_root(void *arg)
{
    (void)arg;
    SnowPid me = snow_actor_self();
    SnowRoomPos pos;
    sem.pub_missing = snow_ws_broadcast(R("a"), "x", 1, 1);
    sem.sub1 = snow_room_subscribe(me, R("a"), &pos);
    sem.sub2 = snow_room_subscribe(me, R("a"), NULL); /* twice: one membership */
    snow_room_subscribe(me, R("b\0c"), NULL);
    sem.size1 = (int)snow_ws_room_size(R("a"));
    sem.size2 = (int)snow_ws_room_size(R("b\0c"));
    sem.list_n = snow_room_list(me, count_names, &sem.list_seen);
    sem.seq1 = snow_ws_broadcast(R("a"), "hello", 5, 1);
    sem.seq2 = snow_ws_broadcast(R("a"), "\x00\x01\x02", 3, 0);
    const unsigned char *p = rooms_test_recv(&sem.h1, "a", 5000);
    if (p)
        memcpy(sem.p1, p, sem.h1.len < 16 ? sem.h1.len : 16);
    p = rooms_test_recv(&sem.h2, "a", 5000);
    if (p)
        memcpy(sem.p2, p, sem.h2.len < 16 ? sem.h2.len : 16);
    sem.bad_name0 = snow_ws_broadcast("a", 0, "x", 1, 1);
    char big[SNOW_ROOM_NAME_MAX + 1];
    memset(big, 'r', sizeof big);
    sem.bad_name256 = snow_room_subscribe(me, big, sizeof big, NULL);
    sem.bad_utf8 = snow_ws_broadcast(R("a"), "\xc3\x28", 2, 1);
    sem.leave = snow_room_unsubscribe(me, R("a"));
    sem.leave_again = snow_room_unsubscribe(me, R("a"));
    snow_room_unsubscribe(me, R("b\0c"));
    sem.size_after = (int)snow_ws_room_size(R("a"));
    snow_ws_broadcast(R("a"), "late", 4, 1);
    SnowRoomMsg h;
    sem.got_after_leave = rooms_test_recv(&h, "a", 50) != NULL;
    SnowRoomCounters c;
    snow_room_counters(&c);
    sem.rooms_after = c.rooms;
    (void)pos;
}

START_TEST(join_leave_publish)
{
    memset(&sem, 0, sizeof sem);
    ROOMS_RUN(2, semantics_root, NULL);
    ck_assert_int_eq(sem.pub_missing, 0);
    ck_assert_int_eq(sem.sub1, 0);
    ck_assert_int_eq(sem.sub2, 0);
    ck_assert_int_eq(sem.size1, 1);
    ck_assert_int_eq(sem.size2, 1);
    ck_assert_int_eq(sem.list_n, 2);
    ck_assert_int_eq(sem.list_seen, 2);
    ck_assert_int_eq(sem.seq1, 1);
    ck_assert_int_eq(sem.seq2, 2);
    ck_assert_uint_eq(sem.h1.seq, 1);
    ck_assert_uint_eq(sem.h1.is_text, 1);
    ck_assert_uint_eq(sem.h1.len, 5);
    ck_assert_mem_eq(sem.p1, "hello", 5);
    ck_assert_uint_ne(sem.h1.epoch, 0);
    ck_assert_uint_eq(sem.h2.epoch, sem.h1.epoch);
    ck_assert_uint_eq(sem.h2.seq, 2);
    ck_assert_uint_eq(sem.h2.is_text, 0);
    ck_assert_mem_eq(sem.p2, "\x00\x01\x02", 3);
    ck_assert_int_eq(sem.bad_name0, -EINVAL);
    ck_assert_int_eq(sem.bad_name256, -EINVAL);
    ck_assert_int_eq(sem.bad_utf8, -EINVAL);
    ck_assert_int_eq(sem.leave, 0);
    ck_assert_int_eq(sem.leave_again, SNOW_ENOPROC);
    ck_assert_int_eq(sem.size_after, 0);
    ck_assert_int_eq(sem.got_after_leave, 0);
    ck_assert_uint_eq(sem.rooms_after, 0);
}
END_TEST

/* ---- cleanup on every exit path of a plain actor ----------------------------------- */

enum { EXIT_RETURN, EXIT_EXIT, EXIT_PANIC, EXIT_KILLED, EXIT_SIGNAL };

struct leaver {
    int how;
    SnowPid parent;
};

static void leaver_main(void *arg)
{
    struct leaver *l = arg;
    SnowPid me = snow_actor_self();
    snow_room_subscribe(me, R("x1"), NULL);
    snow_room_subscribe(me, R("x2"), NULL);
    snow_room_subscribe(me, R("x3"), NULL);
    snow_actor_send(l->parent, 1, NULL, 0);
    switch (l->how) {
    case EXIT_RETURN:
        return;
    case EXIT_EXIT:
        snow_actor_exit(SNOW_EXIT_USER);
    case EXIT_PANIC:
        snow_panic("leaving by panic");
    default:
        snow_actor_receive(-1); /* killed while waiting */
    }
}

static struct {
    int ready[5];
    int size_with[5];
    int emptied[5];
} cl;

static void cleanup_root(void *arg)
{
    (void)arg;
    for (int how = 0; how < 5; how++) {
        struct leaver l = {.how = how, .parent = snow_actor_self()};
        SnowPid pid = snow_actor_spawn(leaver_main, &l, sizeof l);
        uint64_t one = 1;
        cl.ready[how] = snow_actor_receive_match(&one, 1, 5000) != NULL;
        if (how == EXIT_KILLED) {
            cl.size_with[how] = (int)snow_ws_room_size(R("x2"));
            snow_actor_kill(pid, SNOW_EXIT_KILLED);
        } else if (how == EXIT_SIGNAL) {
            /* Ends through an exit signal with a program's reason. */
            cl.size_with[how] = (int)snow_ws_room_size(R("x2"));
            snow_actor_kill(pid, SNOW_EXIT_USER + 1);
        }
        cl.emptied[how] = rt_wait_until(room_empty, "x1") && rt_wait_until(room_empty, "x2") &&
                          rt_wait_until(room_empty, "x3") && rt_wait_until(registry_empty, NULL);
    }
}

START_TEST(cleanup_on_every_exit)
{
    memset(&cl, 0, sizeof cl);
    ROOMS_RUN(2, cleanup_root, NULL);
    for (int how = 0; how < 5; how++) {
        ck_assert_msg(cl.ready[how], "exit path %d: subscriber did not start", how);
        ck_assert_msg(cl.emptied[how], "exit path %d: a dead pid stayed in a room", how);
    }
    ck_assert_int_eq(cl.size_with[EXIT_KILLED], 1);
    ck_assert_int_eq(cl.size_with[EXIT_SIGNAL], 1);
}
END_TEST

/* A pid that is not alive is removed again by the registry at once. */
static int dead_sub_rc;
static bool dead_sub_gone;
static void dead_child(void *arg)
{
    (void)arg;
}
static void dead_pid_root(void *arg)
{
    (void)arg;
    SnowPid pid = snow_actor_spawn(dead_child, NULL, 0);
    snow_sleep(20);
    dead_sub_rc = snow_room_subscribe(pid, R("ghost"), NULL);
    dead_sub_gone = rt_wait_until(room_empty, "ghost") && rt_wait_until(registry_empty, NULL);
}

START_TEST(dead_pid_is_removed)
{
    ROOMS_RUN(2, dead_pid_root, NULL);
    ck_assert_int_eq(dead_sub_rc, 0);
    ck_assert(dead_sub_gone);
}
END_TEST

/* Members still running when the runtime stops leave with it. */
static void shutdown_member(void *arg)
{
    (void)arg;
    snow_room_subscribe(snow_actor_self(), R("at-stop"), NULL);
    snow_actor_receive(-1);
}

static void shutdown_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        snow_actor_spawn(shutdown_member, NULL, 0);
    snow_room_subscribe(snow_actor_self(), R("at-stop"), NULL);
    while (snow_ws_room_size(R("at-stop")) < 21)
        snow_sleep(1);
    snow_rt_shutdown();
    snow_actor_receive(-1);
}

START_TEST(shutdown_empties_rooms)
{
    ROOMS_RUN(2, shutdown_root, NULL);
    SnowRoomCounters c;
    snow_room_counters(&c);
    ck_assert_uint_eq(c.rooms, 0);
    ck_assert_uint_eq(c.members, 0);
}
END_TEST

/* ---- order per publisher, many publishers and subscribers on 4 workers ------------------ */

#define ORD_PUBS 6
#define ORD_SUBS 12
#define ORD_MSGS 400

struct ord_sub {
    SnowPid parent;
    int idx;
};

static struct {
    atomic_int ok[ORD_SUBS];
    atomic_int got[ORD_SUBS];
    atomic_int bad_order, bad_seq;
} ord;

static void ord_sub_main(void *arg)
{
    struct ord_sub *s = arg;
    snow_room_subscribe(snow_actor_self(), R("order"), NULL);
    snow_actor_send(s->parent, 1, NULL, 0);
    int last[ORD_PUBS];
    for (int i = 0; i < ORD_PUBS; i++)
        last[i] = -1;
    uint64_t last_seq = 0;
    int got = 0;
    while (got < ORD_PUBS * ORD_MSGS) {
        SnowRoomMsg h;
        const unsigned char *p = rooms_test_recv(&h, "order", 20000);
        if (!p || h.len != 8)
            break;
        int pub, k;
        memcpy(&pub, p, 4);
        memcpy(&k, p + 4, 4);
        if (pub < 0 || pub >= ORD_PUBS || k != last[pub] + 1)
            atomic_fetch_add(&ord.bad_order, 1);
        else
            last[pub] = k;
        /* One deliverer per room: every member sees sequence order. */
        if (h.seq <= last_seq)
            atomic_fetch_add(&ord.bad_seq, 1);
        last_seq = h.seq;
        got++;
    }
    atomic_store(&ord.got[s->idx], got);
}

static void ord_pub_main(void *arg)
{
    int pub = *(int *)arg;
    for (int k = 0; k < ORD_MSGS; k++) {
        unsigned char b[8];
        memcpy(b, &pub, 4);
        memcpy(b + 4, &k, 4);
        int64_t rc;
        /* A full room queue refuses; the publisher retries that one. */
        while ((rc = snow_ws_broadcast(R("order"), b, 8, 0)) == SNOW_EBACKPRESSURE)
            snow_actor_yield();
        if (rc <= 0)
            atomic_fetch_add(&ord.bad_seq, 1000);
        if (k % 16 == 0)
            snow_actor_yield();
    }
}

static void order_root(void *arg)
{
    (void)arg;
    uint64_t one = 1;
    for (int i = 0; i < ORD_SUBS; i++) {
        struct ord_sub s = {.parent = snow_actor_self(), .idx = i};
        snow_actor_spawn(ord_sub_main, &s, sizeof s);
        snow_actor_receive_match(&one, 1, 5000);
    }
    for (int p = 0; p < ORD_PUBS; p++)
        snow_actor_spawn(ord_pub_main, &p, sizeof p);
}

START_TEST(order_per_publisher)
{
    memset(&ord, 0, sizeof ord);
    ROOMS_RUN(4, order_root, NULL);
    for (int i = 0; i < ORD_SUBS; i++)
        ck_assert_int_eq(atomic_load(&ord.got[i]), ORD_PUBS * ORD_MSGS);
    ck_assert_int_eq(atomic_load(&ord.bad_order), 0);
    ck_assert_int_eq(atomic_load(&ord.bad_seq), 0);
    SnowRoomCounters c;
    snow_room_counters(&c);
    ck_assert_uint_eq(c.deliveries, (uint64_t)ORD_SUBS * ORD_PUBS * ORD_MSGS);
}
END_TEST

/* ---- a room larger than a publisher's share: the deliverer actor -------------------------- */

#define BIG_SUBS 10000
#define BIG_MSGS 5

static struct {
    atomic_int complete, ready;
    int64_t size;
    uint64_t deliverers, deliveries;
} big;

static void big_sub_cont(void *arg);

static void big_sub_main(void *arg)
{
    (void)arg;
    snow_room_subscribe(snow_actor_self(), R("big"), NULL);
    atomic_fetch_add(&big.ready, 1);
    /* Hibernate between messages: 10,000 members hold no stacks. */
    int *seen = snow_gc_alloc(sizeof *seen);
    snow_actor_hibernate(big_sub_cont, seen);
}

static void big_sub_cont(void *arg)
{
    int *seen = arg;
    SnowRoomMsg h;
    while (rooms_test_recv(&h, "big", 0)) {
        if ((int)h.seq != *seen + 1)
            return; /* out of order: never completes */
        (*seen)++;
    }
    if (*seen == BIG_MSGS) {
        atomic_fetch_add(&big.complete, 1);
        return;
    }
    snow_actor_hibernate(big_sub_cont, seen);
}

static bool big_ready(void *arg)
{
    (void)arg;
    return atomic_load(&big.ready) == BIG_SUBS;
}

static bool big_done(void *arg)
{
    (void)arg;
    return atomic_load(&big.complete) == BIG_SUBS;
}

static bool big_counted(void *arg)
{
    (void)arg;
    SnowRoomCounters c;
    snow_room_counters(&c);
    return c.deliveries >= (uint64_t)BIG_SUBS * BIG_MSGS;
}

static void big_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < BIG_SUBS; i++)
        snow_actor_spawn(big_sub_main, NULL, 0);
    rt_wait_until(big_ready, NULL);
    big.size = snow_ws_room_size(R("big"));
    for (int k = 0; k < BIG_MSGS; k++)
        snow_ws_broadcast(R("big"), "tick", 4, 1);
    rt_wait_until(big_done, NULL);
    /* The deliverer adds its counts once its batch is done, which can be
     * after the last member has seen its frame. */
    rt_wait_until(big_counted, NULL);
    SnowRoomCounters c;
    snow_room_counters(&c);
    big.deliverers = c.deliverers;
    big.deliveries = c.deliveries;
}

START_TEST(large_room_hand_off)
{
    memset(&big, 0, sizeof big);
    ROOMS_RUN(2, big_root, NULL);
    ck_assert_int_eq(big.size, BIG_SUBS);
    ck_assert_int_eq(atomic_load(&big.complete), BIG_SUBS);
    ck_assert_uint_ge(big.deliverers, 1);
    ck_assert_uint_eq(big.deliveries, (uint64_t)BIG_SUBS * BIG_MSGS);
}
END_TEST

/* ---- members leaving in any order (the room's member table) -------------------------------- */

#define ANY_N 2000

static struct {
    SnowPid pids[ANY_N];
    atomic_int ready;
    int bad_leave, bad_size, bad_again;
    uint64_t delivered_half;
} anyo;

static void idle_member(void *arg)
{
    (void)arg;
    snow_room_subscribe(snow_actor_self(), R("any"), NULL);
    atomic_fetch_add(&anyo.ready, 1);
    uint64_t never = 99;
    snow_actor_receive_match(&never, 1, -1); /* until the root ends it */
}

static bool any_ready(void *arg)
{
    (void)arg;
    return atomic_load(&anyo.ready) == ANY_N;
}

static bool half_delivered(void *arg)
{
    (void)arg;
    SnowRoomCounters c;
    snow_room_counters(&c);
    return c.deliveries >= ANY_N / 2;
}

static void any_order_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < ANY_N; i++)
        anyo.pids[i] = snow_actor_spawn(idle_member, NULL, 0);
    rt_wait_until(any_ready, NULL);
    /* A fixed shuffle, then leaves in that order. */
    unsigned seed = 12345;
    for (int i = ANY_N - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        SnowPid t = anyo.pids[i];
        anyo.pids[i] = anyo.pids[j];
        anyo.pids[j] = t;
    }
    for (int i = 0; i < ANY_N; i++) {
        if (i == ANY_N / 2) {
            /* Half are left: one message reaches exactly them. */
            snow_ws_broadcast(R("any"), "half", 4, 1);
            rt_wait_until(half_delivered, NULL);
            SnowRoomCounters c;
            snow_room_counters(&c);
            anyo.delivered_half = c.deliveries;
        }
        if (snow_room_unsubscribe(anyo.pids[i], R("any")) != 0)
            anyo.bad_leave++;
        if (snow_ws_room_size(R("any")) != ANY_N - 1 - i)
            anyo.bad_size++;
        if (snow_room_unsubscribe(anyo.pids[i], R("any")) != SNOW_ENOPROC)
            anyo.bad_again++;
    }
    for (int i = 0; i < ANY_N; i++)
        snow_actor_kill(anyo.pids[i], SNOW_EXIT_KILLED);
}

START_TEST(members_leave_in_any_order)
{
    memset(&anyo, 0, sizeof anyo);
    ROOMS_RUN(2, any_order_root, NULL);
    ck_assert_int_eq(anyo.bad_leave, 0);
    ck_assert_int_eq(anyo.bad_size, 0);
    ck_assert_int_eq(anyo.bad_again, 0);
    ck_assert_uint_eq(anyo.delivered_half, ANY_N / 2);
    SnowRoomCounters c;
    snow_room_counters(&c);
    ck_assert_uint_eq(c.deliveries, ANY_N / 2);
    ck_assert_uint_eq(c.rooms, 0);
}
END_TEST

/* ---- a snapshot lists the members in join order ------------------------------------------- */

#define JO_N 700

static struct {
    SnowPid pids[JO_N];
    SnowPid expect[JO_N];
    int nexpect;
    int bad_sub;
    uint32_t snap_n;
    int first_mismatch; /* index of the first entry out of join order, -1: none */
} jo;

static void jo_member(void *arg)
{
    (void)arg;
    uint64_t never = 99;
    snow_actor_receive_match(&never, 1, -1); /* until the root ends it */
}

static void jo_join(SnowPid pid)
{
    if (snow_room_subscribe(pid, R("jo"), NULL) != 0)
        jo.bad_sub++;
    jo.expect[jo.nexpect++] = pid;
}

static void jo_leave(SnowPid pid)
{
    if (snow_room_unsubscribe(pid, R("jo")) != 0)
        jo.bad_sub++;
    for (int i = 0; i < jo.nexpect; i++)
        if (jo.expect[i] == pid) {
            memmove(&jo.expect[i], &jo.expect[i + 1], (size_t)(jo.nexpect - i - 1) * sizeof jo.expect[0]);
            jo.nexpect--;
            break;
        }
}

static void join_order_root(void *arg)
{
    (void)arg;
    for (int i = 0; i < JO_N; i++)
        jo.pids[i] = snow_actor_spawn(jo_member, NULL, 0);
    /* Joined in a shuffled order, so that neither pid nor hash order is
     * the join order. */
    SnowPid order[JO_N];
    memcpy(order, jo.pids, sizeof order);
    unsigned seed = 777;
    for (int i = JO_N - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        SnowPid t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint64_t h = rooms_hash(R("jo"));
    struct room_shard *sh = rooms_shard_of(h);
    for (int i = 0; i < JO_N; i++) {
        if (i == JO_N / 2) {
            /* The later joins' counts differ in three bytes from the
             * earlier ones': the sort must look past the lowest. */
            pthread_mutex_lock(&sh->lock);
            struct room *r = rooms_find_locked(sh, h, R("jo"));
            if (r)
                r->joins = 0x00ffff00u;
            pthread_mutex_unlock(&sh->lock);
        }
        jo_join(order[i]);
    }
    /* Every seventh leaves; every fourteenth comes back, at the end. */
    for (int i = 0; i < JO_N; i += 7)
        jo_leave(order[i]);
    for (int i = 0; i < JO_N; i += 14)
        jo_join(order[i]);
    pthread_mutex_lock(&sh->lock);
    struct room *r = rooms_find_locked(sh, h, R("jo"));
    struct room_snap *snap = r ? rooms_snapshot_locked(r) : NULL;
    pthread_mutex_unlock(&sh->lock);
    jo.first_mismatch = -1;
    if (snap) {
        jo.snap_n = snap->n;
        for (uint32_t i = 0; i < snap->n && i < (uint32_t)jo.nexpect; i++)
            if (snap->v[i].pid != jo.expect[i]) {
                jo.first_mismatch = (int)i;
                break;
            }
        pthread_mutex_lock(&sh->lock);
        rooms_snap_unref(snap);
        pthread_mutex_unlock(&sh->lock);
    }
    for (int i = 0; i < JO_N; i++)
        snow_actor_kill(jo.pids[i], SNOW_EXIT_KILLED);
}

START_TEST(snapshot_in_join_order)
{
    memset(&jo, 0, sizeof jo);
    ROOMS_RUN(2, join_order_root, NULL);
    ck_assert_int_eq(jo.bad_sub, 0);
    ck_assert_int_eq(jo.nexpect, JO_N - (JO_N + 6) / 7 + (JO_N + 13) / 14);
    ck_assert_uint_eq(jo.snap_n, (uint32_t)jo.nexpect);
    ck_assert_int_eq(jo.first_mismatch, -1);
}
END_TEST

/* ---- concurrent joins, leaves and broadcasts: no leak, nothing left ---------------------- */

#define CHURN_ACTORS 24
#define CHURN_ROUNDS 300

static atomic_int churn_done;

static void churn_main(void *arg)
{
    unsigned seed = *(unsigned *)arg;
    SnowPid me = snow_actor_self();
    char name[8];
    for (int i = 0; i < CHURN_ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        int room = (int)((seed >> 16) % 8);
        int op = (int)((seed >> 8) % 4);
        snprintf(name, sizeof name, "c%d", room);
        if (op == 0)
            snow_room_subscribe(me, name, strlen(name), NULL);
        else if (op == 1)
            snow_room_unsubscribe(me, name, strlen(name));
        else
            snow_ws_broadcast(name, strlen(name), "payload", 7, 1);
        if (i % 32 == 0) {
            /* Take what arrived so far; the rest is freed at the exit. */
            uint64_t tag = SNOW_TAG_ROOM_MESSAGE;
            while (snow_actor_receive_match(&tag, 1, 0))
                ;
        }
    }
    atomic_fetch_add(&churn_done, 1);
    /* Half leave through their exit path while still in rooms. */
    if (seed & 1)
        return;
    for (int r = 0; r < 8; r++) {
        snprintf(name, sizeof name, "c%d", r);
        snow_room_unsubscribe(me, name, strlen(name));
    }
}

static bool churn_finished(void *arg)
{
    (void)arg;
    return atomic_load(&churn_done) == CHURN_ACTORS;
}

static bool churn_clean;
static void churn_root(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < CHURN_ACTORS; i++) {
        unsigned seed = 7919u * (i + 1);
        snow_actor_spawn(churn_main, &seed, sizeof seed);
    }
    rt_wait_until(churn_finished, NULL);
    churn_clean = rt_wait_until(registry_empty, NULL);
}

START_TEST(concurrent_churn)
{
    atomic_store(&churn_done, 0);
    churn_clean = false;
    ROOMS_RUN(4, churn_root, NULL);
    ck_assert(churn_clean);
    SnowRoomCounters c;
    snow_room_counters(&c);
    ck_assert_uint_eq(c.rooms, 0);
    ck_assert_uint_eq(c.members, 0);
    ck_assert_uint_gt(c.broadcasts, 0);
}
END_TEST

Suite *rooms_suite(void)
{
    Suite *s = suite_create("rooms");
    TCase *tc = tcase_create("registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, join_leave_publish);
    tcase_add_test(tc, cleanup_on_every_exit);
    tcase_add_test(tc, dead_pid_is_removed);
    tcase_add_test(tc, shutdown_empties_rooms);
    tcase_add_test(tc, order_per_publisher);
    tcase_add_test(tc, large_room_hand_off);
    tcase_add_test(tc, members_leave_in_any_order);
    tcase_add_test(tc, snapshot_in_join_order);
    tcase_add_test(tc, concurrent_churn);
    suite_add_tcase(s, tc);
    return s;
}
