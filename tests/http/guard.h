/*
 * guard.h: places test input right before a PROT_NONE page, so that a parser
 * reading one byte past the end of its input faults instead of passing.
 */
#ifndef SNOW_TEST_GUARD_H
#define SNOW_TEST_GUARD_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
    char *base;
    size_t size; /* usable bytes before the guard page */
};

static inline void guard_init(struct guard *g, size_t max)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t usable = (max + pg - 1) / pg * pg;
    if (usable == 0)
        usable = pg;
    char *p = mmap(NULL, usable + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    mprotect(p + usable, pg, PROT_NONE);
    g->base = p;
    g->size = usable;
}

/* Copies s[0..n) so that it ends at the guard page; returns its start. */
static inline char *guard_put(struct guard *g, const void *s, size_t n)
{
    if (n > g->size)
        abort();
    char *dst = g->base + g->size - n;
    memmove(dst, s, n);
    return dst;
}

static inline void guard_fini(struct guard *g)
{
    munmap(g->base, g->size + (size_t)sysconf(_SC_PAGESIZE));
}

#endif
