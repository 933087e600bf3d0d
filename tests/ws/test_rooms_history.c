/*
 * test_rooms_history.c: what a room remembers and tells, through the ABI
 * with plain actor members: the history ring and resumable subscribes
 * (same epoch, too old, another epoch, from zero, from the future), a
 * resume racing a publisher, stamps, and the backend seam a
 * multi-process backend is told through. Assertions run on the main
 * thread once the runtime stopped.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rooms_test.h"
#include "ws/rooms.h"

#define R(s) (s), (sizeof(s) - 1)

/* ---- history ring and resumable subscribes ------------------------------------------------- */

static struct {
    int rc_same, rc_old, rc_other_epoch, rc_zero_full, rc_future, rc_configure_bad;
    uint64_t seqs_same[16], seqs_old[16], seqs_zero[16];
    int n_same, n_old, n_zero;
    uint64_t epoch1, epoch_kept, epoch_new;
    int64_t size_persist;
    int persisted, deleted;
    char payload_stamp[64];
    int rc_bytes, n_bytes;
    uint64_t seqs_bytes[16];
    uint64_t stamp_seq;
} hist;

static int drain_seqs(const char *room, uint64_t *out, int max)
{
    int n = 0;
    SnowRoomMsg h;
    while (n < max && rooms_test_recv(&h, room, 100))
        out[n++] = h.seq;
    return n;
}

static void history_root(void *arg)
{
    (void)arg;
    SnowPid me = snow_actor_self();
    SnowRoomOpts o = {.history = 8};
    SnowRoomOpts big_ring = {.history = 65537};
    hist.rc_configure_bad = snow_room_configure(R("h"), &big_ring);
    snow_room_configure(R("h"), &o);
    SnowRoomPos pos;
    snow_room_position(R("h"), &pos);
    hist.epoch1 = pos.epoch;
    for (int i = 0; i < 5; i++)
        snow_ws_broadcast(R("h"), "m", 1, 1);
    /* Resume from 2: 3, 4, 5 replayed, then live 6. */
    hist.rc_same = snow_room_subscribe_since(me, R("h"), hist.epoch1, 2, &pos);
    snow_ws_broadcast(R("h"), "m", 1, 1);
    hist.n_same = drain_seqs("h", hist.seqs_same, 16);
    snow_room_unsubscribe(me, R("h"));
    /* The ring outlives the last member: same epoch, same history. */
    hist.size_persist = snow_ws_room_size(R("h"));
    hist.persisted = snow_room_position(R("h"), &pos) == 1;
    hist.epoch_kept = pos.epoch;
    for (int i = 0; i < 6; i++)
        snow_ws_broadcast(R("h"), "m", 1, 1); /* seqs 7..12; ring holds 5..12 */
    hist.rc_old = snow_room_subscribe_since(me, R("h"), hist.epoch1, 1, NULL);
    hist.n_old = drain_seqs("h", hist.seqs_old, 16);
    snow_room_unsubscribe(me, R("h"));
    hist.rc_other_epoch = snow_room_subscribe_since(me, R("h"), hist.epoch1 + 1, 11, NULL);
    SnowRoomMsg h;
    while (rooms_test_recv(&h, "h", 100))
        ;
    snow_room_unsubscribe(me, R("h"));
    hist.rc_future = snow_room_subscribe_since(me, R("h"), hist.epoch1, 99, NULL);
    while (rooms_test_recv(&h, "h", 100))
        ;
    snow_room_unsubscribe(me, R("h"));
    /* Ring off and no member: the room goes; made again: a new epoch. */
    SnowRoomOpts off = {.history = 0};
    snow_room_configure(R("h"), &off);
    hist.deleted = snow_room_position(R("h"), &pos) == 0;
    snow_room_configure(R("h"), &o);
    for (int i = 0; i < 3; i++)
        snow_ws_broadcast(R("h"), "m", 1, 1);
    snow_room_position(R("h"), &pos);
    hist.epoch_new = pos.epoch;
    /* epoch 0: "nothing seen"; the ring still holds the whole life. */
    hist.rc_zero_full = snow_room_subscribe_since(me, R("h"), 0, 0, NULL);
    hist.n_zero = drain_seqs("h", hist.seqs_zero, 16);
    /* A stamped publish: the digits are the message's seq. */
    char msg[] = "{\"seq\":\"00000000000000000000\"}";
    SnowRoomPublish po;
    snow_room_publish_init(&po);
    po.is_text = 1;
    po.seq_at = 8;
    hist.stamp_seq = (uint64_t)snow_room_publish(R("h"), msg, sizeof msg - 1, &po);
    const unsigned char *p = rooms_test_recv(&h, "h", 5000);
    if (p && h.len < sizeof hist.payload_stamp)
        memcpy(hist.payload_stamp, p, h.len);
    snow_room_unsubscribe(me, R("h"));
    snow_room_configure(R("h"), &off);
    /* The byte bound: 1 KiB holds three frames of 304 bytes. */
    SnowRoomOpts small = {.history = 100, .history_kib = 1};
    snow_room_configure(R("hb"), &small);
    char blob[300];
    memset(blob, 'q', sizeof blob);
    for (int i = 0; i < 10; i++)
        snow_ws_broadcast(R("hb"), blob, sizeof blob, 0);
    hist.rc_bytes = snow_room_subscribe_since(me, R("hb"), 0, 0, NULL);
    hist.n_bytes = drain_seqs("hb", hist.seqs_bytes, 16);
    snow_room_unsubscribe(me, R("hb"));
    snow_room_configure(R("hb"), &off);
}

START_TEST(history_and_resume)
{
    memset(&hist, 0, sizeof hist);
    ROOMS_RUN(2, history_root, NULL);
    ck_assert_int_eq(hist.rc_configure_bad, -EINVAL);
    ck_assert_int_eq(hist.rc_same, 1);
    ck_assert_int_eq(hist.n_same, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(hist.seqs_same[i], (uint64_t)(3 + i));
    ck_assert_int_eq(hist.size_persist, 0);
    ck_assert(hist.persisted);
    ck_assert_uint_eq(hist.epoch_kept, hist.epoch1);
    ck_assert_int_eq(hist.rc_old, 0); /* seq 2..4 are gone from the ring */
    ck_assert_int_eq(hist.n_old, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(hist.seqs_old[i], (uint64_t)(5 + i));
    ck_assert_int_eq(hist.rc_other_epoch, 0);
    ck_assert_int_eq(hist.rc_future, 0);
    ck_assert(hist.deleted);
    ck_assert_uint_ne(hist.epoch_new, hist.epoch1);
    ck_assert_int_eq(hist.rc_zero_full, 1);
    ck_assert_int_eq(hist.n_zero, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(hist.seqs_zero[i], (uint64_t)(1 + i));
    ck_assert_uint_eq(hist.stamp_seq, 4);
    ck_assert_str_eq(hist.payload_stamp, "{\"seq\":\"00000000000000000004\"}");
    ck_assert_int_eq(hist.rc_bytes, 0);
    ck_assert_int_eq(hist.n_bytes, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(hist.seqs_bytes[i], (uint64_t)(8 + i));
    SnowRoomCounters c;
    snow_room_counters(&c);
    ck_assert_uint_eq(c.rooms, 0);
}
END_TEST

/* A resumed subscribe racing with a publisher: replay and live messages
 * together are every seq after the resume point exactly once, in order. */
#define RACE_MSGS 3000
static struct {
    int ok, rc;
    uint64_t first, last, count, bad;
} race;

static void race_pub(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACE_MSGS; i++) {
        while (snow_ws_broadcast(R("race"), "r", 1, 1) == SNOW_EBACKPRESSURE)
            snow_actor_yield();
        if (i % 8 == 0)
            snow_actor_yield();
    }
}

static void race_root(void *arg)
{
    (void)arg;
    SnowPid me = snow_actor_self();
    SnowRoomOpts o = {.history = 4096};
    snow_room_configure(R("race"), &o);
    SnowRoomPos pos;
    snow_room_position(R("race"), &pos);
    snow_actor_spawn(race_pub, NULL, 0);
    snow_sleep(1);
    race.rc = snow_room_subscribe_since(me, R("race"), pos.epoch, 0, NULL);
    uint64_t expect = 1;
    SnowRoomMsg h;
    while (expect <= RACE_MSGS && rooms_test_recv(&h, "race", 20000)) {
        if (h.seq != expect)
            race.bad++;
        expect = h.seq + 1;
        race.count++;
    }
    race.last = expect - 1;
    snow_room_unsubscribe(me, R("race"));
    SnowRoomOpts off = {0};
    snow_room_configure(R("race"), &off);
}

START_TEST(resume_races_publisher)
{
    memset(&race, 0, sizeof race);
    ROOMS_RUN(4, race_root, NULL);
    ck_assert_int_eq(race.rc, 1);
    ck_assert_uint_eq(race.bad, 0);
    ck_assert_uint_eq(race.count, RACE_MSGS);
    ck_assert_uint_eq(race.last, RACE_MSGS);
}
END_TEST

/* ---- the backend seam: what a multi-process backend is told --------------------------- */

static struct {
    atomic_int opened, closed, published;
    uint64_t last_seq, last_epoch;
    SnowPid last_except;
    char last_payload[16];
} be;

static void be_opened(const char *room, size_t len)
{
    if (len == 2 && !memcmp(room, "be", 2))
        atomic_fetch_add(&be.opened, 1);
}

static void be_closed(const char *room, size_t len)
{
    if (len == 2 && !memcmp(room, "be", 2))
        atomic_fetch_add(&be.closed, 1);
}

static void be_published(const char *room, size_t len, uint64_t epoch, uint64_t seq,
                         const struct ws_shared_frame *f, const struct room_publish *p)
{
    if (len != 2 || memcmp(room, "be", 2))
        return;
    atomic_fetch_add(&be.published, 1);
    be.last_seq = seq;
    be.last_epoch = epoch;
    be.last_except = p->except;
    size_t n = f->payload_len < 15 ? f->payload_len : 15;
    memcpy(be.last_payload, f->bytes + (f->len - f->payload_len), n);
}

static const struct ws_rooms_backend test_backend = {
    .name = "test", .room_opened = be_opened, .room_closed = be_closed, .published = be_published};

static struct {
    int64_t seq;
    SnowRoomPos pos;
} bes;

static void backend_root(void *arg)
{
    (void)arg;
    SnowPid me = snow_actor_self();
    ws_rooms_set_backend(&test_backend);
    snow_room_subscribe(me, R("be"), &bes.pos);
    snow_room_subscribe(me, R("be"), NULL); /* no second "opened" */
    SnowRoomPublish o;
    snow_room_publish_init(&o);
    o.except = me;
    bes.seq = snow_room_publish(R("be"), "remote?", 7, &o);
    snow_room_unsubscribe(me, R("be"));
    ws_rooms_set_backend(NULL);
}

START_TEST(backend_seam)
{
    memset(&be, 0, sizeof be);
    ROOMS_RUN(2, backend_root, NULL);
    ck_assert_int_eq(atomic_load(&be.opened), 1);
    ck_assert_int_eq(atomic_load(&be.closed), 1);
    ck_assert_int_eq(atomic_load(&be.published), 1);
    ck_assert_int_eq(bes.seq, 1);
    ck_assert_uint_eq(be.last_seq, 1);
    ck_assert_uint_eq(be.last_epoch, bes.pos.epoch);
    ck_assert_uint_ne(be.last_except, 0);
    ck_assert_str_eq(be.last_payload, "remote?");
}
END_TEST

Suite *rooms_history_suite(void)
{
    Suite *s = suite_create("rooms-history");
    TCase *tc = tcase_create("history");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, history_and_resume);
    tcase_add_test(tc, resume_races_publisher);
    tcase_add_test(tc, backend_seam);
    suite_add_tcase(s, tc);
    return s;
}
