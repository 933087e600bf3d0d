/*
 * token.h: the lexical pieces of HTTP field syntax (RFC 9110 §5.5, §5.6)
 * shared by the request parser, the chunked decoder, the router, the
 * response builder and the WebSocket handshake. Views only: nothing here
 * allocates or copies.
 */
#ifndef SNOW_HTTP_TOKEN_H
#define SNOW_HTTP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A view of bytes that live elsewhere (usually the connection's read
 * buffer); not NUL-terminated. */
struct http_str {
    const char *p;
    size_t n;
};

struct http_request;
struct http_header;

/* tchar (RFC 9110 §5.6.2): the characters of a token. */
extern const unsigned char http_tchar_table[256];
static inline bool http_is_tchar(unsigned char c)
{
    return http_tchar_table[c] != 0;
}

/* OWS = *( SP / HTAB ) (RFC 9110 §5.6.3). */
static inline bool http_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* s is a non-empty token. */
bool http_is_token(struct http_str s);

/* ASCII case-insensitive equality, as field names, list items such as
 * "upgrade" and scheme names compare (RFC 9110 §5.1, §7.8). */
bool http_str_eq_ci2(struct http_str a, struct http_str b);
/* Inline, so that the length of a literal is a constant and a name of
 * another length is told apart without a call: the header lookups of one
 * request make dozens of these comparisons. */
static inline bool http_str_eq_ci(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && http_str_eq_ci2(s, (struct http_str){lit, n});
}

/*
 * The next non-empty element of a comma-separated list (RFC 9110 §5.6.1),
 * with surrounding OWS trimmed. Empty elements are skipped, as a recipient
 * must do. Start with *pos = 0; returns false at the end of the list.
 */
bool http_list_next(struct http_str v, size_t *pos, struct http_str *item);

/* The number of field lines called name (case-insensitive) in req, and
 * the first of them in *first (NULL when none). */
size_t http_header_count(const struct http_request *req, const char *name, const struct http_header **first);

/* Does any field line called name list token, ignoring case? A list field
 * may be split over several lines (RFC 9110 §5.3), so every line counts. */
bool http_header_has_token(const struct http_request *req, const char *name, const char *token);

#endif
