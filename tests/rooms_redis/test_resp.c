/*
 * test_resp.c: the RESP codec, the envelope and the URL of the Redis room
 * backend. Every reply is parsed whole and cut at every byte offset (each
 * proper prefix must ask for more, never fail or succeed early), and also
 * placed right before a PROT_NONE page so a read past the end faults.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snow_rt.h"
#include "ws/redis_resp.h"
#include "ws/rooms_redis.h"

static const struct resp_limits LIM = {64, 1 << 20};

/* Copies s to the end of a page followed by a PROT_NONE page. */
static char *guarded(const char *s, size_t n, void **map, size_t *maplen)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t pages = (n + (size_t)pg - 1) / (size_t)pg + 1;
    *maplen = (pages + 1) * (size_t)pg;
    char *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + pages * (size_t)pg, (size_t)pg, PROT_NONE), 0);
    char *p = m + pages * (size_t)pg - n;
    memcpy(p, s, n);
    *map = m;
    return p;
}

/* Parses the whole reply and every proper prefix of it. */
static size_t parse_all_ways(const char *s, size_t n, struct resp_val *v)
{
    void *map;
    size_t maplen, nv = 0;
    for (size_t k = 0; k < n; k++) {
        char *p = guarded(s, k, &map, &maplen);
        struct resp_val tmp[64];
        size_t tn;
        ck_assert_msg(resp_parse(p, k, &LIM, tmp, &tn) == RESP_INCOMPLETE, "prefix %zu of %zu", k, n);
        munmap(map, maplen);
    }
    char *p = guarded(s, n, &map, &maplen);
    ck_assert_int_eq(resp_parse(p, n, &LIM, v, &nv), (ssize_t)n);
    /* Views point into the caller's buffer: check them before unmapping by
     * comparing offsets only. */
    for (size_t i = 0; i < nv; i++)
        if (v[i].str)
            v[i].str = s + (v[i].str - p);
    munmap(map, maplen);
    return nv;
}

#define S(lit) lit, sizeof lit - 1

START_TEST(simple_types)
{
    struct resp_val v[64];
    ck_assert_uint_eq(parse_all_ways(S("+OK\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_SIMPLE);
    ck_assert_uint_eq(v[0].len, 2);
    ck_assert(!memcmp(v[0].str, "OK", 2));
    ck_assert_uint_eq(parse_all_ways(S("-ERR unknown command\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_ERROR);
    ck_assert_uint_eq(v[0].len, 19);
    ck_assert_uint_eq(parse_all_ways(S(":-9223372036854775808\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_INT);
    ck_assert(v[0].ival == INT64_MIN);
    ck_assert_uint_eq(parse_all_ways(S(":9223372036854775807\r\n"), v), 1);
    ck_assert(v[0].ival == INT64_MAX);
    ck_assert_uint_eq(parse_all_ways(S("$-1\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_NULL);
    ck_assert_uint_eq(parse_all_ways(S("*-1\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_NULL);
    ck_assert_uint_eq(parse_all_ways(S("_\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_NULL);
    ck_assert_uint_eq(parse_all_ways(S("#t\r\n"), v), 1);
    ck_assert_int_eq(v[0].ival, 1);
    ck_assert_uint_eq(parse_all_ways(S("$0\r\n\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_BULK);
    ck_assert_uint_eq(v[0].len, 0);
    /* A bulk string may hold CR, LF and NUL. */
    ck_assert_uint_eq(parse_all_ways(S("$5\r\na\r\n\0b\r\n"), v), 1);
    ck_assert_uint_eq(v[0].len, 5);
    ck_assert(!memcmp(v[0].str, "a\r\n\0b", 5));
    ck_assert_uint_eq(parse_all_ways(S("*0\r\n"), v), 1);
    ck_assert_int_eq(v[0].type, RESP_ARRAY);
    ck_assert_int_eq(v[0].ival, 0);
}
END_TEST

START_TEST(pubsub_shapes)
{
    struct resp_val v[64];
    ck_assert_uint_eq(parse_all_ways(S("*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$3\r\nhi!\r\n"), v), 4);
    ck_assert_int_eq(v[0].type, RESP_ARRAY);
    ck_assert_int_eq(v[0].ival, 3);
    ck_assert(v[1].len == 7 && !memcmp(v[1].str, "message", 7));
    ck_assert(v[2].len == 4 && !memcmp(v[2].str, "chan", 4));
    ck_assert(v[3].len == 3 && !memcmp(v[3].str, "hi!", 3));
    ck_assert_uint_eq(parse_all_ways(S("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:12\r\n"), v), 4);
    ck_assert_int_eq(v[3].type, RESP_INT);
    ck_assert_int_eq(v[3].ival, 12);
    /* RESP3 push form of the same message */
    ck_assert_uint_eq(parse_all_ways(S(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n"), v), 4);
    ck_assert_int_eq(v[0].type, RESP_PUSH);
    /* nesting: pre-order, empty aggregates are leaves */
    ck_assert_uint_eq(parse_all_ways(S("*3\r\n*2\r\n:1\r\n*0\r\n$-1\r\n*1\r\n+x\r\n"), v), 7);
    ck_assert_int_eq(v[1].type, RESP_ARRAY);
    ck_assert_int_eq(v[1].ival, 2);
    ck_assert_int_eq(v[2].ival, 1);
    ck_assert_int_eq(v[3].type, RESP_ARRAY);
    ck_assert_int_eq(v[4].type, RESP_NULL);
    ck_assert_int_eq(v[5].ival, 1);
    ck_assert_int_eq(v[6].type, RESP_SIMPLE);
}
END_TEST

START_TEST(consecutive_replies)
{
    static const char two[] = ":1\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nab\r\n+OK\r\n";
    struct resp_val v[64];
    size_t nv, off = 0, n = sizeof two - 1;
    int replies = 0;
    while (off < n) {
        ssize_t k = resp_parse(two + off, n - off, &LIM, v, &nv);
        ck_assert_int_gt(k, 0);
        off += (size_t)k;
        replies++;
    }
    ck_assert_int_eq(replies, 3);
    ck_assert_uint_eq(off, n);
}
END_TEST

static ssize_t parse_str(const char *s, size_t n, const struct resp_limits *lim)
{
    struct resp_val v[64];
    size_t nv;
    return resp_parse(s, n, lim, v, &nv);
}

START_TEST(bad_input)
{
    static const char *bad[] = {
        "?x\r\n",     ":12a\r\n", ":\r\n",         ":-\r\n",   ":9223372036854775808\r\n", "$-2\r\n",
        "$3\r\nabcd\r\n", "$x\r\n", "*-2\r\n",     "+a\rb\r\n", "#x\r\n",   "_x\r\n", ">0\r\n",
        "$1\r\nabc",  "%1\r\n",   ":1\r\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(parse_str(bad[i], strlen(bad[i]), &LIM) == RESP_EPROTO, "%s", bad[i]);
    /* a header line that never ends is refused once it is too long */
    ck_assert_int_eq(parse_str(S(":1234567890123456789012345678901234567890"), &LIM), RESP_EPROTO);
    /* limits refuse at the declaration, before the bytes arrive */
    struct resp_limits small = {4, 10};
    ck_assert_int_eq(parse_str(S("$11\r\n"), &small), RESP_ETOOBIG);
    ck_assert_int_eq(parse_str(S("*4\r\n"), &small), RESP_ETOOBIG);
    ck_assert_int_eq(parse_str(S("*3\r\n"), &small), RESP_INCOMPLETE);
    ck_assert_int_eq(parse_str(S("+0123456789ab"), &small), RESP_ETOOBIG);
    ck_assert_int_eq(parse_str(S("*1\r\n*1\r\n*1\r\n*1\r\n"), &small), RESP_ETOOBIG);
    struct resp_limits deep = {64, 10};
    ck_assert_int_eq(parse_str(S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), &deep),
                     RESP_ETOOBIG);
}
END_TEST

START_TEST(encode_round_trip)
{
    const char *argv[3] = {"PUBLISH", "snow:room:a", "x\r\ny"};
    size_t lens[3] = {7, 11, 4};
    size_t need = resp_encoded_size(3, lens);
    char buf[128];
    ck_assert_uint_le(need, sizeof buf);
    size_t n = resp_encode(buf, 3, argv, lens);
    ck_assert_uint_eq(n, need);
    static const char want[] = "*3\r\n$7\r\nPUBLISH\r\n$11\r\nsnow:room:a\r\n$4\r\nx\r\ny\r\n";
    ck_assert_uint_eq(n, sizeof want - 1);
    ck_assert(!memcmp(buf, want, n));
    struct resp_val v[64];
    ck_assert_uint_eq(parse_all_ways(buf, n, v), 4);
    ck_assert(v[3].len == 4 && !memcmp(v[3].str, "x\r\ny", 4));
    /* a large argument: lengths with many digits */
    size_t big = 1234567;
    char *p = malloc(big), *out = malloc(big + 64);
    memset(p, 'z', big);
    const char *a1[1] = {p};
    n = resp_encode(out, 1, a1, &big);
    ck_assert_uint_eq(n, resp_encoded_size(1, &big));
    size_t nv;
    struct resp_limits lim = {4, 2 << 20};
    ck_assert_int_eq(resp_parse(out, n, &lim, v, &nv), (ssize_t)n);
    ck_assert_uint_eq(v[1].len, big);
    free(p);
    free(out);
}
END_TEST

START_TEST(envelope)
{
    unsigned char b[REDIS_ENV_HEADER + 3];
    struct redis_env e = {.flags = REDIS_ENV_TEXT, .node = 0x0123456789abcdefULL, .epoch = 77, .pseq = 5,
                          .seq = 9, .seq_at = SIZE_MAX, .epoch_at = 4};
    redis_env_encode(b, &e);
    memcpy(b + REDIS_ENV_HEADER, "abc", 3);
    struct redis_env d;
    ck_assert_int_eq(redis_env_decode(b, sizeof b, &d), 0);
    ck_assert_uint_eq(d.flags, REDIS_ENV_TEXT);
    ck_assert(d.node == e.node && d.epoch == 77 && d.pseq == 5 && d.seq == 9);
    ck_assert(d.seq_at == SIZE_MAX && d.epoch_at == 4);
    ck_assert_uint_eq(d.len, 3);
    ck_assert(!memcmp(d.payload, "abc", 3));
    for (size_t k = 0; k < REDIS_ENV_HEADER; k++)
        ck_assert_int_eq(redis_env_decode(b, k, &d), -EINVAL);
    b[0] ^= 1;
    ck_assert_int_eq(redis_env_decode(b, sizeof b, &d), -EINVAL);
}
END_TEST

START_TEST(urls)
{
    struct redis_url u;
    ck_assert_int_eq(redis_url_parse("redis://127.0.0.1:6379/0", &u), 0);
    ck_assert_int_eq(u.addr.ss_family, AF_INET);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&u.addr)->sin_port), 6379);
    ck_assert_str_eq(u.prefix, REDIS_PREFIX_DEFAULT);
    ck_assert_int_eq(redis_url_parse("redis://localhost", &u), 0);
    ck_assert_int_eq(redis_url_parse("redis://[::1]:7000/3?prefix=app:", &u), 0);
    ck_assert_int_eq(u.addr.ss_family, AF_INET6);
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.prefix, "app:");
    ck_assert(!u.streams);
    ck_assert_int_eq(u.maxlen, REDIS_MAXLEN_DEFAULT);
    ck_assert_int_eq(redis_url_parse("redis://127.0.0.1/0?mode=streams&maxlen=50&prefix=x", &u), 0);
    ck_assert(u.streams);
    ck_assert_int_eq(u.maxlen, 50);
    ck_assert_str_eq(u.prefix, "x");
    ck_assert_int_eq(redis_url_parse("redis://127.0.0.1?mode=pubsub", &u), 0);
    ck_assert(!u.streams);
    ck_assert_int_eq(redis_url_parse("redis://bob:s3cret@127.0.0.1:1", &u), 0);
    ck_assert_str_eq(u.user, "bob");
    ck_assert_str_eq(u.pass, "s3cret");
    ck_assert_int_eq(redis_url_parse("redis://:pw@127.0.0.1", &u), 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.pass, "pw");
    static const char *bad[] = {"rediss://127.0.0.1", "redis://example.com", "redis://127.0.0.1:0",
                                "redis://127.0.0.1:65536", "redis://127.0.0.1:x", "redis://127.0.0.1/db",
                                "redis://127.0.0.1?other=1", "http://127.0.0.1", "redis://[::1", "",
                                "redis://127.0.0.1?mode=kafka", "redis://127.0.0.1?maxlen=0",
                                "redis://127.0.0.1?maxlen=5x", "redis://127.0.0.1?prefix"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(redis_url_parse(bad[i], &u) == -EINVAL, "%s", bad[i]);
    ck_assert_int_eq(snow_rooms_redis("redis://not-an-ip"), -EINVAL);
    ck_assert_int_eq(snow_rooms_redis(NULL), 0);
}
END_TEST

Suite *resp_suite(void)
{
    Suite *s = suite_create("rooms-redis-codec");
    TCase *tc = tcase_create("resp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, simple_types);
    tcase_add_test(tc, pubsub_shapes);
    tcase_add_test(tc, consecutive_replies);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, encode_round_trip);
    tcase_add_test(tc, envelope);
    tcase_add_test(tc, urls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
