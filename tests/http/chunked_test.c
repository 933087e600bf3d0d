/*
 * chunked_test.c: the chunked body decoder, whole, split at every offset and
 * byte by byte, decoding in place before a PROT_NONE page.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "parse_util.h"

/* o.r: DONE with the whole body decoded, else what the decoder returned
 * (RT_PARSE_INCOMPLETE or RT_PARSE_ERROR). */
#define DONE 1

struct out {
    int r;
    int status;
    char data[8192];
    size_t n;        /* decoded bytes */
    size_t consumed; /* input bytes used */
};

/* Feeds s in pieces ending at the offsets in cuts[] (the last one is n). The
 * input is copied before the guard page; decoding happens in place like in
 * the connection: decoded bytes are compacted at the buffer's start. */
static void decode_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts, const struct http_limits *lim,
                        struct out *o)
{
    struct http_chunked c;
    http_chunked_init(&c);
    char *b = guard_place(&parse_guard, s, n);
    size_t in = 0; /* next input byte in b */
    o->n = 0;
    o->r = RT_PARSE_INCOMPLETE;
    o->consumed = 0;
    for (size_t k = 0; k < ncuts && o->r == RT_PARSE_INCOMPLETE; k++) {
        size_t avail = cuts[k] - in;
        size_t out;
        /* Decode into the same buffer, below the unread input. */
        ssize_t d = http_chunked_decode(&c, b + in, avail, b + o->n, &out, lim);
        /* Incomplete means every byte offered was consumed. */
        size_t used = d >= 0 ? (size_t)d : d == RT_PARSE_INCOMPLETE ? avail : 0;
        ck_assert(d >= 0 ? (size_t)d <= avail : d == RT_PARSE_INCOMPLETE || d == RT_PARSE_ERROR);
        ck_assert(o->n + out <= in + (d == RT_PARSE_ERROR ? avail : used));
        o->n += out;
        in += used;
        o->r = d >= 0 ? DONE : (int)d;
    }
    o->status = c.status;
    o->consumed = in;
    memcpy(o->data, b, o->n < sizeof o->data ? o->n : sizeof o->data);
}

static void check_all_splits(const char *s, size_t n, const struct http_limits *lim, struct out *whole)
{
    size_t one[1] = {n};
    decode_cuts(s, n, one, 1, lim, whole);
    struct out o;
    for (size_t k = 1; k < n; k++) {
        size_t two[2] = {k, n};
        decode_cuts(s, n, two, 2, lim, &o);
        ck_assert_int_eq(o.r, whole->r);
        ck_assert_int_eq(o.status, whole->status);
        if (o.r == DONE) {
            ck_assert_uint_eq(o.n, whole->n);
            ck_assert_uint_eq(o.consumed, whole->consumed);
            ck_assert(memcmp(o.data, whole->data, o.n) == 0);
        }
    }
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t k = 0; k < n; k++)
        cuts[k] = k + 1;
    decode_cuts(s, n, cuts, n, lim, &o);
    free(cuts);
    ck_assert_int_eq(o.r, whole->r);
    ck_assert_int_eq(o.status, whole->status);
    if (o.r == DONE)
        ck_assert(o.n == whole->n && memcmp(o.data, whole->data, o.n) == 0);
}

START_TEST(basic)
{
    const char *s = "5\r\nhello\r\n7;name=val;q=\"a \\\" b\"\r\n, world\r\n0\r\nTrailer-A: x\r\nB: y\r\n\r\nGET";
    struct http_limits lim = parse_default_limits();
    struct out o;
    check_all_splits(s, strlen(s), &lim, &o);
    ck_assert_int_eq(o.r, DONE);
    ck_assert_uint_eq(o.n, 12);
    ck_assert(memcmp(o.data, "hello, world", 12) == 0);
    ck_assert_uint_eq(o.consumed, strlen(s) - 3);
}
END_TEST

START_TEST(forms)
{
    struct http_limits lim = parse_default_limits();
    struct out o;
    const char *a = "0\r\n\r\n";
    check_all_splits(a, strlen(a), &lim, &o);
    ck_assert_int_eq(o.r, DONE);
    ck_assert_uint_eq(o.n, 0);
    const char *b = "A\r\n0123456789\r\n00000001\r\nx\r\n0;ext\r\n\r\n";
    check_all_splits(b, strlen(b), &lim, &o);
    ck_assert_int_eq(o.r, DONE);
    ck_assert_uint_eq(o.n, 11);
    ck_assert(memcmp(o.data, "0123456789x", 11) == 0);
    const char *c = "3 ; a = b ; c\r\nabc\r\n0\r\n\r\n";
    check_all_splits(c, strlen(c), &lim, &o);
    ck_assert_int_eq(o.r, DONE);
    ck_assert_uint_eq(o.n, 3);
    const char *d = "3\r\nab"; /* incomplete */
    check_all_splits(d, strlen(d), &lim, &o);
    ck_assert_int_eq(o.r, RT_PARSE_INCOMPLETE);
    ck_assert_uint_eq(o.n, 2);
}
END_TEST

static const struct cbad {
    const char *in;
    int status;
} cbad_table[] = {
    {"x\r\n", 400},
    {"\r\n", 400},
    {"5\nhello\r\n0\r\n\r\n", 400},         /* bare LF */
    {"5\rhello\r\n0\r\n\r\n", 400},         /* bare CR */
    {"5\r\nhelloX\r\n0\r\n\r\n", 400},      /* data longer than size */
    {"5\r\nhello\n0\r\n\r\n", 400},
    {"5 \r\nhello\r\n0\r\n\r\n", 400},      /* whitespace not followed by ';' */
    {"5;\r\nhello\r\n0\r\n\r\n", 400},      /* empty extension name */
    {"5;a=\r\nhello\r\n0\r\n\r\n", 400},    /* empty extension value */
    {"5;a=\"x\r\nhello\r\n0\r\n\r\n", 400}, /* unterminated quote */
    {"5;a=b c\r\nhello\r\n0\r\n\r\n", 400},
    {"5;a\x01\r\nhello\r\n0\r\n\r\n", 400},
    {"-5\r\nhello\r\n0\r\n\r\n", 400},
    {"0x5\r\nhello\r\n0\r\n\r\n", 400},
    {"0\r\n folded: x\r\n\r\n", 400},       /* obs-fold in trailers */
    {"0\r\nBad Name: x\r\n\r\n", 400},
    {"0\r\nX: a\x01\r\n\r\n", 400},
    {"0\r\nX: a\n\r\n", 400},
    {"0\r\n\n", 400},
    {"800001\r\n", 413},                    /* one chunk over 8 MiB */
    {"ffffffffffffffffffff\r\n", 413},      /* overflow is caught as over the limit */
};

START_TEST(malformed)
{
    struct http_limits lim = parse_default_limits();
    struct out o;
    check_all_splits(cbad_table[_i].in, strlen(cbad_table[_i].in), &lim, &o);
    ck_assert_msg(o.r == RT_PARSE_ERROR && o.status == cbad_table[_i].status, "row %d: r=%d status=%d", _i, o.r,
                  o.status);
}
END_TEST

START_TEST(body_limit)
{
    struct http_limits lim = parse_default_limits();
    lim.max_body = 10;
    struct out o;
    const char *ok = "5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n";
    check_all_splits(ok, strlen(ok), &lim, &o);
    ck_assert_int_eq(o.r, DONE);
    const char *over = "5\r\n12345\r\n6\r\n678901\r\n0\r\n\r\n";
    check_all_splits(over, strlen(over), &lim, &o);
    ck_assert_int_eq(o.r, RT_PARSE_ERROR);
    ck_assert_int_eq(o.status, 413);
    /* Extensions cannot grow a chunk line without bound. */
    static char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[0] = '1';
    big[1] = ';';
    check_all_splits(big, strlen(big), &lim, &o);
    ck_assert_int_eq(o.r, RT_PARSE_ERROR);
    ck_assert_int_eq(o.status, 400);
}
END_TEST

Suite *chunked_suite(void)
{
    Suite *s = suite_create("http_chunked");
    TCase *tc = tcase_create("chunked");
    tcase_add_checked_fixture(tc, NULL, parse_guard_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, basic);
    tcase_add_test(tc, forms);
    tcase_add_loop_test(tc, malformed, 0, (int)(sizeof cbad_table / sizeof cbad_table[0]));
    tcase_add_test(tc, body_limit);
    suite_add_tcase(s, tc);
    return s;
}
