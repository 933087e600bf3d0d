/*
 * pmd_offer.c: libFuzzer target for the permessage-deflate negotiation:
 * the handshake's Sec-WebSocket-Extensions parser, the offer parser and
 * the answer (RFC 7692 §7.1).
 *
 * Input: one configuration byte (route window bits, no-context-takeover,
 * the memory cap reached), then the header value. Whatever the value, the
 * negotiation must pick an offer that parses, answer within the buffer,
 * promise no more than the offer asked for, and its answer, offered back
 * as a request, must be accepted with the same parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "ws/handshake.h"
#include "ws/pmd.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static int check_with(const char *ext, size_t n, struct ws_handshake *hs)
{
    static const char *names[] = {"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                  "Sec-WebSocket-Extensions"};
    const char *values[] = {"a.example", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13", ext};
    struct http_header h[6];
    for (int i = 0; i < 6; i++) {
        h[i].name = (struct http_str){names[i], strlen(names[i])};
        h[i].value = (struct http_str){values[i], i == 5 ? n : strlen(values[i])};
    }
    struct http_request r;
    memset(&r, 0, sizeof r);
    r.method = (struct http_str){"GET", 3};
    r.target = (struct http_str){"/", 1};
    r.path = r.target;
    r.minor_version = 1;
    r.content_length = -1;
    r.headers = h;
    r.nheaders = 6;
    return ws_handshake_check(&r, NULL, hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    /* A copy of exactly the value's bytes, so reading past it is caught. */
    size_t n = size - 1;
    char *ext = malloc(n ? n : 1);
    memcpy(ext, data + 1, n);
    struct ws_handshake hs;
    if (check_with(ext, n, &hs) < 0) {
        free(ext);
        return 0;
    }
    struct ws_pmd_opts o = {.enabled = true,
                            .window_bits = (uint8_t)(8 + (cfg & 7)),
                            .no_context_takeover = (cfg & 8) != 0,
                            .mem_level = (uint8_t)(1 + (cfg >> 4) % 9)};
    bool allow = (cfg & 0x80) == 0;
    struct ws_pmd_params p;
    int idx = ws_pmd_negotiate(&hs, &o, allow, &p);
    if (idx < 0) {
        for (unsigned i = 0; i < hs.next; i++) {
            struct ws_pmd_offer of;
            CHECK(ws_pmd_offer_parse(&hs, &hs.ext[i], &of) < 0);
        }
        free(ext);
        return 0;
    }
    CHECK((unsigned)idx < hs.next);
    struct ws_pmd_offer of;
    CHECK(ws_pmd_offer_parse(&hs, &hs.ext[idx], &of) == 0);
    for (int i = 0; i < idx; i++) {
        struct ws_pmd_offer earlier;
        CHECK(ws_pmd_offer_parse(&hs, &hs.ext[i], &earlier) < 0);
    }
    /* §7.1.1.1 / §7.1.2: what the offer asked for is kept. */
    CHECK(p.server_bits >= 8 && p.server_bits <= 15 && p.client_bits >= 8 && p.client_bits <= 15);
    CHECK(p.server_bits <= o.window_bits || o.window_bits < 8);
    if (of.server_nct)
        CHECK(p.server_nct);
    if (of.server_bits)
        CHECK(p.answer_server_bits && p.server_bits <= of.server_bits);
    if (!of.client_bits_given)
        CHECK(!p.answer_client_bits && p.client_bits == 15);
    if (of.client_bits)
        CHECK(p.client_bits <= of.client_bits);
    if (o.no_context_takeover || !allow)
        CHECK(p.server_nct && p.client_nct);
    char answer[WS_PMD_RESPONSE_MAX];
    int len = ws_pmd_response(&p, answer, sizeof answer);
    CHECK(len > 0 && (size_t)len < sizeof answer && strlen(answer) == (size_t)len);
    /* The answer, offered back, parses to the same parameters. */
    struct ws_handshake back;
    CHECK(check_with(answer, (size_t)len, &back) == 0);
    CHECK(back.next == 1);
    struct ws_pmd_offer bo;
    CHECK(ws_pmd_offer_parse(&back, &back.ext[0], &bo) == 0);
    CHECK(bo.server_nct == p.server_nct && bo.client_nct == p.client_nct);
    CHECK(bo.server_bits == (p.answer_server_bits ? p.server_bits : 0));
    CHECK(bo.client_bits_given == p.answer_client_bits);
    if (p.answer_client_bits)
        CHECK(bo.client_bits == p.client_bits);
    free(ext);
    return 0;
}
