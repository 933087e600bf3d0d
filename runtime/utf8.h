/*
 * utf8.h: incremental UTF-8 validation (RFC 3629) for WebSocket text
 * messages, which RFC 6455 §8.1 requires to be valid UTF-8 and §5.6 allows
 * to be split anywhere across frames. The validator is a small DFA fed any
 * number of chunks; it reports the offset of the first byte at which the
 * input can no longer be the prefix of valid UTF-8, so a connection fails as
 * soon as that byte arrives.
 *
 * Accepted: U+0000..U+D7FF and U+E000..U+10FFFF in their shortest form,
 * noncharacters included. Rejected: overlong forms, surrogates, code points
 * above U+10FFFF, lone continuation bytes, 0xC0/0xC1/0xF5..0xFF.
 */
#ifndef SNOW_RT_UTF8_H
#define SNOW_RT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rt_utf8 {
    uint8_t state;
};

void rt_utf8_init(struct rt_utf8 *v);

/* Validates the next n bytes. Returns n when every byte is acceptable so
 * far (possibly ending inside a character), else the offset of the first
 * invalid byte; the validator then stays failed. */
size_t rt_utf8_feed(struct rt_utf8 *v, const void *p, size_t n);

/* True when everything fed so far is valid and ends on a character
 * boundary: a message may end here. */
bool rt_utf8_complete(const struct rt_utf8 *v);
bool rt_utf8_failed(const struct rt_utf8 *v);

/* One-shot: true when p[0..n) is complete valid UTF-8. Otherwise, when bad
 * is not NULL, *bad is the offset of the first invalid byte, or n when the
 * input ends inside a character. */
bool rt_utf8_valid(const void *p, size_t n, size_t *bad);

/* The longest prefix of the valid UTF-8 string p[0..n) that is at most max
 * bytes and does not end inside a character. */
size_t rt_utf8_prefix(const void *p, size_t n, size_t max);

#endif
