/*
 * test_rooms_backlog.c: plain actor subscribers that do not keep up.
 * A subscriber whose mailbox holds its backlog bound of room messages not
 * received yet (a count, or bytes; snow_room_backlog_limit) is skipped and
 * counted in skipped_backpressure, as a WebSocket member over its outbound
 * limit is; a subscriber at its mailbox limit is skipped the same way; the
 * others receive every message in order; a skipped one that catches up
 * receives again. Assertions run on the main thread once the runtime
 * stopped.
 */
#include <check.h>
#include <stdatomic.h>
#include <string.h>

#include "rooms_test.h"

#define R(s) (s), (sizeof(s) - 1)

#define BL_MSGS 20
#define BL_PAYLOAD 100
/* The SNOW_TAG_ROOM_MESSAGE payload of one message to room "bl". */
#define BL_WIRE (sizeof(SnowRoomMsg) + 2 + BL_PAYLOAD)

enum { READY = 8 };

enum { SUB_COUNT, SUB_BYTES, SUB_MAILBOX, SUB_READER, NSUBS };

static struct {
    int limit_rc, limit_dead_rc, limit_zero_rc;
    int got[NSUBS];           /* room messages received */
    uint64_t seqs[NSUBS][BL_MSGS + 1];
    int bad[NSUBS];           /* wrong payload, room or order */
    int late[NSUBS];          /* received the message published after catching up */
    uint64_t skipped, deliveries;
    /* 1: the publishing is done and counted; 2: the message after it is
     * published. Shared memory rather than messages: the subscriber at its
     * mailbox limit could not be sent one. */
    atomic_int phase;
} bl;

struct bl_sub {
    SnowPid parent;
    int kind;
};

/* Takes every room message now in the mailbox (waiting at most ms for
 * the first). */
static void bl_drain(int kind, int ms)
{
    uint64_t tag = SNOW_TAG_ROOM_MESSAGE;
    SnowMessage *m;
    while ((m = snow_actor_receive_match(&tag, 1, ms))) {
        ms = 0;
        SnowRoomMsg h;
        memcpy(&h, m->data, sizeof h);
        const unsigned char *p = m->data + sizeof h + h.room_len;
        int k = bl.got[kind];
        bool ok = m->len == BL_WIRE && h.room_len == 2 && !memcmp(m->data + sizeof h, "bl", 2) &&
                  h.len == BL_PAYLOAD && p[0] == (unsigned char)h.seq && (k == 0 || h.seq > bl.seqs[kind][k - 1]);
        if (!ok)
            bl.bad[kind]++;
        if (k <= BL_MSGS)
            bl.seqs[kind][k] = h.seq;
        bl.got[kind]++;
    }
}

static void bl_wait_phase(int n)
{
    for (int i = 0; i < 10000 && atomic_load(&bl.phase) < n; i++)
        snow_sleep(2);
}

static void bl_sub_main(void *arg)
{
    struct bl_sub *s = arg;
    SnowPid me = snow_actor_self();
    snow_room_subscribe(me, R("bl"), NULL);
    if (s->kind == SUB_COUNT)
        bl.limit_rc = snow_room_backlog_limit(me, 5, 0);
    else if (s->kind == SUB_BYTES)
        snow_room_backlog_limit(me, 0, 3 * BL_WIRE);
    else if (s->kind == SUB_MAILBOX)
        snow_actor_set_mailbox_limit(4);
    snow_actor_send(s->parent, READY, NULL, 0);
    if (s->kind == SUB_READER) {
        /* Keeps up: reads as the messages come. */
        while (bl.got[s->kind] < BL_MSGS) {
            int before = bl.got[s->kind];
            bl_drain(s->kind, 20000);
            if (bl.got[s->kind] == before)
                break; /* nothing for 20 s: the assertions say what is missing */
        }
    }
    /* The others read nothing until the publisher is done: the room
     * messages stay in their mailboxes. */
    bl_wait_phase(1);
    bl_drain(s->kind, 0);
    /* Caught up: the next message reaches every subscriber again. */
    snow_actor_send(s->parent, READY, NULL, 0);
    bl_wait_phase(2);
    int before = bl.got[s->kind];
    bl_drain(s->kind, 20000);
    bl.late[s->kind] = bl.got[s->kind] - before;
}

static bool bl_settled(void *arg)
{
    uint64_t want = *(uint64_t *)arg;
    SnowRoomCounters c;
    snow_room_counters(&c);
    return c.deliveries + c.skipped_backpressure >= want;
}

static void bl_wait_ready(int n)
{
    uint64_t ready = READY;
    for (int i = 0; i < n; i++)
        snow_actor_receive_match(&ready, 1, 20000);
}

static void bl_root(void *arg)
{
    (void)arg;
    SnowPid me = snow_actor_self();
    for (int i = 0; i < NSUBS; i++) {
        struct bl_sub s = {.parent = me, .kind = i};
        snow_actor_spawn(bl_sub_main, &s, sizeof s);
    }
    bl_wait_ready(NSUBS);
    SnowRoomCounters c0;
    snow_room_counters(&c0);
    unsigned char payload[BL_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    for (int k = 1; k <= BL_MSGS; k++) {
        payload[0] = (unsigned char)k; /* the sequence number, as checked */
        snow_ws_broadcast(R("bl"), payload, sizeof payload, 0);
    }
    uint64_t want = c0.deliveries + c0.skipped_backpressure + (uint64_t)NSUBS * BL_MSGS;
    rt_wait_until(bl_settled, &want);
    SnowRoomCounters c1;
    snow_room_counters(&c1);
    bl.skipped = c1.skipped_backpressure - c0.skipped_backpressure;
    bl.deliveries = c1.deliveries - c0.deliveries;
    atomic_store(&bl.phase, 1);
    bl_wait_ready(NSUBS);
    payload[0] = BL_MSGS + 1;
    snow_ws_broadcast(R("bl"), payload, sizeof payload, 0);
    atomic_store(&bl.phase, 2);
    bl.limit_zero_rc = snow_room_backlog_limit(0, 1, 1);
}

static void bl_dead_main(void *arg)
{
    (void)arg;
}

static void bl_dead_root(void *arg)
{
    (void)arg;
    SnowPid p = snow_actor_spawn(bl_dead_main, NULL, 0);
    /* A pid that ended: its slot no longer answers. */
    snow_sleep(50);
    bl.limit_dead_rc = snow_room_backlog_limit(p, 1, 1);
}

START_TEST(slow_subscriber_is_skipped_and_counted)
{
    memset(&bl, 0, sizeof bl);
    ROOMS_RUN(2, bl_root, NULL);
    ck_assert_int_eq(bl.limit_rc, 0);
    ck_assert_int_eq(bl.limit_zero_rc, SNOW_ENOPROC);
    /* By count: the first 5, in order; the other 15 skipped. */
    ck_assert_int_eq(bl.got[SUB_COUNT], 5 + 1);
    /* By bytes: 3 messages' worth, then skipped. */
    ck_assert_int_eq(bl.got[SUB_BYTES], 3 + 1);
    /* At its mailbox limit of 4: 4, then skipped. */
    ck_assert_int_eq(bl.got[SUB_MAILBOX], 4 + 1);
    /* The one that keeps up gets everything. */
    ck_assert_int_eq(bl.got[SUB_READER], BL_MSGS + 1);
    for (int i = 0; i < NSUBS; i++) {
        ck_assert_int_eq(bl.bad[i], 0);
        ck_assert_int_eq(bl.late[i], 1);
        /* What a skipped subscriber got is the start of the sequence, in
         * order: it is skipped from the bound on, not at random. */
        for (int k = 0; k < bl.got[i] - 1; k++)
            ck_assert_uint_eq(bl.seqs[i][k], (uint64_t)k + 1);
        ck_assert_uint_eq(bl.seqs[i][bl.got[i] - 1], BL_MSGS + 1);
    }
    ck_assert_uint_eq(bl.skipped, (BL_MSGS - 5) + (BL_MSGS - 3) + (BL_MSGS - 4));
    ck_assert_uint_eq(bl.deliveries, 5 + 3 + 4 + BL_MSGS);
}
END_TEST

START_TEST(backlog_limit_of_a_dead_pid)
{
    memset(&bl, 0, sizeof bl);
    ROOMS_RUN(1, bl_dead_root, NULL);
    ck_assert_int_eq(bl.limit_dead_rc, SNOW_ENOPROC);
}
END_TEST

Suite *rooms_backlog_suite(void)
{
    Suite *s = suite_create("rooms-backlog");
    TCase *tc = tcase_create("backlog");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, slow_subscriber_is_skipped_and_counted);
    tcase_add_test(tc, backlog_limit_of_a_dead_pid);
    suite_add_tcase(s, tc);
    return s;
}
