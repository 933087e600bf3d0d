/* Helpers shared by the collector's test files. */
#ifndef SNOW_TEST_GC_UTIL_H
#define SNOW_TEST_GC_UTIL_H

#include <stddef.h>

#include "harness.h"
#include "actor/tsan.h" /* RT_TSAN, RT_NOINLINE */

/* What the test actors report back to the test thread. */
struct gc_results {
    atomic_long ok;      /* checks that held */
    atomic_long bad;     /* checks that failed */
    atomic_long a, b, c; /* figures the test asserts on */
};
extern struct gc_results res;

void res_reset(void);
void check(int cond);
SnowGcStats stats(void);
/* Fills n bytes at p with a pattern that depends on seed; intact checks it. */
void fill(unsigned char *p, size_t n, unsigned seed);
int intact(const unsigned char *p, size_t n, unsigned seed);
/* Garbage of the sizes the tests use, so that a slot freed by mistake is
 * handed out again (and zeroed) at once; returns snow_gc_collect(). */
RT_NOINLINE int churn(void);
/* This process's resident set, in KiB (-1 when it cannot be read). */
long rss_kib(void);

/* A list of n nodes, each with its own data object (a pattern of its
 * seed), the newest first; list_intact checks one made by make_list(n). */
struct node {
    struct node *next;
    unsigned seed;
    size_t len;
    unsigned char *data; /* its own object */
};
RT_NOINLINE struct node *make_list(int n);
int list_intact(const struct node *nd, int n);

/* Tags of the test actors' messages: TAG_RESULT is the last one a test
 * actor sends its driver. */
enum { TAG_POKE = 1, TAG_LAST, TAG_RESULT };

/* The cases of test_gc_memory.c: when collections run and bounded memory. */
void gc_memory_tests(TCase *tc);

#endif
