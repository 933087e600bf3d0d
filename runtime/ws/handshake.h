/*
 * handshake.h: the server side of the RFC 6455 §4.2 opening handshake over
 * a parsed request (http/request.h). Checking fills a fixed-size result of
 * views into the request and the configuration; nothing is allocated. The
 * 101 and the refusals are written by their own writers into the caller's
 * buffer, never through the generic HTTP response path.
 */
#ifndef SNOW_WS_HANDSHAKE_H
#define SNOW_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/request.h"

/* base64 of a 20-byte SHA-1 digest. */
#define WS_ACCEPT_LEN 28
/* Extension offers and parameters recorded; more are counted as truncated
 * (an offer whose parameters were cut is never accepted, pmd_offer.c). */
#define WS_MAX_EXT_OFFERS 8
#define WS_MAX_EXT_PARAMS 16
/* Enough for either response with a subprotocol name of up to 512 bytes. */
#define WS_HANDSHAKE_RESPONSE_MAX 1024

enum ws_origin_policy {
    WS_ORIGIN_SAME = 0, /* default: a browser's Origin must match Host */
    WS_ORIGIN_ANY,
    WS_ORIGIN_LIST,     /* Origin must equal one of origins[] */
    WS_ORIGIN_CALLBACK, /* origin_fn decides */
};

/* Decides whether origin (n == 0 when the request has none) may connect. */
typedef bool (*ws_origin_fn)(void *arg, struct http_str origin, const struct http_request *req);

struct ws_handshake_config {
    /* Subprotocols in the server's order of preference. */
    const char *const *protocols;
    size_t nprotocols;

    enum ws_origin_policy origin_policy;
    const char *const *origins; /* "scheme://host[:port]", compared ignoring case */
    size_t norigins;
    ws_origin_fn origin_fn;
    void *origin_arg;
    /* Requests without Origin come from non-browser clients (§10.2) and
     * are let through by SAME and LIST unless this is set. */
    bool require_origin;
    /* The connection is TLS: a Host without a port means 443, else 80. */
    bool secure;
};

/* Why a request was refused; each maps to one status (handshake.c). */
enum ws_reject {
    WS_ACCEPTED = 0,
    WS_REJECT_METHOD,        /* 405 */
    WS_REJECT_HTTP_VERSION,  /* 400 */
    WS_REJECT_HOST,          /* 400 */
    WS_REJECT_UPGRADE,       /* 426 */
    WS_REJECT_CONNECTION,    /* 426 */
    WS_REJECT_VERSION,       /* 426 */
    WS_REJECT_VERSION_DUP,   /* 400 */
    WS_REJECT_KEY,           /* 400 */
    WS_REJECT_PROTOCOL,      /* 400 */
    WS_REJECT_EXTENSIONS,    /* 400 */
    WS_REJECT_ORIGIN,        /* 403 */
};

struct ws_ext_param {
    struct http_str name;
    struct http_str value; /* p == NULL when the parameter has no value;
                              a quoted value without its quotes */
};

struct ws_ext_offer {
    struct http_str name;
    uint8_t first; /* index into ws_handshake.ext_params */
    uint8_t nparams;
};

struct ws_handshake {
    int status; /* 101, or the status to refuse with */
    enum ws_reject reject;
    char accept[WS_ACCEPT_LEN + 1];
    struct http_str key;
    struct http_str origin;   /* n == 0 when absent */
    struct http_str protocol; /* chosen subprotocol; n == 0 for none */
    /* The accepted extension's answer (Sec-WebSocket-Extensions value),
     * filled by the permessage-deflate negotiation (pmd.h); empty: none. */
    uint8_t ext_answer_len;
    char ext_answer[160];
    /* Sec-WebSocket-Extensions offers, in order. */
    uint8_t next;
    uint8_t nparams;
    bool ext_truncated;
    struct ws_ext_offer ext[WS_MAX_EXT_OFFERS];
    struct ws_ext_param ext_params[WS_MAX_EXT_PARAMS];
};

/* Checks req as an opening handshake. Returns 0 with hs->status 101, or
 * SNOW_EPROTOCOL with hs->status and hs->reject saying why. cfg may be
 * NULL for the defaults. */
int ws_handshake_check(const struct http_request *req, const struct ws_handshake_config *cfg,
                       struct ws_handshake *hs);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key ++ GUID)) (§4.2.2).
 * out receives WS_ACCEPT_LEN characters and a NUL. */
void ws_accept_key(const char *key, size_t n, char out[WS_ACCEPT_LEN + 1]);

/* Writes the 101 response for an accepted handshake. Returns its length or
 * -ENOBUFS; -EINVAL when hs was not accepted. */
int ws_handshake_write_101(const struct ws_handshake *hs, char *buf, size_t cap);

/* Writes the refusal for a rejected handshake: status line, the headers
 * its status needs, Connection: close and a one-line text body. Returns
 * its length or -ENOBUFS; -EINVAL when hs was accepted. */
int ws_handshake_write_reject(const struct ws_handshake *hs, char *buf, size_t cap);

/* A short human-readable reason (the refusal's body). */
const char *ws_reject_text(enum ws_reject why);

#endif
