/*
 * test_conn_handlers.c: what the ABI gives handlers and other actors:
 * sends, pings and closes by handle from another actor, handles refused
 * (never dereferenced) after the end, on_info after hibernation, and a
 * message kept past its call.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_routes.h"

START_TEST(foreign_sender_and_handles)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/foreign", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowWsConn *h = seen().last_conn;
    ck_assert_ptr_eq(snow_ws_conn(snow_ws_pid(h)), h);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "go", 2), 0);
    /* In the sender's order; the ping may overtake at a frame boundary. */
    struct wsframe f;
    int got_ping = 0, got = 0;
    const char *want[] = {"one", "two"};
    while (got < 2) {
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        if (f.op == 9) {
            ck_assert_str_eq((char *)f.data, "hey");
            got_ping++;
        } else {
            ck_assert_uint_eq(f.op, got == 0 ? 1 : 2);
            ck_assert_str_eq((char *)f.data, want[got]);
            got++;
        }
        free(f.data);
    }
    unsigned code;
    for (;;) {
        ck_assert_int_eq(wsc_read(&c, &f), 0);
        if (f.op == 9) {
            got_ping++;
            free(f.data);
            continue;
        }
        ck_assert_uint_eq(f.op, 8);
        code = wsframe_code(&f);
        ck_assert(f.len == 11 && memcmp(f.data + 2, "from afar", 9) == 0);
        free(f.data);
        break;
    }
    ck_assert_int_eq(got_ping, 1);
    ck_assert_uint_eq(code, 4001);
    wsc_close_frame(&c, 4001, NULL);
    ck_assert(wsc_eof(&c));
    wsc_close(&c);
    wait_closes(1);
    /* After the end the handle is refused everywhere, never dereferenced. */
    ck_assert_int_eq(snow_ws_send_text(h, "x", 1), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_ping(h, NULL, 0), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_close(h, 1000, NULL, 0), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_buffered(h), SNOW_ECLOSED);
    ck_assert_int_eq(snow_ws_rtt_ms(h), SNOW_ECLOSED);
    ck_assert_ptr_null(snow_ws_conn(snow_ws_pid(h)));
    ck_assert_ptr_null(snow_ws_conn(0));
    ck_assert_int_eq(snow_ws_send_text(NULL, "x", 1), SNOW_ECLOSED);
    conn_stop();
}
END_TEST

START_TEST(mailbox_after_hibernation)
{
    /* An idle connection hibernates; a message from a plain thread wakes
     * it and reaches on_info, repeatedly. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/info", NULL, NULL, 0), 101);
    wait_opens(1);
    SnowPid pid = seen().last_pid;
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(wait_hibernated(1), 1);
        char msg[16];
        int n = snprintf(msg, sizeof msg, "tick %d", i);
        ck_assert_int_eq(snow_actor_send(pid, 77, msg, (size_t)n), 0);
        expect_message(&c, 1, msg, (size_t)n);
        ck_assert_int_eq(wsc_frame(&c, 0x81, msg, (size_t)n), 0);
        expect_message(&c, 1, msg, (size_t)n);
    }
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

START_TEST(msg_keep_outlives_the_call)
{
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/keep", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "first words", 11), 0);
    expect_message(&c, 1, "kept", 4);
    ck_assert_uint_eq(wait_hibernated(1), 1); /* the kept message outlives a hibernation */
    ck_assert_int_eq(wsc_frame(&c, 0x81, "later", 5), 0);
    expect_message(&c, 1, "first words", 11);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

START_TEST(own_text_send_validates_what_was_not_text)
{
    /* The handler sends each message back as text. A text message came
     * in valid and goes back as it was; binary bytes are checked like any
     * other text, so invalid ones are refused with -EILSEQ (answered here
     * with a binary "EILSEQ"), also when they are the very buffer of the
     * message being delivered. */
    conn_start();
    struct wsc c;
    ck_assert_int_eq(wsc_open(&c, port, "/astext", NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc_frame(&c, 0x81, "h\xc3\xa9llo", 6), 0);
    expect_message(&c, 1, "h\xc3\xa9llo", 6);
    ck_assert_int_eq(wsc_frame(&c, 0x82, "\xff\xfe", 2), 0);
    expect_message(&c, 2, "EILSEQ", 6);
    ck_assert_int_eq(wsc_frame(&c, 0x82, "\xc3", 1), 0);
    expect_message(&c, 2, "EILSEQ", 6);
    ck_assert_int_eq(wsc_frame(&c, 0x82, "ok", 2), 0);
    expect_message(&c, 1, "ok", 2);
    wsc_close(&c);
    wait_closes(1);
    conn_stop();
}
END_TEST

Suite *conn_handlers_suite(void)
{
    Suite *s = suite_create("ws_conn_handlers");
    TCase *t = tcase_create("handlers");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, foreign_sender_and_handles);
    tcase_add_test(t, mailbox_after_hibernation);
    tcase_add_test(t, msg_keep_outlives_the_call);
    tcase_add_test(t, own_text_send_validates_what_was_not_text);
    suite_add_tcase(s, t);
    return s;
}
