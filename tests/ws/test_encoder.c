#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

START_TEST(test_header_lengths)
{
    static const struct {
        uint64_t len;
        size_t hn;
        uint8_t bytes[10];
    } rows[] = {
        {0, 2, {0x82, 0x00}},
        {125, 2, {0x82, 0x7D}},
        {126, 4, {0x82, 0x7E, 0x00, 0x7E}},
        {127, 4, {0x82, 0x7E, 0x00, 0x7F}},
        {256, 4, {0x82, 0x7E, 0x01, 0x00}},
        {65535, 4, {0x82, 0x7E, 0xFF, 0xFF}},
        {65536, 10, {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}},
        {UINT64_C(1) << 32, 10, {0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0}},
        {(UINT64_C(1) << 63) - 1, 10, {0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t h[WS_SERVER_HEADER_MAX];
        int n = ws_frame_header(h, WS_OP_BINARY, true, rows[i].len);
        ck_assert_int_eq(n, (int)rows[i].hn);
        ck_assert_uint_eq(ws_frame_header_len(rows[i].len), rows[i].hn);
        ck_assert(memcmp(h, rows[i].bytes, rows[i].hn) == 0);
        /* §5.1: the server's mask bit is always clear. */
        ck_assert_uint_eq(h[1] & 0x80, 0);
    }
}
END_TEST

START_TEST(test_header_refusals)
{
    uint8_t h[WS_SERVER_HEADER_MAX];
    ck_assert_int_eq(ws_frame_header(h, WS_OP_BINARY, true, UINT64_C(1) << 63), -EINVAL);
    ck_assert_int_eq(ws_frame_header(h, 3, true, 1), -EINVAL);
    ck_assert_int_eq(ws_frame_header(h, 0xB, true, 1), -EINVAL);
    ck_assert_int_eq(ws_frame_header(h, WS_OP_PING, false, 1), -EINVAL);
    ck_assert_int_eq(ws_frame_header(h, WS_OP_PING, true, 126), -EINVAL);
    ck_assert_int_eq(ws_frame_header(h, WS_OP_CLOSE, true, 125), 2);
    ck_assert_int_eq(ws_frame_header(h, WS_OP_TEXT, false, 5), 2);
    ck_assert_uint_eq(h[0], 0x01);
}
END_TEST

START_TEST(test_rfc_unmasked_frames)
{
    /* §5.7: what a server sends. */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8A, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ck_assert_int_eq(ws_frame_encode(out, sizeof out, WS_OP_TEXT, true, "Hello", 5), 7);
    ck_assert(memcmp(out, hello, 7) == 0);
    ck_assert_int_eq(ws_frame_control(out, WS_OP_PING, "Hello", 5), 7);
    ck_assert(memcmp(out, ping, 7) == 0);
    ck_assert_int_eq(ws_frame_control(out, WS_OP_PONG, "Hello", 5), 7);
    ck_assert(memcmp(out, pong, 7) == 0);

    uint8_t frag[32];
    ck_assert_int_eq(ws_frame_encode(frag, sizeof frag, WS_OP_TEXT, false, "Hel", 3), 5);
    ck_assert(memcmp(frag, "\x01\x03Hel", 5) == 0);
    ck_assert_int_eq(ws_frame_encode(frag, sizeof frag, WS_OP_CONT, true, "lo", 2), 4);
    ck_assert(memcmp(frag, "\x80\x02lo", 4) == 0);
}
END_TEST

START_TEST(test_encode_buffer_and_control_limits)
{
    uint8_t out[WS_CONTROL_FRAME_MAX + 8], big[200];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(ws_frame_encode(out, 6, WS_OP_TEXT, true, "Hello", 5), -ENOBUFS);
    ck_assert_int_eq(ws_frame_encode(out, 1, WS_OP_TEXT, true, "", 0), -ENOBUFS);
    ck_assert_int_eq(ws_frame_encode(out, 2, WS_OP_TEXT, true, "", 0), 2);
    ck_assert_int_eq(ws_frame_control(out, WS_OP_PING, big, 125), 127);
    ck_assert_int_eq(ws_frame_control(out, WS_OP_PING, big, 126), -EINVAL);
    ck_assert_int_eq(ws_frame_control(out, WS_OP_TEXT, big, 1), -EINVAL);

    uint8_t *large = malloc(70000);
    memset(large, 0, 70000);
    ck_assert_int_eq(ws_frame_encode(large, 70000, WS_OP_BINARY, true, big, 126), 130);
    ck_assert(memcmp(large, "\x82\x7e\x00\x7e", 4) == 0);
    free(large);
}
END_TEST

static size_t run_fragmenter(unsigned op, const uint8_t *p, size_t n, size_t frag, struct tbuf *wire)
{
    struct ws_fragmenter f;
    uint8_t h[WS_SERVER_HEADER_MAX];
    size_t hn, pn, frames = 0;
    const uint8_t *pp;
    ws_fragmenter_init(&f, op, p, n, frag);
    while (ws_fragmenter_next(&f, h, &hn, &pp, &pn) == 1) {
        /* Payload views point into the message: nothing is copied. */
        ck_assert(pn == 0 || (pp >= p && pp + pn <= p + n));
        tb_put(wire, h, hn);
        tb_put(wire, pp, pn);
        frames++;
    }
    ck_assert_int_eq(ws_fragmenter_next(&f, h, &hn, &pp, &pn), 0);
    return frames;
}

START_TEST(test_fragmenter)
{
    struct tbuf wire;
    tb_init(&wire);
    ck_assert_uint_eq(run_fragmenter(WS_OP_TEXT, (const uint8_t *)"0123456789", 10, 4, &wire), 3);
    ck_assert_uint_eq(wire.n, 16);
    ck_assert(memcmp(wire.p, "\x01\x04" "0123" "\x00\x04" "4567" "\x80\x02" "89", 16) == 0);

    wire.n = 0;
    ck_assert_uint_eq(run_fragmenter(WS_OP_BINARY, (const uint8_t *)"0123456789", 10, 5, &wire), 2);
    ck_assert(memcmp(wire.p, "\x02\x05" "01234" "\x80\x05" "56789", 14) == 0);

    wire.n = 0;
    ck_assert_uint_eq(run_fragmenter(WS_OP_TEXT, NULL, 0, 4, &wire), 1);
    ck_assert(wire.n == 2 && memcmp(wire.p, "\x81\x00", 2) == 0);

    wire.n = 0;
    ck_assert_uint_eq(run_fragmenter(WS_OP_TEXT, (const uint8_t *)"abc", 3, 0, &wire), 1);
    ck_assert(memcmp(wire.p, "\x81\x03" "abc", 5) == 0);
    tb_free(&wire);
}
END_TEST

/* What the server writes, masked the way a client would, goes back through
 * the decoder unchanged. */
START_TEST(test_round_trip_through_decoder)
{
    size_t n = 70000;
    uint8_t *msg = malloc(n);
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)('a' + i % 26);
    struct tbuf wire, client, want;
    tb_init(&wire);
    tb_init(&client);
    tb_init(&want);
    run_fragmenter(WS_OP_TEXT, msg, n, 30000, &wire);

    /* Re-frame each server frame as a masked client frame. */
    size_t at = 0;
    while (at < wire.n) {
        uint8_t b0 = wire.p[at], l7 = wire.p[at + 1] & 0x7F;
        size_t hn = l7 < 126 ? 2 : l7 == 126 ? 4 : 10;
        uint64_t len = l7 < 126 ? l7 : 0;
        for (size_t k = 2; k < hn; k++)
            len = len << 8 | wire.p[at + k];
        mk_frame(&client, b0, wire.p + at + hn, (size_t)len);
        tb_frame(&want, b0 & 0xF, b0 & 0x80, len);
        tb_data(&want, wire.p + at + hn, (size_t)len);
        tb_end(&want, b0 & 0xF, b0 & 0x80);
        at += hn + (size_t)len;
    }
    struct tbuf got;
    tb_init(&got);
    run_decoder(NULL, client.p, client.n, NULL, 0, &got);
    ck_assert_uint_eq(got.n, want.n);
    ck_assert(memcmp(got.p, want.p, want.n) == 0);
    tb_free(&got);
    tb_free(&wire);
    tb_free(&client);
    tb_free(&want);
    free(msg);
}
END_TEST

Suite *encoder_suite(void)
{
    Suite *s = suite_create("encoder");
    TCase *tc = tcase_create("write");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_header_lengths);
    tcase_add_test(tc, test_header_refusals);
    tcase_add_test(tc, test_rfc_unmasked_frames);
    tcase_add_test(tc, test_encode_buffer_and_control_limits);
    tcase_add_test(tc, test_fragmenter);
    tcase_add_test(tc, test_round_trip_through_decoder);
    suite_add_tcase(s, tc);
    return s;
}
