/*
 * ws_reasm.c: libFuzzer target for reassembly of fragmented messages
 * (ws/message.c, RFC 6455 §5.4) with UTF-8 validation across fragment
 * boundaries (utf8.c, §5.6, §8.1), through the frame decoder.
 *
 * Unlike fuzz-ws-decoder, which feeds arbitrary bytes, this target builds a
 * well-formed client stream from the input, so that nearly every run gets
 * through the framing: one data message split into up to 16 fragments
 * (empty ones too), optionally with pings between them and a second short
 * message after it, masked with an input-chosen key, fed to the decoder in
 * input-chosen chunk sizes. Then:
 *   - binary, or text that is valid UTF-8, within the limit: exactly one
 *     message arrives, of the right type, equal to the concatenation of the
 *     fragments; every ping arrives, in order, with its payload;
 *   - text that is not valid UTF-8 (per the RFC 3629 reference in
 *     fuzz_ref.h): the connection fails with 1007, no message arrives, and
 *     it fails at the first bad byte: the decoder has consumed exactly up to
 *     and including that byte (or the last frame, when the text ends inside
 *     a character);
 *   - over the message limit: 1009 (or 1007 if a bad byte came first), no
 *     message;
 *   - the incremental validator fed the fragments one by one gives the
 *     reference verdict and offset.
 *
 * Input: flags, limit, 4 seed bytes, then the payload.
 */
#include <string.h>

#include "fuzz_ref.h"
#include "rt.h"
#include "utf8.h"
#include "ws/close.h"
#include "ws/frame.h"
#include "ws/message.h"

#define MAX_FRAGS 16

enum {
    F_BINARY = 0x01,
    F_PINGS = 0x02,
    F_LIMIT = 0x04,
    F_CHUNKS = 0x08,
    F_SECOND = 0x10,
};

struct stream {
    uint8_t *p;
    size_t n, cap;
    uint8_t key[4];
};

static void put(struct stream *s, const void *p, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2 + 64;
        s->p = realloc(s->p, s->cap);
        CHECK(s->p);
    }
    if (n)
        memcpy(s->p + s->n, p, n);
    s->n += n;
}

/* A masked client frame (§5.2), with the shortest length encoding. Returns
 * the stream offset of its first payload byte. */
static size_t frame(struct stream *s, unsigned b0, const uint8_t *payload, size_t n)
{
    uint8_t h[WS_CLIENT_HEADER_MAX];
    size_t hl = 2;
    h[0] = (uint8_t)b0;
    if (n < 126) {
        h[1] = (uint8_t)(0x80 | n);
    } else if (n <= 0xFFFF) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(h + hl, s->key, 4);
    put(s, h, hl + 4);
    size_t at = s->n;
    put(s, payload, n);
    for (size_t i = 0; i < n; i++)
        s->p[at + i] ^= s->key[i % 4];
    return at;
}

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

struct outcome {
    unsigned messages;
    bool first_ok; /* the first message equals the payload and its type */
    bool second_ok;
    unsigned pings; /* pings seen, each checked against what was sent */
    uint16_t code;
    uint64_t consumed;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    uint8_t flags = data[0];
    /* At least 2, so that the second message ("ok") always fits. */
    size_t limit = (flags & F_LIMIT) ? 2 + (size_t)data[1] * 8 : 0;
    uint32_t seed = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 | (uint32_t)data[5] << 24;
    const uint8_t *payload = data + 6;
    size_t n = size - 6;
    unsigned op = (flags & F_BINARY) ? WS_OP_BINARY : WS_OP_TEXT;
    unsigned nfrag = 1 + (flags >> 5) * 2 + (seed & 1);

    /* Fragment boundaries: sorted cut points, repeats allowed (empty
     * fragments are legal, §5.4). */
    size_t cut[MAX_FRAGS + 1];
    cut[0] = 0;
    cut[nfrag] = n;
    for (unsigned i = 1; i < nfrag; i++) {
        size_t c = n ? ref_rand(&seed) % (n + 1) : 0;
        unsigned j = i;
        while (j > 1 && cut[j - 1] > c) {
            cut[j] = cut[j - 1];
            j--;
        }
        cut[j] = c;
    }

    struct stream s = {0};
    for (int i = 0; i < 4; i++)
        s.key[i] = (uint8_t)ref_rand(&seed);
    /* Stream offset of every payload byte, to place a UTF-8 failure. */
    size_t *where = malloc((n ? n : 1) * sizeof *where);
    CHECK(where);
    size_t last_end = 0;
    unsigned nping = 0;
    for (unsigned i = 0; i < nfrag; i++) {
        unsigned b0 = (i == 0 ? op : WS_OP_CONT) | (i == nfrag - 1 ? 0x80u : 0);
        size_t at = frame(&s, b0, payload + cut[i], cut[i + 1] - cut[i]);
        for (size_t k = cut[i]; k < cut[i + 1]; k++)
            where[k] = at + (k - cut[i]);
        last_end = s.n;
        if ((flags & F_PINGS) && i + 1 < nfrag) {
            uint8_t ping[2] = {'p', (uint8_t)nping++};
            frame(&s, 0x80 | WS_OP_PING, ping, sizeof ping);
        }
    }
    if (flags & F_SECOND)
        frame(&s, 0x80 | WS_OP_TEXT, (const uint8_t *)"ok", 2);

    /* The validator alone, fed fragment by fragment. */
    bool complete;
    size_t bad = ref_utf8_bad(payload, n, &complete);
    bool text_ok = bad == n && complete;
    {
        struct rt_utf8 v;
        rt_utf8_init(&v);
        size_t got = n;
        for (unsigned i = 0; i < nfrag && got == n; i++) {
            size_t len = cut[i + 1] - cut[i];
            size_t r = rt_utf8_feed(&v, payload + cut[i], len);
            if (r < len)
                got = cut[i] + r;
        }
        CHECK(got == bad);
        CHECK(rt_utf8_failed(&v) == (bad < n));
        if (bad == n)
            CHECK(rt_utf8_complete(&v) == complete);
    }

    /* The decoder and the reassembler, fed in chunks. */
    struct ws_decoder_config cfg = {.max_message = limit};
    struct ws_decoder d;
    struct ws_reasm r;
    struct ws_event ev;
    struct outcome out = {0};
    ws_decoder_init(&d, &cfg);
    ws_reasm_init(&r, NULL, 0, limit, grow, NULL);
    size_t pos = 0;
    bool failed = false;
    while (!failed && (pos < s.n || pos == 0)) {
        size_t len = s.n - pos;
        if (flags & F_CHUNKS) {
            size_t want = 1 + ref_rand(&seed) % 23;
            if (want < len)
                len = want;
        }
        size_t off = 0;
        for (;;) {
            ssize_t rc = ws_decoder_next(&d, s.p + pos + off, len - off, &ev);
            if (rc == RT_PARSE_ERROR) {
                out.code = ws_decoder_close_code(&d);
                out.consumed = d.consumed;
                failed = true;
                break;
            }
            if (rc == RT_PARSE_INCOMPLETE)
                break;
            off += (size_t)rc;
            if (ev.kind == WS_EV_CONTROL) {
                CHECK(ev.opcode == WS_OP_PING && ev.len == 2);
                CHECK(ev.data[0] == 'p' && ev.data[1] == out.pings);
                out.pings++;
            }
            int m = ws_reasm_feed(&r, &ev);
            if (m < 0) {
                /* The decoder enforces the same limit first. */
                CHECK(0);
            }
            if (m == WS_REASM_MESSAGE) {
                if (out.messages == 0)
                    out.first_ok = r.opcode == op && r.buf.len == n && (n == 0 || memcmp(r.buf.data, payload, n) == 0);
                else
                    out.second_ok = r.opcode == WS_OP_TEXT && r.buf.len == 2 && memcmp(r.buf.data, "ok", 2) == 0;
                out.messages++;
            }
        }
        pos += len;
        if (s.n == 0)
            break;
    }

    bool over = limit && n > limit;
    bool utf8_fails = op == WS_OP_TEXT && !text_ok;
    if (!over && !utf8_fails) {
        CHECK(!failed);
        CHECK(out.messages == ((flags & F_SECOND) ? 2u : 1u));
        CHECK(out.first_ok);
        CHECK(!(flags & F_SECOND) || out.second_ok);
        CHECK(out.pings == nping);
    } else {
        CHECK(failed && out.messages == 0);
        CHECK(out.code == WS_CLOSE_TOO_BIG || out.code == WS_CLOSE_INVALID_DATA);
        if (out.code == WS_CLOSE_TOO_BIG)
            CHECK(over);
        if (out.code == WS_CLOSE_INVALID_DATA) {
            CHECK(utf8_fails);
            /* Fail fast: at the first bad byte, or at the end of the last
             * frame when the text stops inside a character. */
            CHECK(out.consumed == (bad < n ? where[bad] + 1 : last_end));
        }
        if (!over)
            CHECK(out.code == WS_CLOSE_INVALID_DATA);
    }
    free(r.buf.data);
    free(where);
    free(s.p);
    return 0;
}
