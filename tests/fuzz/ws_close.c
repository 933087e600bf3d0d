/*
 * ws_close.c: libFuzzer target for the Close payload parser and the
 * closing-handshake state machine (ws/close.c, RFC 6455 §5.5.1, §7).
 *
 * Input: one mode byte, then a Close payload as a client would send it.
 * Checked against the RFC, not against the code:
 *   - ws_close_parse accepts exactly the empty payload and payloads of a
 *     sendable code plus a UTF-8 reason; it answers 1002 for a one-byte
 *     payload or a code that may not be sent, 1007 for a bad reason;
 *   - an accepted code is one that may be sent, and the reason is the view
 *     it should be;
 *   - the reply to a peer's Close is one unmasked FIN Close frame that
 *     itself parses, echoes the code (or is empty for an empty Close, or
 *     carries the error for an invalid one) and never carries 1005, 1006
 *     or 1015; on_close gets the peer's code and reason;
 *   - a Close we start (mode bit 0, code from the mode and payload bytes)
 *     is a frame whose reason is the longest prefix of at most 123 bytes
 *     that ends on a character boundary; the peer's answer then completes
 *     the handshake without a second reply, and nothing more can be sent.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_ref.h"
#include "rt.h"
#include "ws/close.h"

/* Checks a server Close frame and returns its payload. */
static const uint8_t *server_close(const uint8_t *f, int len, size_t *n)
{
    CHECK(len >= 2 && len <= WS_CONTROL_FRAME_MAX);
    CHECK(f[0] == (0x80 | WS_OP_CLOSE)); /* FIN, no RSV, opcode 8 */
    CHECK((f[1] & 0x80) == 0);           /* a server never masks */
    *n = f[1] & 0x7F;
    CHECK(*n <= WS_CONTROL_MAX && (size_t)len == 2 + *n);
    CHECK(*n != 1);
    if (*n >= 2) {
        unsigned code = (unsigned)f[2] << 8 | f[3];
        CHECK(ref_close_code_sendable(code));
        CHECK(ref_utf8_ok(f + 4, *n - 2));
    }
    return f + 2;
}

static void check_parse(const uint8_t *p, size_t n, struct ws_close_payload *cp, int *bad)
{
    *bad = ws_close_parse(p, n, cp);
    unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 0;
    if (n == 0) {
        CHECK(*bad == 0 && cp->code == WS_CLOSE_NO_STATUS && cp->reason_len == 0);
    } else if (n == 1 || !ref_close_code_sendable(code)) {
        CHECK(*bad == SNOW_EPROTOCOL && cp->code == WS_CLOSE_PROTOCOL_ERROR);
    } else if (!ref_utf8_ok(p + 2, n - 2)) {
        CHECK(*bad == SNOW_EPROTOCOL && cp->code == WS_CLOSE_INVALID_DATA);
    } else {
        CHECK(*bad == 0 && cp->code == code);
        CHECK(cp->reason == p + 2 && cp->reason_len == n - 2);
    }
    CHECK(ws_close_code_valid(code) == ref_close_code_sendable(code));
}

/* The peer starts the close. */
static void peer_closes(const uint8_t *p, size_t n)
{
    struct ws_close_payload cp;
    int bad;
    check_parse(p, n, &cp, &bad);

    struct ws_close c;
    uint8_t reply[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    CHECK(ws_close_may_send(&c) && ws_close_may_receive(&c));
    int len = ws_close_received(&c, p, n, reply);
    size_t rn;
    const uint8_t *rp = server_close(reply, len, &rn);
    CHECK(c.state == WS_STATE_CLOSED && c.initiator == WS_BY_REMOTE);
    CHECK(!ws_close_may_send(&c) && !ws_close_may_receive(&c));
    CHECK(c.code == cp.code);
    if (bad) {
        /* §7.1.7: fail the connection with the error it caused. */
        CHECK(rn == 2 && ((unsigned)rp[0] << 8 | rp[1]) == cp.code);
        CHECK(c.reason_len == 0);
    } else if (n == 0) {
        CHECK(rn == 0);
    } else {
        /* §5.5.1: echo the code. */
        CHECK(rn == 2 && rp[0] == p[0] && rp[1] == p[1]);
        size_t keep = n - 2 < WS_CLOSE_REASON_MAX ? n - 2 : WS_CLOSE_REASON_MAX;
        CHECK(c.reason_len == keep && memcmp(c.reason, p + 2, keep) == 0);
    }
    /* A second Close after the handshake is ignored. */
    CHECK(ws_close_received(&c, p, n, reply) == 0 && c.code == cp.code);
    ws_close_abort(&c);
    CHECK(c.code == cp.code);
}

/* We start the close with code and reason, then the peer answers with p. */
static void we_close(unsigned code, const uint8_t *reason, size_t rlen, const uint8_t *p, size_t n)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    int len = ws_close_start(&c, code, (const char *)reason, rlen, out);
    if (rlen && !ref_utf8_ok(reason, rlen)) {
        CHECK(len == -EILSEQ && c.state == WS_STATE_OPEN);
        return;
    }
    size_t fn;
    const uint8_t *fp = server_close(out, len, &fn);
    CHECK(c.state == WS_STATE_CLOSING && c.initiator == WS_BY_LOCAL);
    CHECK(!ws_close_may_send(&c) && ws_close_may_receive(&c));
    if (code == 0) {
        CHECK(fn == 0);
    } else {
        CHECK(fn >= 2 && ((unsigned)fp[0] << 8 | fp[1]) == code);
        size_t kept = fn - 2;
        /* The longest character-boundary prefix of at most 123 bytes. */
        CHECK(kept <= WS_CLOSE_REASON_MAX && kept <= rlen && (kept == 0 || memcmp(fp + 2, reason, kept) == 0));
        if (kept < rlen) {
            bool complete;
            for (size_t k = kept + 1; k <= rlen && k <= WS_CLOSE_REASON_MAX; k++)
                CHECK(ref_utf8_bad(reason, k, &complete) == k && !complete);
        }
    }
    CHECK(ws_close_start(&c, 1000, NULL, 0, out) == SNOW_ECLOSED);

    struct ws_close_payload cp;
    int bad;
    check_parse(p, n, &cp, &bad);
    CHECK(ws_close_received(&c, p, n, out) == 0);
    CHECK(c.state == WS_STATE_CLOSED && c.code == cp.code);
}

/* The peer vanished. */
static void aborted(void)
{
    struct ws_close c;
    ws_close_init(&c);
    ws_close_abort(&c);
    CHECK(c.state == WS_STATE_CLOSED && c.code == WS_CLOSE_ABNORMAL && c.reason_len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    /* Control frames carry at most 125 bytes (§5.5); the decoder refuses
     * longer ones before the parser sees them. */
    if (n > WS_CONTROL_MAX)
        n = WS_CONTROL_MAX;

    peer_closes(p, n);
    if (mode & 1) {
        /* Our code: 0 (empty Close) or a sendable code picked by the input;
         * our reason: the payload after the code (any length, any bytes);
         * the peer's answer: the first n/2 bytes. */
        static const unsigned codes[] = {0, 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999};
        unsigned code = codes[(mode >> 1) % (sizeof codes / sizeof codes[0])];
        const uint8_t *reason = size > 3 ? data + 3 : NULL;
        size_t rlen = size > 3 ? size - 3 : 0;
        we_close(code, code ? reason : NULL, code ? rlen : 0, p, n / 2);
    }
    aborted();
    return 0;
}
