/*
 * response.c: response serialisation and the Date cache. See response.h.
 *
 * The head is written with one reservation computed up front; every write
 * is still checked against it, so an arithmetic mistake in the bound shows
 * up as an assertion (or -ENOMEM without assertions), never as a write past
 * the buffer.
 */
#include "http/response.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int http_outbuf_reserve(struct http_outbuf *o, size_t more)
{
    if (more > SIZE_MAX - o->len)
        return -ENOMEM;
    size_t want = o->len + more;
    if (want <= o->cap)
        return 0;
    size_t c = o->cap ? o->cap : 4096;
    while (c < want)
        c = c > SIZE_MAX / 2 ? want : c * 2;
    char *p = realloc(o->p, c);
    if (!p)
        return -ENOMEM;
    o->p = p;
    o->cap = c;
    return 0;
}

/* ---- the Date field ---- */

static _Thread_local struct {
    time_t sec;
    char s[HTTP_DATE_LEN];
} date_cache = {-1, ""};

static char *two_digits(char *p, int64_t v)
{
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

/* IMF-fixdate (RFC 9110 §5.6.7) of t, which must be at or after the epoch
 * and before year 10000: exactly HTTP_DATE_LEN bytes. */
static void format_date(time_t t, char out[HTTP_DATE_LEN])
{
    static const char days[] = "ThuFriSatSunMonTueWed"; /* 1970-01-01 was a Thursday */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t d = t / 86400, s = t % 86400;
    /* Civil date from days since the epoch (proleptic Gregorian). */
    int64_t z = d + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, day = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    char *p = out;
    memcpy(p, days + (d % 7) * 3, 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = two_digits(p, day);
    *p++ = ' ';
    memcpy(p, months + (m - 1) * 3, 3);
    p += 3;
    *p++ = ' ';
    p = two_digits(p, y / 100);
    p = two_digits(p, y);
    *p++ = ' ';
    p = two_digits(p, s / 3600);
    *p++ = ':';
    p = two_digits(p, s / 60 % 60);
    *p++ = ':';
    p = two_digits(p, s % 60);
    memcpy(p, " GMT", 4);
    assert(p + 4 == out + HTTP_DATE_LEN);
}

/* Never inlined: date_cache is thread-local, and a connection actor may
 * resume on another worker after any park, so its address must be computed
 * afresh on every call, never cached in a caller's frame across a park. */
RT_NOINLINE void http_date_now(char out[HTTP_DATE_LEN])
{
    /* The date only changes once a second: format it once per second per
     * worker thread. No park happens in here, so the thread-local stays the
     * calling thread's. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_cache.sec) {
        format_date(ts.tv_sec, date_cache.s);
        date_cache.sec = ts.tv_sec;
    }
    memcpy(out, date_cache.s, HTTP_DATE_LEN);
}

/* ---- the head ---- */

/* Writes into [p, end); a write that does not fit marks the writer as
 * overflowed and writes nothing, so the bound below is checked, not
 * trusted. */
struct writer {
    char *p, *end;
    int overflow;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (w->overflow || n > (size_t)(w->end - w->p)) {
        w->overflow = 1;
        return;
    }
    if (n)
        memcpy(w->p, s, n);
    w->p += n;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_uint(struct writer *w, uint64_t v)
{
    char num[20]; /* 2^64 - 1 has 20 digits */
    int k = 0;
    do {
        num[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char rev[20];
    for (int i = 0; i < k; i++)
        rev[i] = num[k - 1 - i];
    put(w, rev, (size_t)k);
}

/*
 * Bytes of the head besides the reason phrase and the handler's fields,
 * at most: "HTTP/1.1 " 9 + status 3 + " " 1 + CRLF 2, "Server: snow-rt" 15 +
 * CRLF 2, "Date: " 6 + date 29 + CRLF 2, "Content-Length: " 16 + 20 digits +
 * CRLF 2, the longer Connection line "Connection: keep-alive" 22 + CRLF 2,
 * and the final CRLF 2.
 */
#define HEAD_FIXED_MAX (9 + 3 + 1 + 2 + 15 + 2 + 6 + HTTP_DATE_LEN + 2 + 16 + 20 + 2 + 22 + 2 + 2)

int http_format_response(struct http_outbuf *o, const SnowHttpRes *res, int minor_version, int keep_alive,
                         int with_body)
{
    int status = res->status;
    assert(status >= 100 && status <= 999);
    const char *reason = http_status_reason(status);
    size_t rlen = strlen(reason);
    /* RFC 9110 §8.6 and §6.4.1: no Content-Length and no content in 1xx,
     * 204 and 304 responses. */
    int bodyless = status < 200 || status == 204 || status == 304;
    size_t body = with_body && !bodyless ? res->body_len : 0;
    size_t need = HEAD_FIXED_MAX + rlen;
    if (res->hdrs_len > SIZE_MAX - need || body > SIZE_MAX - need - res->hdrs_len)
        return -ENOMEM;
    need += res->hdrs_len + body;
    if (http_outbuf_reserve(o, need) < 0)
        return -ENOMEM;
    struct writer w = {o->p + o->len, o->p + o->len + need, 0};
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10), (char)('0' + status % 10)};
    PUT_LIT(&w, "HTTP/1.1 ");
    put(&w, code, 3);
    PUT_LIT(&w, " ");
    put(&w, reason, rlen);
    PUT_LIT(&w, "\r\nServer: snow-rt\r\nDate: ");
    char date[HTTP_DATE_LEN];
    http_date_now(date);
    put(&w, date, sizeof date);
    PUT_LIT(&w, "\r\n");
    put(&w, res->hdrs, res->hdrs_len);
    if (!bodyless) {
        PUT_LIT(&w, "Content-Length: ");
        put_uint(&w, res->body_len);
        PUT_LIT(&w, "\r\n");
    }
    if (!keep_alive)
        PUT_LIT(&w, "Connection: close\r\n");
    else if (minor_version == 0)
        PUT_LIT(&w, "Connection: keep-alive\r\n");
    PUT_LIT(&w, "\r\n");
    put(&w, http_res_body(res), body);
    assert(!w.overflow);
    if (w.overflow)
        return -ENOMEM;
    o->len = (size_t)(w.p - o->p);
    return 0;
}
