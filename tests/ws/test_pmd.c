/*
 * permessage-deflate units: the offer parser and negotiation (RFC 7692 §7.1)
 * over requests parsed whole and split at every offset, the answer, and
 * the zlib side (round trips at many sizes in both takeover modes against
 * zlib used directly, the §7.2 tail, decompression bombs, fail-fast UTF-8,
 * bad DEFLATE data, the memory cap, shared broadcast frames).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http/parse.h"
#include "rt.h"
#include "util.h"
#include "ws/bcast.h"
#include "ws/close.h"
#include "ws/handshake.h"
#include "ws/pmd.h"

static struct guard g;

/* Parses a handshake carrying ext_lines (header lines, CRLF each) and runs
 * the negotiation; answer gets the Sec-WebSocket-Extensions value or "".
 * The request is fed whole, and as every prefix followed by the whole. */
static int negotiate_req(const char *ext_lines, const struct ws_pmd_opts *o, bool allow, char *answer, size_t cap)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /chat HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     ext_lines);
    ck_assert(n > 0 && (size_t)n < sizeof req);
    struct http_limits lim;
    http_limits_default(&lim);
    int result = -2;
    answer[0] = 0;
    for (size_t k = 0; k <= (size_t)n; k++) {
        struct http_parser p;
        http_parser_init(&p);
        struct http_request r;
        struct http_header hdrs[32];
        ssize_t rc = RT_PARSE_INCOMPLETE;
        if (k) {
            rc = http_parse_request(&p, guard_place(&g, req, k), k, &r, hdrs, 32, &lim);
            QCHECK(k == (size_t)n ? rc == n : rc == RT_PARSE_INCOMPLETE);
        }
        if (k < (size_t)n)
            rc = http_parse_request(&p, guard_place(&g, req, (size_t)n), (size_t)n, &r, hdrs, 32, &lim);
        QCHECK(rc == n);
        struct ws_handshake hs;
        QCHECK(ws_handshake_check(&r, NULL, &hs) == 0);
        struct ws_pmd_params prm;
        int idx = ws_pmd_negotiate(&hs, o, allow, &prm);
        char a[WS_PMD_RESPONSE_MAX] = "";
        if (idx >= 0)
            QCHECK(ws_pmd_response(&prm, a, sizeof a) > 0);
        if (result == -2) {
            result = idx;
            snprintf(answer, cap, "%s", a);
        }
        QCHECK(idx == result);
        QCHECK(strcmp(a, answer) == 0);
    }
    return result;
}

static const struct {
    const char *ext;   /* header lines */
    int idx;           /* accepted offer, -1 none */
    const char *answer;
} rows[] = {
    {"Sec-WebSocket-Extensions: permessage-deflate\r\n", 0, "permessage-deflate"},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", 0, "permessage-deflate"},
    {"Sec-WebSocket-Extensions: PerMessage-Deflate; Client_Max_Window_Bits\r\n", 0, "permessage-deflate"},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n", 0,
     "permessage-deflate; client_max_window_bits=10"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n", 0,
     "permessage-deflate; server_max_window_bits=12"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"12\"\r\n", 0,
     "permessage-deflate; server_max_window_bits=12"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"1\\2\"\r\n", 0,
     "permessage-deflate; server_max_window_bits=12"},
    /* 8 is promised as 8 (zlib runs with 9, whose distances fit in 256). */
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8; client_max_window_bits=8\r\n", 0,
     "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n", 0,
     "permessage-deflate; server_no_context_takeover"},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n", 0,
     "permessage-deflate; client_no_context_takeover"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=9; client_max_window_bits=11\r\n",
     0,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
     "client_max_window_bits=11"},
    /* Invalid offers are skipped; the first acceptable one wins. */
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7, permessage-deflate\r\n", 1,
     "permessage-deflate"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16, permessage-deflate; "
     "client_no_context_takeover\r\n",
     1, "permessage-deflate; client_no_context_takeover"},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=010\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"\"\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=1x\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=0\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover=\"x\"\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n", -1,
     ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; client_max_window_bits=9\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; server_max_window_bits=9\r\n", -1,
     ""},
    {"Sec-WebSocket-Extensions: permessage-deflate; x_unknown\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n", -1, ""},
    {"Sec-WebSocket-Extensions: foo, permessage-deflate; client_max_window_bits=15\r\n", 1,
     "permessage-deflate; client_max_window_bits=15"},
    /* Offers in two header fields are one list (RFC 9110 §5.3). */
    {"Sec-WebSocket-Extensions: permessage-deflate; bad\r\nSec-WebSocket-Extensions: permessage-deflate; "
     "server_no_context_takeover\r\n",
     1, "permessage-deflate; server_no_context_takeover"},
    {"", -1, ""},
};

START_TEST(negotiation_rows)
{
    struct ws_pmd_opts o = {.enabled = true};
    char answer[WS_PMD_RESPONSE_MAX];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int idx = negotiate_req(rows[i].ext, &o, true, answer, sizeof answer);
        ck_assert_msg(idx == rows[i].idx, "row %zu: offer %d, want %d", i, idx, rows[i].idx);
        ck_assert_msg(strcmp(answer, rows[i].answer) == 0, "row %zu: answer '%s', want '%s'", i, answer,
                      rows[i].answer);
    }
}
END_TEST

START_TEST(negotiation_policy)
{
    char answer[WS_PMD_RESPONSE_MAX];
    const char *offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    /* Off: nothing is agreed, whatever the client offers. */
    struct ws_pmd_opts off = {.enabled = false};
    ck_assert_int_eq(negotiate_req(offer, &off, true, answer, sizeof answer), -1);
    /* The route's window limits both directions it can. */
    struct ws_pmd_opts small = {.enabled = true, .window_bits = 10};
    ck_assert_int_eq(negotiate_req(offer, &small, true, answer, sizeof answer), 0);
    ck_assert_str_eq(answer, "permessage-deflate; client_max_window_bits=10");
    const char *sb = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=13\r\n";
    ck_assert_int_eq(negotiate_req(sb, &small, true, answer, sizeof answer), 0);
    ck_assert_str_eq(answer, "permessage-deflate; server_max_window_bits=10");
    /* A client that cannot be limited (no client_max_window_bits) is not. */
    ck_assert_int_eq(negotiate_req("Sec-WebSocket-Extensions: permessage-deflate\r\n", &small, true, answer,
                                   sizeof answer),
                     0);
    ck_assert_str_eq(answer, "permessage-deflate");
    /* No context takeover by the route, or past the memory cap. */
    struct ws_pmd_opts nct = {.enabled = true, .no_context_takeover = true};
    ck_assert_int_eq(negotiate_req(offer, &nct, true, answer, sizeof answer), 0);
    ck_assert_str_eq(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    struct ws_pmd_opts on = {.enabled = true};
    ck_assert_int_eq(negotiate_req(offer, &on, false, answer, sizeof answer), 0);
    ck_assert_str_eq(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}
END_TEST

START_TEST(offer_truncated_not_accepted)
{
    /* 17 parameters: the handshake keeps 16, so the offer is not judged. */
    char line[1024] = "Sec-WebSocket-Extensions: permessage-deflate";
    for (int i = 0; i < 17; i++)
        strcat(line, "; client_max_window_bits");
    strcat(line, "\r\n");
    struct ws_pmd_opts o = {.enabled = true};
    char answer[WS_PMD_RESPONSE_MAX];
    ck_assert_int_eq(negotiate_req(line, &o, true, answer, sizeof answer), -1);
}
END_TEST

START_TEST(response_buffer_bounds)
{
    struct ws_pmd_params p = {.server_nct = true, .client_nct = true, .server_bits = 15, .client_bits = 15,
                              .answer_server_bits = true, .answer_client_bits = true};
    char buf[WS_PMD_RESPONSE_MAX];
    int n = ws_pmd_response(&p, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(buf), (size_t)n);
    for (size_t cap = 0; cap <= (size_t)n; cap++)
        ck_assert_int_eq(ws_pmd_response(&p, buf, cap), -ENOBUFS);
}
END_TEST

/* ---- zlib side ---- */

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

/* A JSON-like payload of n bytes (compressible, not trivially). */
static uint8_t *payload(size_t n, unsigned seed)
{
    static const char *const words[8] = {"{\"user\":", "\"alice\"", ",\"msg\":\"", "hello ", "world", "\"}", "42,",
                                         "[1,2]"};
    return mk_words(n, seed, words);
}

/* Raw inflate by zlib itself, appending the tail, for cross-checking. */
static uint8_t *ref_inflate(z_stream *s, const uint8_t *in, size_t n, size_t *outlen)
{
    uint8_t *tmp = malloc(n + 4);
    memcpy(tmp, in, n);
    memcpy(tmp + n, "\x00\x00\xff\xff", 4);
    size_t cap = 1 << 20, len = 0;
    uint8_t *out = malloc(cap);
    s->next_in = tmp;
    s->avail_in = (uInt)(n + 4);
    for (;;) {
        if (len == cap)
            out = realloc(out, cap *= 2);
        s->next_out = out + len;
        s->avail_out = (uInt)(cap - len);
        int rc = inflate(s, Z_SYNC_FLUSH);
        len = cap - s->avail_out;
        ck_assert(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
        if (s->avail_in == 0 && s->avail_out != 0)
            break;
    }
    free(tmp);
    *outlen = len;
    return out;
}

static void roundtrip(bool takeover, unsigned bits, unsigned mem)
{
    static const size_t sizes[] = {0, 1, 2, 3, 10, 125, 126, 1000, 4095, 4096, 65535, 65536, 65537, 300000};
    struct ws_zout *zo = takeover ? ws_zout_new(bits, mem) : NULL;
    struct ws_zin *zi = takeover ? ws_zin_new(bits) : NULL;
    if (takeover)
        ck_assert(zo && zi);
    z_stream ref;
    memset(&ref, 0, sizeof ref);
    ck_assert_int_eq(inflateInit2(&ref, -15), Z_OK);
    struct ws_msgbuf out;
    ws_msgbuf_init(&out, NULL, 0, 1 << 20, grow, NULL);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            uint8_t *p = payload(n, (unsigned)(i + 7 * round));
            uint8_t *c;
            size_t clen;
            ck_assert_int_eq(ws_deflate_msg(zo, bits, mem, p, n, &c, &clen), 0);
            ck_assert_uint_gt(clen, 0);
            /* §7.2.1: the tail is gone (an empty message is 0x00). */
            if (clen >= 4)
                ck_assert(memcmp(c + clen - 4, "\x00\x00\xff\xff", 4) != 0);
            if (n > 1000)
                ck_assert_uint_lt(clen, n / 2);
            ck_assert_uint_eq(ws_inflate_msg(zi, c, clen, true, &out), 0);
            ck_assert_uint_eq(out.len, n);
            ck_assert(n == 0 || memcmp(out.data, p, n) == 0);
            /* zlib itself agrees; with takeover its context carries over. */
            size_t rl;
            uint8_t *r = ref_inflate(&ref, c, clen, &rl);
            ck_assert_uint_eq(rl, n);
            ck_assert(n == 0 || memcmp(r, p, n) == 0);
            if (!takeover)
                inflateReset(&ref);
            free(r);
            free(c);
            free(p);
        }
    }
    inflateEnd(&ref);
    free(out.data);
    ws_zout_free(zo);
    ws_zin_free(zi);
}

START_TEST(roundtrip_no_takeover)
{
    roundtrip(false, 15, 8);
    roundtrip(false, 9, 1);
    roundtrip(false, 8, 9);
}
END_TEST

START_TEST(roundtrip_takeover)
{
    roundtrip(true, 15, 8);
    roundtrip(true, 10, 4);
    roundtrip(true, 8, 8);
}
END_TEST

START_TEST(takeover_uses_context)
{
    /* The second identical message refers back to the first: it is much
     * smaller than the first with takeover, the same without. */
    uint8_t *p = payload(2000, 3);
    struct ws_zout *zo = ws_zout_new(15, 8);
    uint8_t *c1, *c2;
    size_t l1, l2;
    ck_assert_int_eq(ws_deflate_msg(zo, 15, 8, p, 2000, &c1, &l1), 0);
    ck_assert_int_eq(ws_deflate_msg(zo, 15, 8, p, 2000, &c2, &l2), 0);
    ck_assert_uint_lt(l2 * 4, l1);
    free(c1);
    free(c2);
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, p, 2000, &c1, &l1), 0);
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, p, 2000, &c2, &l2), 0);
    ck_assert_uint_eq(l1, l2);
    ck_assert(memcmp(c1, c2, l1) == 0);
    free(c1);
    free(c2);
    ws_zout_free(zo);
    free(p);
}
END_TEST

/* Raw deflate of n zero bytes with a sync flush, tail removed. */
static uint8_t *zeros_deflated(size_t n, size_t *clen)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = n / 500 + 1024;
    uint8_t *out = malloc(cap);
    uint8_t *zero = calloc(1, 1 << 20);
    s.next_out = out;
    s.avail_out = (uInt)cap;
    for (size_t left = n; left;) {
        size_t k = left < (1 << 20) ? left : (1 << 20);
        s.next_in = zero;
        s.avail_in = (uInt)k;
        ck_assert_int_eq(deflate(&s, Z_NO_FLUSH), Z_OK);
        ck_assert_uint_eq(s.avail_in, 0);
        left -= k;
    }
    ck_assert_int_eq(deflate(&s, Z_SYNC_FLUSH), Z_OK);
    *clen = cap - s.avail_out - 4;
    deflateEnd(&s);
    free(zero);
    return out;
}

START_TEST(bomb_stops_at_limit)
{
    /* 1 GiB of zeros deflates to about 1 MiB; a 1 MiB limit stops it after
     * at most limit + 1 bytes of output, with the buffer never larger. */
    size_t clen;
    uint8_t *c = zeros_deflated((size_t)1 << 30, &clen);
    ck_assert_uint_lt(clen, 2u << 20);
    struct ws_msgbuf out;
    size_t limit = 1 << 20;
    ws_msgbuf_init(&out, NULL, 0, limit, grow, NULL);
    size_t held0 = ws_pmd_mem_held();
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, false, &out), WS_CLOSE_TOO_BIG);
    ck_assert_uint_le(out.cap, limit + 1);
    ck_assert_uint_eq(out.len, limit + 1);
    /* The shared stream was reset and serves the next message. */
    ck_assert_uint_le(ws_pmd_mem_held(), held0 + 64 * 1024);
    uint8_t *p = payload(5000, 1), *c2;
    size_t l2;
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, p, 5000, &c2, &l2), 0);
    ck_assert_uint_eq(ws_inflate_msg(NULL, c2, l2, true, &out), 0);
    ck_assert_uint_eq(out.len, 5000);
    ck_assert(memcmp(out.data, p, 5000) == 0);
    /* A message exactly at the limit passes. */
    free(c);
    c = zeros_deflated(limit, &clen);
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, false, &out), 0);
    ck_assert_uint_eq(out.len, limit);
    free(c);
    free(c2);
    free(p);
    free(out.data);
}
END_TEST

START_TEST(utf8_fails_fast)
{
    /* A bad byte at offset 10 of 64 MiB of text: 1007 long before the end. */
    size_t n = (size_t)64 << 20;
    uint8_t *p = malloc(n);
    memset(p, 'a', n);
    p[10] = 0xFF;
    uint8_t *c;
    size_t clen;
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, p, n, &c, &clen), 0);
    struct ws_msgbuf out;
    ws_msgbuf_init(&out, NULL, 0, n, grow, NULL);
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, true, &out), WS_CLOSE_INVALID_DATA);
    ck_assert_uint_le(out.len, 64 * 1024);
    /* The same bytes as binary are fine. */
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, false, &out), 0);
    ck_assert_uint_eq(out.len, n);
    free(c);
    /* A text message that ends inside a character. */
    static const uint8_t cut[] = {'o', 'k', 0xE2, 0x82};
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, cut, sizeof cut, &c, &clen), 0);
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, true, &out), WS_CLOSE_INVALID_DATA);
    free(c);
    free(p);
    free(out.data);
}
END_TEST

START_TEST(payload_cut_mid_block)
{
    /* §7.2.1: a message ends between DEFLATE blocks. An empty payload is
     * not an empty message (that is the byte 0x00): with the tail appended
     * it is a stored block's header and half its length. The buffer of a
     * frame with no payload may be NULL. */
    struct ws_msgbuf out;
    ws_msgbuf_init(&out, NULL, 0, 1 << 20, grow, NULL);
    ck_assert_uint_eq(ws_inflate_msg(NULL, NULL, 0, false, &out), WS_CLOSE_INVALID_DATA);
    static const uint8_t empty[] = {0x00};
    ck_assert_uint_eq(ws_inflate_msg(NULL, empty, sizeof empty, true, &out), 0);
    ck_assert_uint_eq(out.len, 0);
    /* A stored block of 8 bytes with 2 sent: the tail fills 4 more, and
     * the block is still open. */
    static const uint8_t cut[] = {0x00, 0x08, 0x00, 0xf7, 0xff, 'h', 'e'};
    ck_assert_uint_eq(ws_inflate_msg(NULL, cut, sizeof cut, false, &out), WS_CLOSE_INVALID_DATA);
    /* With context takeover too; the stream is reset after the error. */
    struct ws_zin *zi = ws_zin_new(15);
    ck_assert_ptr_nonnull(zi);
    ck_assert_uint_eq(ws_inflate_msg(zi, NULL, 0, false, &out), WS_CLOSE_INVALID_DATA);
    uint8_t *c;
    size_t clen;
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, "after", 5, &c, &clen), 0);
    ck_assert_uint_eq(ws_inflate_msg(zi, c, clen, true, &out), 0);
    ck_assert_uint_eq(out.len, 5);
    ck_assert_mem_eq(out.data, "after", 5);
    /* The message cut short by a byte. */
    ck_assert_uint_eq(ws_inflate_msg(zi, c, clen - 1, true, &out), WS_CLOSE_INVALID_DATA);
    free(c);
    ws_zin_free(zi);
    free(out.data);
}
END_TEST

START_TEST(bad_deflate_data)
{
    struct ws_msgbuf out;
    ws_msgbuf_init(&out, NULL, 0, 1 << 20, grow, NULL);
    /* BTYPE 11 is reserved (RFC 1951 §3.2.3). */
    static const uint8_t bad[] = {0x07, 0x00};
    ck_assert_uint_eq(ws_inflate_msg(NULL, bad, sizeof bad, false, &out), WS_CLOSE_INVALID_DATA);
    /* A stored block whose NLEN is not ~LEN. */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'h'};
    ck_assert_uint_eq(ws_inflate_msg(NULL, stored, sizeof stored, false, &out), WS_CLOSE_INVALID_DATA);
    /* Data after a final block. */
    uint8_t fin[64];
    z_stream s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_in = (Bytef *)"hello";
    s.avail_in = 5;
    s.next_out = fin;
    s.avail_out = sizeof fin;
    ck_assert_int_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t fl = sizeof fin - s.avail_out;
    deflateEnd(&s);
    /* A final block alone is a whole message (the stream starts anew). */
    ck_assert_uint_eq(ws_inflate_msg(NULL, fin, fl, true, &out), 0);
    ck_assert_uint_eq(out.len, 5);
    fin[fl] = 0x01;
    ck_assert_uint_eq(ws_inflate_msg(NULL, fin, fl + 1, true, &out), WS_CLOSE_INVALID_DATA);
    /* The shared stream is fine after errors. */
    uint8_t *c;
    size_t clen;
    ck_assert_int_eq(ws_deflate_msg(NULL, 15, 8, "again", 5, &c, &clen), 0);
    ck_assert_uint_eq(ws_inflate_msg(NULL, c, clen, true, &out), 0);
    ck_assert_uint_eq(out.len, 5);
    free(c);
    free(out.data);
}
END_TEST

START_TEST(memory_cap_and_costs)
{
    /* The reservation is a budget: past the cap it says no, and releasing
     * gives the room back. */
    size_t base = ws_pmd_mem_reserved();
    ws_pmd_set_mem_cap(base + 1000);
    ck_assert(ws_pmd_reserve(600));
    ck_assert(!ws_pmd_reserve(600));
    ws_pmd_release(600);
    ck_assert(ws_pmd_reserve(1000));
    ws_pmd_release(1000);
    ck_assert_uint_eq(ws_pmd_mem_reserved(), base);
    ws_pmd_set_mem_cap(0);
    ck_assert_uint_eq(ws_pmd_mem_cap(), WS_PMD_DEFAULT_MEM_CAP);
    /* The cost estimate covers what zlib really takes for each size. */
    for (unsigned bits = 8; bits <= 15; bits++) {
        for (unsigned mem = 1; mem <= 9; mem++) {
            size_t before = ws_pmd_mem_held();
            struct ws_zout *z = ws_zout_new(bits, mem);
            ck_assert(z != NULL);
            size_t got = ws_pmd_mem_held() - before;
            ck_assert_msg(got <= ws_zout_cost(bits, mem), "deflate %u/%u holds %zu > %zu", bits, mem, got,
                          ws_zout_cost(bits, mem));
            ws_zout_free(z);
            ck_assert_uint_eq(ws_pmd_mem_held(), before);
        }
        uint8_t *c;
        size_t clen;
        uint8_t *p = payload(100000, bits);
        struct ws_msgbuf out;
        ws_msgbuf_init(&out, NULL, 0, 1 << 20, grow, NULL);
        ck_assert_int_eq(ws_deflate_msg(NULL, bits, 8, p, 100000, &c, &clen), 0);
        size_t before = ws_pmd_mem_held();
        struct ws_zin *zi = ws_zin_new(bits);
        ck_assert_uint_eq(ws_inflate_msg(zi, c, clen, true, &out), 0); /* the window is allocated lazily */
        size_t got = ws_pmd_mem_held() - before;
        ck_assert_msg(got <= ws_zin_cost(bits), "inflate %u holds %zu > %zu", bits, got, ws_zin_cost(bits));
        ws_zin_free(zi);
        free(c);
        free(p);
        free(out.data);
    }
}
END_TEST

START_TEST(shared_frame_for_rooms)
{
    uint8_t *p = payload(3000, 9);
    struct ws_shared_frame *f = ws_pmd_shared_frame(WS_OP_TEXT, p, 3000, 10, 0);
    ck_assert(f != NULL);
    ck_assert_uint_eq(f->rsv, WS_RSV1);
    ck_assert_uint_eq(f->bytes[0], 0x80 | WS_RSV1 | WS_OP_TEXT);
    size_t h = ws_frame_header_len(f->payload_len);
    ck_assert_uint_eq(f->len, h + f->payload_len);
    ck_assert_uint_lt(f->payload_len, 1500);
    /* A client with an inflate window of 10 bits reads it. */
    z_stream s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(inflateInit2(&s, -10), Z_OK);
    size_t rl;
    uint8_t *r = ref_inflate(&s, f->bytes + h, f->payload_len, &rl);
    ck_assert_uint_eq(rl, 3000);
    ck_assert(memcmp(r, p, 3000) == 0);
    inflateEnd(&s);
    free(r);
    ws_shared_frame_unref(f);
    ck_assert(ws_pmd_shared_frame(WS_OP_PING, p, 10, 15, 8) == NULL);
    ck_assert(ws_pmd_shared_frame(WS_OP_TEXT, p, 10, 7, 8) == NULL);
    free(p);
}
END_TEST

Suite *pmd_suite(void)
{
    Suite *s = suite_create("pmd");
    TCase *t = tcase_create("negotiation");
    tcase_set_timeout(t, CASE_TIMEOUT);
    tcase_add_test(t, negotiation_rows);
    tcase_add_test(t, negotiation_policy);
    tcase_add_test(t, offer_truncated_not_accepted);
    tcase_add_test(t, response_buffer_bounds);
    suite_add_tcase(s, t);
    t = tcase_create("zlib");
    tcase_set_timeout(t, CASE_TIMEOUT);
    tcase_add_test(t, roundtrip_no_takeover);
    tcase_add_test(t, roundtrip_takeover);
    tcase_add_test(t, takeover_uses_context);
    tcase_add_test(t, bomb_stops_at_limit);
    tcase_add_test(t, utf8_fails_fast);
    tcase_add_test(t, payload_cut_mid_block);
    tcase_add_test(t, bad_deflate_data);
    tcase_add_test(t, memory_cap_and_costs);
    tcase_add_test(t, shared_frame_for_rooms);
    suite_add_tcase(s, t);
    return s;
}
