/*
 * redis_resp.c: the RESP codec (see redis_resp.h). The protocol is the
 * Redis serialization protocol, version 2, as the server speaks it to a
 * client that never sent HELLO 3, plus the three RESP3 types ('>', '_',
 * '#') that cost nothing to accept. Other RESP3 types are rejected: the
 * client never asks for them.
 */
#include "ws/redis_resp.h"

#include <stdbool.h>
#include <string.h>

/* A header line ("$123", ":-5") is short; a simple string or an error may
 * be as long as a bulk string is allowed to be. */
#define NUM_LINE_MAX 24

static int parse_int(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && p[i] == '-') {
        neg = true;
        i++;
    }
    if (i == n)
        return -1;
    uint64_t v = 0;
    /* Magnitude limit: INT64_MAX, or one more for a negative value. */
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Finds the CRLF ending the line that starts at pos. Returns its length
 * (up to the CR), RESP_INCOMPLETE, RESP_EPROTO (a CR without LF) or
 * RESP_ETOOBIG (longer than max). */
static ssize_t line_at(const char *buf, size_t n, size_t pos, size_t max)
{
    size_t avail = n - pos;
    size_t scan = avail < max + 1 ? avail : max + 1;
    const char *cr = memchr(buf + pos, '\r', scan);
    if (!cr)
        return avail > max ? RESP_ETOOBIG : RESP_INCOMPLETE;
    size_t len = (size_t)(cr - (buf + pos));
    if (pos + len + 1 >= n)
        return RESP_INCOMPLETE;
    if (cr[1] != '\n')
        return RESP_EPROTO;
    return (ssize_t)len;
}

ssize_t resp_parse(const char *buf, size_t n, const struct resp_limits *lim, struct resp_val *vals,
                   size_t *nvals)
{
    int64_t remain[RESP_MAX_DEPTH];
    int depth = 0;
    size_t pos = 0, nv = 0;
    do {
        if (pos >= n)
            return RESP_INCOMPLETE;
        if (nv >= lim->max_vals)
            return RESP_ETOOBIG;
        char t = buf[pos];
        bool text = t == '+' || t == '-';
        ssize_t ll = line_at(buf, n, pos + 1, text ? lim->max_bulk : NUM_LINE_MAX);
        if (ll < 0)
            return ll == RESP_ETOOBIG && !text ? RESP_EPROTO : ll;
        const char *line = buf + pos + 1;
        size_t next = pos + 1 + (size_t)ll + 2;
        struct resp_val *v = &vals[nv++];
        *v = (struct resp_val){.type = (enum resp_type)t};
        int64_t k = 0;
        bool leaf = true;
        switch (t) {
        case '+':
        case '-':
            if (memchr(line, '\n', (size_t)ll))
                return RESP_EPROTO;
            v->str = line;
            v->len = (size_t)ll;
            break;
        case ':':
            if (parse_int(line, (size_t)ll, &v->ival))
                return RESP_EPROTO;
            break;
        case '_':
            if (ll != 0)
                return RESP_EPROTO;
            break;
        case '#':
            if (ll != 1 || (line[0] != 't' && line[0] != 'f'))
                return RESP_EPROTO;
            v->ival = line[0] == 't';
            break;
        case '$':
            if (parse_int(line, (size_t)ll, &k) || k < -1)
                return RESP_EPROTO;
            if (k == -1) {
                v->type = RESP_NULL;
                break;
            }
            if ((uint64_t)k > lim->max_bulk)
                return RESP_ETOOBIG;
            if (n - next < (size_t)k + 2)
                return RESP_INCOMPLETE;
            if (buf[next + (size_t)k] != '\r' || buf[next + (size_t)k + 1] != '\n')
                return RESP_EPROTO;
            v->str = buf + next;
            v->len = (size_t)k;
            next += (size_t)k + 2;
            break;
        case '*':
        case '>':
            if (parse_int(line, (size_t)ll, &k) || k < -1 || (t == '>' && k < 1))
                return RESP_EPROTO;
            if (k == -1) {
                v->type = RESP_NULL;
                break;
            }
            /* Refused at the declaration: the elements cannot all fit. */
            if ((uint64_t)k > lim->max_vals - nv)
                return RESP_ETOOBIG;
            v->ival = k;
            if (k > 0) {
                if (depth == RESP_MAX_DEPTH)
                    return RESP_ETOOBIG;
                remain[depth++] = k;
                leaf = false;
            }
            break;
        default:
            return RESP_EPROTO;
        }
        pos = next;
        if (!leaf)
            continue;
        /* A value is complete: it counts as one element of its parent,
         * which may complete in turn. */
        while (depth > 0) {
            if (--remain[depth - 1] > 0)
                break;
            depth--;
        }
    } while (depth > 0);
    *nvals = nv;
    return (ssize_t)pos;
}

static size_t digits(size_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

size_t resp_encoded_size(int argc, const size_t *lens)
{
    size_t n = 1 + digits((size_t)argc) + 2;
    for (int i = 0; i < argc; i++)
        n += 1 + digits(lens[i]) + 2 + lens[i] + 2;
    return n;
}

static size_t put_header(char *out, char t, size_t v)
{
    size_t d = digits(v);
    out[0] = t;
    for (size_t i = d; i > 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    out[d + 1] = '\r';
    out[d + 2] = '\n';
    return d + 3;
}

size_t resp_encode(char *out, int argc, const char *const *argv, const size_t *lens)
{
    size_t o = put_header(out, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        o += put_header(out + o, '$', lens[i]);
        if (lens[i])
            memcpy(out + o, argv[i], lens[i]);
        o += lens[i];
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}
