#include <errno.h>
#include <signal.h>
#include <string.h>

#include "rt.h"
#include "util.h"
#include "ws/close.h"

static const struct {
    unsigned code;
    bool valid;
} codes[] = {
    {0, false},     {999, false},   {1000, true},   {1001, true},   {1002, true},   {1003, true},
    {1004, false},  {1005, false},  {1006, false},  {1007, true},   {1008, true},   {1009, true},
    {1010, true},   {1011, true},   {1012, true},   {1013, true},   {1014, true},   {1015, false},
    {1016, false},  {1100, false},  {2000, false},  {2999, false},  {3000, true},   {3999, true},
    {4000, true},   {4999, true},   {5000, false},  {65535, false},
};

START_TEST(test_code_classes)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        uint8_t p[2] = {(uint8_t)(codes[i].code >> 8), (uint8_t)codes[i].code};
        struct ws_close_payload cp;
        ck_assert_msg(ws_close_code_valid(codes[i].code) == codes[i].valid, "%u", codes[i].code);
        int rc = ws_close_parse(p, 2, &cp);
        if (codes[i].valid) {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(cp.code, codes[i].code);
        } else {
            ck_assert_int_eq(rc, SNOW_EPROTOCOL);
            ck_assert_uint_eq(cp.code, WS_CLOSE_PROTOCOL_ERROR);
        }
    }
}
END_TEST

START_TEST(test_parse_payloads)
{
    struct ws_close_payload cp;
    ck_assert_int_eq(ws_close_parse(NULL, 0, &cp), 0);
    ck_assert_uint_eq(cp.code, WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(cp.reason_len, 0);

    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03", 1, &cp), SNOW_EPROTOCOL);
    ck_assert_uint_eq(cp.code, WS_CLOSE_PROTOCOL_ERROR);

    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xe8" "bye \xe2\x82\xac", 9, &cp), 0);
    ck_assert_uint_eq(cp.code, 1000);
    ck_assert(cp.reason_len == 7 && memcmp(cp.reason, "bye \xe2\x82\xac", 7) == 0);

    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xe8" "\xce\xba\xff", 5, &cp), SNOW_EPROTOCOL);
    ck_assert_uint_eq(cp.code, WS_CLOSE_INVALID_DATA);
    /* A reason cut inside a character is invalid as well. */
    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xe8" "\xe2\x82", 4, &cp), SNOW_EPROTOCOL);
    ck_assert_uint_eq(cp.code, WS_CLOSE_INVALID_DATA);
    /* An invalid code wins over an invalid reason. */
    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xed" "\xff", 3, &cp), SNOW_EPROTOCOL);
    ck_assert_uint_eq(cp.code, WS_CLOSE_PROTOCOL_ERROR);

    uint8_t full[125];
    full[0] = 0x0F, full[1] = 0xA0; /* 4000 */
    memset(full + 2, 'r', 123);
    ck_assert_int_eq(ws_close_parse(full, 125, &cp), 0);
    ck_assert_uint_eq(cp.reason_len, 123);
}
END_TEST

START_TEST(test_build_frames)
{
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ck_assert_int_eq(ws_close_frame(out, 1000, "bye", 3), 7);
    ck_assert(memcmp(out, "\x88\x05\x03\xe8" "bye", 7) == 0);
    ck_assert_int_eq(ws_close_frame(out, 0, NULL, 0), 2);
    ck_assert(memcmp(out, "\x88\x00", 2) == 0);
    ck_assert_int_eq(ws_close_frame(out, 4999, NULL, 0), 4);
    ck_assert(memcmp(out, "\x88\x02\x13\x87", 4) == 0);
    ck_assert_int_eq(ws_close_frame(out, 1000, "\xff", 1), -EILSEQ);

    /* 122 ASCII bytes then a 2-byte character: 124 bytes, cut to 122
     * rather than splitting the character. */
    char reason[200];
    memset(reason, 'a', 122);
    memcpy(reason + 122, "\xc3\xa9", 2);
    ck_assert_int_eq(ws_close_frame(out, 1001, reason, 124), 2 + 2 + 122);
    ck_assert_uint_eq(out[1], 124);
    /* 121 + a 3-byte character: 124, cut to 121. */
    memset(reason, 'b', 121);
    memcpy(reason + 121, "\xe2\x82\xac", 3);
    ck_assert_int_eq(ws_close_frame(out, 1001, reason, 124), 2 + 2 + 121);
    /* Exactly 123 stays whole. */
    memset(reason, 'c', 123);
    ck_assert_int_eq(ws_close_frame(out, 1001, reason, 123), 127);
    /* Long reasons are cut to 123. */
    memset(reason, 'd', 200);
    ck_assert_int_eq(ws_close_frame(out, 1001, reason, 200), 127);
}
END_TEST

/* 1005, 1006 and 1015 (and any other invalid code) never reach the wire:
 * asserting builds abort, others get -EINVAL. */
static const unsigned never_sent[] = {1005, 1006, 1015, 999, 1004, 1016, 2999, 5000};

START_TEST(test_never_sent_codes)
{
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ck_assert_int_eq(ws_close_frame(out, never_sent[_i], NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_remote_initiates)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    ck_assert(ws_close_may_send(&c));
    int n = ws_close_received(&c, (const uint8_t *)"\x03\xe9" "bye", 5, out);
    /* Echo the code (§5.5.1). */
    ck_assert_int_eq(n, 4);
    ck_assert(memcmp(out, "\x88\x02\x03\xe9", 4) == 0);
    ck_assert_int_eq(c.state, WS_STATE_CLOSED);
    ck_assert_int_eq(c.initiator, WS_BY_REMOTE);
    ck_assert_uint_eq(c.code, 1001);
    ck_assert(c.reason_len == 3 && memcmp(c.reason, "bye", 3) == 0);
    ck_assert(!ws_close_may_send(&c));
    ck_assert(!ws_close_may_receive(&c));
    /* Nothing more: a second close or an abort changes nothing. */
    ck_assert_int_eq(ws_close_received(&c, NULL, 0, out), 0);
    ws_close_abort(&c);
    ck_assert_uint_eq(c.code, 1001);
    ck_assert_int_eq(ws_close_start(&c, 1000, NULL, 0, out), SNOW_ECLOSED);
}
END_TEST

START_TEST(test_remote_empty_close)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    /* No code to echo, and 1005 may not be sent: an empty Close answers. */
    ck_assert_int_eq(ws_close_received(&c, NULL, 0, out), 2);
    ck_assert(memcmp(out, "\x88\x00", 2) == 0);
    ck_assert_uint_eq(c.code, WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(c.sent_code, 0);
}
END_TEST

START_TEST(test_remote_invalid_close)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    ck_assert_int_eq(ws_close_received(&c, (const uint8_t *)"\x03", 1, out), 4);
    ck_assert(memcmp(out, "\x88\x02\x03\xea", 4) == 0); /* 1002 */
    ck_assert_uint_eq(c.code, 1002);

    ws_close_init(&c);
    ck_assert_int_eq(ws_close_received(&c, (const uint8_t *)"\x03\xed", 2, out), 4); /* 1005 on the wire */
    ck_assert(memcmp(out, "\x88\x02\x03\xea", 4) == 0);

    ws_close_init(&c);
    ck_assert_int_eq(ws_close_received(&c, (const uint8_t *)"\x03\xe8\xc0\xaf", 4, out), 4);
    ck_assert(memcmp(out, "\x88\x02\x03\xef", 4) == 0); /* 1007 */
    ck_assert_uint_eq(c.code, 1007);
}
END_TEST

START_TEST(test_local_initiates)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    ck_assert_int_eq(ws_close_start(&c, 1001, "going", 5, out), 9);
    ck_assert(memcmp(out, "\x88\x07\x03\xe9" "going", 9) == 0);
    ck_assert_int_eq(c.state, WS_STATE_CLOSING);
    ck_assert_int_eq(c.initiator, WS_BY_LOCAL);
    ck_assert(!ws_close_may_send(&c));
    ck_assert(ws_close_may_receive(&c));
    ck_assert_int_eq(ws_close_start(&c, 1000, NULL, 0, out), SNOW_ECLOSED);
    /* The answer completes the handshake: no reply is due. */
    ck_assert_int_eq(ws_close_received(&c, (const uint8_t *)"\x03\xe9", 2, out), 0);
    ck_assert_int_eq(c.state, WS_STATE_CLOSED);
    ck_assert_int_eq(c.initiator, WS_BY_LOCAL);
    ck_assert_uint_eq(c.code, 1001);
}
END_TEST

START_TEST(test_local_then_timeout)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    ck_assert_int_gt(ws_close_start(&c, 1000, NULL, 0, out), 0);
    ws_close_abort(&c);
    ck_assert_int_eq(c.state, WS_STATE_CLOSED);
    ck_assert_uint_eq(c.code, WS_CLOSE_ABNORMAL);

    ws_close_init(&c);
    ws_close_abort(&c);
    ck_assert_uint_eq(c.code, WS_CLOSE_ABNORMAL);
    ck_assert_int_eq(c.initiator, WS_BY_NONE);
}
END_TEST

START_TEST(test_start_refuses_bad_reason)
{
    struct ws_close c;
    uint8_t out[WS_CONTROL_FRAME_MAX];
    ws_close_init(&c);
    ck_assert_int_eq(ws_close_start(&c, 1000, "\xed\xa0\x80", 3, out), -EILSEQ);
    ck_assert_int_eq(c.state, WS_STATE_OPEN);
}
END_TEST

Suite *close_suite(void)
{
    Suite *s = suite_create("close");
    TCase *tc = tcase_create("payload");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_code_classes);
    tcase_add_test(tc, test_parse_payloads);
    tcase_add_test(tc, test_build_frames);
    int nn = (int)(sizeof never_sent / sizeof never_sent[0]);
#ifdef NDEBUG
    tcase_add_loop_test(tc, test_never_sent_codes, 0, nn);
#else
    tcase_add_loop_test_raise_signal(tc, test_never_sent_codes, SIGABRT, 0, nn);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_remote_initiates);
    tcase_add_test(tc, test_remote_empty_close);
    tcase_add_test(tc, test_remote_invalid_close);
    tcase_add_test(tc, test_local_initiates);
    tcase_add_test(tc, test_local_then_timeout);
    tcase_add_test(tc, test_start_refuses_bad_reason);
    suite_add_tcase(s, tc);
    return s;
}
