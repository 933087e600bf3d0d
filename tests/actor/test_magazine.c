/* The free-record caches (magazine.c): batches move whole between a
 * worker's cache and the shared pool, the bounds hold, and every record
 * given is handed back exactly once (taken, spilled or released). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"
#include "harness.h"

struct rec {
    int id;
    struct rec *link;
};

static const struct mag_kind kind = {.link = offsetof(struct rec, link), .batch = 4, .pool_max = 2};

static int chain_len(void *x)
{
    int n = 0;
    for (struct rec *r = x; r; r = r->link)
        n++;
    return n;
}

static int released;

static void count_release(void *x)
{
    released++;
    free(x);
}

static struct rec *rec_new(int id)
{
    struct rec *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    r->id = id;
    return r;
}

START_TEST(take_from_empty_is_null)
{
    struct mag m = {0};
    struct mag_pool p = {0};
    ck_assert_ptr_null(mag_take(&m, &p, &kind));
}
END_TEST

/* Records come back last in, first out, from the chain and then from the
 * reserve batch. */
START_TEST(put_then_take_is_lifo)
{
    struct mag m = {0};
    struct mag_pool p = {0};
    for (int i = 0; i < 8; i++)
        ck_assert_ptr_null(mag_put(&m, &p, &kind, rec_new(i)));
    ck_assert_int_eq(m.cur_n, 4);
    ck_assert_int_eq(chain_len(m.full), 4);
    ck_assert_int_eq(atomic_load(&p.n), 0);
    for (int i = 7; i >= 0; i--) {
        struct rec *r = mag_take(&m, &p, &kind);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->id, i);
        free(r);
    }
    ck_assert_ptr_null(mag_take(&m, &p, &kind));
}
END_TEST

/* Beyond two batches a worker gives its reserve batch to the pool; beyond
 * the pool's bound the caller gets exactly one batch to free. */
START_TEST(bounds_spill_whole_batches)
{
    struct mag m = {0};
    struct mag_pool p = {0};
    int spilled = 0;
    for (int i = 0; i < 20; i++) {
        void *s = mag_put(&m, &p, &kind, rec_new(i));
        if (s) {
            ck_assert_int_eq(chain_len(s), kind.batch);
            spilled += chain_len(s);
            released = 0;
            mag_free_chain(&kind, s, count_release);
            ck_assert_int_eq(released, kind.batch);
        }
        ck_assert_int_le(m.cur_n, kind.batch);
        ck_assert_int_le(atomic_load(&p.n), kind.pool_max);
    }
    /* 20 = 4 in the chain + 4 in reserve + 2 x 4 in the pool + 4 spilled */
    ck_assert_int_eq(m.cur_n, 4);
    ck_assert_int_eq(chain_len(m.full), 4);
    ck_assert_int_eq(atomic_load(&p.n), 2);
    ck_assert_int_eq(spilled, 4);
    released = 0;
    mag_fini(&m, &kind, count_release);
    mag_pool_fini(&p, &kind, count_release);
    ck_assert_int_eq(released, 16);
    ck_assert_int_eq(atomic_load(&p.n), 0);
    ck_assert_ptr_null(mag_take(&m, &p, &kind));
}
END_TEST

/* What one worker gives, another takes from the pool as a whole batch. */
START_TEST(a_batch_moves_between_workers)
{
    struct mag a = {0}, b = {0};
    struct mag_pool p = {0};
    for (int i = 0; i < 12; i++)
        ck_assert_ptr_null(mag_put(&a, &p, &kind, rec_new(i)));
    ck_assert_int_eq(atomic_load(&p.n), 1);
    bool seen[12] = {0};
    for (int i = 0; i < 4; i++) {
        struct rec *r = mag_take(&b, &p, &kind);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_lt(r->id, 4); /* the first batch a filled */
        ck_assert(!seen[r->id]);
        seen[r->id] = true;
        free(r);
    }
    ck_assert_int_eq(atomic_load(&p.n), 0);
    ck_assert_ptr_null(mag_take(&b, &p, &kind));
    released = 0;
    mag_fini(&a, &kind, count_release);
    ck_assert_int_eq(released, 8);
}
END_TEST

/* Two threads trade through one pool: one only gives, one only takes.
 * Every record ends up counted exactly once. */
#define TRADE_N 200000
static struct mag_pool trade_pool;
static const struct mag_kind trade_kind = {.link = offsetof(struct rec, link), .batch = 32, .pool_max = 8};
static unsigned char *trade_seen;
static atomic_int trade_done;

static void *trade_giver(void *arg)
{
    struct mag *m = arg;
    for (int i = 0; i < TRADE_N; i++) {
        void *s = mag_put(m, &trade_pool, &trade_kind, rec_new(i));
        for (struct rec *r = s, *n; r; r = n) {
            n = r->link;
            trade_seen[r->id]++;
            free(r);
        }
    }
    atomic_store(&trade_done, 1);
    return NULL;
}

static void *trade_taker(void *arg)
{
    struct mag *m = arg;
    for (;;) {
        int done = atomic_load(&trade_done);
        struct rec *r = mag_take(m, &trade_pool, &trade_kind);
        if (r) {
            trade_seen[r->id]++;
            free(r);
        } else if (done) {
            return NULL;
        }
    }
}

START_TEST(two_threads_trade_every_record_once)
{
    struct mag give = {0}, take = {0};
    memset(&trade_pool, 0, sizeof trade_pool);
    trade_seen = calloc(TRADE_N, 1);
    atomic_store(&trade_done, 0);
    pthread_t g, t;
    ck_assert_int_eq(pthread_create(&t, NULL, trade_taker, &take), 0);
    ck_assert_int_eq(pthread_create(&g, NULL, trade_giver, &give), 0);
    pthread_join(g, NULL);
    pthread_join(t, NULL);
    /* what is left: the giver's chain and reserve; the pool is empty (the
     * taker ran until it found nothing after the giver finished) */
    ck_assert_int_eq(atomic_load(&trade_pool.n), 0);
    for (struct rec *r = give.cur; r; r = r->link)
        trade_seen[r->id]++;
    for (struct rec *r = give.full; r; r = r->link)
        trade_seen[r->id]++;
    for (int i = 0; i < TRADE_N; i++)
        ck_assert_int_eq(trade_seen[i], 1);
    mag_fini(&give, &trade_kind, free);
    mag_fini(&take, &trade_kind, free);
    free(trade_seen);
}
END_TEST

Suite *magazine_suite(void)
{
    Suite *s = suite_create("magazine");
    TCase *tc = tcase_create("magazine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, take_from_empty_is_null);
    tcase_add_test(tc, put_then_take_is_lifo);
    tcase_add_test(tc, bounds_spill_whole_batches);
    tcase_add_test(tc, a_batch_moves_between_workers);
    tcase_add_test(tc, two_threads_trade_every_record_once);
    suite_add_tcase(s, tc);
    return s;
}
