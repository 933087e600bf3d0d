/*
 * heap.c: the per-actor heap and message buffers.
 *
 * An actor's heap is a list of chunks it bump-allocates from; all of it is
 * released when the actor exits. Every object carries a 16-byte header (its
 * size and a word of flags) and objects lie back to back inside a chunk, so
 * a later conservative mark-sweep can walk a chunk object by object, map a
 * stack word to its chunk by address range, and keep mark bits in the flags
 * word without changing the layout. Large objects get a chunk of their own.
 */
#include <stdlib.h>
#include <string.h>

#include "actor/internal.h"

#define FIRST_CHUNK 256
#define MAX_CHUNK (32 * 1024)
#define LARGE_OBJECT (4 * 1024)

struct heap_chunk {
    struct heap_chunk *next;
    size_t size; /* bytes of data after this header */
};

struct heap_obj {
    uint64_t size;
    uint64_t flags; /* reserved for the collector's mark bits */
};

_Static_assert(sizeof(struct heap_chunk) % 16 == 0, "chunk header keeps 16-byte alignment");
_Static_assert(sizeof(struct heap_obj) == 16, "object header keeps 16-byte alignment");
_Static_assert(sizeof(struct msg) % 16 == 0, "message payload stays 16-byte aligned");

static struct heap_chunk *chunk_new(size_t data)
{
    struct heap_chunk *c = malloc(sizeof *c + data);
    if (c)
        c->size = data;
    return c;
}

void *heap_alloc(struct heap *h, size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t need = sizeof(struct heap_obj) + ((size + 15) & ~(size_t)15);
    struct heap_obj *o;
    if (need > LARGE_OBJECT) {
        struct heap_chunk *c = chunk_new(need);
        if (!c)
            return NULL;
        /* Behind the current bump chunk, so the bump chunk stays first. */
        if (h->chunks) {
            c->next = h->chunks->next;
            h->chunks->next = c;
        } else {
            c->next = NULL;
            h->chunks = c;
            h->bump = h->end = (char *)(c + 1) + need;
        }
        o = (struct heap_obj *)(c + 1);
    } else {
        if ((size_t)(h->end - h->bump) < need) {
            size_t prev = h->chunks ? h->chunks->size : FIRST_CHUNK / 2;
            size_t sz = prev * 2 > MAX_CHUNK ? MAX_CHUNK : prev * 2;
            if (sz < need)
                sz = need;
            struct heap_chunk *c = chunk_new(sz);
            if (!c)
                return NULL;
            c->next = h->chunks;
            h->chunks = c;
            h->bump = (char *)(c + 1);
            h->end = h->bump + sz;
        }
        o = (struct heap_obj *)h->bump;
        h->bump += need;
    }
    o->size = size;
    o->flags = 0;
    memset(o + 1, 0, size);
    return o + 1;
}

void heap_free_all(struct heap *h)
{
    for (struct heap_chunk *c = h->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    msg_free_list(h->kept);
    memset(h, 0, sizeof *h);
}

void *snow_gc_alloc(size_t size)
{
    struct actor *a = actor_self();
    if (!a)
        return NULL;
    return heap_alloc(&a->heap, size);
}

struct msg *msg_new(uint64_t tag, SnowPid from, const void *data, size_t len)
{
    if (len > SIZE_MAX - sizeof(struct msg))
        return NULL;
    struct msg *m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    m->m.tag = tag;
    m->m.from = from;
    m->m.len = len;
    m->m.data = (unsigned char *)(m + 1);
    m->next = NULL;
    if (len)
        memcpy(m + 1, data, len);
    return m;
}

void msg_free_list(struct msg *m)
{
    while (m) {
        struct msg *n = m->next;
        free(m);
        m = n;
    }
}
