#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "util.h"
#include "ws/close.h"
#include "ws/message.h"

#define FIN 0x80

struct heap {
    int grows;
    size_t biggest;
    bool fail;
};

static void *grow(void *ctx, void *old, size_t cap)
{
    struct heap *h = ctx;
    if (h->fail)
        return NULL;
    h->grows++;
    if (cap > h->biggest)
        h->biggest = cap;
    return realloc(old, cap);
}

/* Decodes in (split at cut when non-zero) into a reassembler; appends each
 * complete message to out as "<op>:<bytes>;" and returns the final status. */
static int pump(const uint8_t *in, size_t n, size_t cut, struct ws_reasm *r, struct tbuf *out, int *controls)
{
    static struct guard g;
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, NULL);
    size_t parts[2] = {cut ? cut : n, n};
    size_t start = 0;
    for (int k = 0; k < 2 && start < n; k++) {
        size_t len = parts[k] - start;
        uint8_t *chunk = guard_place(&g, in + start, len);
        size_t off = 0;
        for (;;) {
            ssize_t rc = ws_decoder_next(&d, chunk + off, len - off, &ev);
            if (rc == RT_PARSE_ERROR)
                return ws_fail_error(ws_decoder_close_code(&d));
            if (rc == RT_PARSE_INCOMPLETE)
                break;
            off += (size_t)rc;
            if (ev.kind == WS_EV_CONTROL)
                (*controls)++;
            int m = ws_reasm_feed(r, &ev);
            if (m < 0)
                return m;
            if (m == WS_REASM_MESSAGE) {
                tb_printf(out, "%u:", r->opcode);
                tb_put(out, r->buf.data, r->buf.len);
                tb_put(out, ";", 1);
            }
        }
        start = parts[k];
    }
    return 0;
}

START_TEST(test_reassembles_with_controls_between)
{
    struct tbuf in;
    tb_init(&in);
    mk_frame(&in, WS_OP_TEXT, "Hel", 3);
    mk_frame(&in, FIN | 0x9, "ping", 4);
    mk_frame(&in, FIN | WS_OP_CONT, "lo", 2);
    mk_frame(&in, FIN | WS_OP_BINARY, "\x00\x01", 2);
    mk_frame(&in, FIN | WS_OP_TEXT, NULL, 0);
    for (size_t cut = 0; cut < in.n; cut++) {
        struct heap h = {0};
        struct ws_reasm r;
        struct tbuf out;
        int controls = 0;
        tb_init(&out);
        ws_reasm_init(&r, NULL, 0, 0, grow, &h);
        ck_assert_int_eq(pump(in.p, in.n, cut, &r, &out, &controls), 0);
        ck_assert_int_eq(controls, 1);
        ck_assert_uint_eq(out.n, 16);
        ck_assert(memcmp(out.p, "1:Hello;2:\x00\x01;1:;", 16) == 0);
        free(r.buf.data);
        tb_free(&out);
    }
    tb_free(&in);
}
END_TEST

START_TEST(test_growth_follows_bytes)
{
    /* A frame announcing 1 MiB with 10 bytes so far holds 256 bytes, not
     * 1 MiB: growth follows what arrived. */
    struct heap h = {0};
    struct ws_reasm r;
    struct tbuf in, out;
    uint8_t ten[10] = {0};
    int controls = 0;
    tb_init(&in);
    tb_init(&out);
    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    mk_frame_ex(&in, FIN | WS_OP_BINARY, test_key, ten, sizeof ten, 8, 1 << 20);
    ck_assert_int_eq(pump(in.p, in.n, 0, &r, &out, &controls), 0);
    ck_assert_uint_eq(r.buf.len, 10);
    ck_assert_uint_le(h.biggest, 256);
    free(r.buf.data);
    tb_free(&in);
    tb_free(&out);
}
END_TEST

START_TEST(test_limit_and_no_memory)
{
    struct heap h = {0};
    struct ws_msgbuf b;
    uint8_t fixed[8];
    ws_msgbuf_init(&b, NULL, 0, 20, grow, &h);
    ck_assert_int_eq(ws_msgbuf_append(&b, "0123456789", 10), 0);
    ck_assert_int_eq(ws_msgbuf_append(&b, "0123456789", 10), 0);
    ck_assert_int_eq(ws_msgbuf_append(&b, "x", 1), SNOW_ELIMIT);
    ck_assert_uint_eq(b.len, 20);
    ck_assert_uint_le(b.cap, 20);
    free(b.data);

    ws_msgbuf_init(&b, fixed, sizeof fixed, 100, NULL, NULL);
    ck_assert_int_eq(ws_msgbuf_append(&b, "01234567", 8), 0);
    ck_assert_int_eq(ws_msgbuf_append(&b, "8", 1), -ENOMEM);
    ck_assert_uint_eq(b.len, 8);

    h.fail = true;
    ws_msgbuf_init(&b, NULL, 0, 100, grow, &h);
    ck_assert_int_eq(ws_msgbuf_append(&b, "x", 1), -ENOMEM);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_reasm_limit_sets_1009)
{
    struct heap h = {0};
    struct ws_reasm r;
    struct tbuf in, out;
    int controls = 0;
    tb_init(&in);
    tb_init(&out);
    ws_reasm_init(&r, NULL, 0, 5, grow, &h);
    mk_frame(&in, WS_OP_TEXT, "abc", 3);
    mk_frame(&in, FIN | WS_OP_CONT, "def", 3);
    ck_assert_int_eq(pump(in.p, in.n, 0, &r, &out, &controls), SNOW_ELIMIT);
    ck_assert_uint_eq(r.close_code, WS_CLOSE_TOO_BIG);
    free(r.buf.data);

    h.fail = true;
    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    ck_assert_int_eq(pump(in.p, in.n, 0, &r, &out, &controls), -ENOMEM);
    ck_assert_uint_eq(r.close_code, WS_CLOSE_INTERNAL_ERROR);
    tb_free(&in);
    tb_free(&out);
}
END_TEST

/* Sequencing is checked here too, for events that did not come from the
 * decoder (which refuses these streams itself). */
START_TEST(test_reasm_sequencing)
{
    struct heap h = {0};
    struct ws_reasm r;
    struct ws_event ev = {0};

    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    ev.kind = WS_EV_FRAME;
    ev.opcode = WS_OP_CONT;
    ck_assert_int_eq(ws_reasm_feed(&r, &ev), SNOW_EPROTOCOL);
    ck_assert_uint_eq(r.close_code, WS_CLOSE_PROTOCOL_ERROR);

    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    ev.opcode = WS_OP_TEXT;
    ck_assert_int_eq(ws_reasm_feed(&r, &ev), WS_REASM_MORE);
    ev.opcode = WS_OP_BINARY;
    ck_assert_int_eq(ws_reasm_feed(&r, &ev), SNOW_EPROTOCOL);
    ck_assert_uint_eq(r.close_code, WS_CLOSE_PROTOCOL_ERROR);

    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    ev.kind = WS_EV_DATA;
    ev.data = (uint8_t *)"x";
    ev.len = 1;
    ck_assert_int_eq(ws_reasm_feed(&r, &ev), SNOW_EPROTOCOL);

    /* Control events between fragments change nothing. */
    ws_reasm_init(&r, NULL, 0, 0, grow, &h);
    struct ws_event start = {.kind = WS_EV_FRAME, .opcode = WS_OP_BINARY};
    struct ws_event data = {.kind = WS_EV_DATA, .data = (uint8_t *)"ab", .len = 2};
    struct ws_event end1 = {.kind = WS_EV_FRAME_END, .opcode = WS_OP_BINARY, .fin = false};
    struct ws_event ping = {.kind = WS_EV_CONTROL, .opcode = WS_OP_PING, .data = (uint8_t *)"zz", .len = 2};
    struct ws_event cont = {.kind = WS_EV_FRAME, .opcode = WS_OP_CONT};
    struct ws_event end2 = {.kind = WS_EV_FRAME_END, .opcode = WS_OP_CONT, .fin = true};
    ck_assert_int_eq(ws_reasm_feed(&r, &start), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &data), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &end1), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &ping), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &cont), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &data), 0);
    ck_assert_int_eq(ws_reasm_feed(&r, &end2), WS_REASM_MESSAGE);
    ck_assert_uint_eq(r.opcode, WS_OP_BINARY);
    ck_assert(r.buf.len == 4 && memcmp(r.buf.data, "abab", 4) == 0);
    free(r.buf.data);
}
END_TEST

Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc = tcase_create("reassembly");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_reassembles_with_controls_between);
    tcase_add_test(tc, test_growth_follows_bytes);
    tcase_add_test(tc, test_limit_and_no_memory);
    tcase_add_test(tc, test_reasm_limit_sets_1009);
    tcase_add_test(tc, test_reasm_sequencing);
    suite_add_tcase(s, tc);
    return s;
}
