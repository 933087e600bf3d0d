/*
 * redis_resp.h: a RESP2 encoder and decoder (with the RESP3 push, null and
 * boolean types a server may send), pure: no I/O, no allocation.
 *
 * Decoding follows the picohttpparser convention: resp_parse looks at the
 * bytes received so far and either finds one complete reply at their start
 * (returning the bytes it spans), says more are needed (RESP_INCOMPLETE),
 * or rejects them (RESP_EPROTO, RESP_ETOOBIG). A reply is returned as a
 * flat pre-order list of values in caller storage: an aggregate (array,
 * push) is followed by its elements, so a pub/sub message
 * `*3 $7 message $ch $payload` comes back as four values. Strings are views
 * into the caller's buffer, valid until it is compacted.
 *
 * Limits (the caller's, per call): the number of values one reply may hold
 * and the largest bulk string. A peer that declares more is rejected as
 * soon as the declaration is read, before its bytes arrive.
 */
#ifndef SNOW_WS_REDIS_RESP_H
#define SNOW_WS_REDIS_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum resp_type {
    RESP_SIMPLE = '+', /* simple string */
    RESP_ERROR = '-',  /* error string */
    RESP_INT = ':',
    RESP_BULK = '$',
    RESP_ARRAY = '*',
    RESP_PUSH = '>', /* RESP3 out-of-band data (pub/sub messages) */
    RESP_NULL = '_', /* RESP3 null; also $-1 and *-1 in RESP2 */
    RESP_BOOL = '#', /* RESP3 boolean, in ival */
};

struct resp_val {
    enum resp_type type;
    int64_t ival;    /* INT and BOOL: the value; ARRAY, PUSH: element count */
    const char *str; /* SIMPLE, ERROR, BULK: the bytes (not terminated) */
    size_t len;
};

#define RESP_INCOMPLETE (-2)
#define RESP_EPROTO (-1)
#define RESP_ETOOBIG (-3)

/* Aggregates nest at most this deep (the server never sends deeper ones
 * to a subscriber or a publisher). */
#define RESP_MAX_DEPTH 8

struct resp_limits {
    size_t max_vals; /* capacity of the value list */
    size_t max_bulk; /* largest bulk string accepted */
};

/* Parses one reply at the start of buf[0..n). Returns the bytes it spans
 * (> 0) with *nvals values in vals[], RESP_INCOMPLETE, RESP_EPROTO or
 * RESP_ETOOBIG. */
ssize_t resp_parse(const char *buf, size_t n, const struct resp_limits *lim, struct resp_val *vals,
                   size_t *nvals);

/* Bytes resp_encode needs for a command of argc arguments. */
size_t resp_encoded_size(int argc, const size_t *lens);
/* Writes the command `*argc $len arg ...` into out (at least
 * resp_encoded_size bytes) and returns the bytes written. */
size_t resp_encode(char *out, int argc, const char *const *argv, const size_t *lens);

#endif
