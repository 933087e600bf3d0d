/* Registry, per-actor heap, hibernation, panics caught by actor_catch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static atomic_long result;

static void named(void *arg)
{
    (void)arg;
    snow_actor_receive(-1);
}

static void registry_root(void *arg)
{
    (void)arg;
    long r = 0;
    SnowPid a = snow_actor_spawn(named, NULL, 0);
    SnowPid b = snow_actor_spawn(named, NULL, 0);
    r += snow_actor_register("alpha", a) == 0;
    r += snow_actor_register("alpha", b) == SNOW_ENAME_TAKEN;
    r += snow_actor_register("beta", a) == SNOW_EHAS_NAME;
    r += snow_actor_whereis("alpha") == a;
    r += snow_actor_whereis("nobody") == 0;
    r += snow_actor_unregister("alpha") == 0;
    r += snow_actor_whereis("alpha") == 0;
    r += snow_actor_register("alpha", b) == 0;
    r += snow_actor_register("", b) == -EINVAL;
    /* The name goes away with the actor. */
    uint64_t ref = snow_actor_monitor(b);
    snow_actor_send(b, 1, NULL, 0);
    recv_tag(SNOW_TAG_DOWN, -1);
    (void)ref;
    r += snow_actor_whereis("alpha") == 0;
    r += snow_actor_register("gamma", b) == SNOW_ENOPROC;
    snow_actor_send(a, 1, NULL, 0);
    atomic_store(&result, r);
}

START_TEST(registry_names)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, registry_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 11);
}
END_TEST

static void heap_root(void *arg)
{
    (void)arg;
    long r = 0;
    for (int i = 1; i < 3000; i += 7) {
        unsigned char *p = snow_gc_alloc((size_t)i);
        r += p && ((uintptr_t)p % 16) == 0;
        int zero = 1;
        for (int j = 0; j < i; j++)
            zero &= p[j] == 0;
        r += zero;
        memset(p, 0xAB, (size_t)i);
    }
    char *big = snow_gc_alloc(1 << 20);
    r += big != NULL;
    memset(big, 1, 1 << 20);
    atomic_store(&result, r);
}

START_TEST(heap_alloc_aligned_zeroed)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, heap_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 2 * ((3000 - 1 + 6) / 7) + 1);
    ck_assert_ptr_null(snow_gc_alloc(16)); /* outside an actor */
}
END_TEST

/* Hibernation: the continuation starts on a fresh stack each time, with
 * its state in the heap, and sees the message that woke it. */
struct hib_state {
    int count;
    long sum;
};

static void hib_step(void *arg)
{
    struct hib_state *st = arg;
    SnowMessage *m = snow_actor_receive(0);
    if (!m) {
        atomic_store(&result, -1);
        return;
    }
    if (m->tag == 99) {
        atomic_store(&result, st->sum * 1000 + st->count);
        return;
    }
    st->count++;
    st->sum += (long)m->tag;
    /* the stack is fresh: nearly all of it is free again */
    if (actor_stack_remaining() < 60 * 1024)
        st->sum += 1000000;
    snow_actor_hibernate(hib_step, st);
}

static void hibernator(void *arg)
{
    (void)arg;
    struct hib_state *st = snow_gc_alloc(sizeof *st);
    snow_actor_hibernate(hib_step, st);
}

static void hib_root(void *arg)
{
    (void)arg;
    SnowPid h = snow_actor_spawn(hibernator, NULL, 0);
    for (int i = 1; i <= 10; i++) {
        snow_sleep(2);
        snow_actor_send(h, (uint64_t)i, NULL, 0);
    }
    snow_actor_send(h, 99, NULL, 0);
}

START_TEST(hibernate_resumes_on_message)
{
    atomic_store(&result, 0);
    RUN_ROOT(2, hib_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 55 * 1000 + 10);
}
END_TEST

static atomic_int hib_term;

static void hib_term_cb(int reason, void *arg)
{
    (void)arg;
    atomic_store(&hib_term, reason);
}

static void never(void *arg)
{
    (void)arg;
    atomic_store(&hib_term, -7);
}

static void hib_sleeper(void *arg)
{
    (void)arg;
    snow_actor_set_terminate(hib_term_cb, NULL);
    snow_actor_hibernate(never, NULL);
}

static void hib_kill_root(void *arg)
{
    (void)arg;
    SnowPid h = snow_actor_spawn(hib_sleeper, NULL, 0);
    uint64_t ref = snow_actor_monitor(h);
    snow_sleep(10);
    snow_actor_kill(h, SNOW_EXIT_KILLED);
    SnowMessage *m = recv_tag(SNOW_TAG_DOWN, 2000);
    SnowDownMsg dm = {0};
    if (m)
        memcpy(&dm, m->data, sizeof dm);
    atomic_store(&result, dm.ref == ref && dm.reason == SNOW_EXIT_KILLED);
}

START_TEST(killing_a_hibernated_actor)
{
    atomic_store(&result, 0);
    atomic_store(&hib_term, -1);
    RUN_ROOT(1, hib_kill_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 1);
    ck_assert_int_eq(atomic_load(&hib_term), SNOW_EXIT_KILLED);
}
END_TEST

static void panicky(void *arg)
{
    int *n = arg;
    (*n)++;
    snow_panic("caught");
}

static void calm(void *arg)
{
    int *n = arg;
    (*n) += 10;
}

static void catch_inside(void *arg)
{
    int *n = arg;
    if (actor_catch(panicky, n) == SNOW_EXIT_PANIC)
        *n += 999; /* 11 + 1 (panicky) + 999 */
}

static void panic_after_inner(void *arg)
{
    int *n = arg;
    actor_catch(calm, n);
    snow_panic("outer");
}

static void catch_root(void *arg)
{
    (void)arg;
    int n = 0;
    long r = actor_catch(panicky, &n) == SNOW_EXIT_PANIC;
    r += !strcmp(actor_panic_message(), "caught");
    r += actor_catch(calm, &n) == 0;
    r += n == 11;
    /* Nested: the inner catch takes the panic, the outer sees a return. */
    r += actor_catch(catch_inside, &n) == 0;
    r += n == 1011;
    /* And after the inner frame is gone, a panic reaches the outer one. */
    r += actor_catch(panic_after_inner, &n) == SNOW_EXIT_PANIC;
    r += n == 1021;
    atomic_store(&result, r);
}

START_TEST(catch_contains_panic)
{
    atomic_store(&result, 0);
    RUN_ROOT(1, catch_root, NULL);
    ck_assert_int_eq(atomic_load(&result), 8);
}
END_TEST

START_TEST(strerror_names_codes)
{
    ck_assert_str_eq(snow_strerror(SNOW_ENOPROC), "no such process");
    ck_assert_str_eq(snow_strerror(SNOW_ERESERVED_TAG), "message tag is reserved for the runtime");
    ck_assert_str_eq(snow_strerror(-ENOMEM), "Cannot allocate memory");
    ck_assert_str_eq(snow_strerror(0), "success");
    ck_assert_str_eq(snow_strerror(-999999), "unknown error");
}
END_TEST

Suite *misc_suite(void)
{
    Suite *s = suite_create("misc");
    TCase *tc = tcase_create("misc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, registry_names);
    tcase_add_test(tc, heap_alloc_aligned_zeroed);
    tcase_add_test(tc, hibernate_resumes_on_message);
    tcase_add_test(tc, killing_a_hibernated_actor);
    tcase_add_test(tc, catch_contains_panic);
    tcase_add_test(tc, strerror_names_codes);
    suite_add_tcase(s, tc);
    return s;
}
