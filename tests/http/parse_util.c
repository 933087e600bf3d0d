/*
 * parse_util.c: what the parser suites share (parse_util.h).
 */
#include "parse_util.h"

struct guard parse_guard;

void parse_guard_teardown(void)
{
    guard_free(&parse_guard);
}

struct http_limits parse_default_limits(void)
{
    struct http_limits l;
    http_limits_default(&l);
    return l;
}
