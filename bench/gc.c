/*
 * gc.c: snow-bench-gc, the per-actor garbage collector benchmark.
 *
 *   snow-bench-gc [--quick] [--only gc|gc_alloc]
 *
 * Lines (see bench/README.md for what each measures):
 *   bench gc live_kib=N pause_p50_us= pause_p99_us= pause_max_us= rounds= heap_kib=
 *   bench gc_alloc allocs_per_s= allocs= collections= heap_kib=
 * One driver actor does everything; SNOW_WORKERS (default 1) sets the
 * workers. Exit status 0 when every selected scenario completed and its
 * live data checked out intact, 1 otherwise, 2 on bad usage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor.h"
#include "benchutil.h"

#define WATCHDOG_S 900

/* A live-set node: 112 bytes asked for, a 128-byte slot with its header. */
struct lnode {
    struct lnode *next;
    uint64_t v[13];
};

/* A gc_alloc object: 48 bytes asked for (a 64-byte slot), the same size as
 * the Go and Erlang peers' objects. */
struct small {
    uint64_t v[6];
};

#define ALLOC_RING 1024

static struct {
    int quick;
    const char *only;
    int failed;
} B;

static int selected(const char *name)
{
    return !B.only || !strcmp(B.only, name);
}

static SnowGcStats gc_stats(void)
{
    SnowGcStats st;
    snow_gc_stats(&st);
    return st;
}

/* Allocates bytes of garbage in 48-byte objects. noinline: its frame is
 * gone (below the stack pointer) when the collection scans. */
static RT_NOINLINE void garbage(size_t bytes)
{
    for (size_t n = bytes / 64; n; n--) {
        struct small *s = snow_gc_alloc(sizeof *s);
        s->v[0] = n;
    }
}

static struct lnode *build_live(size_t nodes)
{
    struct lnode *head = NULL;
    for (size_t i = 0; i < nodes; i++) {
        struct lnode *nd = snow_gc_alloc(sizeof *nd);
        if (!nd)
            return NULL;
        nd->next = head;
        nd->v[0] = i;
        head = nd;
    }
    return head;
}

static int live_intact(const struct lnode *nd, size_t nodes)
{
    size_t k = nodes;
    for (; nd; nd = nd->next)
        if (nd->v[0] != --k)
            return 0;
    return k == 0;
}

/* Pauses of collections of a heap holding live_kib KiB of linked nodes,
 * each collection after 0.9 x live_kib of fresh garbage (what a heap at
 * its 2x threshold holds). */
static void bench_pause(size_t live_kib, int rounds)
{
    size_t nodes = live_kib * 1024 / 128;
    struct lnode *volatile live = build_live(nodes);
    int64_t *pause = malloc((size_t)rounds * sizeof *pause);
    if (!live || !pause) {
        fprintf(stderr, "snow-bench-gc: gc live_kib=%zu: out of memory\n", live_kib);
        B.failed = 1;
        free(pause);
        return;
    }
    snow_gc_collect();
    for (int r = 0; r < rounds; r++) {
        garbage(live_kib * 1024 * 9 / 10);
        uint64_t before = gc_stats().pause_ns;
        snow_gc_collect();
        pause[r] = (int64_t)(gc_stats().pause_ns - before);
    }
    if (!live_intact(live, nodes)) {
        fprintf(stderr, "snow-bench-gc: gc live_kib=%zu: live set damaged\n", live_kib);
        B.failed = 1;
    }
    SnowGcStats st = gc_stats();
    printf("bench gc live_kib=%zu pause_p50_us=%.1f pause_p99_us=%.1f pause_max_us=%.1f rounds=%d heap_kib=%llu\n",
           live_kib, bench_percentile(pause, (size_t)rounds, 0.50) / 1000.0,
           bench_percentile(pause, (size_t)rounds, 0.99) / 1000.0, bench_percentile(pause, (size_t)rounds, 1.0) / 1000.0,
           rounds, (unsigned long long)(st.heap_bytes / 1024));
    fflush(stdout);
    free(pause);
    live = NULL;
}

/* allocs objects of 48 bytes, each stored in a ring of 1024 (the live set,
 * about 64 KiB), the oldest dropped: allocation plus every collection it
 * causes. */
static void bench_alloc(long allocs)
{
    struct small **ring = snow_gc_alloc(ALLOC_RING * sizeof *ring);
    SnowGcStats before = gc_stats();
    int64_t t0 = rt_now_ns();
    for (long i = 0; i < allocs; i++) {
        struct small *s = snow_gc_alloc(sizeof *s);
        s->v[0] = (uint64_t)i;
        ring[i % ALLOC_RING] = s;
    }
    int64_t t1 = rt_now_ns();
    for (long i = allocs - ALLOC_RING; i < allocs; i++)
        if (i >= 0 && ring[i % ALLOC_RING]->v[0] != (uint64_t)i) {
            fprintf(stderr, "snow-bench-gc: gc_alloc: ring damaged\n");
            B.failed = 1;
            break;
        }
    SnowGcStats st = gc_stats();
    printf("bench gc_alloc allocs_per_s=%.0f allocs=%ld collections=%llu heap_kib=%llu\n",
           (double)allocs * 1e9 / (double)(t1 - t0), allocs,
           (unsigned long long)(st.collections - before.collections), (unsigned long long)(st.heap_bytes / 1024));
    fflush(stdout);
}

static void driver(void *arg)
{
    (void)arg;
    int div = B.quick ? 10 : 1;
    if (selected("gc")) {
        bench_pause(64, 2000 / div);
        bench_pause(1024, 1000 / div);
        bench_pause(16 * 1024, 200 / div);
    }
    if (selected("gc_alloc"))
        bench_alloc(50000000L / div);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            B.quick = 1;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            B.only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--only gc|gc_alloc]\n", argv[0]);
            return 2;
        }
    }
    if (B.only && strcmp(B.only, "gc") && strcmp(B.only, "gc_alloc")) {
        fprintf(stderr, "snow-bench-gc: unknown scenario %s\n", B.only);
        return 2;
    }
    alarm(WATCHDOG_S);
    const char *w = getenv("SNOW_WORKERS");
    if (snow_rt_init(w ? 0 : 1) || !snow_actor_spawn(driver, NULL, 0) || snow_rt_run()) {
        fprintf(stderr, "snow-bench-gc: runtime failed\n");
        return 1;
    }
    return B.failed;
}
