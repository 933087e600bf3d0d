/*
 * wsclient_tls.c: the TLS side of wsclient (see wsclient.h): BearSSL's
 * client engine with the server's key pinned, pumped over the connection's
 * non-blocking socket; application data goes to and from the same rbuf and
 * wbuf as a plain connection's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "http/tls_aes.h"
#include "wsclient.h"
#include "wsclient_int.h"

/* Input staging, as in the server's stream (runtime/http/tls.c): BearSSL
 * asks for exactly the bytes up to the end of the current record, so a read
 * straight into its buffer costs two reads a record (header, then body).
 * Each socket read is a readv into the engine's buffer and then this one,
 * which catches the records behind it. */
#define STAGE_CAP BR_SSL_BUFSIZE_INPUT
/* Records out are gathered here and sent together: BearSSL's output
 * buffer holds one record, and a send per 16 KiB record made 64 sends of
 * a 1 MiB message. */
#define OUT_CAP (4 * BR_SSL_BUFSIZE_OUTPUT)
/* Bytes one turn may read from the socket: reading stops earlier at a
 * short read (the socket is empty), and what is left beyond the budget is
 * reported again by epoll after the other connections' turns. */
#define READ_BUDGET (256 * 1024)

struct wsc_tls {
    br_ssl_client_context cc;
    br_x509_minimal_context xc;
    br_x509_knownkey_context kk;
    size_t stage_off, stage_len; /* staged ciphertext at stage[off..len) */
    size_t out_off, out_len;     /* records to send at out[off..len) */
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
    unsigned char stage[STAGE_CAP];
    unsigned char out[OUT_CAP];
};

static const uint16_t suites_aes[] = {
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,       BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,       BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,       BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
};

static const uint16_t suites_chacha[] = {
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,       BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,       BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,       BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
};

void wsc_pick_suites(struct wsc_shared *sh)
{
    bool aes = br_aes_x86ni_ctr_get_vtable() != NULL || br_aes_pwr8_ctr_get_vtable() != NULL;
    sh->suites = aes ? suites_aes : suites_chacha;
    sh->nsuites = sizeof suites_aes / sizeof suites_aes[0];
    sh->wide_aes = aes && http_tls_aes_wide();
}

unsigned wsc_tls_state(const struct wsc_conn *c)
{
    return c->t && c->state != WSC_DONE ? br_ssl_engine_current_state(&c->t->cc.eng) : 0;
}

unsigned wsc_tls_suite(const struct wsc_conn *c)
{
    if (!c->t)
        return 0;
    br_ssl_session_parameters sp;
    br_ssl_engine_get_session_parameters(&c->t->cc.eng, &sp);
    return sp.cipher_suite;
}

/* Feeds staged ciphertext to the engine while it takes records. */
static bool feed_staged(struct wsc_tls *t)
{
    br_ssl_engine_context *eng = &t->cc.eng;
    bool moved = false;
    while (t->stage_off < t->stage_len && (br_ssl_engine_current_state(eng) & BR_SSL_RECVREC)) {
        size_t len;
        unsigned char *b = br_ssl_engine_recvrec_buf(eng, &len);
        size_t k = t->stage_len - t->stage_off < len ? t->stage_len - t->stage_off : len;
        memcpy(b, t->stage + t->stage_off, k);
        t->stage_off += k;
        br_ssl_engine_recvrec_ack(eng, k);
        moved = true;
    }
    if (t->stage_off == t->stage_len)
        t->stage_off = t->stage_len = 0;
    return moved;
}

/* Sends what out holds: 1 when bytes went, 0 when the socket is full, -1
 * when the connection failed. */
static int send_out(struct wsc_conn *c)
{
    struct wsc_tls *t = c->t;
    for (;;) {
        ssize_t n = send(c->fd, t->out + t->out_off, t->out_len - t->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            t->out_off += (size_t)n;
            if (t->out_off == t->out_len)
                t->out_off = t->out_len = 0;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        char why[96];
        snprintf(why, sizeof why, "write: %s", strerror(errno));
        wsc_finish(c, false, why);
        return -1;
    }
}

/* Moves bytes between the socket, the engine, rbuf and wbuf until nothing
 * moves, reading at most read_budget bytes from the socket (and stopping
 * at a short read); the records it makes go out in as few sends as out
 * holds. Staged records are always fed. Returns 1 when application data
 * arrived, 0 when not, -1 at EOF (or a close_notify), -2 when the
 * connection failed. */
static int tls_pump(struct wsc_conn *c, size_t read_budget)
{
    struct wsc_tls *t = c->t;
    br_ssl_engine_context *eng = &t->cc.eng;
    bool out_blocked = false;
    int got = 0;
    char why[96];
    for (;;) {
        unsigned st = br_ssl_engine_current_state(eng);
        if (st == BR_SSL_CLOSED) {
            int err = br_ssl_engine_last_error(eng);
            if (err == BR_ERR_OK)
                return -1;
            snprintf(why, sizeof why, "TLS error %d", err);
            wsc_finish(c, false, why);
            return -2;
        }
        bool progress = false;
        size_t len;
        if (st & BR_SSL_SENDREC) {
            if (t->out_len == sizeof t->out && !out_blocked) {
                int r = send_out(c);
                if (r < 0)
                    return -2;
                out_blocked = r == 0;
            }
            if (t->out_len < sizeof t->out) {
                unsigned char *b = br_ssl_engine_sendrec_buf(eng, &len);
                size_t k = sizeof t->out - t->out_len < len ? sizeof t->out - t->out_len : len;
                memcpy(t->out + t->out_len, b, k);
                t->out_len += k;
                br_ssl_engine_sendrec_ack(eng, k);
                progress = true;
            }
        }
        if (st & BR_SSL_RECVAPP) {
            unsigned char *b = br_ssl_engine_recvapp_buf(eng, &len);
            c->rbuf = wsc_grow(c->rbuf, &c->rcap, c->rlen + len);
            memcpy(c->rbuf + c->rlen, b, len);
            c->rlen += len;
            br_ssl_engine_recvapp_ack(eng, len);
            progress = true;
            got = 1;
        }
        if ((st & BR_SSL_SENDAPP) && c->woff < c->wlen) {
            unsigned char *b = br_ssl_engine_sendapp_buf(eng, &len);
            size_t k = c->wlen - c->woff < len ? c->wlen - c->woff : len;
            memcpy(b, c->wbuf + c->woff, k);
            br_ssl_engine_sendapp_ack(eng, k);
            c->woff += k;
            if (c->woff == c->wlen) {
                c->woff = c->wlen = 0;
                br_ssl_engine_flush(eng, 0);
            }
            progress = true;
        }
        if (st & BR_SSL_RECVREC) {
            if (feed_staged(t)) {
                progress = true;
            } else if (read_budget) {
                unsigned char *b = br_ssl_engine_recvrec_buf(eng, &len);
                struct iovec v[2] = {{b, len}, {t->stage, sizeof t->stage}};
                ssize_t n = readv(c->fd, v, 2);
                if (n > 0) {
                    c->sh->now_ns = wsc_now_ns();
                    size_t direct = (size_t)n < len ? (size_t)n : len;
                    br_ssl_engine_recvrec_ack(eng, direct);
                    t->stage_off = 0;
                    t->stage_len = (size_t)n - direct;
                    progress = true;
                    /* A short read emptied the socket. */
                    read_budget = (size_t)n < len + sizeof t->stage || (size_t)n >= read_budget
                                      ? 0
                                      : read_budget - (size_t)n;
                } else if (n == 0) {
                    return -1;
                } else if (errno != EINTR) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        snprintf(why, sizeof why, "read: %s", strerror(errno));
                        wsc_finish(c, false, why);
                        return -2;
                    }
                    read_budget = 0;
                }
            }
        }
        if (progress)
            continue;
        /* Nothing more to make: send what was gathered, and go on if that
         * freed the engine to make more. */
        if (t->out_len > t->out_off && !out_blocked) {
            int r = send_out(c);
            if (r < 0)
                return -2;
            out_blocked = r == 0;
            if (r > 0)
                continue;
        }
        break;
    }
    wsc_set_want_out(c, out_blocked);
    return got;
}

void wsc_tls_turn(struct wsc_conn *c, bool read_socket)
{
    size_t budget = read_socket ? READ_BUDGET : 0;
    for (;;) {
        int r = tls_pump(c, budget);
        budget = 0;
        if (r == -2 || c->state == WSC_DONE)
            return;
        if (r == -1) {
            if (c->rlen)
                wsc_parse_rbuf(c);
            if (c->state != WSC_DONE)
                wsc_on_eof(c);
            return;
        }
        if (r == 0 || c->rlen == 0 || (c->need && c->need > c->rlen))
            return;
        wsc_parse_rbuf(c);
        if (c->state == WSC_DONE || (c->woff == c->wlen && !c->t->stage_len))
            return;
        /* Replies were queued by the callbacks, or records are staged:
         * pump again, without another socket read. */
    }
}

struct der_sink {
    unsigned char *d;
    size_t len, cap;
    bool overflow;
};

static void der_append(void *ctx, const void *src, size_t n)
{
    struct der_sink *s = ctx;
    if (s->len + n > s->cap) {
        s->overflow = true;
        return;
    }
    memcpy(s->d + s->len, src, n);
    s->len += n;
}

br_x509_pkey *wsc_load_pinned_key(const char *pem_file)
{
    /* The key returned points into the decoder's own storage: one per run. */
    static br_x509_decoder_context xd;
    static unsigned char der[65536];
    struct der_sink s = {der, 0, sizeof der, false};
    FILE *f = fopen(pem_file, "rb");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", pem_file, strerror(errno));
        return NULL;
    }
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    unsigned char buf[4096];
    size_t n;
    bool in_cert = false, done = false, bad = false;
    while (!done && !bad && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        unsigned char *p = buf;
        while (n > 0 && !done && !bad) {
            size_t k = br_pem_decoder_push(&pc, p, n);
            p += k;
            n -= k;
            switch (br_pem_decoder_event(&pc)) {
            case BR_PEM_BEGIN_OBJ:
                in_cert = strcmp(br_pem_decoder_name(&pc), "CERTIFICATE") == 0;
                br_pem_decoder_setdest(&pc, in_cert ? der_append : NULL, &s);
                break;
            case BR_PEM_END_OBJ:
                done = in_cert;
                break;
            case BR_PEM_ERROR:
                bad = true;
                break;
            default:
                break;
            }
        }
    }
    fclose(f);
    if (!done || bad || s.overflow) {
        fprintf(stderr, "loadgen: %s: no PEM CERTIFICATE in it\n", pem_file);
        return NULL;
    }
    br_x509_decoder_init(&xd, NULL, NULL);
    br_x509_decoder_push(&xd, der, s.len);
    br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
    if (br_x509_decoder_last_error(&xd) != 0 || !pk) {
        fprintf(stderr, "loadgen: %s: certificate not decodable (error %d)\n", pem_file,
                br_x509_decoder_last_error(&xd));
        return NULL;
    }
    return pk;
}

int wsc_tls_start(struct wsc_conn *c)
{
    struct wsc_shared *sh = c->sh;
    if (!c->t) {
        c->t = calloc(1, sizeof *c->t);
        if (!c->t) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(2);
        }
    }
    struct wsc_tls *t = c->t;
    t->stage_off = t->stage_len = 0;
    t->out_off = t->out_len = 0;
    br_ssl_client_init_full(&t->cc, &t->xc, NULL, 0);
    /* AES-GCM first when the CPU has AES instructions, as browsers order
     * it (BearSSL's own list puts ChaCha20 first): the server may still
     * choose by its own order. */
    br_ssl_engine_set_suites(&t->cc.eng, sh->suites, sh->nsuites);
    /* The runtime's 256-bit AES-GCM halves where the CPU has them (as the
     * server uses them): BearSSL's own code made the generator the busier
     * side in the large-message wss cells, whichever server it drove. */
    if (sh->wide_aes) {
        br_ssl_engine_set_aes_ctr(&t->cc.eng, &http_tls_aes_ctr_wide_vtable);
        br_ssl_engine_set_ghash(&t->cc.eng, http_tls_ghash_wide);
    }
    if (sh->pinned->key_type == BR_KEYTYPE_RSA)
        br_x509_knownkey_init_rsa(&t->kk, &sh->pinned->key.rsa, BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN);
    else
        br_x509_knownkey_init_ec(&t->kk, &sh->pinned->key.ec, BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN);
    br_ssl_engine_set_x509(&t->cc.eng, &t->kk.vtable);
    br_ssl_engine_set_buffer(&t->cc.eng, t->iobuf, sizeof t->iobuf, 1);
    if (!br_ssl_client_reset(&t->cc, sh->sni, 0)) {
        wsc_finish(c, false, "TLS client reset failed");
        return -1;
    }
    return 0;
}
