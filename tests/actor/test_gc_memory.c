/* The per-actor garbage collector, its memory: when collections run, many
 * actors collecting at once, memory bounded while an actor allocates
 * without end, RSS given back, the slot index and the zeroing of every
 * size. The cases register through gc_memory_tests (test_gc.c runs them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc_util.h"
#include "actor/gc.h" /* gc_slot_index */

/* ---- when collections run ------------------------------------------------------ */

static RT_NOINLINE void garbage_kib(size_t kib)
{
    /* 1000 bytes asked for: 1024-byte slots, header included. */
    for (size_t i = 0; i < kib; i++)
        memset(snow_gc_alloc(1000), 1, 1000);
}

static void threshold_root(void *arg)
{
    (void)arg;
    SnowGcStats a = stats();
    garbage_kib(10 * 1024); /* nothing live: a collection per SNOW_GC_MIN_KIB */
    SnowGcStats b = stats();
    /* 2 MiB live: the threshold becomes 4 MiB, a collection per 2 MiB. */
    void **live = snow_gc_alloc(2048 * sizeof *live);
    for (int i = 0; i < 2047; i++)
        live[i] = snow_gc_alloc(1000);
    snow_gc_collect();
    SnowGcStats c = stats();
    garbage_kib(20 * 1024);
    SnowGcStats d = stats();
    atomic_store(&res.a, (long)(b.collections - a.collections));
    atomic_store(&res.b, (long)(d.collections - c.collections));
    check(c.live_bytes >= 2 * 1024 * 1024 && c.live_bytes < 2 * 1024 * 1024 + 64 * 1024);
    check(live[2046] != NULL);
}

START_TEST(gc_threshold_default)
{
    res_reset();
    RUN_ROOT(1, threshold_root, NULL);
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_eq(atomic_load(&res.ok), 2);
    ck_assert_int_ge(atomic_load(&res.a), 39); /* 10 MiB / 256 KiB */
    ck_assert_int_le(atomic_load(&res.a), 41);
    ck_assert_int_ge(atomic_load(&res.b), 9); /* 20 MiB / (4 MiB - 2 MiB) */
    ck_assert_int_le(atomic_load(&res.b), 11);
}
END_TEST

START_TEST(gc_threshold_configured)
{
    /* Read at this process's first allocation (each case is forked). */
    setenv("SNOW_GC_MIN_KIB", "1024", 1);
    res_reset();
    RUN_ROOT(1, threshold_root, NULL);
    unsetenv("SNOW_GC_MIN_KIB");
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_ge(atomic_load(&res.a), 9); /* 10 MiB / 1 MiB */
    ck_assert_int_le(atomic_load(&res.a), 11);
}
END_TEST

/* ---- many actors collecting at once, moving between workers ------------------ */

#define PAR_ACTORS 64
#define PAR_ROUNDS 300

static void par_actor(void *arg)
{
    SnowPid parent = *(SnowPid *)arg;
    struct node *volatile head = make_list(16);
    long ok = 1;
    for (int i = 0; i < PAR_ROUNDS; i++) {
        churn();
        snow_actor_yield(); /* may resume on the other worker */
        if (i % 50 == 0)
            ok &= list_intact(head, 16);
    }
    ok &= list_intact(head, 16);
    snow_actor_send(parent, TAG_RESULT, &ok, sizeof ok);
}

static void par_root(void *arg)
{
    (void)arg;
    SnowPid self = snow_actor_self();
    for (int i = 0; i < PAR_ACTORS; i++)
        snow_actor_spawn(par_actor, &self, sizeof self);
    for (int i = 0; i < PAR_ACTORS; i++) {
        SnowMessage *m = recv_tag(TAG_RESULT, -1);
        long ok;
        memcpy(&ok, m->data, sizeof ok);
        check(ok == 1);
    }
}

START_TEST(gc_many_actors_in_parallel)
{
    res_reset();
    RUN_ROOT(2, par_root, NULL);
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_eq(atomic_load(&res.ok), PAR_ACTORS);
}
END_TEST

/* ---- bounded memory: 10 GB through a 1 MB live set ---------------------------- */

#define LIVE_OBJS 256
#define OBJ_SIZE 4000
#define TOTAL_BYTES (10ull * 1000 * 1000 * 1000)
/* The bound this test states: the process's resident memory grows by less
 * than RSS_BOUND_KIB over its value before the loop, and the heap maps at
 * most HEAP_BOUND bytes (a collection is due at 2x the 1 MB live set). */
#define RSS_BOUND_KIB (8 * 1024)
#define HEAP_BOUND (4u * 1024 * 1024)

static void bounded_root(void *arg)
{
    (void)arg;
    unsigned char **ring = snow_gc_alloc(LIVE_OBJS * sizeof *ring);
    long base = rss_kib(), peak = base;
    uint64_t max_heap = 0, n = TOTAL_BYTES / OBJ_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        unsigned slot = (unsigned)(i % LIVE_OBJS);
        if (ring[slot] && (ring[slot][0] != (unsigned char)(i - LIVE_OBJS) ||
                           ring[slot][OBJ_SIZE - 1] != (unsigned char)~(i - LIVE_OBJS)))
            atomic_fetch_add(&res.bad, 1);
        unsigned char *p = snow_gc_alloc(OBJ_SIZE);
        p[0] = (unsigned char)i;
        p[OBJ_SIZE - 1] = (unsigned char)~i;
        ring[slot] = p;
        if (i % 4096 == 0) {
            long r = rss_kib();
            if (r > peak)
                peak = r;
            SnowGcStats st = stats();
            if (st.heap_bytes > max_heap)
                max_heap = st.heap_bytes;
        }
    }
    SnowGcStats st = stats();
    atomic_store(&res.a, peak - base);
    atomic_store(&res.b, (long)max_heap);
    atomic_store(&res.c, (long)st.collections);
    check(st.allocated_bytes >= TOTAL_BYTES);
}

START_TEST(gc_bounded_memory)
{
    res_reset();
    RUN_ROOT(1, bounded_root, NULL);
    fprintf(stderr, "gc_bounded_memory: rss_growth_kib=%ld max_heap_bytes=%ld collections=%ld\n",
            atomic_load(&res.a), atomic_load(&res.b), atomic_load(&res.c));
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_eq(atomic_load(&res.ok), 1);
    ck_assert_int_lt(atomic_load(&res.a), RSS_BOUND_KIB);
    ck_assert_int_le(atomic_load(&res.b), HEAP_BOUND);
    ck_assert_int_ge(atomic_load(&res.c), 1000);
}
END_TEST

/* ---- RSS falls after a burst ------------------------------------------------- */

#define BURST_BYTES (64u * 1024 * 1024)

static RT_NOINLINE void **make_burst(void)
{
    size_t n = BURST_BYTES / 2 / 1000 + BURST_BYTES / 2 / 100000;
    void **v = snow_gc_alloc(n * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < BURST_BYTES / 2 / 1000; i++)
        memset(v[k++] = snow_gc_alloc(1000), 1, 1000);
    for (size_t i = 0; i < BURST_BYTES / 2 / 100000; i++)
        memset(v[k++] = snow_gc_alloc(100000), 1, 100000);
    return v;
}

static void burst_root(void *arg)
{
    (void)arg;
    void **volatile burst = make_burst();
    snow_gc_collect(); /* all of it live */
    check(burst != NULL);
    SnowGcStats full = stats();
    long rss_full = rss_kib();
    burst = NULL;
    snow_gc_collect();
    SnowGcStats after = stats();
    long rss_after = rss_kib();
    check(full.live_bytes >= BURST_BYTES);
    check(after.live_bytes < 64 * 1024);
    check(after.heap_bytes < 1024 * 1024);
    atomic_store(&res.a, rss_full - rss_after);
}

START_TEST(gc_rss_falls_after_burst)
{
    res_reset();
    RUN_ROOT(1, burst_root, NULL);
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_eq(atomic_load(&res.ok), 4);
    /* At least 3/4 of the burst went back to the system. */
    ck_assert_int_ge(atomic_load(&res.a), (long)(BURST_BYTES / 1024 * 3 / 4));
}
END_TEST

/* ---- an actor copying each of 1,000,000 messages keeps its heap bounded ------ */

#define MSGS 1000000
#define ACK_EVERY 1000
#define COPY_RING 32
#define MSG_HEAP_BOUND (2u * 1024 * 1024)

enum { TAG_DATA = 10, TAG_ACK, TAG_END, TAG_REPORT };

static size_t msg_len(long i)
{
    return 1 + (size_t)(i * 7919) % 1500;
}

struct copy {
    long i;
    size_t len;
    unsigned char *bytes;
};

static void copier(void *arg)
{
    (void)arg;
    struct copy *ring = snow_gc_alloc(COPY_RING * sizeof *ring);
    long bad = 0, n = 0;
    uint64_t max_heap = 0;
    for (;;) {
        SnowMessage *m = snow_actor_receive(-1);
        if (m->tag == TAG_END)
            break;
        /* What an echo handler does: a copy of every message in its heap
         * (here the 32 newest copies stay reachable). */
        struct copy *c = &ring[n % COPY_RING];
        if (c->bytes && !intact(c->bytes, c->len, (unsigned)c->i))
            bad++;
        c->i = n;
        c->len = m->len;
        c->bytes = snow_gc_alloc(m->len);
        memcpy(c->bytes, m->data, m->len);
        if (++n % ACK_EVERY == 0) {
            SnowGcStats st = stats();
            if (st.heap_bytes > max_heap)
                max_heap = st.heap_bytes;
            snow_actor_send(m->from, TAG_ACK, NULL, 0);
        }
    }
    SnowGcStats st = stats();
    long r[4] = {n, bad, (long)max_heap, (long)st.collections};
    snow_actor_send(snow_actor_whereis("gc-test-root"), TAG_REPORT, r, sizeof r);
}

static void messages_root(void *arg)
{
    (void)arg;
    snow_actor_register("gc-test-root", snow_actor_self());
    SnowPid p = snow_actor_spawn(copier, NULL, 0);
    unsigned char *buf = malloc(1500);
    for (long i = 0; i < MSGS; i++) {
        size_t len = msg_len(i);
        fill(buf, len, (unsigned)i);
        snow_actor_send(p, TAG_DATA, buf, len);
        if ((i + 1) % ACK_EVERY == 0)
            recv_tag(TAG_ACK, -1);
    }
    free(buf);
    snow_actor_send(p, TAG_END, NULL, 0);
    SnowMessage *m = recv_tag(TAG_REPORT, -1);
    long r[4];
    memcpy(r, m->data, sizeof r);
    atomic_store(&res.ok, r[0]);
    atomic_store(&res.bad, r[1]);
    atomic_store(&res.a, r[2]);
    atomic_store(&res.b, r[3]);
}

START_TEST(gc_message_copies_bounded)
{
    res_reset();
    RUN_ROOT(2, messages_root, NULL);
    fprintf(stderr, "gc_message_copies_bounded: max_heap_bytes=%ld collections=%ld\n", atomic_load(&res.a),
            atomic_load(&res.b));
    ck_assert_int_eq(atomic_load(&res.ok), MSGS);
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_le(atomic_load(&res.a), MSG_HEAP_BOUND);
    ck_assert_int_ge(atomic_load(&res.b), 100);
}
END_TEST

/* The marker maps an offset into a chunk to its slot with a reciprocal
 * multiply: exact for every slot size a class can have and every offset a
 * small-object chunk can hold. */
START_TEST(gc_slot_index_is_exact)
{
    long wrong = 0;
    for (size_t slot = 32; slot <= GC_LARGE_BLOCK; slot += 16) {
        struct gc_chunk c = {.slot = slot, .slot_inv = gc_slot_inv(slot)};
        for (size_t off = 0; off < GC_CHUNK_SIZE; off++)
            wrong += gc_slot_index(&c, off) != off / slot;
    }
    ck_assert_int_eq(wrong, 0);
}
END_TEST

/* Every size up to the largest class: the object is zeroed (also when its
 * slot held an earlier object's bytes), its bytes are its own, and a
 * collection keeps it. */
#define SIZES_MAX (GC_LARGE_BLOCK - 16)

static RT_NOINLINE void dirty_every_size(void)
{
    for (size_t n = 0; n <= SIZES_MAX; n++)
        memset(snow_gc_alloc(n), 0xA5, n);
}

static void sizes_root(void *arg)
{
    (void)arg;
    dirty_every_size();
    snow_gc_collect(); /* all garbage: the slots go back to the free lists */
    unsigned char **v = snow_gc_alloc((SIZES_MAX + 1) * sizeof *v);
    check(v != NULL);
    for (size_t n = 0; v && n <= SIZES_MAX; n++) {
        v[n] = snow_gc_alloc(n);
        int zero = v[n] != NULL;
        for (size_t i = 0; zero && i < n; i++)
            zero = v[n][i] == 0;
        check(zero && ((uintptr_t)v[n] & 15) == 0);
        if (v[n])
            fill(v[n], n, (unsigned)n);
    }
    snow_gc_collect();
    for (size_t n = 0; v && n <= SIZES_MAX; n++)
        check(v[n] && intact(v[n], n, (unsigned)n) && (n == 0 || actor_gc_owns(v[n] + n - 1)));
}

START_TEST(gc_every_size_zeroed_and_distinct)
{
    res_reset();
    RUN_ROOT(1, sizes_root, NULL);
    ck_assert_int_eq(atomic_load(&res.bad), 0);
    ck_assert_int_eq(atomic_load(&res.ok), 1 + 2 * (SIZES_MAX + 1));
}
END_TEST

void gc_memory_tests(TCase *tc)
{
    tcase_add_test(tc, gc_threshold_default);
    tcase_add_test(tc, gc_threshold_configured);
    tcase_add_test(tc, gc_many_actors_in_parallel);
    tcase_add_test(tc, gc_bounded_memory);
    tcase_add_test(tc, gc_rss_falls_after_burst);
    tcase_add_test(tc, gc_message_copies_bounded);
    tcase_add_test(tc, gc_slot_index_is_exact);
    tcase_add_test(tc, gc_every_size_zeroed_and_distinct);
}
