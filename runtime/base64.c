#include "base64.h"

#include <errno.h>
#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rt_base64_encode(char *dst, const void *src, size_t n)
{
    const uint8_t *s = src;
    char *o = dst;
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    return (size_t)(o - dst);
}

static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int rt_base64_decode(void *dst, size_t cap, const char *src, size_t n)
{
    if (n % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (n >= 4 && src[n - 1] == '=')
        pad = src[n - 2] == '=' ? 2 : 1;
    size_t out_len = n / 4 * 3 - pad;
    if (out_len > cap)
        return -ENOBUFS;
    if (out_len > (size_t)INT32_MAX)
        return -EINVAL;

    uint8_t *o = dst;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int v[4];
        for (int k = 0; k < 4; k++) {
            /* '=' may only fill the final one or two positions. */
            if (last && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            v[k] = sextet((unsigned char)src[i + k]);
            if (v[k] < 0)
                return -EINVAL;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (last && pad == 2) {
            /* RFC 4648 §3.5: the bits under the padding must be zero for
             * the encoding to be canonical. */
            if (w & 0xFFFF)
                return -EINVAL;
            *o++ = (uint8_t)(w >> 16);
        } else if (last && pad == 1) {
            if (w & 0xFF)
                return -EINVAL;
            *o++ = (uint8_t)(w >> 16);
            *o++ = (uint8_t)(w >> 8);
        } else {
            *o++ = (uint8_t)(w >> 16);
            *o++ = (uint8_t)(w >> 8);
            *o++ = (uint8_t)w;
        }
    }
    return (int)out_len;
}
