/*
 * gc.h: the layout of an actor's heap, shared by the allocator (heap.c) and
 * the collector (gc.c) only.
 *
 * The heap is a set of chunks:
 *   - a small-object chunk holds slots of one size class back to back after
 *     its header, so a word that points anywhere into a slot finds the
 *     slot's start with one division. It is a private mapping of
 *     GC_CHUNK_SIZE bytes, except while the whole heap is below
 *     GC_CHUNK_SIZE / 2: then chunks come from malloc, starting at
 *     GC_FIRST_CHUNK bytes and doubling with the heap, so that the many
 *     actors that allocate little (a spawn argument, a small state) cost
 *     neither a system call nor a page each (nor a 64 KiB chunk per class);
 *   - a large object (a block above GC_LARGE_BLOCK bytes, that is more than
 *     8176 bytes asked for) gets a mapping of its own, unmapped when it dies.
 * Every slot starts with a 16-byte object header: the size asked for and a
 * flags word carrying the allocated and mark bits. A free slot reuses the
 * first header word as its free-list link. A new chunk's slots all go onto
 * its class's free list at once (so the heap needs no per-class bump
 * state); [data, limit) are the slots, limit == data for an empty spare.
 *
 * Every chunk of the heap is in `index`, sorted by address, which is how a
 * conservative root (any word) is mapped to its chunk, and how a word that
 * points into another actor's heap is told apart and ignored.
 */
#ifndef SNOW_ACTOR_GC_H
#define SNOW_ACTOR_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/internal.h"

/* Heap memory that is not an object is poisoned under ASan. */
#ifdef RT_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GC_CHUNK_SIZE (64 * 1024)
#define GC_FIRST_CHUNK 128
#define GC_LARGE_BLOCK 8192
#define GC_NCLASSES 31
#define GC_CLASS_LARGE 0xFFFFu
/* Default floor of the collection threshold (SNOW_GC_MIN_KIB overrides). */
#define GC_MIN_THRESHOLD (256 * 1024)
/* The pattern swept objects are filled with when SNOW_GC_DEBUG=1. */
#define GC_DEBUG_FILL 0xDB

enum { GC_ALLOC = 1u << 0, GC_MARK = 1u << 1 };

struct gc_obj {
    union {
        uint64_t size;       /* allocated: bytes asked for */
        struct gc_obj *next; /* free: next free slot of the class */
    };
    uint64_t flags;          /* GC_ALLOC, GC_MARK; 0 when free */
};

struct gc_chunk {
    char *data;      /* first slot (16-byte aligned) */
    char *limit;     /* end of the slots */
    char *end;       /* end of the mapping */
    size_t map_size; /* bytes of the chunk, this header included */
    size_t slot;     /* bytes per slot (large: the whole block) */
    struct gc_chunk *next; /* spare list */
    uint32_t cls;    /* size class, or GC_CLASS_LARGE */
    uint32_t malloced; /* from malloc, not mmap: freed when empty, never a spare */
    /* floor(2^32 / slot) + 1: the marker finds a slot's index as
     * (off * slot_inv) >> 32 instead of dividing (gc_slot_index). */
    uint32_t slot_inv;
    uint32_t pad_;
};

_Static_assert(sizeof(struct gc_obj) == 16, "object header is 16 bytes");
_Static_assert(sizeof(struct gc_chunk) % 16 == 0, "slots stay 16-byte aligned");

struct heap_space {
    struct gc_chunk **index; /* every chunk and large object, by address */
    uint32_t n, cap;
    uintptr_t lo, hi;        /* bounds of everything in index: fast rejection */
    struct gc_chunk *index_inline[2];  /* index while the heap has at most two chunks */
    /* GC_NCLASSES heads of the free slots per class, in address order, in
     * a block of their own: NULL after a hibernation collection, so an
     * idle actor keeps no per-class table, and rebuilt from the chunks'
     * free slots (gc_free_lists) by the next allocation. */
    struct gc_obj **free;
    struct gc_chunk *spare;  /* empty chunks kept for reuse (below the threshold) */
    size_t mapped;           /* bytes of all chunks, spares and large objects */
    size_t used;             /* slot bytes handed out and not yet swept */
    size_t live;             /* slot bytes that survived the last collection */
    size_t next_gc;          /* collect when used would pass this */
    uint64_t collections;
    uint64_t pause_ns;
    /* Slot bytes ever handed out, less used: the allocation fast path adds
     * to used only, and a sweep moves what it takes out of used here
     * (gc_allocated). */
    uint64_t allocated;
    /* gc_allocated at the end of the last hibernation collection: while it
     * is unchanged nothing was allocated since, and a hibernation
     * collection has nothing to gain. UINT64_MAX: none yet. */
    uint64_t hib_allocated;
    struct gc_obj **gray;    /* the collector's mark stack, reused */
    /* Entries of gray: at most GRAY_KEEP (gc.c) are kept between
     * collections, so 32 bits hold it, and it shares a word with the flag. */
    uint32_t gray_cap;
    bool collecting;
    void ***roots;           /* actor_gc_root_add slots */
    uint32_t nroots, roots_cap;
};

/* Slot bytes ever handed out by the heap. */
static inline uint64_t gc_allocated(const struct heap_space *sp)
{
    return sp->allocated + sp->used;
}

/* The reciprocal for gc_slot_index. */
static inline uint32_t gc_slot_inv(size_t slot)
{
    return (uint32_t)((UINT64_C(1) << 32) / slot) + 1;
}

/* off / slot for a byte offset into a small-object chunk. With
 * m = floor(2^32 / slot) + 1, m * slot = 2^32 + e for some 0 < e <= slot,
 * and (off * m) >> 32 equals off / slot exactly while off * e < 2^32: a
 * small-object chunk is under 2^16 bytes and a slot at most
 * GC_LARGE_BLOCK = 2^13, so off * e < 2^29. */
static inline size_t gc_slot_index(const struct gc_chunk *c, size_t off)
{
    return (size_t)(((uint64_t)off * c->slot_inv) >> 32);
}

_Static_assert(GC_CHUNK_SIZE <= (1 << 16) && GC_LARGE_BLOCK <= (1 << 13), "gc_slot_index stays exact");

struct gc_config {
    size_t min_threshold;
    bool debug_fill;
};

/* Read once from the environment. */
const struct gc_config *gc_config(void);

/* Maps a chunk and inserts it in the index; releases one. */
struct gc_chunk *gc_chunk_new(struct heap_space *sp, uint32_t cls, size_t block);
void gc_chunk_release(struct heap_space *sp, struct gc_chunk *c);
/* Makes sp->free when it is NULL: every free slot (flags 0) of every
 * small-object chunk, per class, in address order, as a sweep leaves
 * them. 0 or -ENOMEM. */
int gc_free_lists(struct heap_space *sp);
/* Slot bytes of a block holding size bytes; 0 when size is too large. */
size_t gc_block_size(size_t size);


#endif
