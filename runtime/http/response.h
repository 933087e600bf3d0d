/*
 * response.h: serialising a response head (and a small body) into an output
 * buffer, with the server's own fields: Server, Date, Content-Length and
 * Connection. Used by the connection actor and by the upgrade path to answer
 * before a 101. No I/O here.
 */
#ifndef SNOW_HTTP_RESPONSE_H
#define SNOW_HTTP_RESPONSE_H

#include <stddef.h>

#include "http/exchange.h"

/* A growable byte buffer: [0, len) holds output not written yet. */
struct http_outbuf {
    char *p;
    size_t len, cap;
};

/* Makes room for more bytes after len. 0, or -ENOMEM (also when the size
 * would not fit a size_t). */
int http_outbuf_reserve(struct http_outbuf *o, size_t more);

/* Appends the whole response: status line, Server, Date, the handler's
 * fields, Content-Length (except for 1xx, 204 and 304), Connection when
 * keep_alive or the version needs it, the empty line, and the body when
 * with_body. Returns 0 or -ENOMEM. */
int http_format_response(struct http_outbuf *out, const SnowHttpRes *res, int minor_version, int keep_alive,
                         int with_body);

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7) for now, cached per
 * second and per worker thread. Writes 29 bytes. */
#define HTTP_DATE_LEN 29
void http_date_now(char out[HTTP_DATE_LEN]);

#endif
