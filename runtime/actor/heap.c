/*
 * heap.c: the per-actor heap (allocation side) and message buffers.
 *
 * Objects live in size-class chunks or, when large, in mappings of their
 * own (layout in gc.h). Allocation takes the class's free list (rebuilt by
 * every sweep, in address order so that low chunks fill first and high ones
 * empty out), else a spare or new chunk whose slots all join the list. snow_gc_alloc collects first when the bytes handed out since
 * the last collection would take the heap past its threshold (gc.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "actor/gc.h"

#define PAGE 4096
#define CHUNK_HEADER ((sizeof(struct gc_chunk) + 15) & ~(size_t)15)

_Static_assert(sizeof(struct msg) % 16 == 0, "message payload stays 16-byte aligned");

/* ---- configuration ----------------------------------------------------- */

static struct gc_config config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* The size class of every block size up to GC_LARGE_BLOCK (by block / 16)
 * and the slot bytes of every class, so that the allocation fast path
 * looks both up instead of computing them. Filled with the configuration,
 * which every heap reads when it is created (space_new): no heap exists
 * before the tables do, and they are read-only after. */
static uint8_t class_by_block16[GC_LARGE_BLOCK / 16 + 1];
static uint16_t slot_by_class[GC_NCLASSES];

static uint32_t class_of(size_t block);
static size_t class_block(uint32_t cls);

static void config_read(void)
{
    config.min_threshold = (size_t)rt_env_long("SNOW_GC_MIN_KIB", GC_MIN_THRESHOLD / 1024, 16, 1L << 30) * 1024;
    config.debug_fill = rt_env_long("SNOW_GC_DEBUG", 0, 0, 1) == 1;
    for (size_t b = 32; b <= GC_LARGE_BLOCK; b += 16)
        class_by_block16[b / 16] = (uint8_t)class_of(b);
    for (uint32_t c = 0; c < GC_NCLASSES; c++)
        slot_by_class[c] = (uint16_t)class_block(c);
}

const struct gc_config *gc_config(void)
{
    pthread_once(&config_once, config_read);
    return &config;
}

/* ---- size classes -------------------------------------------------------- */

/* Blocks of 32..128 bytes in steps of 16, then four classes per doubling up
 * to GC_LARGE_BLOCK: at most 25% of a slot is lost to rounding. */
static uint32_t class_of(size_t block)
{
    if (block <= 128)
        return (uint32_t)(block >> 4) - 2;
    size_t b = block - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)b);
    return 7 + (e - 7) * 4 + (uint32_t)((b >> (e - 2)) & 3);
}

static size_t class_block(uint32_t cls)
{
    if (cls < 7)
        return ((size_t)cls + 2) << 4;
    uint32_t e = 7 + (cls - 7) / 4, q = (cls - 7) % 4;
    return ((size_t)4 + q + 1) << (e - 2);
}

size_t gc_block_size(size_t size)
{
    if (size > SIZE_MAX / 4)
        return 0;
    size_t payload = size < 16 ? 16 : (size + 15) & ~(size_t)15;
    return sizeof(struct gc_obj) + payload;
}

/* ---- chunks --------------------------------------------------------------- */

static int index_insert(struct heap_space *sp, struct gc_chunk *c)
{
    if (!sp->cap) {
        sp->index = sp->index_inline;
        sp->cap = RT_ARRAY_LEN(sp->index_inline);
    }
    if (sp->n == sp->cap) {
        uint32_t cap = sp->cap * 2;
        struct gc_chunk **v = sp->index == sp->index_inline ? malloc(cap * sizeof *v)
                                                            : realloc(sp->index, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        if (sp->index == sp->index_inline)
            memcpy(v, sp->index_inline, sizeof sp->index_inline);
        sp->index = v;
        sp->cap = cap;
    }
    uint32_t lo = 0, hi = sp->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (sp->index[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(sp->index + lo + 1, sp->index + lo, (sp->n - lo) * sizeof *sp->index);
    sp->index[lo] = c;
    sp->n++;
    uintptr_t b = (uintptr_t)c, e = (uintptr_t)c->end;
    if (sp->n == 1 || b < sp->lo)
        sp->lo = b;
    if (sp->n == 1 || e > sp->hi)
        sp->hi = e;
    return 0;
}

static void chunk_init(struct gc_chunk *c, uint32_t cls, size_t slot)
{
    c->cls = cls;
    c->slot = slot;
    c->slot_inv = cls == GC_CLASS_LARGE ? 0 : gc_slot_inv(slot);
    c->data = (char *)c + CHUNK_HEADER;
    c->limit = c->data;
    c->end = (char *)c + c->map_size;
    c->next = NULL;
}

struct gc_chunk *gc_chunk_new(struct heap_space *sp, uint32_t cls, size_t block)
{
    struct gc_chunk *c;
    if (cls != GC_CLASS_LARGE && sp->spare) {
        /* A spare is already in the index and counted in mapped. */
        c = sp->spare;
        sp->spare = c->next;
        chunk_init(c, cls, block);
        return c;
    }
    size_t map;
    void *p;
    bool small = cls != GC_CLASS_LARGE && sp->mapped < GC_CHUNK_SIZE / 2;
    if (small) {
        size_t want = sp->mapped < GC_FIRST_CHUNK ? GC_FIRST_CHUNK : sp->mapped;
        map = CHUNK_HEADER + block > want ? CHUNK_HEADER + block : want;
        map = (map + 15) & ~(size_t)15;
        if (!(p = malloc(map)))
            return NULL;
    } else {
        map = cls == GC_CLASS_LARGE ? (CHUNK_HEADER + block + PAGE - 1) & ~(size_t)(PAGE - 1) : GC_CHUNK_SIZE;
        /* Accounted (no MAP_NORESERVE): an absurd size fails here, as
         * "memory exhausted", instead of at the first touch. */
        p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
    }
    c = p;
    c->map_size = map;
    c->malloced = small;
    chunk_init(c, cls, block);
    if (index_insert(sp, c)) {
        if (small)
            free(p);
        else
            munmap(p, map);
        return NULL;
    }
    sp->mapped += map;
    POISON(c->data, (size_t)(c->end - c->data));
    return c;
}

/* Unmaps or frees c; the caller takes it out of the index. */
void gc_chunk_release(struct heap_space *sp, struct gc_chunk *c)
{
    sp->mapped -= c->map_size;
    /* Unpoison first: the memory may be handed out again by anything. */
    UNPOISON(c, c->map_size);
    if (c->malloced)
        free(c);
    else
        munmap(c, c->map_size);
}

/* ---- allocation ----------------------------------------------------------- */

static struct heap_space *space_new(void)
{
    struct heap_space *sp = calloc(1, sizeof *sp);
    if (sp) {
        sp->next_gc = gc_config()->min_threshold;
        sp->hib_allocated = UINT64_MAX;
    }
    return sp;
}

int gc_free_lists(struct heap_space *sp)
{
    if (sp->free)
        return 0;
    struct gc_obj **f = calloc(GC_NCLASSES, sizeof *f);
    if (!f)
        return -ENOMEM;
    struct gc_obj *tail[GC_NCLASSES] = {0};
    for (uint32_t i = 0; i < sp->n; i++) {
        struct gc_chunk *c = sp->index[i];
        if (c->cls == GC_CLASS_LARGE)
            continue;
        for (char *p = c->data; p < c->limit; p += c->slot) {
            struct gc_obj *o = (struct gc_obj *)p;
            if (o->flags)
                continue;
            o->next = NULL;
            if (tail[c->cls])
                tail[c->cls]->next = o;
            else
                f[c->cls] = o;
            tail[c->cls] = o;
        }
    }
    sp->free = f;
    return 0;
}

/* Puts every slot of a new (or reused spare) chunk onto the class's free
 * list, which is empty when this is called. */
static void thread_slots(struct heap_space *sp, struct gc_chunk *c)
{
    size_t n = (size_t)(c->end - c->data) / c->slot;
    struct gc_obj **link = &sp->free[c->cls];
    for (size_t i = 0; i < n; i++) {
        struct gc_obj *o = (struct gc_obj *)(c->data + i * c->slot);
        UNPOISON(o, sizeof *o);
        o->flags = 0;
        *link = o;
        link = &o->next;
    }
    *link = NULL;
    c->limit = c->data + n * c->slot;
}

/* A slot of class cls (slot bytes each) from the free list, else from a
 * spare or new chunk. */
static struct gc_obj *take_slot(struct heap_space *sp, uint32_t cls, size_t slot)
{
    if (RT_UNLIKELY(!sp->free) && gc_free_lists(sp) < 0)
        return NULL;
    struct gc_obj *o = sp->free[cls];
    if (RT_UNLIKELY(!o)) {
        struct gc_chunk *c = gc_chunk_new(sp, cls, slot);
        if (!c)
            return NULL;
        thread_slots(sp, c);
        o = sp->free[cls];
    }
    sp->free[cls] = o->next;
    return o;
}

static struct gc_obj *take_large(struct heap_space *sp, size_t block)
{
    struct gc_chunk *c = gc_chunk_new(sp, GC_CLASS_LARGE, block);
    if (!c)
        return NULL;
    c->limit = c->data + block;
    UNPOISON(c->data, sizeof(struct gc_obj));
    return (struct gc_obj *)c->data;
}

/* Zeroes the payload of a slot for size bytes. Small payloads (most
 * objects compiled code makes) take inlined 16-byte stores instead of a
 * call: a slot's payload is size rounded up to 16 bytes (gc_block_size),
 * so the stores stay inside it. Under ASan exactly size bytes, the part
 * that was unpoisoned. */
static inline void zero_payload(char *p, size_t size)
{
#ifndef RT_ASAN
    if (size <= 64) {
        __builtin_memset(p, 0, 16);
        if (size > 16)
            __builtin_memset(p + 16, 0, 16);
        if (size > 32)
            __builtin_memset(p + 32, 0, 16);
        if (size > 48)
            __builtin_memset(p + 48, 0, 16);
        return;
    }
#endif
    memset(p, 0, size);
}

/* zeroed: the payload comes straight from mmap (a large object), so it is
 * zero already and its pages need not be touched. */
static inline void *init_object(struct heap_space *sp, struct gc_obj *o, size_t size, size_t slot, bool zeroed)
{
    sp->used += slot;
    UNPOISON(o + 1, size);
    o->size = size;
    o->flags = GC_ALLOC;
    if (!zeroed)
        zero_payload((char *)(o + 1), size);
    return o + 1;
}

void *heap_alloc(struct heap *h, size_t size)
{
    size_t block = gc_block_size(size);
    if (!block)
        return NULL;
    if (!h->space && !(h->space = space_new()))
        return NULL;
    struct heap_space *sp = h->space;
    struct gc_obj *o;
    size_t slot;
    if (block > GC_LARGE_BLOCK) {
        slot = block;
        o = take_large(sp, block);
    } else {
        uint32_t cls = class_of(block);
        slot = class_block(cls);
        o = take_slot(sp, cls, slot);
    }
    return o ? init_object(sp, o, size, slot, block > GC_LARGE_BLOCK) : NULL;
}

void heap_free_all(struct heap *h)
{
    struct heap_space *sp = h->space;
    if (sp) {
        for (uint32_t i = 0; i < sp->n; i++)
            gc_chunk_release(sp, sp->index[i]);
        if (sp->index != sp->index_inline)
            free(sp->index);
        free(sp->roots);
        free(sp->gray);
        free(sp->free);
        free(sp);
    }
    msg_free_list(h->kept);
    memset(h, 0, sizeof *h);
}

/* Everything but a free-list hit below the threshold: collect when due,
 * then allocate from a chunk's tail, a new chunk or a large mapping. */
static RT_NOINLINE void *alloc_slow(struct actor *a, size_t size)
{
    struct heap_space *sp = a->heap.space;
    size_t block = gc_block_size(size);
    if (sp && block && !sp->collecting) {
        size_t slot = block > GC_LARGE_BLOCK ? block : class_block(class_of(block));
        if (sp->used + slot > sp->next_gc)
            snow_gc_collect();
    }
    return heap_alloc(&a->heap, size);
}

void *snow_gc_alloc(size_t size)
{
    struct actor *a = actor_self();
    if (!a)
        return NULL;
    struct heap_space *sp = a->heap.space;
    /* The fast path: a free slot of the class, below the threshold. One
     * compare covers every size that has a class (the block of size
     * bytes is at most GC_LARGE_BLOCK), and the class and its slot bytes
     * are looked up by block / 16 (gc_block_size without the overflow
     * check, which no size this small needs). */
    if (RT_LIKELY(sp && sp->free && size <= GC_LARGE_BLOCK - sizeof(struct gc_obj))) {
        uint32_t cls = class_by_block16[size < 16 ? 2 : (size + sizeof(struct gc_obj) + 15) / 16];
        size_t slot = slot_by_class[cls];
        struct gc_obj *o = sp->free[cls];
        if (RT_LIKELY(o && sp->used + slot <= sp->next_gc)) {
            sp->free[cls] = o->next;
            return init_object(sp, o, size, slot, false);
        }
    }
    return alloc_slow(a, size);
}

/* ---- messages --------------------------------------------------------------
 *
 * Every message is one buffer, allocated by the sender and freed by the
 * receiver after its next receive. Small ones (up to MSG_SMALL payload
 * bytes, which covers the runtime's own signals and most user messages)
 * come from a per-worker cache, so a send and a receive on a worker cost
 * no malloc/free. The sender and the receiver are often on different
 * workers (a child reporting to its parent), which would fill one cache
 * and empty the other: whole batches move between a worker's cache and a
 * shared pool, a pointer each (magazine.c), and only beyond the pool's
 * bound does a buffer go back to free. A worker keeps up to 256 buffers,
 * the pool 4,096. */
static const struct mag_kind msg_kind = {
    .link = offsetof(struct msg, next),
    .batch = 128,
    .pool_max = 32,
};
#define MSG_SMALL_BYTES (sizeof(struct msg) + MSG_SMALL)

static struct msg *msg_small_take(void)
{
    struct worker *w = worker_self();
    struct msg *m = w ? mag_take(&w->msg_cache, &rt.msg_pool, &msg_kind) : NULL;
    return m ? m : malloc(MSG_SMALL_BYTES);
}

static void msg_small_put(struct msg *m)
{
    struct worker *w = worker_self();
    if (!w) {
        free(m);
        return;
    }
    void *spill = mag_put(&w->msg_cache, &rt.msg_pool, &msg_kind, m);
    if (spill)
        mag_free_chain(&msg_kind, spill, free);
}

struct msg *msg_new(uint64_t tag, SnowPid from, const void *data, size_t len)
{
    if (len > SIZE_MAX - sizeof(struct msg))
        return NULL;
    bool small = len <= MSG_SMALL;
    struct msg *m = small ? msg_small_take() : malloc(sizeof *m + len);
    if (!m)
        return NULL;
    m->m.tag = tag;
    m->m.from = from;
    m->m.len = len;
    m->m.data = (unsigned char *)(m + 1);
    m->next = NULL;
    m->small = small;
    m->backlog = 0;
    if (len)
        memcpy(m + 1, data, len);
    return m;
}

void msg_free(struct msg *m)
{
    if (!m)
        return;
    if (m->small)
        msg_small_put(m);
    else
        free(m);
}

void msg_free_list(struct msg *m)
{
    while (m) {
        struct msg *n = m->next;
        msg_free(m);
        m = n;
    }
}

/* At teardown, after the workers stopped. */
void msg_cache_fini(void)
{
    for (int i = 0; i < rt.nworkers; i++)
        mag_fini(&rt.workers[i].msg_cache, &msg_kind, free);
    mag_pool_fini(&rt.msg_pool, &msg_kind, free);
}
