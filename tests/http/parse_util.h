/*
 * parse_util.h: what the parser suites (parse_test.c, chunked_test.c) share:
 * the buffer that places each input right before a PROT_NONE page, unmapped
 * after every case, and the default limits.
 */
#ifndef SNOW_TESTS_HTTP_PARSE_UTIL_H
#define SNOW_TESTS_HTTP_PARSE_UTIL_H

#include "../guard.h"
#include "http/parse.h"

extern struct guard parse_guard;

/* The cases' teardown: unmaps parse_guard. */
void parse_guard_teardown(void);

/* The limits a server starts with (http_limits_default). */
struct http_limits parse_default_limits(void);

#endif
