/* Helpers shared by the collector's test files (test_gc.c, test_gc_memory.c). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gc_util.h"

struct gc_results res;

void res_reset(void)
{
    atomic_store(&res.ok, 0);
    atomic_store(&res.bad, 0);
    atomic_store(&res.a, 0);
    atomic_store(&res.b, 0);
    atomic_store(&res.c, 0);
}

void check(int cond)
{
    atomic_fetch_add(cond ? &res.ok : &res.bad, 1);
}

SnowGcStats stats(void)
{
    SnowGcStats st;
    ck_assert_int_eq(snow_gc_stats(&st), 0);
    return st;
}

/* Fills n bytes at p with a pattern that depends on seed. */
void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131u + i * 7u + 1u);
}

int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 131u + i * 7u + 1u))
            return 0;
    return 1;
}

/* Garbage of the sizes the tests use, so that a slot freed by mistake is
 * handed out again (and zeroed) at once. */
RT_NOINLINE int churn(void)
{
    static const size_t sizes[] = {8, 24, 100, 1000, 3000, 20000};
    for (size_t i = 0; i < RT_ARRAY_LEN(sizes); i++)
        for (int k = 0; k < 4; k++)
            memset(snow_gc_alloc(sizes[i]), 0x5A, sizes[i]);
    return snow_gc_collect();
}

long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long size, res_pages;
    if (sscanf(buf, "%ld %ld", &size, &res_pages) != 2)
        return -1;
    return res_pages * (sysconf(_SC_PAGESIZE) / 1024);
}

RT_NOINLINE struct node *make_list(int n)
{
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *nd = snow_gc_alloc(sizeof *nd);
        nd->seed = (unsigned)i;
        nd->len = 1 + (size_t)(i * 53) % 12000;
        nd->data = snow_gc_alloc(nd->len);
        fill(nd->data, nd->len, nd->seed);
        nd->next = head;
        head = nd;
    }
    return head;
}

int list_intact(const struct node *nd, int n)
{
    int got = 0;
    for (; nd; nd = nd->next, got++)
        if (nd->seed != (unsigned)(n - 1 - got) || !intact(nd->data, nd->len, nd->seed))
            return 0;
    return got == n;
}
