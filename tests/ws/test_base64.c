#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "util.h"

/* RFC 4648 §10. */
static const struct {
    const char *plain;
    const char *coded;
} vectors[] = {
    {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

START_TEST(test_rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char out[16];
        uint8_t back[16];
        size_t pn = strlen(vectors[i].plain), cn = strlen(vectors[i].coded);
        ck_assert_uint_eq(RT_BASE64_LEN(pn), cn);
        ck_assert_uint_eq(rt_base64_encode(out, vectors[i].plain, pn), cn);
        ck_assert(memcmp(out, vectors[i].coded, cn) == 0);
        ck_assert_int_eq(rt_base64_decode(back, sizeof back, vectors[i].coded, cn), (int)pn);
        ck_assert(memcmp(back, vectors[i].plain, pn) == 0);
    }
}
END_TEST

START_TEST(test_rejects_malformed)
{
    static const char *bad[] = {
        "Zg=", "Zg", "Z", "Zg=a", "Z===", "====", "Zm9v!A==", "Zm 9v", "Zm9v\n", "Zh==", "Zm9=",
        "dGhlIHNhbXBsZSBub25jZR==", /* non-zero bits under the padding */
        "Zg==Zg==",                 /* padding in the middle */
    };
    uint8_t out[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(rt_base64_decode(out, sizeof out, bad[i], strlen(bad[i])) == -EINVAL, "%s", bad[i]);
}
END_TEST

START_TEST(test_buffer_too_small)
{
    uint8_t out[16];
    ck_assert_int_eq(rt_base64_decode(out, 5, "Zm9vYmFy", 8), -ENOBUFS);
    ck_assert_int_eq(rt_base64_decode(out, 6, "Zm9vYmFy", 8), 6);
    ck_assert_int_eq(rt_base64_decode(out, 16, "dGhlIHNhbXBsZSBub25jZQ==", 24), 16);
    ck_assert_int_eq(rt_base64_decode(out, 15, "dGhlIHNhbXBsZSBub25jZQ==", 24), -ENOBUFS);
}
END_TEST

START_TEST(test_round_trip)
{
    uint8_t in[64], back[64];
    char coded[RT_BASE64_LEN(64)];
    srand(7);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)rand() % sizeof in;
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)rand();
        size_t cn = rt_base64_encode(coded, in, n);
        ck_assert_int_eq(rt_base64_decode(back, sizeof back, coded, cn), (int)n);
        ck_assert(n == 0 || memcmp(in, back, n) == 0);
    }
}
END_TEST

Suite *base64_suite(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_rfc4648_vectors);
    tcase_add_test(tc, test_rejects_malformed);
    tcase_add_test(tc, test_buffer_too_small);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
