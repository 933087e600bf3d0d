/*
 * handshake.c: validation of the client's opening handshake and the two
 * response writers (RFC 6455 §4.2).
 *
 * Checks run in this order; the first that fails decides the answer:
 *
 *   check                                              reject           status
 *   -------------------------------------------------  ---------------  ------
 *   method is GET (§4.2.1 item 1)                      METHOD           405 + Allow: GET
 *   HTTP/1.1 or later (§4.2.1 item 1)                  HTTP_VERSION     400
 *   exactly one non-empty Host (§4.2.1 item 2,
 *     RFC 9112 §3.2)                                   HOST             400
 *   Upgrade lists "websocket" (§4.2.1 item 3)          UPGRADE          426 (a)
 *   Connection lists "upgrade" (§4.2.1 item 4)         CONNECTION       426 (a)
 *   Sec-WebSocket-Version present and 13 (§4.2.1
 *     item 6, §4.4)                                    VERSION          426 (a)
 *   Sec-WebSocket-Version not repeated                 VERSION_DUP      400
 *   one Sec-WebSocket-Key, canonical base64 of
 *     exactly 16 bytes (§4.2.1 item 5, §11.3.1)        KEY              400
 *   Sec-WebSocket-Protocol is a list of tokens (§4.1)  PROTOCOL         400
 *   Sec-WebSocket-Extensions parses (§9.1)             EXTENSIONS       400
 *   Origin allowed by the policy (§4.2.2 item 4)       ORIGIN           403
 *
 * (a) 426 Upgrade Required carries "Upgrade: websocket" (RFC 9110 §15.5.22
 * requires an Upgrade header with 426, and RFC 9110 §7.8 then requires
 * "upgrade" in Connection) and "Sec-WebSocket-Version: 13" (§4.4). A GET
 * without the Upgrade/Connection pair is a plain request for a resource
 * that only speaks WebSocket, so 426 tells the client what to do; §4.2.2
 * item 1's "such as 400" is for requests that do try the handshake and get
 * it wrong. Every refusal closes the connection.
 */
#include "ws/handshake.h"

#include <assert.h>
#include <bearssl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define WS_SHA1_NI 1
#endif

#include "base64.h"
#include "http/token.h"
#include "rt.h"

/* §1.3, §4.2.2 item 5.4: the GUID appended to the key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/*
 * §4.2.2 item 5.4 (/subprotocol/): the first of the server's protocols,
 * in its order of preference, that the client offered. Names compare
 * exactly: subprotocol names are tokens registered case-sensitively.
 */
static int choose_protocol(const struct http_request *req, const struct ws_handshake_config *cfg,
                           struct http_str *chosen)
{
    *chosen = (struct http_str){NULL, 0};
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!http_str_eq_ci(req->headers[i].name, "Sec-WebSocket-Protocol"))
            continue;
        struct http_str item;
        size_t pos = 0;
        while (http_list_next(req->headers[i].value, &pos, &item))
            if (!http_is_token(item))
                return -1;
    }
    for (size_t k = 0; cfg && k < cfg->nprotocols; k++) {
        struct http_str want = {cfg->protocols[k], strlen(cfg->protocols[k])};
        for (size_t i = 0; i < req->nheaders; i++) {
            if (!http_str_eq_ci(req->headers[i].name, "Sec-WebSocket-Protocol"))
                continue;
            struct http_str item;
            size_t pos = 0;
            while (http_list_next(req->headers[i].value, &pos, &item)) {
                if (item.n == want.n && memcmp(item.p, want.p, want.n) == 0) {
                    *chosen = want;
                    return 0;
                }
            }
        }
    }
    return 0;
}

static size_t skip_ows(struct http_str v, size_t i)
{
    while (i < v.n && http_is_ows((unsigned char)v.p[i]))
        i++;
    return i;
}

static size_t scan_token(struct http_str v, size_t i)
{
    while (i < v.n && http_is_tchar((unsigned char)v.p[i]))
        i++;
    return i;
}

/*
 * §9.1: extension-list = 1#extension; extension = token *( ";" param );
 * param = token [ "=" (token / quoted-string) ]. Offers are recorded for
 * the (future) negotiation; a value that does not parse refuses the
 * handshake rather than being half understood.
 */
static int parse_extensions(struct http_str v, struct ws_handshake *hs)
{
    size_t i = 0;
    for (;;) {
        while (i < v.n && (v.p[i] == ',' || http_is_ows((unsigned char)v.p[i])))
            i++;
        if (i == v.n)
            return 0;
        size_t start = i;
        i = scan_token(v, i);
        if (i == start)
            return -1;
        struct ws_ext_offer *offer = NULL;
        if (hs->next < WS_MAX_EXT_OFFERS) {
            offer = &hs->ext[hs->next++];
            offer->name = (struct http_str){v.p + start, i - start};
            offer->first = hs->nparams;
            offer->nparams = 0;
        } else {
            hs->ext_truncated = true;
        }
        i = skip_ows(v, i);
        while (i < v.n && v.p[i] == ';') {
            i = skip_ows(v, i + 1);
            size_t ns = i;
            i = scan_token(v, i);
            if (i == ns)
                return -1;
            struct ws_ext_param param = {{v.p + ns, i - ns}, {NULL, 0}};
            i = skip_ows(v, i);
            if (i < v.n && v.p[i] == '=') {
                i = skip_ows(v, i + 1);
                if (i < v.n && v.p[i] == '"') {
                    size_t vs = ++i;
                    while (i < v.n && v.p[i] != '"') {
                        if (v.p[i] == '\\')
                            i++;
                        i++;
                    }
                    if (i >= v.n)
                        return -1;
                    param.value = (struct http_str){v.p + vs, i - vs};
                    i++;
                } else {
                    size_t vs = i;
                    i = scan_token(v, i);
                    if (i == vs)
                        return -1;
                    param.value = (struct http_str){v.p + vs, i - vs};
                }
                i = skip_ows(v, i);
            }
            if (offer && hs->nparams < WS_MAX_EXT_PARAMS) {
                hs->ext_params[hs->nparams++] = param;
                offer->nparams++;
            } else {
                hs->ext_truncated = true;
            }
        }
        if (i < v.n && v.p[i] != ',')
            return -1;
    }
}

struct hostport {
    struct http_str host;
    long port; /* -1 when absent */
};

/* host [":" port], host possibly an IPv6 literal in brackets. */
static bool split_hostport(struct http_str s, struct hostport *out)
{
    size_t i;
    if (s.n == 0)
        return false;
    if (s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.n);
        if (!close)
            return false;
        i = (size_t)(close - s.p) + 1;
    } else {
        for (i = 0; i < s.n && s.p[i] != ':'; i++)
            if (s.p[i] == '/' || s.p[i] == '@' || s.p[i] == '?' || s.p[i] == '#')
                return false;
        if (i == 0)
            return false;
    }
    out->host = (struct http_str){s.p, i};
    out->port = -1;
    if (i == s.n)
        return true;
    if (s.p[i] != ':' || s.n - i - 1 == 0 || s.n - i - 1 > 5)
        return false;
    long port = 0;
    for (size_t k = i + 1; k < s.n; k++) {
        if (s.p[k] < '0' || s.p[k] > '9')
            return false;
        port = port * 10 + (s.p[k] - '0');
    }
    if (port > 65535)
        return false;
    out->port = port;
    return true;
}

/*
 * Same-origin: the Origin's host and port (RFC 6454 §4, the scheme's
 * default when none is written) equal those of Host (the connection's
 * default when none is written). "null" and anything unparsable differ.
 */
static bool same_origin(struct http_str origin, struct http_str host, bool secure)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= origin.n; i++) {
        if (memcmp(origin.p + i, "://", 3) == 0) {
            sep = origin.p + i;
            break;
        }
    }
    if (!sep)
        return false;
    struct http_str scheme = {origin.p, (size_t)(sep - origin.p)};
    struct http_str auth = {sep + 3, origin.n - scheme.n - 3};
    long def = -1;
    if (http_str_eq_ci(scheme, "http") || http_str_eq_ci(scheme, "ws"))
        def = 80;
    else if (http_str_eq_ci(scheme, "https") || http_str_eq_ci(scheme, "wss"))
        def = 443;

    struct hostport o, h;
    if (!split_hostport(auth, &o) || !split_hostport(host, &h))
        return false;
    long oport = o.port >= 0 ? o.port : def;
    long hport = h.port >= 0 ? h.port : (secure ? 443 : 80);
    return oport >= 0 && oport == hport && http_str_eq_ci2(o.host, h.host);
}

static bool origin_allowed(const struct http_request *req, const struct ws_handshake_config *cfg,
                           struct http_str origin, struct http_str host, bool has_origin)
{
    enum ws_origin_policy policy = cfg ? cfg->origin_policy : WS_ORIGIN_SAME;
    bool require = cfg && cfg->require_origin;

    switch (policy) {
    case WS_ORIGIN_ANY:
        return true;
    case WS_ORIGIN_CALLBACK:
        return cfg->origin_fn && cfg->origin_fn(cfg->origin_arg, origin, req);
    case WS_ORIGIN_LIST:
        if (!has_origin)
            return !require;
        for (size_t i = 0; i < cfg->norigins; i++)
            if (http_str_eq_ci(origin, cfg->origins[i]))
                return true;
        return false;
    case WS_ORIGIN_SAME:
    default:
        /* §10.2: Origin protects browsers' users; other clients send none
         * and may claim anything, so its absence is not a reason to refuse. */
        if (!has_origin)
            return !require;
        return same_origin(origin, host, cfg && cfg->secure);
    }
}

static int reject(struct ws_handshake *hs, enum ws_reject why)
{
    static const int status[] = {
        [WS_ACCEPTED] = 101,
        [WS_REJECT_METHOD] = 405,
        [WS_REJECT_HTTP_VERSION] = 400,
        [WS_REJECT_HOST] = 400,
        [WS_REJECT_UPGRADE] = 426,
        [WS_REJECT_CONNECTION] = 426,
        [WS_REJECT_VERSION] = 426,
        [WS_REJECT_VERSION_DUP] = 400,
        [WS_REJECT_KEY] = 400,
        [WS_REJECT_PROTOCOL] = 400,
        [WS_REJECT_EXTENSIONS] = 400,
        [WS_REJECT_ORIGIN] = 403,
    };
    hs->reject = why;
    hs->status = status[why];
    return why == WS_ACCEPTED ? 0 : SNOW_EPROTOCOL;
}

#ifdef WS_SHA1_NI
/*
 * SHA-1 of the accept key with the x86 SHA extensions. BearSSL's portable
 * br_sha1 took about 3,300 instructions per upgrade (two 64-byte blocks:
 * the 24-byte key and the 36-byte GUID with padding), the largest single
 * cost of a handshake; sha1rnds4 does four rounds in one instruction.
 * Used only when CPUID says the CPU has them; the result is checked
 * against br_sha1 in tests/ws/test_handshake.c.
 */
/* w[i]: the message words of rounds 4i..4i+3 (FIPS 180-4 §6.1.2 step 1). */
#define SHA1_SCHED(i)                                                                                    \
    (w[(i)] = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(w[(i)-4], w[(i)-3]), w[(i)-2]), w[(i)-1]))
/* Rounds 4i..4i+3 with round function f: E from A of four rounds before. */
#define SHA1_STEP(i, f)                                                                                  \
    (e = _mm_sha1nexte_epu32(prev, w[(i)]), prev = abcd, abcd = _mm_sha1rnds4_epu32(abcd, e, (f)))

__attribute__((target("sha,sse4.1,ssse3"))) static void sha1_ni_blocks(uint32_t st[5], const uint8_t *p,
                                                                         size_t blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)st), 0x1B);
    __m128i e0 = _mm_set_epi32((int)st[4], 0, 0, 0);
    for (; blocks > 0; blocks--, p += 64) {
        __m128i w[20], e = e0, prev = abcd, abcd0 = abcd, e_save = e0;
        for (int k = 0; k < 4; k++)
            w[k] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * k)), bswap);
        for (int k = 4; k < 20; k++)
            SHA1_SCHED(k);
        e = _mm_add_epi32(e, w[0]);
        prev = abcd;
        abcd = _mm_sha1rnds4_epu32(abcd, e, 0);
        SHA1_STEP(1, 0), SHA1_STEP(2, 0), SHA1_STEP(3, 0), SHA1_STEP(4, 0);
        SHA1_STEP(5, 1), SHA1_STEP(6, 1), SHA1_STEP(7, 1), SHA1_STEP(8, 1), SHA1_STEP(9, 1);
        SHA1_STEP(10, 2), SHA1_STEP(11, 2), SHA1_STEP(12, 2), SHA1_STEP(13, 2), SHA1_STEP(14, 2);
        SHA1_STEP(15, 3), SHA1_STEP(16, 3), SHA1_STEP(17, 3), SHA1_STEP(18, 3), SHA1_STEP(19, 3);
        /* E after 80 rounds is A of four rounds before, rotated: nexte adds it. */
        e0 = _mm_sha1nexte_epu32(prev, e_save);
        abcd = _mm_add_epi32(abcd, abcd0);
    }
    _mm_storeu_si128((__m128i *)st, _mm_shuffle_epi32(abcd, 0x1B));
    st[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

/* CPUID leaf 7, EBX bit 29 (SHA), with SSSE3 and SSE4.1 from leaf 1. The
 * answer is a fact of the CPU, read once: CPUID traps to the hypervisor on
 * a virtual machine, which would cost more than the hash. 0 = not asked
 * yet, 1 = no, 2 = yes. */
static bool have_sha_ni(void)
{
    static atomic_int known;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k == 0) {
        unsigned a, b, c, d;
        bool yes = __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((b >> 29) & 1);
        yes = yes && __get_cpuid(1, &a, &b, &c, &d) && ((c >> 9) & 1) && ((c >> 19) & 1);
        k = yes ? 2 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
}
#endif

/* SHA-1 of key ++ GUID (§4.2.2 item 5.4). */
static void accept_digest(const char *key, size_t n, uint8_t digest[br_sha1_SIZE])
{
#ifdef WS_SHA1_NI
    /* Key and GUID with the padding (0x80, zeros, the bit length) fit in
     * two blocks for any key up to 64 - 9 + 64 - 36 = 83 bytes. */
    size_t total = n + sizeof ws_guid - 1;
    if (have_sha_ni() && total + 9 <= 128) {
        uint8_t buf[128];
        size_t blocks = total + 9 <= 64 ? 1 : 2;
        memcpy(buf, key, n);
        memcpy(buf + n, ws_guid, sizeof ws_guid - 1);
        memset(buf + total, 0, blocks * 64 - total);
        buf[total] = 0x80;
        uint64_t bits = (uint64_t)total * 8;
        for (int i = 0; i < 8; i++)
            buf[blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
        uint32_t st[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
        sha1_ni_blocks(st, buf, blocks);
        for (int i = 0; i < 5; i++) {
            digest[4 * i] = (uint8_t)(st[i] >> 24);
            digest[4 * i + 1] = (uint8_t)(st[i] >> 16);
            digest[4 * i + 2] = (uint8_t)(st[i] >> 8);
            digest[4 * i + 3] = (uint8_t)st[i];
        }
        return;
    }
#endif
    br_sha1_context sha;
    br_sha1_init(&sha);
    br_sha1_update(&sha, key, n);
    br_sha1_update(&sha, ws_guid, sizeof ws_guid - 1);
    br_sha1_out(&sha, digest);
}

void ws_accept_key(const char *key, size_t n, char out[WS_ACCEPT_LEN + 1])
{
    uint8_t digest[br_sha1_SIZE];
    accept_digest(key, n, digest);
    /* §4.2.2: the base64 of the raw 20-byte digest, not of its hex form. */
    size_t len = rt_base64_encode(out, digest, sizeof digest);
    out[len] = '\0';
}

/* The handshake's headers, gathered in one pass over the request's
 * header list: a look-up by name per header (Host, Upgrade, Connection,
 * Sec-WebSocket-Version, Sec-WebSocket-Key, Origin) was a pass each, the
 * name's length measured every time. The first of each and the counts, as
 * the checks below need them; Upgrade and Connection may come in several
 * lines, any of which may carry the token (RFC 9110 §5.3). */
struct hs_headers {
    const struct http_header *host, *version, *key, *origin;
    size_t nhost, nversion, nkey, norigin;
    bool upgrade_websocket, connection_upgrade;
};

static bool lists_token(struct http_str v, const char *tok)
{
    struct http_str item;
    size_t pos = 0;
    while (http_list_next(v, &pos, &item))
        if (http_str_eq_ci(item, tok))
            return true;
    return false;
}

static void count_into(const struct http_header *h, const struct http_header **first, size_t *n)
{
    if (!(*n)++)
        *first = h;
}

static void gather_headers(const struct http_request *req, struct hs_headers *g)
{
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        switch (h->name.n) {
        case 4:
            if (http_str_eq_ci(h->name, "Host"))
                count_into(h, &g->host, &g->nhost);
            break;
        case 6:
            if (http_str_eq_ci(h->name, "Origin"))
                count_into(h, &g->origin, &g->norigin);
            break;
        case 7:
            if (!g->upgrade_websocket && http_str_eq_ci(h->name, "Upgrade"))
                g->upgrade_websocket = lists_token(h->value, "websocket");
            break;
        case 10:
            if (!g->connection_upgrade && http_str_eq_ci(h->name, "Connection"))
                g->connection_upgrade = lists_token(h->value, "upgrade");
            break;
        case 17:
            if (http_str_eq_ci(h->name, "Sec-WebSocket-Key"))
                count_into(h, &g->key, &g->nkey);
            break;
        case 21:
            if (http_str_eq_ci(h->name, "Sec-WebSocket-Version"))
                count_into(h, &g->version, &g->nversion);
            break;
        default:
            break;
        }
    }
}

int ws_handshake_check(const struct http_request *req, const struct ws_handshake_config *cfg,
                       struct ws_handshake *hs)
{
    const struct http_header *h;

    memset(hs, 0, offsetof(struct ws_handshake, ext));

    /* Methods are case-sensitive (RFC 9110 §9.1). */
    if (req->method.n != 3 || memcmp(req->method.p, "GET", 3) != 0)
        return reject(hs, WS_REJECT_METHOD);
    if (req->minor_version < 1)
        return reject(hs, WS_REJECT_HTTP_VERSION);

    struct hs_headers g;
    gather_headers(req, &g);

    if (g.nhost != 1 || g.host->value.n == 0)
        return reject(hs, WS_REJECT_HOST);
    struct http_str host = g.host->value;

    if (!g.upgrade_websocket)
        return reject(hs, WS_REJECT_UPGRADE);
    if (!g.connection_upgrade)
        return reject(hs, WS_REJECT_CONNECTION);

    if (g.nversion > 1)
        return reject(hs, WS_REJECT_VERSION_DUP);
    h = g.version;
    if (g.nversion == 0 || h->value.n != 2 || memcmp(h->value.p, "13", 2) != 0)
        return reject(hs, WS_REJECT_VERSION);

    uint8_t nonce[18];
    h = g.key;
    if (g.nkey != 1 || rt_base64_decode(nonce, sizeof nonce, h->value.p, h->value.n) != 16)
        return reject(hs, WS_REJECT_KEY);
    hs->key = h->value;

    if (choose_protocol(req, cfg, &hs->protocol) < 0)
        return reject(hs, WS_REJECT_PROTOCOL);

    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_eq_ci(req->headers[i].name, "Sec-WebSocket-Extensions") &&
            parse_extensions(req->headers[i].value, hs) < 0)
            return reject(hs, WS_REJECT_EXTENSIONS);

    if (g.norigin > 1)
        return reject(hs, WS_REJECT_ORIGIN);
    if (g.norigin)
        hs->origin = g.origin->value;
    if (!origin_allowed(req, cfg, hs->origin, host, g.norigin == 1))
        return reject(hs, WS_REJECT_ORIGIN);

    ws_accept_key(hs->key.p, hs->key.n, hs->accept);
    return reject(hs, WS_ACCEPTED);
}

struct out {
    char *p;
    size_t cap;
    size_t len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static int finish(struct out *o)
{
    if (o->full || o->len > INT32_MAX)
        return -ENOBUFS;
    return (int)o->len;
}

int ws_handshake_write_101(const struct ws_handshake *hs, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, false};
    if (hs->status != 101)
        return -EINVAL;
    /* §4.2.2 item 5: status line, Upgrade, Connection, the accept value
     * the chosen subprotocol and the accepted extension, if any. */
    puts_(&o, "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: ");
    put(&o, hs->accept, WS_ACCEPT_LEN);
    puts_(&o, "\r\n");
    if (hs->protocol.n) {
        puts_(&o, "Sec-WebSocket-Protocol: ");
        put(&o, hs->protocol.p, hs->protocol.n);
        puts_(&o, "\r\n");
    }
    if (hs->ext_answer_len) {
        puts_(&o, "Sec-WebSocket-Extensions: ");
        put(&o, hs->ext_answer, hs->ext_answer_len);
        puts_(&o, "\r\n");
    }
    puts_(&o, "\r\n");
    return finish(&o);
}

const char *ws_reject_text(enum ws_reject why)
{
    switch (why) {
    case WS_ACCEPTED:
        return "accepted";
    case WS_REJECT_METHOD:
        return "a WebSocket handshake must use GET";
    case WS_REJECT_HTTP_VERSION:
        return "a WebSocket handshake needs HTTP/1.1";
    case WS_REJECT_HOST:
        return "missing or repeated Host header";
    case WS_REJECT_UPGRADE:
        return "this resource needs Upgrade: websocket";
    case WS_REJECT_CONNECTION:
        return "this resource needs Connection: Upgrade";
    case WS_REJECT_VERSION:
        return "unsupported Sec-WebSocket-Version; use 13";
    case WS_REJECT_VERSION_DUP:
        return "repeated Sec-WebSocket-Version header";
    case WS_REJECT_KEY:
        return "missing or invalid Sec-WebSocket-Key";
    case WS_REJECT_PROTOCOL:
        return "malformed Sec-WebSocket-Protocol header";
    case WS_REJECT_EXTENSIONS:
        return "malformed Sec-WebSocket-Extensions header";
    case WS_REJECT_ORIGIN:
        return "origin not allowed";
    }
    return "bad WebSocket handshake";
}

static const char *status_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    default:
        return "Error";
    }
}

int ws_handshake_write_reject(const struct ws_handshake *hs, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, false};
    char line[64];
    if (hs->status == 101 || hs->reject == WS_ACCEPTED)
        return -EINVAL;

    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", hs->status, status_phrase(hs->status));
    puts_(&o, line);
    if (hs->status == 405)
        puts_(&o, "Allow: GET\r\n");
    if (hs->status == 426)
        puts_(&o, "Upgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "Connection: Upgrade, close\r\n");
    else
        puts_(&o, "Connection: close\r\n");
    const char *text = ws_reject_text(hs->reject);
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", strlen(text) + 1);
    puts_(&o, "Content-Type: text/plain; charset=utf-8\r\n");
    puts_(&o, line);
    puts_(&o, "\r\n");
    puts_(&o, text);
    puts_(&o, "\n");
    return finish(&o);
}
