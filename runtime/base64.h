/*
 * base64.h: RFC 4648 base64 (standard alphabet, padded). Used by the
 * WebSocket handshake for Sec-WebSocket-Key and Sec-WebSocket-Accept, so
 * decoding is strict: a key that is not canonical base64 is a bad request.
 */
#ifndef SNOW_RT_BASE64_H
#define SNOW_RT_BASE64_H

#include <stddef.h>

/* Characters produced by encoding n bytes (no terminating NUL). */
#define RT_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes RT_BASE64_LEN(n) characters to dst (no NUL); returns that count. */
size_t rt_base64_encode(char *dst, const void *src, size_t n);

/* Decodes n characters into dst (cap bytes). Returns the decoded length,
 * -EINVAL when src is not canonical padded base64 (length not a multiple of
 * 4, a character outside the alphabet, misplaced '=', non-zero pad bits),
 * or -ENOBUFS when cap is too small. */
int rt_base64_decode(void *dst, size_t cap, const char *src, size_t n);

#endif
