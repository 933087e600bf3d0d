#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "util.h"
#include "ws/close.h"

#define FIN 0x80

static void check_bytes(const uint8_t *in, size_t n, const struct tbuf *want)
{
    check_decoder(NULL, in, n, want);
}

/* One byte per chunk. */
static void run_bytewise(const uint8_t *in, size_t n, struct tbuf *t)
{
    size_t cuts[256];
    ck_assert_uint_le(n, sizeof cuts / sizeof cuts[0]);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    run_decoder(NULL, in, n, cuts, n - 1, t);
}

/* ---- RFC 6455 §5.7 examples ---- */

START_TEST(test_rfc_unmasked_hello_refused)
{
    static const uint8_t in[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    struct tbuf want;
    tb_init(&want);
    /* §5.1: a server fails on an unmasked frame, once the mask bit is seen. */
    tb_err(&want, 1002, 2);
    check_bytes(in, sizeof in, &want);
    tb_free(&want);
}
END_TEST

START_TEST(test_rfc_masked_hello)
{
    static const uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct tbuf want;
    tb_init(&want);
    tb_frame(&want, WS_OP_TEXT, true, 5);
    tb_data(&want, "Hello", 5);
    tb_end(&want, WS_OP_TEXT, true);
    check_bytes(in, sizeof in, &want);
    tb_free(&want);
}
END_TEST

START_TEST(test_rfc_fragmented_hello)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_TEXT, "Hel", 3);
    mk_frame(&in, FIN | WS_OP_CONT, "lo", 2);
    tb_frame(&want, WS_OP_TEXT, false, 3);
    tb_data(&want, "Hel", 3);
    tb_end(&want, WS_OP_TEXT, false);
    tb_frame(&want, WS_OP_CONT, true, 2);
    tb_data(&want, "lo", 2);
    tb_end(&want, WS_OP_CONT, true);
    check_bytes(in.p, in.n, &want);

    /* The RFC's own bytes are unmasked, so a server refuses them. */
    static const uint8_t raw[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    want.n = 0;
    tb_err(&want, 1002, 2);
    check_bytes(raw, sizeof raw, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_rfc_ping_pong)
{
    /* §5.7 gives the pong masked with the same key as the text frame. */
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t ping_unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);

    tb_ctl(&want, WS_OP_PONG, "Hello", 5);
    check_bytes(pong, sizeof pong, &want);

    mk_frame(&in, FIN | WS_OP_PING, "Hello", 5);
    want.n = 0;
    tb_ctl(&want, WS_OP_PING, "Hello", 5);
    check_bytes(in.p, in.n, &want);

    want.n = 0;
    tb_err(&want, 1002, 2);
    check_bytes(ping_unmasked, sizeof ping_unmasked, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

static void binary_of(size_t n, int len_bytes_expected)
{
    uint8_t *payload = malloc(n ? n : 1);
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    mk_frame(&in, FIN | WS_OP_BINARY, payload, n);
    ck_assert_uint_eq(in.n, n + 2 + 4 + (len_bytes_expected == 1 ? 0 : (size_t)len_bytes_expected));
    tb_frame(&want, WS_OP_BINARY, true, n);
    if (n)
        tb_data(&want, payload, n);
    tb_end(&want, WS_OP_BINARY, true);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
    free(payload);
}

START_TEST(test_rfc_256_and_64k_binary)
{
    binary_of(256, 2);
    binary_of(65536, 8);
}
END_TEST

/* ---- length boundaries ---- */

static const struct {
    size_t n;
    int len_bytes;
} boundaries[] = {{0, 1}, {1, 1}, {125, 1}, {126, 2}, {127, 2}, {65535, 2}, {65536, 8}, {65537, 8}};

START_TEST(test_boundary_lengths)
{
    binary_of(boundaries[_i].n, boundaries[_i].len_bytes);
}
END_TEST

START_TEST(test_boundary_lengths_text)
{
    size_t n = boundaries[_i].n;
    char *payload = malloc(n + 1);
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)('a' + i % 26);
    mk_frame(&in, FIN | WS_OP_TEXT, payload, n);
    tb_frame(&want, WS_OP_TEXT, true, n);
    if (n)
        tb_data(&want, payload, n);
    tb_end(&want, WS_OP_TEXT, true);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
    free(payload);
}
END_TEST

START_TEST(test_2_pow_32_over_limit)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    /* Only the header: the limit fires on the declared length, before the
     * mask key, and nothing the size of the payload is ever allocated. */
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, NULL, 0, 8, UINT64_C(1) << 32);
    tb_err(&want, 1009, 10);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_2_pow_32_tracked)
{
    struct ws_decoder_config cfg = {.max_message = UINT64_MAX, .max_frame = UINT64_MAX};
    struct tbuf in, want;
    uint8_t part[1000];
    tb_init(&in);
    tb_init(&want);
    memset(part, 'z', sizeof part);
    uint64_t len = (UINT64_C(1) << 32) + 3;
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, part, sizeof part, 8, len);
    tb_frame(&want, WS_OP_BINARY, true, len);
    tb_data(&want, part, sizeof part);
    tb_close_run(&want);
    check_decoder(&cfg, in.p, in.n, &want);

    /* Drive it directly to look at the count of bytes still due. */
    struct ws_decoder d;
    struct ws_event ev;
    size_t off = 0;
    ws_decoder_init(&d, &cfg);
    ssize_t used = ws_decoder_next(&d, in.p, in.n, &ev);
    ck_assert_int_ge(used, 0);
    ck_assert_int_eq(ev.kind, WS_EV_FRAME);
    off += (size_t)used;
    ck_assert_uint_eq(ev.frame_len, len);
    ck_assert_uint_eq(ws_decoder_frame_left(&d), len);
    ck_assert_int_ge(ws_decoder_next(&d, in.p + off, in.n - off, &ev), 0);
    ck_assert_int_eq(ev.kind, WS_EV_DATA);
    ck_assert_uint_eq(ev.len, sizeof part);
    ck_assert_uint_eq(ws_decoder_frame_left(&d), len - sizeof part);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_64bit_msb_set)
{
    struct ws_decoder_config cfg = {.max_message = UINT64_MAX, .max_frame = UINT64_MAX};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, NULL, 0, 8, UINT64_C(1) << 63);
    tb_err(&want, 1002, 10);
    check_decoder(&cfg, in.p, in.n, &want);
    check_decoder(NULL, in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_non_minimal_lengths)
{
    struct tbuf in, want;
    uint8_t payload[125] = {0};
    tb_init(&in);
    tb_init(&want);
    /* §5.2: "the minimal number of bytes MUST be used to encode the length". */
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, payload, 125, 2, 0);
    tb_err(&want, 1002, 4);
    check_bytes(in.p, in.n, &want);

    in.n = want.n = 0;
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, payload, 5, 8, 0);
    tb_err(&want, 1002, 10);
    check_bytes(in.p, in.n, &want);

    /* 65535 in the 64-bit form is still too short for it. */
    in.n = want.n = 0;
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, NULL, 0, 8, 65535);
    tb_err(&want, 1002, 10);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- header rules ---- */

START_TEST(test_rsv_bits_refused)
{
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < sizeof rsv; i++) {
        in.n = want.n = 0;
        mk_frame(&in, FIN | rsv[i] | WS_OP_TEXT, "x", 1);
        tb_err(&want, 1002, 2);
        check_bytes(in.p, in.n, &want);
    }
    /* Allowed when an extension defined them. */
    struct ws_decoder_config cfg = {.rsv_allowed = WS_RSV1};
    in.n = want.n = 0;
    mk_frame(&in, FIN | WS_RSV1 | WS_OP_BINARY, "x", 1);
    tb_frame(&want, WS_OP_BINARY, true, 1);
    tb_data(&want, "x", 1);
    tb_end(&want, WS_OP_BINARY, true);
    check_decoder(&cfg, in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_reserved_opcodes)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < sizeof ops; i++) {
        in.n = want.n = 0;
        mk_frame(&in, FIN | ops[i], "x", 1);
        tb_err(&want, 1002, 2);
        check_bytes(in.p, in.n, &want);
    }
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_control_rules)
{
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    uint8_t big[126];
    struct tbuf in, want;
    memset(big, 'p', sizeof big);
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < sizeof ops; i++) {
        /* §5.5: control frames must not be fragmented ... */
        in.n = want.n = 0;
        mk_frame(&in, ops[i], "ab", 2);
        tb_err(&want, 1002, 2);
        check_bytes(in.p, in.n, &want);
        /* ... and carry at most 125 bytes, in any length form. */
        in.n = want.n = 0;
        mk_frame(&in, FIN | ops[i], big, 126);
        tb_err(&want, 1002, 2);
        check_bytes(in.p, in.n, &want);
        in.n = want.n = 0;
        mk_frame_ex(&in, FIN | ops[i], test_key, big, 125, 2, 0);
        tb_err(&want, 1002, 2);
        check_bytes(in.p, in.n, &want);
    }
    /* 125 bytes is fine, and so is an empty ping. */
    in.n = want.n = 0;
    mk_frame(&in, FIN | WS_OP_PING, big, 125);
    mk_frame(&in, FIN | WS_OP_PING, NULL, 0);
    tb_ctl(&want, WS_OP_PING, big, 125);
    tb_ctl(&want, WS_OP_PING, NULL, 0);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- fragmentation ---- */

START_TEST(test_continuation_without_start)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, FIN | WS_OP_CONT, "x", 1);
    tb_err(&want, 1002, 2);
    check_bytes(in.p, in.n, &want);

    /* Also after a complete message. */
    in.n = want.n = 0;
    mk_frame(&in, FIN | WS_OP_TEXT, "a", 1);
    mk_frame(&in, WS_OP_CONT, "b", 1);
    tb_frame(&want, WS_OP_TEXT, true, 1);
    tb_data(&want, "a", 1);
    tb_end(&want, WS_OP_TEXT, true);
    tb_err(&want, 1002, 9);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_new_message_inside_fragmented)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_TEXT, "a", 1);
    mk_frame(&in, FIN | WS_OP_BINARY, "b", 1);
    tb_frame(&want, WS_OP_TEXT, false, 1);
    tb_data(&want, "a", 1);
    tb_end(&want, WS_OP_TEXT, false);
    tb_err(&want, 1002, 9);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_control_between_fragments)
{
    /* "Hé!" with é (c3 a9) split across fragments and a ping and a pong
     * between them; §5.4 allows control frames in the middle. */
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_TEXT, "H\xc3", 2);
    mk_frame(&in, FIN | WS_OP_PING, "p1", 2);
    mk_frame(&in, WS_OP_CONT, "\xa9", 1);
    mk_frame(&in, FIN | WS_OP_PONG, NULL, 0);
    mk_frame(&in, FIN | WS_OP_CONT, "!", 1);
    tb_frame(&want, WS_OP_TEXT, false, 2);
    tb_data(&want, "H\xc3", 2);
    tb_end(&want, WS_OP_TEXT, false);
    tb_ctl(&want, WS_OP_PING, "p1", 2);
    tb_frame(&want, WS_OP_CONT, false, 1);
    tb_data(&want, "\xa9", 1);
    tb_end(&want, WS_OP_CONT, false);
    tb_ctl(&want, WS_OP_PONG, NULL, 0);
    tb_frame(&want, WS_OP_CONT, true, 1);
    tb_data(&want, "!", 1);
    tb_end(&want, WS_OP_CONT, true);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_empty_fragments)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_BINARY, NULL, 0);
    mk_frame(&in, WS_OP_CONT, NULL, 0);
    mk_frame(&in, FIN | WS_OP_CONT, NULL, 0);
    tb_frame(&want, WS_OP_BINARY, false, 0);
    tb_end(&want, WS_OP_BINARY, false);
    tb_frame(&want, WS_OP_CONT, false, 0);
    tb_end(&want, WS_OP_CONT, false);
    tb_frame(&want, WS_OP_CONT, true, 0);
    tb_end(&want, WS_OP_CONT, true);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- UTF-8 in text messages ---- */

START_TEST(test_text_invalid_fails_at_byte)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    /* The bad byte is the 4th of the payload: stream offset 6 + 3. */
    mk_frame(&in, FIN | WS_OP_TEXT, "abc\xff" "def", 7);
    tb_frame(&want, WS_OP_TEXT, true, 7);
    tb_err(&want, 1007, 10);
    /* Fed whole, the first chunk holds the bad byte and fails at once; in
     * pieces, valid bytes before it may be handed out first, so compare
     * the position only. */
    struct tbuf got;
    tb_init(&got);
    run_decoder(NULL, in.p, in.n, NULL, 0, &got);
    ck_assert_uint_eq(got.n, want.n);
    ck_assert(memcmp(got.p, want.p, want.n) == 0);
    for (size_t cut = 1; cut < in.n; cut++) {
        got.n = 0;
        run_decoder(NULL, in.p, in.n, &cut, 1, &got);
        ck_assert(got.n >= 8 && memcmp(got.p + got.n - 8, "!1007@10", 8) == 0);
    }
    /* The one-step path fails at the same byte with the same code, before
     * any event of the frame; split, the pieces go the incremental way. */
    got.n = 0;
    run_decoder_whole_first(NULL, in.p, in.n, NULL, 0, &got);
    ck_assert_uint_eq(got.n, 8);
    ck_assert(memcmp(got.p, "!1007@10", 8) == 0);
    for (size_t cut = 1; cut < in.n; cut++) {
        got.n = 0;
        run_decoder_whole_first(NULL, in.p, in.n, &cut, 1, &got);
        ck_assert(got.n >= 8 && memcmp(got.p + got.n - 8, "!1007@10", 8) == 0);
    }
    /* One byte at a time, "abc" is handed out before the bad byte fails. */
    got.n = 0;
    run_bytewise(in.p, in.n, &got);
    struct tbuf bytewise;
    tb_init(&bytewise);
    tb_frame(&bytewise, WS_OP_TEXT, true, 7);
    tb_data(&bytewise, "abc", 3);
    tb_err(&bytewise, 1007, 10);
    ck_assert_uint_eq(got.n, bytewise.n);
    ck_assert(memcmp(got.p, bytewise.p, got.n) == 0);
    tb_free(&bytewise);
    tb_free(&got);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_text_invalid_across_fragments)
{
    /* E0 then 80 in the next fragment: an overlong, detected at the 80. */
    struct tbuf in, got;
    tb_init(&in);
    tb_init(&got);
    mk_frame(&in, WS_OP_TEXT, "a\xe0", 2);
    mk_frame(&in, FIN | WS_OP_PING, NULL, 0);
    mk_frame(&in, FIN | WS_OP_CONT, "\x80\x80", 2);
    size_t at = 8 + 6 + 6 + 1; /* through the first byte of the last payload */
    char tail[32];
    snprintf(tail, sizeof tail, "!1007@%zu", at);
    for (size_t cut = 0; cut < in.n; cut++) {
        got.n = 0;
        run_decoder(NULL, in.p, in.n, &cut, cut ? 1 : 0, &got);
        ck_assert(got.n >= strlen(tail) && memcmp(got.p + got.n - strlen(tail), tail, strlen(tail)) == 0);
    }
    got.n = 0;
    run_bytewise(in.p, in.n, &got);
    ck_assert(got.n >= strlen(tail) && memcmp(got.p + got.n - strlen(tail), tail, strlen(tail)) == 0);
    tb_free(&in);
    tb_free(&got);
}
END_TEST

START_TEST(test_text_truncated_at_end)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_TEXT, "ab\xf0\x9f", 4);
    mk_frame(&in, FIN | WS_OP_CONT, "\x98", 1);
    tb_frame(&want, WS_OP_TEXT, false, 4);
    tb_data(&want, "ab\xf0\x9f", 4);
    tb_end(&want, WS_OP_TEXT, false);
    tb_frame(&want, WS_OP_CONT, true, 1);
    tb_data(&want, "\x98", 1);
    tb_err(&want, 1007, in.n);
    check_bytes(in.p, in.n, &want);

    /* Completed, the same bytes are fine; binary is never checked. */
    in.n = want.n = 0;
    mk_frame(&in, FIN | WS_OP_BINARY, "\xff\xc0", 2);
    tb_frame(&want, WS_OP_BINARY, true, 2);
    tb_data(&want, "\xff\xc0", 2);
    tb_end(&want, WS_OP_BINARY, true);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_text_validation_off)
{
    struct ws_decoder_config cfg = {.no_utf8 = true};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, FIN | WS_OP_TEXT, "\xff", 1);
    tb_frame(&want, WS_OP_TEXT, true, 1);
    tb_data(&want, "\xff", 1);
    tb_end(&want, WS_OP_TEXT, true);
    check_decoder(&cfg, in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_message_limit)
{
    struct ws_decoder_config cfg = {.max_message = 10};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_BINARY, "123456", 6);
    mk_frame(&in, WS_OP_CONT, "7890", 4);
    mk_frame(&in, FIN | WS_OP_CONT, "x", 1);
    tb_frame(&want, WS_OP_BINARY, false, 6);
    tb_data(&want, "123456", 6);
    tb_end(&want, WS_OP_BINARY, false);
    tb_frame(&want, WS_OP_CONT, false, 4);
    tb_data(&want, "7890", 4);
    tb_end(&want, WS_OP_CONT, false);
    tb_err(&want, 1009, 12 + 10 + 2);
    check_decoder(&cfg, in.p, in.n, &want);

    /* Exactly at the limit passes, and the count starts over per message. */
    in.n = want.n = 0;
    mk_frame(&in, WS_OP_BINARY, "123456", 6);
    mk_frame(&in, FIN | WS_OP_CONT, "7890", 4);
    mk_frame(&in, FIN | WS_OP_TEXT, "abcdefghij", 10);
    tb_frame(&want, WS_OP_BINARY, false, 6);
    tb_data(&want, "123456", 6);
    tb_end(&want, WS_OP_BINARY, false);
    tb_frame(&want, WS_OP_CONT, true, 4);
    tb_data(&want, "7890", 4);
    tb_end(&want, WS_OP_CONT, true);
    tb_frame(&want, WS_OP_TEXT, true, 10);
    tb_data(&want, "abcdefghij", 10);
    tb_end(&want, WS_OP_TEXT, true);
    check_decoder(&cfg, in.p, in.n, &want);

    /* The default is 16 MiB: 16 MiB + 1 is refused at the header. */
    in.n = want.n = 0;
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, NULL, 0, 8, (UINT64_C(16) << 20) + 1);
    tb_err(&want, 1009, 10);
    check_decoder(NULL, in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

START_TEST(test_frame_limit)
{
    struct ws_decoder_config cfg = {.max_message = 100, .max_frame = 4};
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, WS_OP_BINARY, "1234", 4);
    mk_frame(&in, FIN | WS_OP_CONT, "12345", 5);
    tb_frame(&want, WS_OP_BINARY, false, 4);
    tb_data(&want, "1234", 4);
    tb_end(&want, WS_OP_BINARY, false);
    tb_err(&want, 1009, 12);
    check_decoder(&cfg, in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- close ---- */

START_TEST(test_after_close_ignored)
{
    struct tbuf in, want;
    tb_init(&in);
    tb_init(&want);
    mk_frame(&in, FIN | WS_OP_CLOSE, "\x03\xe8" "bye", 5);
    mk_frame(&in, FIN | WS_OP_TEXT, "late", 4);
    tb_put(&in, "\xff\xff\xff", 3); /* garbage too */
    tb_ctl(&want, WS_OP_CLOSE, "\x03\xe8" "bye", 5);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- a longer mixed stream ---- */

START_TEST(test_mixed_stream)
{
    struct tbuf in, want;
    char text[300];
    tb_init(&in);
    tb_init(&want);
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('A' + i % 50);
    memcpy(text + 140, "\xe2\x82\xac", 3);
    for (int round = 0; round < 3; round++) {
        size_t cut = 137 + (size_t)round; /* splits the euro sign three ways */
        mk_frame(&in, WS_OP_TEXT, text, cut);
        mk_frame(&in, FIN | WS_OP_PING, "x", 1);
        mk_frame(&in, FIN | WS_OP_CONT, text + cut, sizeof text - cut);
        tb_frame(&want, WS_OP_TEXT, false, cut);
        tb_data(&want, text, cut);
        tb_end(&want, WS_OP_TEXT, false);
        tb_ctl(&want, WS_OP_PING, "x", 1);
        tb_frame(&want, WS_OP_CONT, true, sizeof text - cut);
        tb_data(&want, text + cut, sizeof text - cut);
        tb_end(&want, WS_OP_CONT, true);
    }
    mk_frame(&in, FIN | WS_OP_CLOSE, NULL, 0);
    tb_ctl(&want, WS_OP_CLOSE, NULL, 0);
    check_bytes(in.p, in.n, &want);
    tb_free(&in);
    tb_free(&want);
}
END_TEST

/* ---- the one-step path ---- */

/* ws_decoder_whole takes a whole frame of each length boundary (and says
 * so), declines every prefix of it, and declines what is not a whole
 * message's only frame; what it declines the transcripts above cover. */
START_TEST(test_whole_takes_only_whole_messages)
{
    int nb = (int)(sizeof boundaries / sizeof boundaries[0]);
    for (int b = 0; b < nb; b++) {
        size_t n = boundaries[b].n;
        uint8_t *payload = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(payload);
        memset(payload, 'a', n);
        struct tbuf in;
        tb_init(&in);
        mk_frame(&in, FIN | (b & 1 ? WS_OP_TEXT : WS_OP_BINARY), payload, n);
        struct ws_decoder d;
        struct ws_event ev;
        ws_decoder_init(&d, NULL);
        for (size_t cut = 0; cut < in.n; cut += cut < 16 ? 1 : 4093)
            ck_assert_int_eq(ws_decoder_whole(&d, in.p, cut, &ev), 0);
        ck_assert_int_eq(ws_decoder_whole(&d, in.p, in.n, &ev), (ssize_t)in.n);
        ck_assert_int_eq(ev.kind, WS_EV_MESSAGE);
        ck_assert_uint_eq(ev.len, n);
        ck_assert(memcmp(ev.data, payload, n) == 0);
        ck_assert_uint_eq(d.consumed, in.n);
        tb_free(&in);
        free(payload);
    }
    /* A first fragment, a continuation, a ping, RSV1, an unmasked frame. */
    const uint8_t b0s[] = {WS_OP_BINARY, FIN | WS_OP_CONT, FIN | WS_OP_PING, FIN | WS_RSV1 | WS_OP_TEXT};
    for (size_t i = 0; i <= sizeof b0s; i++) {
        struct tbuf in;
        tb_init(&in);
        if (i < sizeof b0s)
            mk_frame(&in, b0s[i], "hi", 2);
        else
            mk_frame_ex(&in, FIN | WS_OP_BINARY, NULL, "hi", 2, 0, 0);
        struct ws_decoder d;
        struct ws_event ev;
        ws_decoder_init(&d, NULL);
        ck_assert_int_eq(ws_decoder_whole(&d, in.p, in.n, &ev), 0);
        tb_free(&in);
    }
}
END_TEST

Suite *decoder_suite(void)
{
    Suite *s = suite_create("decoder");
    TCase *tc = tcase_create("rfc");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_rfc_unmasked_hello_refused);
    tcase_add_test(tc, test_rfc_masked_hello);
    tcase_add_test(tc, test_rfc_fragmented_hello);
    tcase_add_test(tc, test_rfc_ping_pong);
    tcase_add_test(tc, test_rfc_256_and_64k_binary);
    suite_add_tcase(s, tc);

    tc = tcase_create("lengths");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    int nb = (int)(sizeof boundaries / sizeof boundaries[0]);
    tcase_add_loop_test(tc, test_boundary_lengths, 0, nb);
    tcase_add_loop_test(tc, test_boundary_lengths_text, 0, nb);
    tcase_add_test(tc, test_2_pow_32_over_limit);
    tcase_add_test(tc, test_2_pow_32_tracked);
    tcase_add_test(tc, test_64bit_msb_set);
    tcase_add_test(tc, test_non_minimal_lengths);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_rsv_bits_refused);
    tcase_add_test(tc, test_reserved_opcodes);
    tcase_add_test(tc, test_control_rules);
    tcase_add_test(tc, test_continuation_without_start);
    tcase_add_test(tc, test_new_message_inside_fragmented);
    tcase_add_test(tc, test_control_between_fragments);
    tcase_add_test(tc, test_empty_fragments);
    tcase_add_test(tc, test_after_close_ignored);
    tcase_add_test(tc, test_mixed_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_text_invalid_fails_at_byte);
    tcase_add_test(tc, test_text_invalid_across_fragments);
    tcase_add_test(tc, test_text_truncated_at_end);
    tcase_add_test(tc, test_text_validation_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_message_limit);
    tcase_add_test(tc, test_frame_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("whole");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_whole_takes_only_whole_messages);
    suite_add_tcase(s, tc);
    return s;
}
