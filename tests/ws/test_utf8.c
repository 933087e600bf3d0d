#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

/* bad: offset of the first invalid byte; -1 valid; n (the length) for a
 * sequence cut short at the end. */
struct row {
    const char *name;
    const char *s;
    size_t n;
    long bad;
};

#define ROW(name, lit, bad) {name, lit, sizeof(lit) - 1, bad}

static const struct row rows[] = {
    /* valid, one of each length and each boundary */
    ROW("empty", "", -1),
    ROW("ascii", "Hello, world", -1),
    ROW("nul and del", "\x00\x7f", -1),
    ROW("U+0080", "\xc2\x80", -1),
    ROW("U+07FF", "\xdf\xbf", -1),
    ROW("U+0800", "\xe0\xa0\x80", -1),
    ROW("U+D7FF", "\xed\x9f\xbf", -1),
    ROW("U+E000", "\xee\x80\x80", -1),
    ROW("U+FFFD", "\xef\xbf\xbd", -1),
    ROW("U+10000", "\xf0\x90\x80\x80", -1),
    ROW("U+10FFFF", "\xf4\x8f\xbf\xbf", -1),
    ROW("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", -1),
    /* noncharacters are valid UTF-8 */
    ROW("U+FFFE", "\xef\xbf\xbe", -1),
    ROW("U+FFFF", "\xef\xbf\xbf", -1),
    ROW("U+FDD0", "\xef\xb7\x90", -1),
    ROW("U+1FFFF", "\xf0\x9f\xbf\xbf", -1),
    ROW("U+10FFFE", "\xf4\x8f\xbf\xbe", -1),

    /* lone continuation bytes */
    ROW("lone 80", "\x80", 0),
    ROW("lone bf", "\xbf", 0),
    ROW("ascii then 80", "ab\x80", 2),
    ROW("extra continuation", "\xc2\x80\x80", 2),
    /* overlong forms */
    ROW("overlong 2 C0", "\xc0\x80", 0),
    ROW("overlong 2 C1", "\xc1\xbf", 0),
    ROW("overlong 3 lowest", "\xe0\x80\x80", 1),
    ROW("overlong 3 highest", "\xe0\x9f\xbf", 1),
    ROW("overlong 4 lowest", "\xf0\x80\x80\x80", 1),
    ROW("overlong 4 highest", "\xf0\x8f\xbf\xbf", 1),
    ROW("overlong slash", "a\xe0\x80\xaf", 2),
    /* surrogates */
    ROW("U+D800", "\xed\xa0\x80", 1),
    ROW("U+DBFF", "\xed\xaf\xbf", 1),
    ROW("U+DC00", "\xed\xb0\x80", 1),
    ROW("U+DFFF", "\xed\xbf\xbf", 1),
    ROW("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
    /* beyond U+10FFFF */
    ROW("U+110000", "\xf4\x90\x80\x80", 1),
    ROW("F5 lead", "\xf5\x80\x80\x80", 0),
    ROW("F7 lead", "\xf7\xbf\xbf\xbf", 0),
    /* 5- and 6-byte forms, FE, FF */
    ROW("5-byte", "\xf8\x88\x80\x80\x80", 0),
    ROW("6-byte", "\xfc\x84\x80\x80\x80\x80", 0),
    ROW("FE", "\xfe", 0),
    ROW("FF", "\xff", 0),
    ROW("FE FF BOM", "\xfe\xff", 0),
    /* truncated sequences: cut by ASCII, or at the end */
    ROW("2 cut by ascii", "\xc2\x41", 1),
    ROW("3 cut by ascii", "\xe0\xa0\x41", 2),
    ROW("4 cut by ascii", "\xf0\x90\x80\x41", 3),
    ROW("3 cut by lead", "\xe1\x80\xc2\x80", 2),
    ROW("2 at end", "ab\xc2", 3),
    ROW("3 at end", "\xe0\xa0", 2),
    ROW("4 at end", "\xf4\x8f\xbf", 3),
    ROW("valid then bad", "hello\xc0", 5),
    ROW("after kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 12),
};

START_TEST(test_table_whole)
{
    const struct row *r = &rows[_i];
    size_t bad = 99;
    bool ok = rt_utf8_valid(r->s, r->n, &bad);
    ck_assert_msg(ok == (r->bad < 0), "%s", r->name);
    if (!ok)
        ck_assert_msg(bad == (size_t)r->bad, "%s: bad at %zu, want %ld", r->name, bad, r->bad);
}
END_TEST

/* Feeds a row through the incremental validator in pieces; the failure is
 * reported at the same absolute offset, in the chunk that holds it. */
static void feed_pieces(const struct row *r, const size_t *cuts, size_t ncuts)
{
    static struct guard g;
    struct rt_utf8 v;
    size_t start = 0;
    rt_utf8_init(&v);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : r->n;
        const uint8_t *p = guard_place(&g, r->s + start, end - start);
        size_t off = rt_utf8_feed(&v, p, end - start);
        if (off < end - start) {
            ck_assert_msg(r->bad >= 0 && start + off == (size_t)r->bad, "%s: failed at %zu", r->name, start + off);
            ck_assert(rt_utf8_failed(&v));
            ck_assert(!rt_utf8_complete(&v));
            return;
        }
        ck_assert_msg(r->bad < 0 || (size_t)r->bad >= end, "%s: missed the bad byte", r->name);
        start = end;
    }
    if (r->bad < 0)
        ck_assert_msg(rt_utf8_complete(&v), "%s", r->name);
    else
        ck_assert_msg((size_t)r->bad == r->n && !rt_utf8_complete(&v) && !rt_utf8_failed(&v), "%s", r->name);
}

START_TEST(test_table_split)
{
    const struct row *r = &rows[_i];
    feed_pieces(r, NULL, 0);
    for (size_t cut = 0; cut <= r->n; cut++)
        feed_pieces(r, &cut, 1);
    size_t cuts[16];
    for (size_t i = 0; i + 1 < r->n; i++)
        cuts[i] = i + 1;
    if (r->n > 1)
        feed_pieces(r, cuts, r->n - 1);
}
END_TEST

/* Each table row embedded at every alignment in long ASCII runs, so that
 * the word-at-a-time path hands over to the DFA at every position. */
START_TEST(test_table_in_ascii)
{
    const struct row *r = &rows[_i];
    char buf[200];
    for (size_t pre = 0; pre < 70; pre++) {
        memset(buf, 'x', sizeof buf);
        memcpy(buf + pre, r->s, r->n);
        size_t total = pre + r->n + 40;
        size_t bad = 0;
        bool ok = rt_utf8_valid(buf, total, &bad);
        if (r->bad < 0) {
            ck_assert_msg(ok, "%s at %zu", r->name, pre);
        } else {
            ck_assert_msg(!ok, "%s at %zu", r->name, pre);
            /* A sequence cut at its end is now cut by the ASCII after it. */
            ck_assert_uint_eq(bad, pre + (size_t)r->bad);
        }
    }
}
END_TEST

/* An independent, obviously slow decoder to compare against. */
static long ref_first_bad(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return (long)i;
        }
        for (size_t k = 1; k < len; k++) {
            if (i + k >= n)
                return (long)n;
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)(i + k);
            cp = cp << 6 | (s[i + k] & 0x3F);
            /* The DFA fails at the first byte that rules the prefix out:
             * the second byte decides overlong, surrogate and range. */
            if (k == 1) {
                uint32_t lo = cp << 6 * (len - 2), hi = lo | ((1u << 6 * (len - 2)) - 1);
                if (hi < min || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF))
                    return (long)(i + k);
            }
        }
        (void)min;
        i += len;
    }
    return -1;
}

START_TEST(test_random_against_reference)
{
    uint8_t buf[64];
    static const uint8_t pick[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                   0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    srand(11);
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)rand() % 12;
        for (size_t i = 0; i < n; i++)
            buf[i] = rand() % 3 ? pick[rand() % sizeof pick] : (uint8_t)rand();
        long want = ref_first_bad(buf, n);
        size_t bad = 0;
        bool ok = rt_utf8_valid(buf, n, &bad);
        QCHECK(ok == (want < 0));
        if (!ok)
            QCHECK(bad == (size_t)want);
    }
}
END_TEST

START_TEST(test_failed_stays_failed)
{
    struct rt_utf8 v;
    rt_utf8_init(&v);
    ck_assert_uint_eq(rt_utf8_feed(&v, "a\xff", 2), 1);
    ck_assert_uint_eq(rt_utf8_feed(&v, "abc", 3), 0);
    ck_assert(rt_utf8_failed(&v));
}
END_TEST

START_TEST(test_prefix_boundary)
{
    /* "aé€😀" = 61 | c3 a9 | e2 82 ac | f0 9f 98 80 */
    static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};
    for (size_t max = 0; max <= 11; max++)
        ck_assert_uint_eq(rt_utf8_prefix(s, 10, max), want[max]);
}
END_TEST

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("validate");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    int nrows = (int)(sizeof rows / sizeof rows[0]);
    tcase_add_loop_test(tc, test_table_whole, 0, nrows);
    tcase_add_loop_test(tc, test_table_split, 0, nrows);
    tcase_add_loop_test(tc, test_table_in_ascii, 0, nrows);
    tcase_add_test(tc, test_random_against_reference);
    tcase_add_test(tc, test_failed_stays_failed);
    tcase_add_test(tc, test_prefix_boundary);
    suite_add_tcase(s, tc);
    return s;
}
