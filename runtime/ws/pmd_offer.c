/*
 * pmd_offer.c: permessage-deflate negotiation (RFC 7692 §7.1) over the
 * offers handshake.c parsed, and the answer. No allocation, no I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ws/pmd.h"

static bool name_is(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

/*
 * §7.1.2.1/§7.1.2.2: a window size is 1*DIGIT without a leading zero in
 * 8..15. §7 says a quoted-string value must satisfy the same grammar once
 * unquoted, so quoted-pairs are undone first ("\1\5" is 15).
 */
static int window_bits(struct http_str v)
{
    char d[3];
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == '\\') {
            if (++i == v.n)
                return -1;
            c = v.p[i];
        }
        if (n == sizeof d)
            return -1;
        d[n++] = c;
    }
    int val = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        val = val * 10 + (d[i] - '0');
    }
    if (n == 0 || d[0] == '0' || val < 8 || val > 15)
        return -1;
    return val;
}

int ws_pmd_offer_parse(const struct ws_handshake *hs, const struct ws_ext_offer *off, struct ws_pmd_offer *out)
{
    memset(out, 0, sizeof *out);
    if (!name_is(off->name, "permessage-deflate"))
        return -1;
    /* A parameter list cut short by the handshake's fixed arrays cannot be
     * judged: it might hold anything. */
    if (hs->ext_truncated && (size_t)off->first + off->nparams >= WS_MAX_EXT_PARAMS)
        return -1;
    bool seen_sbits = false;
    for (unsigned i = 0; i < off->nparams; i++) {
        const struct ws_ext_param *p = &hs->ext_params[off->first + i];
        bool has_value = p->value.p != NULL;
        if (name_is(p->name, "server_no_context_takeover")) {
            /* §7.1.1.1: no value; §7.1: a repeated parameter declines. */
            if (has_value || out->server_nct)
                return -1;
            out->server_nct = true;
        } else if (name_is(p->name, "client_no_context_takeover")) {
            if (has_value || out->client_nct)
                return -1;
            out->client_nct = true;
        } else if (name_is(p->name, "server_max_window_bits")) {
            /* §7.1.2.1: a value is required. */
            int b = has_value ? window_bits(p->value) : -1;
            if (b < 0 || seen_sbits)
                return -1;
            seen_sbits = true;
            out->server_bits = (uint8_t)b;
        } else if (name_is(p->name, "client_max_window_bits")) {
            /* §7.1.2.2: the value is optional. */
            if (out->client_bits_given)
                return -1;
            out->client_bits_given = true;
            if (has_value) {
                int b = window_bits(p->value);
                if (b < 0)
                    return -1;
                out->client_bits = (uint8_t)b;
            }
        } else {
            /* §7.1: an unknown parameter declines the offer. */
            return -1;
        }
    }
    return 0;
}

int ws_pmd_negotiate(const struct ws_handshake *hs, const struct ws_pmd_opts *opts, bool allow_takeover,
                     struct ws_pmd_params *out)
{
    if (!opts->enabled)
        return -1;
    unsigned want = opts->window_bits ? opts->window_bits : 15;
    if (want < 8)
        want = 8;
    if (want > 15)
        want = 15;
    for (unsigned i = 0; i < hs->next; i++) {
        struct ws_pmd_offer o;
        if (ws_pmd_offer_parse(hs, &hs->ext[i], &o) < 0)
            continue;
        memset(out, 0, sizeof *out);
        bool reset = opts->no_context_takeover || !allow_takeover;
        /* §7.1.1.1: a requested server_no_context_takeover must be
         * honoured; the server may also choose it unasked. */
        out->server_nct = o.server_nct || reset;
        /* §7.1.1.2: the server may always ask the client to reset; the
         * client's own hint is echoed so both sides know for sure (and
         * no per-connection inflate state is kept). */
        out->client_nct = o.client_nct || reset;
        /*
         * §7.1.2.1: the answer to server_max_window_bits=N carries the
         * same or a smaller value. A smaller window than the client knows
         * of needs no answer (any inflater decodes it). 8 is promised as
         * 8 while zlib, which has no raw 8-bit deflate, runs with 9: its
         * deflate never emits a distance above the window minus 262
         * (MAX_DIST in deflate.c), 250 here, inside an 8-bit window.
         */
        out->server_bits = (uint8_t)want;
        if (o.server_bits) {
            if (o.server_bits < out->server_bits)
                out->server_bits = o.server_bits;
            out->answer_server_bits = true;
        }
        /*
         * §7.1.2.2: without the parameter in the offer the server must not
         * limit the client (15). With it the server may answer a value up
         * to the client's own (or 15) to keep its inflate window small.
         */
        out->client_bits = 15;
        if (o.client_bits_given) {
            unsigned cb = o.client_bits ? o.client_bits : 15;
            if (want < cb)
                cb = want;
            out->client_bits = (uint8_t)cb;
            out->answer_client_bits = cb < 15 || o.client_bits;
        }
        out->mem_level = (uint8_t)(opts->mem_level >= 1 && opts->mem_level <= 9 ? opts->mem_level : 8);
        out->threshold = opts->threshold > UINT32_MAX ? UINT32_MAX : (uint32_t)opts->threshold;
        return (int)i;
    }
    return -1;
}

int ws_pmd_response(const struct ws_pmd_params *p, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "permessage-deflate%s%s", p->server_nct ? "; server_no_context_takeover" : "",
                     p->client_nct ? "; client_no_context_takeover" : "");
    if (n < 0 || (size_t)n >= cap)
        return -ENOBUFS;
    size_t len = (size_t)n;
    if (p->answer_server_bits) {
        n = snprintf(buf + len, cap - len, "; server_max_window_bits=%u", p->server_bits);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOBUFS;
        len += (size_t)n;
    }
    if (p->answer_client_bits) {
        n = snprintf(buf + len, cap - len, "; client_max_window_bits=%u", p->client_bits);
        if (n < 0 || (size_t)n >= cap - len)
            return -ENOBUFS;
        len += (size_t)n;
    }
    return (int)len;
}
