/*
 * redis_resp.c: libFuzzer target for the RESP decoder of the Redis room
 * backend (runtime/ws/redis_resp.c) and the envelope decoder.
 *
 * Input: one configuration byte (the value-list capacity and the bulk
 * limit), then a byte stream "from the server". The stream is parsed as a
 * sequence of replies twice: whole, and restarted after every byte as if
 * each read returned a single byte (every proper prefix of a reply must be
 * RESP_INCOMPLETE, never an answer). Both runs must agree on every reply's
 * length and values and on where an error stops them. Every value must lie
 * inside the input, every aggregate's elements must be present, and an
 * encoded command must parse back to its arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/redis_resp.h"
#include "ws/rooms_redis.h"

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#define MAXV 64

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ULL;
}

/* Checks the shape of one parsed reply and returns a digest of it. */
static uint64_t check_reply(const char *base, size_t n, const struct resp_val *v, size_t nv)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t need = 1; /* values still owed by the aggregates seen so far */
    for (size_t i = 0; i < nv; i++) {
        CHECK(need > 0);
        need--;
        h = mix(h, (uint64_t)v[i].type);
        h = mix(h, (uint64_t)v[i].ival);
        if (v[i].str) {
            CHECK(v[i].str >= base && v[i].str + v[i].len <= base + n);
            h = mix(h, (uint64_t)(v[i].str - base));
            h = mix(h, v[i].len);
        }
        if (v[i].type == RESP_ARRAY || v[i].type == RESP_PUSH) {
            CHECK(v[i].ival >= 0 && (size_t)v[i].ival <= MAXV);
            need += (size_t)v[i].ival;
        }
        if ((v[i].type == RESP_BULK || v[i].type == RESP_SIMPLE) && v[i].len >= REDIS_ENV_HEADER) {
            struct redis_env e;
            if (redis_env_decode((const unsigned char *)v[i].str, v[i].len, &e) == 0)
                CHECK(e.payload + e.len == (const unsigned char *)v[i].str + v[i].len);
        }
    }
    CHECK(need == 0);
    return h;
}

struct outcome {
    uint64_t digest;
    size_t replies, stop;
    ssize_t last;
};

static void run(const char *in, size_t n, const struct resp_limits *lim, bool bytewise, struct outcome *o)
{
    struct resp_val v[MAXV];
    size_t off = 0, nv;
    *o = (struct outcome){.digest = 0};
    while (off < n) {
        ssize_t k;
        if (bytewise) {
            size_t have = 1;
            for (;;) {
                k = resp_parse(in + off, have, lim, v, &nv);
                if (k != RESP_INCOMPLETE || have == n - off)
                    break;
                have++;
            }
            if (k > 0)
                CHECK((size_t)k == have); /* found exactly when complete */
        } else {
            k = resp_parse(in + off, n - off, lim, v, &nv);
        }
        o->last = k;
        if (k <= 0)
            break;
        CHECK(nv >= 1 && nv <= lim->max_vals);
        o->digest = mix(o->digest, check_reply(in + off, (size_t)k, v, nv));
        off += (size_t)k;
        o->replies++;
    }
    o->stop = off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    struct resp_limits lim = {1 + (data[0] & 0x3f) % MAXV, (size_t)1 << (data[0] >> 4)};
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    /* Exactly the input, on the heap: ASan sees any read past its end. */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, in, n);
    struct outcome whole, split;
    run(copy, n, &lim, false, &whole);
    run(copy, n, &lim, true, &split);
    CHECK(whole.digest == split.digest && whole.replies == split.replies && whole.stop == split.stop);
    CHECK(whole.last == split.last);
    /* The encoder: the input cut into up to 8 arguments parses back. */
    const char *argv[8];
    size_t lens[8];
    int argc = 1 + (int)(n % 8);
    for (int i = 0; i < argc; i++) {
        size_t a = n * (size_t)i / (size_t)argc, b = n * (size_t)(i + 1) / (size_t)argc;
        argv[i] = copy + a;
        lens[i] = b - a;
    }
    size_t need = resp_encoded_size(argc, lens);
    char *enc = malloc(need);
    CHECK(resp_encode(enc, argc, argv, lens) == need);
    struct resp_val v[MAXV];
    size_t nv;
    struct resp_limits big = {MAXV, 1 << 20};
    CHECK(resp_parse(enc, need, &big, v, &nv) == (ssize_t)need);
    CHECK(nv == (size_t)argc + 1 && v[0].ival == argc);
    for (int i = 0; i < argc; i++)
        CHECK(v[i + 1].len == lens[i] && !memcmp(v[i + 1].str, argv[i], lens[i]));
    free(enc);
    free(copy);
    return 0;
}
