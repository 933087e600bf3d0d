/*
 * chunked.c: incremental decoder for the chunked transfer coding
 * (RFC 9112 §7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *
 * Framing bytes are handled one at a time by an explicit state machine so a
 * line split anywhere resumes exactly; chunk data is moved in bulk. Extensions
 * are validated and ignored (no extension is understood, 7.1.1), trailer
 * fields are validated and dropped (7.1.2). Bare LF is rejected everywhere,
 * like in the header section, so that no two parsers can disagree on framing.
 */
#include <string.h>

#include "http/parse.h"

/* Bytes allowed in one chunk-size line including its extensions. */
#define CHUNK_LINE_MAX 4096

enum {
    CS_SIZE_FIRST,  /* first hex digit of chunk-size */
    CS_SIZE,        /* more hex digits, or what follows them */
    CS_SIZE_BWS,    /* whitespace after chunk-size; only ";" may follow */
    CS_EXT_NAME0,   /* BWS before ext-name */
    CS_EXT_NAME,
    CS_EXT_NAME_BWS,/* BWS after ext-name: "=" or ";" */
    CS_EXT_VAL0,    /* BWS before ext-val */
    CS_EXT_TOKEN,
    CS_EXT_QUOTED,
    CS_EXT_QESC,
    CS_EXT_QEND,    /* right after the closing quote */
    CS_EXT_VAL_BWS, /* whitespace after ext-val; only ";" may follow */
    CS_LINE_LF,     /* CR of the chunk line seen */
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER0,    /* start of a trailer line or of the final CRLF */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4) */
static int is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
           c >= 0x80;
}

static int err(struct http_chunked *c, int status, const char *reason)
{
    c->status = status;
    c->reason = reason;
    return RT_PARSE_ERROR;
}

/* After a chunk-size, an extension name or an extension value: CR ends the
 * line, ';' starts another extension, whitespace (BWS) moves to ws_state;
 * anything else is malformed. */
static int line_boundary(struct http_chunked *c, unsigned char ch, int ws_state, const char *what)
{
    if (ch == '\r')
        c->state = CS_LINE_LF;
    else if (ch == ';')
        c->state = CS_EXT_NAME0;
    else if (is_ws(ch))
        c->state = ws_state;
    else
        return err(c, 400, what);
    return 0;
}

/* One framing byte. Returns 0 to go on, 1 when the body is complete, or an
 * error. */
static int step(struct http_chunked *c, unsigned char ch, const struct http_limits *lim)
{
    int h;
    if (c->state < CS_LINE_LF && ++c->line_bytes > CHUNK_LINE_MAX)
        return err(c, 400, "chunk line too long");
    switch (c->state) {
    case CS_SIZE_FIRST:
        if ((h = hexval(ch)) < 0)
            return err(c, 400, "malformed chunk-size");
        c->remaining = (uint64_t)h;
        c->state = CS_SIZE;
        return 0;
    case CS_SIZE:
        if ((h = hexval(ch)) >= 0) {
            c->remaining = (c->remaining << 4) | (uint64_t)h;
            /* Checked per digit, so the shift can never overflow. */
            if (c->remaining > lim->max_body)
                return err(c, 413, "chunk larger than the body limit");
            return 0;
        }
        return line_boundary(c, ch, CS_SIZE_BWS, "malformed chunk-size");
    case CS_SIZE_BWS:
    case CS_EXT_VAL_BWS:
        if (ch == ';')
            c->state = CS_EXT_NAME0;
        else if (!is_ws(ch))
            return err(c, 400, "malformed chunk extension");
        return 0;
    case CS_EXT_NAME0:
        if (http_is_tchar(ch))
            c->state = CS_EXT_NAME;
        else if (!is_ws(ch))
            return err(c, 400, "malformed chunk extension");
        return 0;
    case CS_EXT_NAME:
        if (http_is_tchar(ch))
            return 0;
        if (ch == '=') {
            c->state = CS_EXT_VAL0;
            return 0;
        }
        return line_boundary(c, ch, CS_EXT_NAME_BWS, "malformed chunk extension");
    case CS_EXT_NAME_BWS:
        if (ch == '=')
            c->state = CS_EXT_VAL0;
        else if (ch == ';')
            c->state = CS_EXT_NAME0;
        else if (!is_ws(ch))
            return err(c, 400, "malformed chunk extension");
        return 0;
    case CS_EXT_VAL0:
        if (ch == '"')
            c->state = CS_EXT_QUOTED;
        else if (http_is_tchar(ch))
            c->state = CS_EXT_TOKEN;
        else if (!is_ws(ch))
            return err(c, 400, "malformed chunk extension");
        return 0;
    case CS_EXT_TOKEN:
    case CS_EXT_QEND:
        if (c->state == CS_EXT_TOKEN && http_is_tchar(ch))
            return 0;
        return line_boundary(c, ch, CS_EXT_VAL_BWS, "malformed chunk extension");
    case CS_EXT_QUOTED:
        if (ch == '"')
            c->state = CS_EXT_QEND;
        else if (ch == '\\')
            c->state = CS_EXT_QESC;
        else if (!is_qdtext(ch))
            return err(c, 400, "malformed chunk extension");
        return 0;
    case CS_EXT_QESC:
        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return err(c, 400, "malformed chunk extension");
        c->state = CS_EXT_QUOTED;
        return 0;
    case CS_LINE_LF:
        if (ch != '\n')
            return err(c, 400, "bare CR in chunk line");
        c->line_bytes = 0;
        if (c->remaining == 0) {
            c->state = CS_TRAILER0;
            return 0;
        }
        if (c->total + c->remaining > lim->max_body)
            return err(c, 413, "chunked body over the body limit");
        c->state = CS_DATA;
        return 0;
    case CS_DATA_CR:
        if (ch != '\r')
            return err(c, 400, "chunk-data not followed by CRLF");
        c->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (ch != '\n')
            return err(c, 400, "chunk-data not followed by CRLF");
        c->state = CS_SIZE_FIRST;
        c->line_bytes = 0;
        return 0;
    case CS_TRAILER0:
        if (ch == '\r') {
            c->state = CS_FINAL_LF;
            return 0;
        }
        /* obs-fold is not allowed in trailers either (RFC 9112 §5.2). */
        if (!http_is_tchar(ch))
            return err(c, 400, "malformed trailer field");
        if (++c->ntrailers > lim->max_headers)
            return err(c, 431, "too many trailer fields");
        c->state = CS_TRAILER_NAME;
        break;
    case CS_TRAILER_NAME:
        if (ch == ':')
            c->state = CS_TRAILER_VALUE;
        else if (!http_is_tchar(ch))
            return err(c, 400, "malformed trailer field");
        break;
    case CS_TRAILER_VALUE:
        if (ch == '\r')
            c->state = CS_TRAILER_LF;
        else if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return err(c, 400, "invalid character in trailer field");
        break;
    case CS_TRAILER_LF:
        if (ch != '\n')
            return err(c, 400, "bare CR in trailer section");
        c->state = CS_TRAILER0;
        break;
    case CS_FINAL_LF:
        if (ch != '\n')
            return err(c, 400, "bare CR after trailer section");
        c->state = CS_DONE;
        return 1;
    default:
        return err(c, 400, "chunked decoder misuse");
    }
    /* Trailer bytes share the header section's size limit. */
    if (++c->line_bytes > lim->max_header_bytes)
        return err(c, 431, "trailer section too large");
    return 0;
}

ssize_t http_chunked_decode(struct http_chunked *c, const char *src, size_t n, char *dst, size_t *out,
                            const struct http_limits *lim)
{
    size_t i = 0, o = 0;
    int r = 0;
    if (c->status) {
        *out = 0;
        return RT_PARSE_ERROR;
    }
    if (c->state == CS_DONE) {
        *out = 0;
        return 0;
    }
    while (i < n) {
        if (c->state == CS_DATA) {
            size_t k = n - i;
            if ((uint64_t)k > c->remaining)
                k = (size_t)c->remaining;
            /* dst <= src, so moving down never overwrites unread input. */
            if (dst + o != src + i)
                memmove(dst + o, src + i, k);
            o += k;
            i += k;
            c->remaining -= k;
            c->total += k;
            if (c->remaining == 0)
                c->state = CS_DATA_CR;
            continue;
        }
        r = step(c, (unsigned char)src[i], lim);
        i++;
        if (r != 0)
            break;
    }
    *out = o;
    if (r < 0)
        return RT_PARSE_ERROR;
    return r == 1 ? (ssize_t)i : RT_PARSE_INCOMPLETE;
}
