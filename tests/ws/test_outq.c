/*
 * test_outq.c: the outbound queue alone (no sockets): what goes out, in
 * which order, when the writer takes any number of bytes at a time. Every
 * scenario is drained with writes of every size from 1 byte up, and the
 * byte stream must be the same each time.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "util.h"
#include "ws/conn.h"

/* Drains q taking at most step bytes per write; returns the bytes in
 * order. Control frames may be added after the first write (late). */
static struct tbuf drain(struct ws_outq *q, size_t step, void (*late)(struct ws_outq *), bool *closed)
{
    struct tbuf out;
    tb_init(&out);
    *closed = false;
    bool first = true;
    while (!ws_outq_empty(q)) {
        struct iovec iov[64];
        int n = ws_outq_gather(q, iov, 64, 1 << 20);
        QCHECK(n > 0);
        size_t left = step;
        size_t took = 0;
        for (int i = 0; i < n && left; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            tb_put(&out, iov[i].iov_base, k);
            left -= k;
            took += k;
        }
        bool c;
        ws_outq_consume(q, took, &c);
        *closed |= c;
        if (first && late)
            late(q);
        first = false;
    }
    return out;
}

static void add_ping(struct ws_outq *q)
{
    uint8_t f[WS_CONTROL_FRAME_MAX];
    int n = ws_frame_control(f, WS_OP_PING, "P", 1);
    ws_outq_control(q, WS_CTL_PING, f, (size_t)n);
}

static void add_close(struct ws_outq *q, unsigned code)
{
    uint8_t f[WS_CONTROL_FRAME_MAX];
    int n = ws_close_frame(f, code, NULL, 0);
    ws_outq_control(q, WS_CTL_CLOSE, f, (size_t)n);
}

/* Offsets of the frames in a server byte stream, as "op:len" words. */
static void frames_of(const struct tbuf *b, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    out[0] = 0;
    while (i + 2 <= b->n) {
        unsigned op = b->p[i] & 15;
        uint64_t n = b->p[i + 1] & 127;
        size_t h = 2;
        if (n == 126) {
            n = (uint64_t)b->p[i + 2] << 8 | b->p[i + 3];
            h = 4;
        } else if (n == 127) {
            n = 0;
            for (int k = 0; k < 8; k++)
                n = n << 8 | b->p[i + 2 + k];
            h = 10;
        }
        o += (size_t)snprintf(out + o, cap - o, "%u:%llu%s ", op, (unsigned long long)n,
                              (b->p[i] & 0x80) ? "" : "+");
        i += h + (size_t)n;
    }
    QCHECK(i == b->n);
}

START_TEST(message_fragments_and_control_lane)
{
    /* A 150 KiB message (three fragments), then a ping queued after the
     * first write, then a close: the ping goes out at the first frame
     * boundary, never inside a frame; the close goes last. */
    static uint8_t big[150 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)i;
    for (size_t step = 1; step <= 70000; step = step < 64 ? step + 1 : step * 3) {
        struct ws_outq q;
        ws_outq_init(&q);
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_BINARY, big, sizeof big), 0);
        add_close(&q, 1000);
        bool closed;
        struct tbuf out = drain(&q, step, add_ping, &closed);
        ck_assert(closed);
        char shape[256];
        frames_of(&out, shape, sizeof shape); /* fails on a torn frame */
        /* The ping sits at a frame boundary somewhere before the close. */
        char *ping = strstr(shape, "9:1 ");
        ck_assert_ptr_nonnull(ping);
        memmove(ping, ping + 4, strlen(ping + 4) + 1);
        ck_assert_str_eq(shape, "2:65536+ 0:65536+ 0:22528 8:2 ");
        tb_free(&out);
        ck_assert_uint_eq(q.bytes, 0);
    }
}
END_TEST

START_TEST(abort_drops_data_but_finishes_the_frame)
{
    static uint8_t a[1000], b[1000];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    /* Both frames are small, so they sit back to back in the batch: the
     * abort cuts it after the frame being written (step 1004: at the
     * boundary, nothing of the batch is left). */
    for (size_t step = 1; step <= 1004; step++) {
        struct ws_outq q;
        ws_outq_init(&q);
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, a, sizeof a), 0);
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, b, sizeof b), 0);
        /* Write part of the first frame, then abort with a close. */
        struct iovec iov[8];
        int n = ws_outq_gather(&q, iov, 8, 1 << 20);
        ck_assert_int_ge(n, 1);
        bool c;
        ws_outq_consume(&q, step, &c);
        size_t dropped = ws_outq_abort(&q);
        ck_assert_uint_eq(dropped, 1004);
        add_close(&q, 1002);
        struct tbuf out = drain(&q, 7, NULL, &c);
        ck_assert(c);
        /* What is left of the first frame, then the close. */
        ck_assert_uint_eq(out.n, 1004 - step + 4);
        ck_assert_uint_eq(out.p[out.n - 4], 0x88);
        tb_free(&out);
        ws_outq_clear(&q);
    }
}
END_TEST

/* The frames of a server byte stream without its pings; *pings counts
 * them. Fails on a torn frame. */
static struct tbuf without_pings(const struct tbuf *b, int *pings)
{
    struct tbuf out;
    tb_init(&out);
    *pings = 0;
    size_t i = 0;
    while (i < b->n) {
        QCHECK(i + 2 <= b->n);
        uint64_t n = b->p[i + 1] & 127;
        size_t h = 2;
        if (n == 126) {
            n = (uint64_t)b->p[i + 2] << 8 | b->p[i + 3];
            h = 4;
        } else if (n == 127) {
            n = 0;
            for (int k = 0; k < 8; k++)
                n = n << 8 | b->p[i + 2 + k];
            h = 10;
        }
        QCHECK(i + h + n <= b->n);
        if ((b->p[i] & 15) == WS_OP_PING)
            (*pings)++;
        else
            tb_put(&out, b->p + i, h + (size_t)n);
        i += h + (size_t)n;
    }
    return out;
}

START_TEST(small_frames_batched_in_order)
{
    /* Small own frames share the batch; a shared frame queued after them
     * ends it (later small frames get frames of their own, behind it); a
     * frame over WS_BATCH_FRAME and one past the batch's room go alone.
     * Drained with writes of every size, with a ping added after the first
     * write: the bytes are the frames in the order queued, and the ping
     * sits at a frame boundary. Twice, so the second round reuses the
     * batch from its start. */
    static uint8_t big[5000], mid[4000];
    memset(big, 'B', sizeof big);
    memset(mid, 'M', sizeof mid);
    struct ws_shared_frame *shared = ws_shared_frame_new(WS_OP_BINARY, 0, "shared", 6);
    ck_assert_ptr_nonnull(shared);
    struct tbuf want;
    tb_init(&want);
    uint8_t fb[8192];
    struct ws_outq q;
    ws_outq_init(&q);
    for (size_t step = 1; step <= 17000; step = step < 300 ? step + 1 : step * 2) {
        for (int round = 0; round < 2; round++) {
            want.n = 0;
            char word[16];
            for (int i = 0; i < 5; i++) {
                int k = snprintf(word, sizeof word, "m%d", i);
                ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, word, (size_t)k), 0);
                tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_TEXT, true, word, (size_t)k));
            }
            ck_assert_int_eq(ws_outq_message(&q, WS_OP_BINARY, big, sizeof big), 0);
            tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_BINARY, true, big, sizeof big));
            for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(ws_outq_message(&q, WS_OP_BINARY, mid, sizeof mid), 0);
                tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_BINARY, true, mid, sizeof mid));
            }
            ws_shared_frame_ref(shared);
            ck_assert_int_eq(ws_outq_push(&q, shared), 0);
            tb_put(&want, shared->bytes, shared->len);
            ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, "after", 5), 0);
            tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_TEXT, true, "after", 5));
            ck_assert_uint_eq(q.bytes, want.n);
            bool closed;
            struct tbuf out = drain(&q, step, add_ping, &closed);
            ck_assert(!closed);
            int pings;
            struct tbuf data = without_pings(&out, &pings);
            ck_assert_int_eq(pings, 1);
            ck_assert_uint_eq(data.n, want.n);
            ck_assert(memcmp(data.p, want.p, want.n) == 0);
            tb_free(&data);
            tb_free(&out);
            ck_assert_uint_eq(q.bytes, 0);
        }
    }
    ws_outq_clear(&q);
    tb_free(&want);
    ck_assert_uint_eq(atomic_load(&shared->refs), 1);
    ws_shared_frame_unref(shared);
}
END_TEST

START_TEST(latest_pong_wins)
{
    struct ws_outq q;
    ws_outq_init(&q);
    uint8_t f[WS_CONTROL_FRAME_MAX];
    int n = ws_frame_control(f, WS_OP_PONG, "one", 3);
    ws_outq_control(&q, WS_CTL_PONG, f, (size_t)n);
    n = ws_frame_control(f, WS_OP_PONG, "second", 6);
    ws_outq_control(&q, WS_CTL_PONG, f, (size_t)n);
    ck_assert_uint_eq(q.bytes, 8);
    bool c;
    struct tbuf out = drain(&q, 100, NULL, &c);
    ck_assert_uint_eq(out.n, 8);
    ck_assert(memcmp(out.p + 2, "second", 6) == 0);
    tb_free(&out);
}
END_TEST

/* Frames of their own (over WS_BATCH_FRAME) queued k at a time while the
 * writer takes part of the queue between: the ring wraps at every
 * capacity it grows through, and the byte stream keeps the order. */
START_TEST(ring_wraps_and_grows_in_order)
{
    enum { LEN = 4200 };
    static uint8_t payload[LEN];
    struct ws_outq q;
    ws_outq_init(&q);
    struct tbuf want, got;
    tb_init(&want);
    tb_init(&got);
    unsigned id = 0;
    for (unsigned round = 0; round < 200; round++) {
        for (unsigned k = 0; k < 1 + round % 19; k++, id++) {
            memset(payload, (int)(id & 0xFF), LEN);
            ck_assert_int_eq(ws_outq_message(&q, WS_OP_BINARY, payload, LEN), 0);
            uint8_t frame[LEN + WS_SERVER_HEADER_MAX];
            ssize_t n = ws_frame_encode(frame, sizeof frame, WS_OP_BINARY, true, payload, LEN);
            ck_assert_int_gt(n, 0);
            tb_put(&want, frame, (size_t)n);
        }
        /* The writer takes between a third of a frame and a few frames. */
        size_t take = 1500 + (round * 7919) % (4 * LEN);
        while (take && !ws_outq_empty(&q)) {
            struct iovec iov[64];
            int n = ws_outq_gather(&q, iov, 64, 1 << 20);
            ck_assert_int_gt(n, 0);
            size_t took = 0;
            for (int i = 0; i < n && took < take; i++) {
                size_t c = iov[i].iov_len < take - took ? iov[i].iov_len : take - took;
                tb_put(&got, iov[i].iov_base, c);
                took += c;
            }
            bool closed;
            ws_outq_consume(&q, took, &closed);
            ck_assert(!closed);
            take -= took;
        }
    }
    bool closed;
    struct tbuf rest = drain(&q, 10000, NULL, &closed);
    tb_put(&got, rest.p, rest.n);
    ck_assert_uint_eq(got.n, want.n);
    ck_assert(memcmp(got.p, want.p, want.n) == 0);
    tb_free(&rest);
    tb_free(&want);
    tb_free(&got);
    ws_outq_clear(&q);
}
END_TEST

/* The frames ws_outq_message gives p[0..n): fragments of
 * WS_SEND_FRAGMENT bytes. */
static void put_fragments(struct tbuf *want, unsigned op, const uint8_t *p, size_t n)
{
    static uint8_t fb[WS_SEND_FRAGMENT + WS_SERVER_HEADER_MAX];
    for (size_t at = 0; at < n; at += WS_SEND_FRAGMENT) {
        size_t len = n - at < WS_SEND_FRAGMENT ? n - at : WS_SEND_FRAGMENT;
        ssize_t k = ws_frame_encode(fb, sizeof fb, at ? WS_OP_CONT : op, at + len == n, p + at, len);
        QCHECK(k > 0);
        tb_put(want, fb, (size_t)k);
    }
}

/* Writes k bytes of what q offers (one writer's first write). */
static void write_some(struct ws_outq *q, size_t k, struct tbuf *out)
{
    while (k && !ws_outq_empty(q)) {
        struct iovec iov[64];
        int n = ws_outq_gather(q, iov, 64, 1 << 20);
        QCHECK(n > 0);
        size_t took = 0;
        for (int i = 0; i < n && took < k; i++) {
            size_t c = iov[i].iov_len < k - took ? iov[i].iov_len : k - took;
            tb_put(out, iov[i].iov_base, c);
            took += c;
        }
        bool closed;
        ws_outq_consume(q, took, &closed);
        QCHECK(!closed);
        k -= took;
    }
}

/* The first write's possible ends worth trying one by one: every offset
 * near the start of a frame or of a payload, a stride elsewhere. */
static bool try_offset(size_t k, const size_t *edges, size_t n_edges)
{
    for (size_t i = 0; i < n_edges; i++)
        if (k + 24 >= edges[i] && k <= edges[i] + 24)
            return true;
    return k % 997 == 0;
}

START_TEST(lent_message_written_then_kept)
{
    /* A small frame, then a large message lent by its sender (three
     * fragments, their payload at the sender's). The writer takes k bytes
     * of it at once, for k at every offset near a boundary; then the rest
     * is kept and the sender overwrites its buffer; a small message and a
     * ping follow. The bytes must be the frames in order with the message
     * as it was, the ping at a frame boundary. */
    enum { N = 2 * WS_SEND_FRAGMENT + 3000 };
    static uint8_t src[N], orig[N];
    for (size_t i = 0; i < N; i++)
        orig[i] = (uint8_t)(i * 13 + (i >> 9));
    struct tbuf want;
    tb_init(&want);
    uint8_t fb[64];
    tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_TEXT, true, "before", 6));
    size_t before = want.n;
    put_fragments(&want, WS_OP_BINARY, orig, N);
    size_t msg_end = want.n;
    tb_put(&want, fb, (size_t)ws_frame_encode(fb, sizeof fb, WS_OP_TEXT, true, "after", 5));
    /* Frame starts and payload starts (headers of 2 and 10 bytes). */
    const size_t f1 = before + 10 + WS_SEND_FRAGMENT, f2 = f1 + 10 + WS_SEND_FRAGMENT;
    const size_t edges[] = {0, before, before + 10, f1, f1 + 10, f2, f2 + 4, msg_end};
    for (size_t k = 0; k <= msg_end; k++) {
        if (!try_offset(k, edges, sizeof edges / sizeof edges[0]))
            continue;
        memcpy(src, orig, N);
        struct ws_outq q;
        ws_outq_init(&q);
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, "before", 6), 0);
        ck_assert_int_eq(ws_outq_message_at(&q, WS_OP_BINARY, src, N, NULL), 0);
        ck_assert_uint_eq(q.bytes, msg_end);
        struct tbuf got;
        tb_init(&got);
        write_some(&q, k, &got);
        ck_assert_uint_eq(q.bytes, msg_end - k);
        ck_assert_int_eq(ws_outq_keep(&q), 0);
        memset(src, 0xEE, N); /* the sender's buffer is its own again */
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, "after", 5), 0);
        add_ping(&q);
        bool closed;
        struct tbuf rest = drain(&q, 1 + k % 70000, NULL, &closed);
        tb_put(&got, rest.p, rest.n);
        int pings;
        struct tbuf data = without_pings(&got, &pings);
        ck_assert_int_eq(pings, 1);
        ck_assert_uint_eq(data.n, want.n);
        ck_assert(memcmp(data.p, want.p, want.n) == 0);
        ck_assert_uint_eq(q.bytes, 0);
        tb_free(&data);
        tb_free(&rest);
        tb_free(&got);
        ws_outq_clear(&q);
    }
    tb_free(&want);
}
END_TEST

START_TEST(held_message_goes_with_its_last_frame)
{
    /* A message whose block a holder keeps: one reference per fragment
     * besides the caller's, each dropped as its frame goes out (or is
     * cleared away unsent), the block freed with the last. */
    enum { N = 3 * WS_SEND_FRAGMENT };
    for (int unsent = 0; unsent < 2; unsent++) {
        uint8_t *block = malloc(N);
        ck_assert_ptr_nonnull(block);
        for (size_t i = 0; i < N; i++)
            block[i] = (uint8_t)(i >> 3);
        struct ws_payload *h = ws_payload_adopt(block);
        ck_assert_ptr_nonnull(h);
        struct ws_outq q;
        ws_outq_init(&q);
        ck_assert_int_eq(ws_outq_message_at(&q, WS_OP_BINARY, block, N, h), 0);
        ck_assert_uint_eq(h->refs, 4);
        struct tbuf want, got;
        tb_init(&want);
        tb_init(&got);
        put_fragments(&want, WS_OP_BINARY, block, N);
        /* The first fragment and a byte of the second. */
        write_some(&q, 10 + WS_SEND_FRAGMENT + 1, &got);
        ck_assert_uint_eq(h->refs, 3);
        if (unsent) {
            ws_outq_clear(&q);
        } else {
            bool closed;
            struct tbuf rest = drain(&q, 4096, NULL, &closed);
            tb_put(&got, rest.p, rest.n);
            tb_free(&rest);
            ck_assert_uint_eq(got.n, want.n);
            ck_assert(memcmp(got.p, want.p, want.n) == 0);
        }
        ck_assert_uint_eq(h->refs, 1);
        ws_payload_drop(h); /* frees the block (a sanitizer build sees a leak otherwise) */
        tb_free(&want);
        tb_free(&got);
        ws_outq_clear(&q);
    }
}
END_TEST

START_TEST(unlend_drops_the_lent_fragments)
{
    /* When the rest cannot be kept: the lent fragments leave the queue,
     * the frame before them stays; torn when part of the message was
     * written already. */
    enum { N = 2 * WS_SEND_FRAGMENT };
    static uint8_t src[N];
    const size_t before = 8;
    for (size_t k = 0; k <= before + 12; k++) {
        struct ws_outq q;
        ws_outq_init(&q);
        ck_assert_int_eq(ws_outq_message(&q, WS_OP_TEXT, "before", 6), 0);
        ck_assert_int_eq(ws_outq_message_at(&q, WS_OP_BINARY, src, N, NULL), 0);
        struct tbuf got;
        tb_init(&got);
        write_some(&q, k, &got);
        ck_assert(ws_outq_unlend(&q) == (k > before));
        ck_assert_uint_eq(q.bytes, k < before ? before - k : 0);
        bool closed;
        struct tbuf rest = drain(&q, 3, NULL, &closed);
        ck_assert_uint_eq(rest.n, k < before ? before - k : 0);
        tb_free(&rest);
        tb_free(&got);
        ws_outq_clear(&q);
    }
}
END_TEST

Suite *outq_suite(void)
{
    Suite *s = suite_create("ws_outq");
    TCase *t = tcase_create("outq");
    tcase_set_timeout(t, CASE_TIMEOUT);
    tcase_add_test(t, message_fragments_and_control_lane);
    tcase_add_test(t, abort_drops_data_but_finishes_the_frame);
    tcase_add_test(t, small_frames_batched_in_order);
    tcase_add_test(t, latest_pong_wins);
    tcase_add_test(t, ring_wraps_and_grows_in_order);
    tcase_add_test(t, lent_message_written_then_kept);
    tcase_add_test(t, held_message_goes_with_its_last_frame);
    tcase_add_test(t, unlend_drops_the_lent_fragments);
    suite_add_tcase(s, t);
    return s;
}
