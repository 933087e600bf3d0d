/*
 * alloc_census.c: an LD_PRELOAD library that counts the live malloc blocks
 * of a process by call site, for breaking a per-connection memory figure
 * down into the objects behind it.
 *
 *   LD_PRELOAD=build-release/bench/ws/libsnow-alloc-census.so snow-echo ...
 *   kill -USR2 PID    # appends a census to $ALLOC_CENSUS_OUT (default
 *                     # /tmp/alloc-census.PID)
 *
 * Each census line is "census SITE SIZE USABLE COUNT": live blocks made at
 * SITE (the caller's address relative to the executable's load address,
 * for addr2line -f -e EXE; "?" for a caller in a shared library) of SIZE
 * bytes asked for and USABLE bytes of malloc_usable_size. Two censuses (a
 * baseline and one with N idle connections) subtracted and divided by N
 * give what one connection holds. The wrappers call glibc's __libc_*
 * entry points, so they never recurse, and keep the table of live blocks
 * in a private mapping under a spin lock: slow, and meant only for that.
 */
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

#define SLOTS (1u << 22) /* live blocks tracked (open addressing) */

struct slot {
    uintptr_t p;     /* 0 empty, 1 deleted */
    uintptr_t site;
    size_t size;
};

static struct slot *tab;
static atomic_flag lock = ATOMIC_FLAG_INIT;
static uintptr_t exe_lo, exe_hi;

static void take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
        ;
}

static void drop(void)
{
    atomic_flag_clear_explicit(&lock, memory_order_release);
}

static size_t hash(uintptr_t p)
{
    return (size_t)((p >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> 42) & (SLOTS - 1);
}

static int find_exe(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    /* The first object is the executable. */
    exe_lo = info->dlpi_addr;
    uintptr_t hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD) {
            uintptr_t e = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr + info->dlpi_phdr[i].p_memsz;
            if (e > hi)
                hi = e;
        }
    exe_hi = hi;
    return 1;
}

static void add(void *p, size_t size, uintptr_t site)
{
    if (!p || !tab)
        return;
    take();
    for (size_t i = hash((uintptr_t)p);; i = (i + 1) & (SLOTS - 1))
        if (tab[i].p <= 1) {
            tab[i] = (struct slot){(uintptr_t)p, site, size};
            break;
        }
    drop();
}

static void del(void *p)
{
    if (!p || !tab)
        return;
    take();
    for (size_t i = hash((uintptr_t)p); tab[i].p; i = (i + 1) & (SLOTS - 1))
        if (tab[i].p == (uintptr_t)p) {
            tab[i].p = 1;
            break;
        }
    drop();
}

static int cmp(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    if (x->site != y->site)
        return x->site < y->site ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

static void dump(void)
{
    char path[128];
    const char *out = getenv("ALLOC_CENSUS_OUT");
    if (!out) {
        snprintf(path, sizeof path, "/tmp/alloc-census.%d", (int)getpid());
        out = path;
    }
    take();
    size_t n = 0;
    struct slot *v = mmap(NULL, SLOTS * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < SLOTS; i++)
        if (tab[i].p > 1)
            v[n++] = tab[i];
    for (size_t i = 0; i < n; i++)
        v[i].p = malloc_usable_size((void *)v[i].p); /* the block may go once the lock drops */
    drop();
    char line[160];
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    qsort(v, n, sizeof *v, cmp);
    int k = snprintf(line, sizeof line, "census begin live=%zu\n", n);
    (void)!write(fd, line, (size_t)k);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j].site == v[i].site && v[j].size == v[i].size)
            j++;
        uintptr_t s = v[i].site;
        size_t usable = v[i].p;
        if (s >= exe_lo && s < exe_hi)
            k = snprintf(line, sizeof line, "census 0x%lx %zu %zu %zu\n", (unsigned long)(s - exe_lo), v[i].size,
                         usable, j - i);
        else
            k = snprintf(line, sizeof line, "census ? %zu %zu %zu\n", v[i].size, usable, j - i);
        (void)!write(fd, line, (size_t)k);
        i = j;
    }
    k = snprintf(line, sizeof line, "census end\n");
    (void)!write(fd, line, (size_t)k);
    close(fd);
    munmap(v, SLOTS * sizeof *v);
}

/* Dumps on each SIGUSR2, from a thread of its own: a signal handler could
 * interrupt a thread that holds the table's lock. */
static void *dumper(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) == 0)
            dump();
    }
    return NULL;
}

__attribute__((constructor)) static void init(void)
{
    tab = mmap(NULL, SLOTS * sizeof *tab, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tab == MAP_FAILED)
        tab = NULL;
    dl_iterate_phdr(find_exe, NULL);
    /* Blocked in this thread, and so in every thread made after it. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    pthread_create(&t, NULL, dumper, &set);
}

#define SITE ((uintptr_t)__builtin_return_address(0))

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    add(p, n, SITE);
    return p;
}

void *calloc(size_t a, size_t b)
{
    void *p = __libc_calloc(a, b);
    add(p, a * b, SITE);
    return p;
}

void *realloc(void *old, size_t n)
{
    del(old);
    void *p = __libc_realloc(old, n);
    if (!p && old && n)
        add(old, malloc_usable_size(old), SITE);
    add(p, n, SITE);
    return p;
}

void free(void *p)
{
    del(p);
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = __libc_memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    add(p, n, SITE);
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    void *p = __libc_memalign(align, n);
    add(p, n, SITE);
    return p;
}
