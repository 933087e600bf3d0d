/* Shared by the rooms suites (tests/ws/test_rooms*.c). */
#ifndef SNOW_TESTS_WS_ROOMS_TEST_H
#define SNOW_TESTS_WS_ROOMS_TEST_H

#include <check.h>
#include <errno.h>
#include <stdbool.h>

#include "snow_rt.h"

/* Starts the runtime with n workers, runs root to the end of every actor,
 * stops it. Assertions follow on the main thread. */
#define ROOMS_RUN(n, root, arg)                                     \
    do {                                                            \
        ck_assert_int_eq(snow_rt_init(n), 0);                       \
        ck_assert_uint_ne(snow_actor_spawn((root), (arg), 0), 0);   \
        ck_assert_int_eq(snow_rt_run(), 0);                         \
    } while (0)

/* Polls cond (sleeping between tries, inside an actor) until it holds or
 * 20 s passed; returns its last value. */
bool rt_wait_until(bool (*cond)(void *), void *arg);

/* A blocking client socket on 127.0.0.1:port (a 20 s receive timeout, the
 * receive buffer set when rcvbuf is not 0) that has sent a WebSocket
 * upgrade request for path; the response is the caller's to read. */
int rooms_test_upgrade(int port, const char *path, int rcvbuf);

/* Reads exactly n bytes from the blocking socket fd; false on EOF, error
 * or its receive timeout. */
bool rooms_test_read_all(int fd, void *p, size_t n);

/* Receives one room message (inside an actor): fills *h and returns the
 * payload, or NULL on timeout or when it is not room's. */
const unsigned char *rooms_test_recv(SnowRoomMsg *h, const char *room, int timeout_ms);

Suite *rooms_suite(void);
Suite *rooms_history_suite(void);
Suite *rooms_ws_suite(void);
Suite *rooms_backlog_suite(void);
Suite *rooms_direct_suite(void);

#endif
