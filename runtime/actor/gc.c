/*
 * gc.c: conservative mark-sweep of one actor's heap, run by that actor on
 * its own stack. Nothing else ever touches the heap, so there is no
 * locking and no pause of any other actor.
 *
 * Roots, each scanned word by word as possible pointers:
 *   - the coroutine stack from the frame that called snow_gc_collect up to
 *     the stack's top, and the callee-saved registers (rbx, rbp, r12-r15)
 *     as that caller left them (see snow_gc_collect below). Not on
 *     hibernation: the stack is being given up.
 *   - a->arg (the spawn argument copy, or the hibernation continuation's
 *     argument) and the terminate callback's argument; a small spawn
 *     argument lives in the actor record (a->arg_inline), whose words are
 *     scanned while either points into it;
 *   - the payloads of kept messages (snow_msg_keep) and of the message
 *     handed out by the last receive;
 *   - the slots registered with actor_gc_root_add.
 * A word keeps an object alive when it points anywhere inside the object
 * (header included): compiled code may hold interior pointers only.
 * Everything else (malloc'd memory, other actors, message queues, globals)
 * is not scanned; see "Ownership" in compiler-abi/snow_rt.h.
 *
 * With ASan, a function's locals may live in a "fake stack" frame instead
 * of the coroutine stack (detect_stack_use_after_return=1). The real stack
 * (or a saved register) then holds the fake frame's address, so every word
 * of the stack and the registers that points into the current fake stack
 * has that whole fake frame scanned too.
 *
 * The sweep walks every chunk: unmarked objects are freed (poisoned for
 * ASan, filled with GC_DEBUG_FILL when SNOW_GC_DEBUG=1), free slots are
 * threaded onto the class free lists in address order (a hibernation
 * collection drops the lists' table instead: see gc.h), dead large objects
 * are unmapped, and chunks left empty are unmapped too, except for spares
 * kept while the heap stays below its next threshold (all go on
 * hibernation). The next collection comes when the bytes handed out reach
 * max(2 x live, SNOW_GC_MIN_KIB).
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "actor/gc.h"

/* The collector reads stack memory that ASan guards (redzones between
 * locals) and words of any value: never instrumented. That includes words
 * other threads may update at the same time (an atomic counter in an
 * object of the heap that other actors read): a conservative scan only
 * asks whether a word looks like a pointer into this heap, and such
 * counters are never pointers, so ThreadSanitizer is told to skip these
 * reads too. */
#define NO_ASAN __attribute__((no_sanitize_address, no_sanitize("thread")))

/* Gray stack kept between collections up to this many entries (32 KiB). */
#define GRAY_KEEP 4096

struct marker {
    struct heap_space *sp;
    struct gc_obj **v; /* gray objects: marked, payload not scanned yet */
    size_t n, cap;
    bool overflow;     /* a push failed: rescan marked objects at the end */
    void *fake;        /* ASan fake stack of this coroutine, or NULL */
    struct gc_chunk *hit; /* chunk of the last hit: neighbours point near */
};

static struct gc_chunk *chunk_of(const struct heap_space *sp, uintptr_t w)
{
    uint32_t lo = 0, hi = sp->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if ((uintptr_t)sp->index[mid] <= w)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return NULL;
    struct gc_chunk *c = sp->index[lo - 1];
    return w < (uintptr_t)c->limit ? c : NULL;
}

static void push(struct marker *m, struct gc_obj *o)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        struct gc_obj **v = realloc(m->v, cap * sizeof *v);
        if (!v) {
            m->overflow = true;
            return;
        }
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = o;
}

/* A word inside [sp->lo, sp->hi): marks and pushes the object it points
 * into, if any. Kept out of line: most scanned words are not pointers into
 * the heap, and the scanning loops reject those with one compare. */
static RT_NOINLINE NO_ASAN void mark_near(struct marker *m, uintptr_t w)
{
    struct heap_space *sp = m->sp;
    struct gc_chunk *c = m->hit;
    if (!c || w < (uintptr_t)c->data || w >= (uintptr_t)c->limit) {
        c = chunk_of(sp, w);
        if (!c || w < (uintptr_t)c->data)
            return;
        m->hit = c;
    }
    uintptr_t off = w - (uintptr_t)c->data;
    struct gc_obj *o =
        (struct gc_obj *)(c->data + (c->cls == GC_CLASS_LARGE ? 0 : gc_slot_index(c, off) * c->slot));
    if ((o->flags & (GC_ALLOC | GC_MARK)) != GC_ALLOC)
        return;
    o->flags |= GC_MARK;
    push(m, o);
}

static inline NO_ASAN void mark_word(struct marker *m, uintptr_t w)
{
    if (w - m->sp->lo < m->sp->hi - m->sp->lo)
        mark_near(m, w);
}

static NO_ASAN void scan_range(struct marker *m, const void *lo, const void *hi)
{
    uintptr_t a = ((uintptr_t)lo + 7) & ~(uintptr_t)7;
    /* The heap's bounds do not change while marking (nothing is mapped or
     * released before the sweep): read once for the loop. */
    uintptr_t base = m->sp->lo, span = m->sp->hi - m->sp->lo;
    for (const uintptr_t *p = (const uintptr_t *)a; (const void *)(p + 1) <= hi; p++) {
        uintptr_t w = *p;
        if (w - base < span)
            mark_near(m, w);
    }
}

/* Stack words and registers: as scan_range, plus the ASan fake frames they
 * point to (not recursively: a fake frame's own address sits in the real
 * frame of the function that owns it). */
static NO_ASAN void scan_stack_range(struct marker *m, const void *lo, const void *hi)
{
    uintptr_t a = ((uintptr_t)lo + 7) & ~(uintptr_t)7;
    for (const uintptr_t *p = (const uintptr_t *)a; (const void *)(p + 1) <= hi; p++) {
        mark_word(m, *p);
#ifdef RT_ASAN
        void *beg, *end;
        if (m->fake && __asan_addr_is_in_fake_stack(m->fake, (void *)*p, &beg, &end))
            scan_range(m, beg, end);
#endif
    }
}

static NO_ASAN void scan_object(struct marker *m, struct gc_obj *o)
{
    scan_range(m, o + 1, (const char *)(o + 1) + (o->size & ~(uint64_t)7));
}

static void drain(struct marker *m)
{
    for (;;) {
        while (m->n)
            scan_object(m, m->v[--m->n]);
        if (!m->overflow)
            return;
        /* Some marked objects never made it onto the gray stack: scan every
         * marked object again until no push fails. */
        m->overflow = false;
        for (uint32_t i = 0; i < m->sp->n; i++) {
            struct gc_chunk *c = m->sp->index[i];
            for (char *s = c->data; s < c->limit; s += c->slot) {
                struct gc_obj *o = (struct gc_obj *)s;
                if (o->flags & GC_MARK) {
                    scan_object(m, o);
                    while (m->n)
                        scan_object(m, m->v[--m->n]);
                }
            }
        }
    }
}

/* True when p points into the actor's inline spawn argument, which then
 * is a root as a heap-allocated argument would be. */
static bool in_arg_inline(const struct actor *a, const void *p)
{
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->arg_inline;
    return u >= lo && u < lo + sizeof a->arg_inline;
}

static void mark_roots(struct marker *m, struct actor *a)
{
    struct heap_space *sp = m->sp;
    mark_word(m, (uintptr_t)a->arg);
    mark_word(m, (uintptr_t)a->term_arg);
    if (in_arg_inline(a, a->arg) || in_arg_inline(a, a->term_arg))
        scan_range(m, a->arg_inline, a->arg_inline + sizeof a->arg_inline);
    for (struct msg *k = a->heap.kept; k; k = k->next)
        scan_range(m, k->m.data, k->m.data + k->m.len);
    if (a->last)
        scan_range(m, a->last->m.data, a->last->m.data + a->last->m.len);
    for (uint32_t i = 0; i < sp->nroots; i++)
        mark_word(m, (uintptr_t)*sp->roots[i]);
}

/* ---- sweep ------------------------------------------------------------------ */

static inline void free_object(struct gc_obj *o, size_t slot, bool debug)
{
    size_t n = slot - sizeof *o;
    if (debug) {
        UNPOISON(o + 1, n);
        memset(o + 1, GC_DEBUG_FILL, n);
    }
    POISON(o + 1, n);
    o->flags = 0;
}

static void sweep(struct heap_space *sp, bool hibernating)
{
    bool debug = gc_config()->debug_fill;
    struct gc_obj *heads[GC_NCLASSES], *tail[GC_NCLASSES];
    for (int i = 0; i < GC_NCLASSES; i++) {
        heads[i] = NULL;
        tail[i] = NULL;
    }
    size_t live = 0;
    uint32_t j = 0;
    for (uint32_t i = 0; i < sp->n; i++) {
        struct gc_chunk *c = sp->index[i];
        if (c->cls == GC_CLASS_LARGE) {
            struct gc_obj *o = (struct gc_obj *)c->data;
            if (o->flags & GC_MARK) {
                o->flags = GC_ALLOC;
                live += c->slot;
                sp->index[j++] = c;
            } else {
                gc_chunk_release(sp, c);
            }
            continue;
        }
        /* Each free slot is linked with one store, into the previous
         * one's link word (or head), and the list ends once, after the
         * loop. */
        struct gc_obj *head = NULL, *last = NULL;
        struct gc_obj **link = &head;
        size_t here = 0, slot = c->slot;
        for (char *s = c->data, *lim = c->limit; s < lim; s += slot) {
            struct gc_obj *o = (struct gc_obj *)s;
            uint64_t f = o->flags;
            if (f & GC_MARK) {
                o->flags = GC_ALLOC;
                here++;
                continue;
            }
            if (f & GC_ALLOC)
                free_object(o, slot, debug);
            *link = o;
            link = &o->next;
            last = o;
        }
        *link = NULL;
        sp->index[j++] = c;
        if (!here) {
            /* Empty: no slots, kept as a spare or released below. */
            c->limit = c->data;
            if (debug) {
                UNPOISON(c->data, (size_t)(c->end - c->data));
                memset(c->data, GC_DEBUG_FILL, (size_t)(c->end - c->data));
            }
            POISON(c->data, (size_t)(c->end - c->data));
            continue;
        }
        live += here * c->slot;
        if (tail[c->cls])
            tail[c->cls]->next = head;
        else
            heads[c->cls] = head;
        if (last)
            tail[c->cls] = last;
    }
    sp->n = j;
    /* Going idle: no table (the next allocation rebuilds it from the free
     * slots, which are exactly these lists). Else the lists, or NULL
     * without memory for the table, which comes to the same. */
    if (hibernating) {
        free(sp->free);
        sp->free = NULL;
    } else if (sp->free || (sp->free = calloc(GC_NCLASSES, sizeof *sp->free))) {
        memcpy(sp->free, heads, sizeof heads);
    }
    sp->allocated = gc_allocated(sp) - live;
    sp->live = sp->used = live;
    size_t twice = live * 2, floor = gc_config()->min_threshold;
    sp->next_gc = twice > floor ? twice : floor;

    /* Empty chunks: keep as spares what the next cycle will fill anyway
     * (heap bytes up to 1.5 x next_gc: slots are handed out up to next_gc,
     * and partly used chunks and rounding take more); return the rest to
     * the system. Keeping too few would map and fault in fresh pages on
     * every cycle of a steady heap. */
    size_t budget = sp->next_gc + sp->next_gc / 2;
    size_t excess = hibernating ? SIZE_MAX : sp->mapped > budget ? sp->mapped - budget : 0;
    sp->spare = NULL;
    j = 0;
    for (uint32_t i = 0; i < sp->n; i++) {
        struct gc_chunk *c = sp->index[i];
        if (c->cls == GC_CLASS_LARGE || c->limit != c->data) {
            sp->index[j++] = c;
        } else if (excess || c->malloced) {
            excess = excess > c->map_size ? excess - c->map_size : 0;
            gc_chunk_release(sp, c);
        } else {
            c->next = sp->spare;
            sp->spare = c;
            sp->index[j++] = c;
        }
    }
    sp->n = j;
    if (j) {
        sp->lo = (uintptr_t)sp->index[0];
        sp->hi = (uintptr_t)sp->index[j - 1]->end;
    } else {
        sp->lo = sp->hi = 0;
    }
}

/* ---- collection ------------------------------------------------------------- */

static void collect(struct actor *a, const uintptr_t *regs, size_t nregs, const char *stack_lo)
{
    struct heap_space *sp = a->heap.space;
    int64_t t0 = rt_now_ns();
    sp->collecting = true;
    struct marker m = {.sp = sp, .v = sp->gray, .cap = sp->gray_cap};
    mark_roots(&m, a);
    if (stack_lo) {
#ifdef RT_ASAN
        m.fake = __asan_get_current_fake_stack();
#endif
        scan_stack_range(&m, regs, regs + nregs);
        scan_stack_range(&m, stack_lo, (const char *)a->stack);
    }
    drain(&m);
    /* Kept for the next collection unless a wide graph made it large, or
     * the actor is going to hibernate: an idle actor (a parked WebSocket
     * connection) holds no collector memory beyond its heap. */
    if (m.cap > GRAY_KEEP || !stack_lo) {
        free(m.v);
        m.v = NULL;
        m.cap = 0;
    }
    sp->gray = m.v;
    sp->gray_cap = (uint32_t)m.cap; /* at most GRAY_KEEP here */
    sweep(sp, !stack_lo);
    sp->collecting = false;
    sp->hib_allocated = stack_lo ? UINT64_MAX : gc_allocated(sp);
    sp->collections++;
    sp->pause_ns += (uint64_t)(rt_now_ns() - t0);
}

/* snow_gc_collect is the one way into a collection with the stack as a
 * root (snow_gc_alloc calls it too). It is written in assembly so that
 * the callee-saved registers are stored exactly as the caller left them,
 * before any frame of the runtime exists, and so that the scan starts at
 * the caller's frame: the runtime's own frames below it would only add
 * stale words. Caller-saved registers hold nothing live across a call, by
 * the x86-64 System V ABI. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl snow_gc_collect\n"
        ".type snow_gc_collect, @function\n"
        "snow_gc_collect:\n"
        "    endbr64\n"
        "    subq $56, %rsp\n"
        "    movq %rbx, 0(%rsp)\n"
        "    movq %rbp, 8(%rsp)\n"
        "    movq %r12, 16(%rsp)\n"
        "    movq %r13, 24(%rsp)\n"
        "    movq %r14, 32(%rsp)\n"
        "    movq %r15, 40(%rsp)\n"
        "    movq %rsp, %rdi\n"
        "    leaq 56(%rsp), %rsi\n"
        "    call gc_collect_entry\n"
        "    addq $56, %rsp\n"
        "    ret\n"
        ".size snow_gc_collect, .-snow_gc_collect\n");

/* regs: rbx, rbp, r12-r15 at the call; caller_sp: the caller's frame (the
 * return address into it). Called from snow_gc_collect only. */
int gc_collect_entry(const uintptr_t *regs, const char *caller_sp);

int gc_collect_entry(const uintptr_t *regs, const char *caller_sp)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    struct heap_space *sp = a->heap.space;
    if (sp && !sp->collecting)
        collect(a, regs, 6, caller_sp);
    return 0;
}

void actor_gc_hibernate(struct actor *a)
{
    struct heap_space *sp = a->heap.space;
    if (sp && !sp->collecting && sp->hib_allocated != gc_allocated(sp))
        collect(a, NULL, 0, NULL);
}

/* ---- ABI and root slots ----------------------------------------------------- */

int snow_gc_stats(SnowGcStats *st)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    if (!st)
        return -EINVAL;
    const struct heap_space *sp = a->heap.space;
    memset(st, 0, sizeof *st);
    if (sp) {
        st->heap_bytes = sp->mapped;
        st->live_bytes = sp->live;
        st->used_bytes = sp->used;
        st->allocated_bytes = gc_allocated(sp);
        st->collections = sp->collections;
        st->pause_ns = sp->pause_ns;
    }
    return 0;
}

size_t actor_gc_state_bytes(size_t *chunk_bytes)
{
    struct actor *a = actor_self();
    const struct heap_space *sp = a ? a->heap.space : NULL;
    if (chunk_bytes)
        *chunk_bytes = sp ? sp->mapped : 0;
    if (!sp)
        return 0;
    size_t n = malloc_usable_size((void *)sp);
    if (sp->index != sp->index_inline)
        n += malloc_usable_size(sp->index);
    n += sp->roots ? malloc_usable_size(sp->roots) : 0;
    n += sp->gray ? malloc_usable_size(sp->gray) : 0;
    n += sp->free ? malloc_usable_size(sp->free) : 0;
    return n;
}

static struct heap_space *own_space(void)
{
    struct actor *a = actor_self();
    if (!a)
        return NULL;
    if (!a->heap.space) {
        /* A zero-byte allocation creates the space and is garbage at once. */
        if (!heap_alloc(&a->heap, 0))
            return NULL;
    }
    return a->heap.space;
}

int actor_gc_root_add(void **slot)
{
    if (!slot)
        return -EINVAL;
    if (!actor_self())
        return SNOW_ENOT_ACTOR;
    struct heap_space *sp = own_space();
    if (!sp)
        return -ENOMEM;
    if (sp->nroots == sp->roots_cap) {
        uint32_t cap = sp->roots_cap ? sp->roots_cap * 2 : 4;
        void ***v = realloc(sp->roots, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        sp->roots = v;
        sp->roots_cap = cap;
    }
    sp->roots[sp->nroots++] = slot;
    return 0;
}

int actor_gc_root_remove(void **slot)
{
    struct actor *a = actor_self();
    if (!a)
        return SNOW_ENOT_ACTOR;
    struct heap_space *sp = a->heap.space;
    for (uint32_t i = 0; sp && i < sp->nroots; i++) {
        if (sp->roots[i] == slot) {
            sp->roots[i] = sp->roots[--sp->nroots];
            return 0;
        }
    }
    return -ENOENT;
}

bool actor_gc_owns(const void *p)
{
    struct actor *a = actor_self();
    const struct heap_space *sp = a ? a->heap.space : NULL;
    uintptr_t w = (uintptr_t)p;
    if (!sp || w < sp->lo || w >= sp->hi)
        return false;
    const struct gc_chunk *c = chunk_of(sp, w);
    if (!c || w < (uintptr_t)c->data)
        return false;
    uintptr_t off = w - (uintptr_t)c->data;
    const struct gc_obj *o = (const struct gc_obj *)(c->data + (c->cls == GC_CLASS_LARGE ? 0 : off - off % c->slot));
    return (o->flags & GC_ALLOC) != 0;
}
