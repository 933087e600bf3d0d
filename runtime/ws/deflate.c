/*
 * deflate.c: the zlib side of permessage-deflate (RFC 7692 §7.2), with raw
 * DEFLATE streams (negative windowBits).
 *
 * Every zlib allocation goes through zalloc/zfree below, which count the
 * bytes held process-wide (ws_pmd_mem_held). Connections with context
 * takeover reserve their streams' cost against a cap before they are
 * allowed that mode (pmd_offer.c answers no context takeover past it).
 *
 * Shared streams: each thread that (de)compresses for connections without
 * context takeover gets one inflate and one deflate stream, created at its
 * first use and freed when the thread ends. They are used within a single
 * call that never parks, so an actor moving to another worker between
 * messages cannot find one in use, and no lock is needed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rt.h"
#include "utf8.h"
#include "ws/bcast.h"
#include "ws/close.h"
#include "ws/frame.h"
#include "ws/pmd.h"

/* Output produced per inflate call at most; the buffer grows by the bytes
 * that actually came out, never by a size the peer declared. */
#define INFLATE_CHUNK (64 * 1024)

static struct {
    /* Relaxed throughout: these are budgets and statistics; no other
     * memory is published through them. */
    atomic_size_t held;     /* bytes zlib holds (measured) */
    atomic_size_t reserved; /* bytes reserved by takeover connections and shared streams */
    atomic_size_t cap;      /* 0 until first read: default or environment */
    pthread_once_t once;
    pthread_key_t key;
} pmd_rt = {.once = PTHREAD_ONCE_INIT};

struct ws_zin {
    z_stream s;
};

struct ws_zout {
    z_stream s;
    unsigned bits, mem;
};

struct shared {
    struct ws_zin *in;
    struct ws_zout *out;
    size_t in_cost, out_cost;
};

/* ---- memory ---- */

static voidpf zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size && items > (SIZE_MAX - 16) / size)
        return NULL;
    size_t n = (size_t)items * size;
    /* A 16-byte header keeps the size for zfree and the alignment. */
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    p[0] = n;
    atomic_fetch_add_explicit(&pmd_rt.held, n, memory_order_relaxed);
    return (char *)p + 16;
}

static void zfree(voidpf opaque, voidpf addr)
{
    (void)opaque;
    if (!addr)
        return;
    size_t *p = (size_t *)(void *)((char *)addr - 16);
    atomic_fetch_sub_explicit(&pmd_rt.held, p[0], memory_order_relaxed);
    free(p);
}

size_t ws_pmd_mem_held(void)
{
    return atomic_load_explicit(&pmd_rt.held, memory_order_relaxed);
}

size_t ws_pmd_mem_cap(void)
{
    size_t cap = atomic_load_explicit(&pmd_rt.cap, memory_order_relaxed);
    if (cap)
        return cap;
    cap = WS_PMD_DEFAULT_MEM_CAP;
    const char *env = getenv("SNOW_WS_DEFLATE_MEM_MB");
    if (env && *env) {
        char *end;
        unsigned long long mb = strtoull(env, &end, 10);
        if (*end == '\0' && mb > 0 && mb < (SIZE_MAX >> 20))
            cap = (size_t)mb << 20;
    }
    atomic_store_explicit(&pmd_rt.cap, cap, memory_order_relaxed);
    return cap;
}

void ws_pmd_set_mem_cap(size_t bytes)
{
    atomic_store_explicit(&pmd_rt.cap, bytes, memory_order_relaxed);
}

size_t ws_pmd_mem_reserved(void)
{
    return atomic_load_explicit(&pmd_rt.reserved, memory_order_relaxed);
}

bool ws_pmd_reserve(size_t n)
{
    size_t cap = ws_pmd_mem_cap();
    size_t cur = atomic_load_explicit(&pmd_rt.reserved, memory_order_relaxed);
    do {
        if (n > cap || cur > cap - n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&pmd_rt.reserved, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void ws_pmd_release(size_t n)
{
    atomic_fetch_sub_explicit(&pmd_rt.reserved, n, memory_order_relaxed);
}

/* zlib's documented figures (zconf.h): deflate (1 << (windowBits + 2)) +
 * (1 << (memLevel + 9)), inflate 1 << windowBits, plus each one's state
 * struct (about 6 KiB deflate, 7 KiB inflate). */
size_t ws_zin_cost(unsigned bits)
{
    return ((size_t)1 << ws_pmd_zbits(bits)) + 7200;
}

size_t ws_zout_cost(unsigned bits, unsigned mem_level)
{
    return ((size_t)1 << (ws_pmd_zbits(bits) + 2)) + ((size_t)1 << (mem_level + 9)) + 6000;
}

/* ---- streams ---- */

struct ws_zin *ws_zin_new(unsigned bits)
{
    struct ws_zin *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->s.zalloc = zalloc;
    z->s.zfree = zfree;
    if (inflateInit2(&z->s, -(int)ws_pmd_zbits(bits)) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void ws_zin_free(struct ws_zin *z)
{
    if (!z)
        return;
    inflateEnd(&z->s);
    free(z);
}

struct ws_zout *ws_zout_new(unsigned bits, unsigned mem_level)
{
    struct ws_zout *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    if (mem_level < 1 || mem_level > 9)
        mem_level = 8;
    z->s.zalloc = zalloc;
    z->s.zfree = zfree;
    z->bits = ws_pmd_zbits(bits);
    z->mem = mem_level;
    if (deflateInit2(&z->s, WS_PMD_LEVEL, Z_DEFLATED, -(int)z->bits, (int)mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void ws_zout_reset(struct ws_zout *z)
{
    deflateReset(&z->s);
}

void ws_zout_free(struct ws_zout *z)
{
    if (!z)
        return;
    deflateEnd(&z->s);
    free(z);
}

static void shared_free(void *arg)
{
    struct shared *sh = arg;
    ws_zin_free(sh->in);
    ws_zout_free(sh->out);
    ws_pmd_release(sh->in_cost + sh->out_cost);
    free(sh);
}

static void make_key(void)
{
    pthread_key_create(&pmd_rt.key, shared_free);
}

static struct shared *shared_get(void)
{
    pthread_once(&pmd_rt.once, make_key);
    struct shared *sh = pthread_getspecific(pmd_rt.key);
    if (sh)
        return sh;
    sh = calloc(1, sizeof *sh);
    if (sh && pthread_setspecific(pmd_rt.key, sh) != 0) {
        free(sh);
        sh = NULL;
    }
    return sh;
}

/* The shared streams are counted in the reservation too (so the cap is the
 * whole of zlib's memory) but never refused: they are bounded by the
 * number of threads, and refusing would turn a busy process into failed
 * connections. */
static struct ws_zin *shared_in(void)
{
    struct shared *sh = shared_get();
    if (!sh)
        return NULL;
    if (!sh->in) {
        sh->in = ws_zin_new(15);
        if (sh->in) {
            sh->in_cost = ws_zin_cost(15);
            atomic_fetch_add_explicit(&pmd_rt.reserved, sh->in_cost, memory_order_relaxed);
        }
    }
    return sh->in;
}

static struct ws_zout *shared_out(unsigned bits, unsigned mem)
{
    struct shared *sh = shared_get();
    if (!sh)
        return NULL;
    if (mem < 1 || mem > 9)
        mem = 8;
    if (sh->out && (sh->out->bits != ws_pmd_zbits(bits) || sh->out->mem != mem)) {
        /* Another route's parameters: one stream per thread, rebuilt. */
        ws_zout_free(sh->out);
        ws_pmd_release(sh->out_cost);
        sh->out = NULL;
        sh->out_cost = 0;
    }
    if (!sh->out) {
        sh->out = ws_zout_new(bits, mem);
        if (sh->out) {
            sh->out_cost = ws_zout_cost(bits, mem);
            atomic_fetch_add_explicit(&pmd_rt.reserved, sh->out_cost, memory_order_relaxed);
        }
    }
    return sh->out;
}

/* ---- inflate ---- */

/* Room for the next chunk of output: at most INFLATE_CHUNK, and one byte
 * past the limit so that passing it is seen. */
static int out_room(struct ws_msgbuf *b, size_t *room)
{
    size_t limit1 = b->limit + 1;
    if (b->cap == b->len) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        if (cap - b->len > INFLATE_CHUNK)
            cap = b->len + INFLATE_CHUNK;
        if (cap > limit1)
            cap = limit1;
        if (!b->grow)
            return -ENOMEM;
        void *nd = b->grow(b->ctx, b->data, cap);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->cap = cap;
    }
    size_t r = b->cap - b->len;
    if (r > INFLATE_CHUNK)
        r = INFLATE_CHUNK;
    *room = r;
    return 0;
}

uint16_t ws_inflate_msg(struct ws_zin *z, const uint8_t *in, size_t n, bool text, struct ws_msgbuf *out)
{
    /* §7.2.2: the sender removed the empty stored block's 00 00 ff ff. */
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    bool shared = z == NULL;
    if (shared && !(z = shared_in()))
        return WS_CLOSE_INTERNAL_ERROR;
    z_stream *s = &z->s;
    struct rt_utf8 u;
    rt_utf8_init(&u);
    ws_msgbuf_clear(out);
    uint16_t code = 0;
    bool ended = false;
    for (int part = 0; part < 2 && !code && !ended; part++) {
        if (part == 0 && n == 0)
            continue; /* no payload (`in` may be NULL) */
        const uint8_t *p = part ? tail : in;
        size_t left = part ? sizeof tail : n;
        while (!code) {
            /* zlib counts in uInt: feed huge inputs in slices. */
            uInt take = left > UINT32_MAX ? UINT32_MAX : (uInt)left;
            size_t room;
            if (out_room(out, &room) < 0) {
                code = WS_CLOSE_INTERNAL_ERROR;
                break;
            }
            s->next_in = (Bytef *)(uintptr_t)p;
            s->avail_in = take;
            s->next_out = out->data + out->len;
            s->avail_out = (uInt)room;
            int rc = inflate(s, Z_SYNC_FLUSH);
            size_t used = take - s->avail_in;
            size_t made = room - s->avail_out;
            p += used;
            left -= used;
            if (text && made && rt_utf8_feed(&u, out->data + out->len, made) != made)
                code = WS_CLOSE_INVALID_DATA; /* fail fast, before inflating more */
            out->len += made;
            if (!code && out->len > out->limit)
                code = WS_CLOSE_TOO_BIG;
            if (code)
                break;
            if (rc == Z_STREAM_END) {
                /* The peer ended its DEFLATE stream (BFINAL). Only the
                 * tail we append may follow; the next message starts a
                 * new stream. */
                ended = true;
                if (left && part == 0)
                    code = WS_CLOSE_INVALID_DATA;
                inflateReset(s);
                break;
            }
            if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR) {
                code = WS_CLOSE_INVALID_DATA;
                break;
            }
            if (rc == Z_MEM_ERROR) {
                code = WS_CLOSE_INTERNAL_ERROR;
                break;
            }
            /* Z_OK or Z_BUF_ERROR: done with this part once the input is
             * used up and the output was not full (nothing pending). */
            if (left == 0 && s->avail_out != 0)
                break;
            if (rc == Z_BUF_ERROR && used == 0 && made == 0) {
                code = WS_CLOSE_INVALID_DATA;
                break;
            }
        }
    }
    /* §7.2.1: every message ends with an empty stored block (its tail
     * removed) or a final block, so once the tail is in the inflater must
     * stand between blocks (zlib's data_type bit 128). Anywhere else, the
     * payload was cut short (an empty payload: the tail alone is a stored
     * block's header and half its length), and with context takeover the
     * next message would be read from the middle of a block. */
    if (!code && !ended && !(s->data_type & 128))
        code = WS_CLOSE_INVALID_DATA;
    if (!code && text && !rt_utf8_complete(&u))
        code = WS_CLOSE_INVALID_DATA;
    if (shared || code)
        inflateReset(s);
    return code;
}

/* ---- deflate ---- */

int ws_deflate_msg(struct ws_zout *z, unsigned bits, unsigned mem_level, const void *p, size_t n, uint8_t **out,
                   size_t *outlen)
{
    if (n > UINT32_MAX / 2)
        return -EINVAL;
    if (n == 0) {
        /* §7.2.3.6: an empty message may be the single byte 0x00 (with the
         * tail, an empty stored block), which needs no stream at all and
         * leaves a takeover context as it was. zlib would answer a second
         * flush without input with Z_BUF_ERROR and no output. */
        if (!(*out = malloc(1)))
            return -ENOMEM;
        (*out)[0] = 0x00;
        *outlen = 1;
        return 0;
    }
    bool shared = z == NULL;
    if (shared && !(z = shared_out(bits, mem_level)))
        return -ENOMEM;
    z_stream *s = &z->s;
    /* A sync flush adds an empty stored block (5 bytes) and may need to
     * finish a partial one: deflateBound plus a little covers both. */
    size_t cap = deflateBound(s, (uLong)n) + 16;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    s->next_in = (Bytef *)(uintptr_t)p;
    s->avail_in = (uInt)n;
    s->next_out = buf;
    s->avail_out = (uInt)cap;
    int rc = deflate(s, Z_SYNC_FLUSH);
    size_t len = cap - s->avail_out;
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || s->avail_in != 0 || len < 4 || s->avail_out == 0 ||
        memcmp(buf + len - 4, "\x00\x00\xff\xff", 4) != 0) {
        /* Cannot happen with the bound above; the stream is unusable now
         * for takeover, so it is reset and the message goes plain. */
        deflateReset(s);
        free(buf);
        return -ENOMEM;
    }
    /* §7.2.1: remove the 00 00 ff ff the sync flush ended with. */
    len -= 4;
    if (shared)
        deflateReset(s);
    *out = buf;
    *outlen = len;
    return 0;
}

struct ws_shared_frame *ws_pmd_shared_frame(unsigned opcode, const void *p, size_t n, unsigned bits,
                                            unsigned mem_level)
{
    if ((opcode != WS_OP_TEXT && opcode != WS_OP_BINARY) || bits < 8 || bits > 15)
        return NULL;
    uint8_t *c;
    size_t clen;
    if (ws_deflate_msg(NULL, bits, mem_level ? mem_level : 8, p, n, &c, &clen) < 0)
        return NULL;
    struct ws_shared_frame *f = ws_shared_frame_new(opcode, WS_RSV1, c, clen);
    free(c);
    return f;
}
