/*
 * guard.h: places test input so that it ends right before a PROT_NONE page:
 * a parser or decoder that reads one byte past its input faults instead of
 * passing. Shared by the http and ws suites.
 */
#ifndef SNOW_TEST_GUARD_H
#define SNOW_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
    uint8_t *base;
    size_t usable; /* bytes before the guard page */
    size_t mapped;
};

static inline void guard_free(struct guard *g)
{
    if (g->base)
        munmap(g->base, g->mapped);
    g->base = NULL;
    g->usable = g->mapped = 0;
}

/* Copies p[0..n) so that it ends at the guard page (growing the mapping
 * when n does not fit) and returns where it starts. */
static inline void *guard_place(struct guard *g, const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (!g->base || n > g->usable) {
        guard_free(g);
        size_t usable = n ? (n + page - 1) / page * page : page;
        void *m = mmap(NULL, usable + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect((uint8_t *)m + usable, page, PROT_NONE))
            abort();
        g->base = m;
        g->usable = usable;
        g->mapped = usable + page;
    }
    uint8_t *dst = g->base + g->usable - n;
    if (n)
        memmove(dst, p, n);
    return dst;
}

#endif
