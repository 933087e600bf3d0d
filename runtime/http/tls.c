/*
 * tls.c: TLS with BearSSL's engine API.
 *
 * The engine does no I/O: it says what it can do next (SENDREC: records to
 * send, RECVREC: room for records, SENDAPP / RECVAPP: plaintext in or out).
 * The pump below moves records between the engine and the non-blocking
 * socket, and the wait operation parks on the poller for exactly the socket
 * direction the engine needs, so a handshake never blocks a worker. Only TLS
 * 1.2 with ECDHE suites is offered (forward secrecy; no static RSA key
 * exchange), and renegotiation is refused.
 */
#include <bearssl/bearssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "actor/actor.h"
#include "http/sock.h"
#include "http/tls.h"
#include "http/tls_aes.h"

struct der {
    unsigned char *p;
    size_t n, cap;
};

struct http_tls_config {
    br_x509_certificate *chain;
    size_t chain_len;
    int key_type;        /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
    int issuer_key_type; /* key type of the CA that signed the leaf */
    const uint16_t *suites; /* in the order the server prefers (pick_suites) */
    size_t nsuites;
    bool wide_aes; /* http_tls_aes_wide(), read once (pick_suites) */
    br_skey_decoder_context skey; /* holds the key material; never reused */
};

static void pick_suites(struct http_tls_config *c);

static void der_append(void *ctx, const void *data, size_t len)
{
    struct der *d = ctx;
    if (!d->p && d->cap == SIZE_MAX)
        return; /* an earlier allocation failed */
    if (d->n + len > d->cap) {
        size_t c = d->cap ? d->cap : 1024;
        while (c < d->n + len)
            c *= 2;
        unsigned char *p = realloc(d->p, c);
        if (!p) {
            free(d->p);
            d->p = NULL;
            d->cap = SIZE_MAX;
            return;
        }
        d->p = p;
        d->cap = c;
    }
    memcpy(d->p + d->n, data, len);
    d->n += len;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct der d = {0};
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        der_append(&d, buf, n);
    int bad = ferror(f);
    fclose(f);
    /* A final newline lets the PEM decoder see the last line end. */
    der_append(&d, "\n", 1);
    if (bad || !d.p) {
        free(d.p);
        return bad ? -EIO : -ENOMEM;
    }
    *out = d.p;
    *len = d.n;
    return 0;
}

/* Calls fn(name, der, ctx) for every PEM object in the file. */
static int pem_each(const char *path, int (*fn)(const char *name, struct der *der, void *ctx), void *ctx)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int r = read_file(path, &data, &len);
    if (r < 0) {
        rt_log(RT_LOG_ERROR, "tls: cannot read %s: %s", path, snow_strerror(r));
        return r;
    }
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    struct der d = {0};
    char name[128] = "";
    int inobj = 0, count = 0;
    const unsigned char *p = data;
    r = 0;
    while (len > 0 && r == 0) {
        size_t k = br_pem_decoder_push(&pc, p, len);
        p += k;
        len -= k;
        switch (br_pem_decoder_event(&pc)) {
        case BR_PEM_BEGIN_OBJ:
            snprintf(name, sizeof name, "%s", br_pem_decoder_name(&pc));
            d.n = 0;
            br_pem_decoder_setdest(&pc, der_append, &d);
            inobj = 1;
            break;
        case BR_PEM_END_OBJ:
            if (inobj) {
                inobj = 0;
                count++;
                r = d.p ? fn(name, &d, ctx) : -ENOMEM;
            }
            break;
        case BR_PEM_ERROR:
            rt_log(RT_LOG_ERROR, "tls: %s is not valid PEM", path);
            r = SNOW_ETLS;
            break;
        default:
            break;
        }
    }
    free(d.p);
    free(data);
    if (r == 0 && (inobj || count == 0)) {
        rt_log(RT_LOG_ERROR, "tls: %s holds no complete PEM object", path);
        r = SNOW_ETLS;
    }
    return r;
}

static int add_cert(const char *name, struct der *d, void *ctx)
{
    struct http_tls_config *c = ctx;
    if (strcmp(name, "CERTIFICATE") != 0 && strcmp(name, "X509 CERTIFICATE") != 0)
        return 0;
    br_x509_certificate *v = realloc(c->chain, (c->chain_len + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    c->chain = v;
    unsigned char *copy = malloc(d->n);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, d->p, d->n);
    v[c->chain_len].data = copy;
    v[c->chain_len].data_len = d->n;
    c->chain_len++;
    return 0;
}

static int add_key(const char *name, struct der *d, void *ctx)
{
    struct http_tls_config *c = ctx;
    /* PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#8 "PRIVATE KEY";
     * other objects (e.g. "EC PARAMETERS") are skipped. */
    if (strcmp(name, "RSA PRIVATE KEY") != 0 && strcmp(name, "EC PRIVATE KEY") != 0 &&
        strcmp(name, "PRIVATE KEY") != 0)
        return 0;
    if (c->key_type)
        return SNOW_ETLS; /* more than one key */
    br_skey_decoder_init(&c->skey);
    br_skey_decoder_push(&c->skey, d->p, d->n);
    if (br_skey_decoder_last_error(&c->skey) != 0)
        return SNOW_ETLS;
    c->key_type = br_skey_decoder_key_type(&c->skey);
    return 0;
}

int http_tls_config_load(struct http_tls_config **out, const char *cert_file, const char *key_file)
{
    *out = NULL;
    if (!cert_file || !key_file)
        return SNOW_EBAD_CONFIG;
    struct http_tls_config *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int r = pem_each(cert_file, add_cert, c);
    if (r == 0 && c->chain_len == 0) {
        rt_log(RT_LOG_ERROR, "tls: no certificate in %s", cert_file);
        r = SNOW_ETLS;
    }
    if (r == 0)
        r = pem_each(key_file, add_key, c);
    if (r == 0 && c->key_type != BR_KEYTYPE_RSA && c->key_type != BR_KEYTYPE_EC) {
        rt_log(RT_LOG_ERROR, "tls: no usable RSA or EC private key in %s", key_file);
        r = SNOW_ETLS;
    }
    if (r == 0) {
        /* The leaf's signer key type matters for ECDH_* suites under an EC
         * key (br_ssl_server_init_full_ec). */
        br_x509_decoder_context xc;
        br_x509_decoder_init(&xc, NULL, NULL);
        br_x509_decoder_push(&xc, c->chain[0].data, c->chain[0].data_len);
        if (br_x509_decoder_last_error(&xc) != 0) {
            rt_log(RT_LOG_ERROR, "tls: cannot decode the first certificate of %s", cert_file);
            r = SNOW_ETLS;
        } else {
            c->issuer_key_type = br_x509_decoder_get_signer_key_type(&xc);
            if (!c->issuer_key_type)
                c->issuer_key_type = c->key_type;
        }
    }
    if (r != 0) {
        http_tls_config_free(c);
        return r;
    }
    pick_suites(c);
    *out = c;
    return 0;
}

void http_tls_config_free(struct http_tls_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->chain_len; i++)
        free(c->chain[i].data);
    free(c->chain);
    /* The decoder context holds private key bytes: wipe them. */
    memset(&c->skey, 0, sizeof c->skey);
    free(c);
}

/* ---- the stream ---- */

/*
 * Input staging. BearSSL takes records one at a time and asks for exactly
 * the bytes up to the end of the current record, so reading straight into
 * its buffer costs two reads a record (the 5-byte header, then the rest).
 * Instead each socket read is a readv into the engine's buffer (the current
 * record, without a copy) followed by the staging buffer, which catches the
 * records behind it; those are fed to the engine from there without another
 * system call.
 * The staging buffer holds one full record, so one read takes a whole
 * record behind the current one.
 * At a record's start the engine asks for its 5-byte header alone; what
 * follows goes through the staging buffer either way, so the read is then
 * a recv into the staging buffer only. A recv into one buffer costs less
 * than a readv (no vector to import, no file-position and access checks):
 * 4.51 and 5.03 against 5.07 and 5.50 µs a call for 69 bytes on a
 * loopback socket here, two runs of snow-bench-read-calls (bench/README.md,
 * "Depth 1 on a shared host").
 */
#define STAGE_CAP BR_SSL_BUFSIZE_INPUT
/* Below this much of the current record left, a read goes to the staging
 * buffer alone: copying those bytes into the engine costs less than a
 * readv would. */
#define DIRECT_MIN 512

/* A busy connection's share of a turn each way (http_stream.turn_bytes):
 * about the time a plain connection's 1 MiB takes, with AES-GCM and the
 * engine's copies on every byte. */
#define TLS_TURN_BYTES (256 * 1024)

struct tls_stream {
    struct http_stream base;
    br_ssl_server_context sc;
    int eof;   /* the socket reached end of stream */
    int err;   /* sticky socket error */
    /* The last socket read came back short: the receive queue was empty
     * then, and bytes that come after it raise a new edge, which the poller
     * latches. Until a wait reports the socket readable, a read would only
     * say EAGAIN, so none is made (see read_records). */
    int drained;
    /* The same for writing: the last send was short or said EAGAIN, so
     * the socket's buffer is full and the kernel raises a writable edge
     * (which the poller latches) once room comes. Until a wait has seen
     * it, a send would only say EAGAIN, so none is made (see pump). */
    int full;
    /* The last bytes sent went with MSG_MORE: the kernel may hold them
     * for more, until a send without it (or TCP_NODELAY set again). */
    int corked;
    size_t stage_off, stage_len; /* staged ciphertext at stage[off..len) */
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
    unsigned char stage[STAGE_CAP];
};

/*
 * Cipher suites, in the server's order of preference, which the engine
 * enforces (BR_OPT_ENFORCE_SERVER_PREFERENCES): a client's order says what
 * is fast on the client, and BearSSL's own client, for one, lists
 * ChaCha20-Poly1305 first whatever the hardware. With AES instructions in
 * the CPU (BearSSL's x86ni or pwr8 code, chosen by the engine's defaults)
 * AES-GCM costs a fraction of ChaCha20's portable code per byte, so it
 * comes first; without them ChaCha20-Poly1305 is both faster and
 * constant-time, and leads.
 */
static const uint16_t rsa_suites_aes[] = {
    BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
};

static const uint16_t rsa_suites_chacha[] = {
    BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
};

static const uint16_t ec_suites_aes[] = {
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
};

static const uint16_t ec_suites_chacha[] = {
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
};

static bool aes_in_hardware(void)
{
    return br_aes_x86ni_ctr_get_vtable() != NULL || br_aes_pwr8_ctr_get_vtable() != NULL;
}

/* Decided once per configuration: the CPU check is a cpuid, which a
 * virtual machine may trap. */
static void pick_suites(struct http_tls_config *c)
{
    bool aes = aes_in_hardware();
    c->wide_aes = aes && http_tls_aes_wide();
    if (c->key_type == BR_KEYTYPE_RSA) {
        c->suites = aes ? rsa_suites_aes : rsa_suites_chacha;
        c->nsuites = RT_ARRAY_LEN(rsa_suites_aes);
    } else {
        c->suites = aes ? ec_suites_aes : ec_suites_chacha;
        c->nsuites = RT_ARRAY_LEN(ec_suites_aes);
    }
}

static int engine_error(struct tls_stream *t)
{
    int e = br_ssl_engine_last_error(&t->sc.eng);
    if (e != BR_ERR_OK)
        rt_log(RT_LOG_DEBUG, "tls: engine error %d", e);
    return e == BR_ERR_OK ? SNOW_ECLOSED : SNOW_ETLS;
}

/* Moves staged ciphertext into the engine while it wants records.
 * Returns 1 when bytes moved. */
static int feed_staged(struct tls_stream *t)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    int moved = 0;
    while (t->stage_off < t->stage_len && (br_ssl_engine_current_state(eng) & BR_SSL_RECVREC)) {
        size_t len;
        unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &len);
        size_t k = t->stage_len - t->stage_off;
        if (k > len)
            k = len;
        memcpy(buf, t->stage + t->stage_off, k);
        t->stage_off += k;
        br_ssl_engine_recvrec_ack(eng, k);
        moved = 1;
    }
    if (t->stage_off == t->stage_len)
        t->stage_off = t->stage_len = 0;
    return moved;
}

/* One socket read for the engine: the current record's remaining bytes go
 * straight into its buffer when DIRECT_MIN or more are left, what follows
 * (or everything) into the staging buffer (empty here: staged bytes are
 * always fed first). Returns 1 when bytes (or the
 * end of stream) came, 0 when the socket had nothing, or an error. */
static int read_records(struct tls_stream *t)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    /* Not once the peer has shut its side: the end of the stream raised
     * its edge with the bytes already read, and only a read sees it. */
    if (t->drained && !actor_io_peer_shut(t->base.io))
        return 0;
    size_t room;
    unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &room);
    int fd = snow_io_fd(t->base.io);
    size_t len = room < DIRECT_MIN ? 0 : room, asked = len + sizeof t->stage;
    struct iovec v[2] = {{buf, len}, {t->stage, sizeof t->stage}};
    ssize_t n = len ? http_sock_readv(fd, v, 2) : http_sock_recv(fd, t->stage, sizeof t->stage);
    if (n > 0) {
        size_t got = (size_t)n;
        t->drained = got < asked;
        size_t direct = got < len ? got : len;
        if (direct)
            br_ssl_engine_recvrec_ack(eng, direct);
        t->stage_len = got - direct;
        t->stage_off = 0;
        feed_staged(t);
        return 1;
    }
    if (n == 0) {
        t->eof = 1;
        return 1;
    }
    if (n != -EAGAIN && n != -EWOULDBLOCK) {
        t->err = (int)n;
        return t->err;
    }
    t->drained = 1;
    return 0;
}

/* PUMP_MORE: the records sent are not the writer's last (tls_writev has
 * application data behind them), so they go with MSG_MORE and the kernel
 * packs them into full segments; the write that ends the batch (tls_flush)
 * goes without. */
enum { PUMP_SEND = 1, PUMP_RECV = 2, PUMP_MORE = 4 };

/*
 * Moves records without waiting, in the directions asked: a writer only
 * sends (a read on its behalf would mostly find nothing), except while
 * the engine neither takes application data nor has a record to send
 * (the handshake waiting for the peer's flight), when only the peer's
 * records can move it on. A full record buffer also stops the engine from
 * taking application data: that is the writer's own record to send, not
 * a reason to read (which used to cost one readv, mostly EAGAIN, per
 * 16 KiB record written). Returns 1 when something moved, 0 when nothing
 * could (the socket would block), or a negative error.
 */
static int pump(struct tls_stream *t, int dirs)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    int moved = 0;
    for (;;) {
        unsigned st = br_ssl_engine_current_state(eng);
        int step = 0;
        if (st & BR_SSL_CLOSED)
            return moved ? 1 : engine_error(t);
        if ((st & BR_SSL_SENDREC) && !t->err && !t->full) {
            size_t len;
            unsigned char *buf = br_ssl_engine_sendrec_buf(eng, &len);
            int flags = MSG_NOSIGNAL | ((dirs & PUMP_MORE) ? MSG_MORE : 0);
            ssize_t n = http_sock_send(snow_io_fd(t->base.io), buf, len, flags);
            if (n > 0) {
                br_ssl_engine_sendrec_ack(eng, (size_t)n);
                t->corked = (dirs & PUMP_MORE) != 0;
                t->full = (size_t)n < len;
                step = 1;
            } else if (n == -EAGAIN || n == -EWOULDBLOCK) {
                t->full = 1;
            } else if (n < 0) {
                t->err = (int)n;
                return t->err;
            }
        }
        bool recv = (dirs & PUMP_RECV) || !(st & (BR_SSL_SENDAPP | BR_SSL_SENDREC));
        if (recv && (st & BR_SSL_RECVREC) && !t->err) {
            if (feed_staged(t)) {
                step = 1;
            } else if (!t->eof) {
                int r = read_records(t);
                if (r < 0)
                    return r;
                step |= r;
            }
        }
        if (!step)
            return moved;
        moved = 1;
    }
}

/* Copies decoded application data out, record after record, while the
 * caller has room and the records are here without a system call. */
static size_t take_app(struct tls_stream *t, unsigned char *out, size_t n)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    size_t done = 0;
    while (done < n) {
        unsigned st = br_ssl_engine_current_state(eng);
        if (st & BR_SSL_RECVAPP) {
            size_t len;
            unsigned char *p = br_ssl_engine_recvapp_buf(eng, &len);
            if (len > n - done)
                len = n - done;
            memcpy(out + done, p, len);
            br_ssl_engine_recvapp_ack(eng, len);
            done += len;
        } else if (!(st & BR_SSL_RECVREC) || !feed_staged(t)) {
            break;
        }
    }
    return done;
}

static ssize_t tls_read(struct http_stream *s, void *buf, size_t n)
{
    struct tls_stream *t = (struct tls_stream *)s;
    br_ssl_engine_context *eng = &t->sc.eng;
    for (;;) {
        size_t got = take_app(t, buf, n);
        if (got)
            return (ssize_t)got;
        unsigned st = br_ssl_engine_current_state(eng);
        if (st & BR_SSL_CLOSED) {
            /* A clean close_notify reads as end of stream. */
            return br_ssl_engine_last_error(eng) == BR_ERR_OK ? 0 : SNOW_ETLS;
        }
        int r = pump(t, PUMP_SEND | PUMP_RECV);
        if (r < 0)
            return r;
        if (r == 0) {
            /* A peer that drops TCP without close_notify also ends the
             * stream (a truncated request is then just incomplete). */
            if (t->eof && !(br_ssl_engine_current_state(eng) & BR_SSL_RECVAPP))
                return 0;
            return -EAGAIN;
        }
    }
}

static ssize_t tls_writev(struct http_stream *s, const struct iovec *iov, int iovcnt)
{
    struct tls_stream *t = (struct tls_stream *)s;
    br_ssl_engine_context *eng = &t->sc.eng;
    size_t done = 0;
    int i = 0;
    size_t off = 0;
    while (i < iovcnt) {
        unsigned st = br_ssl_engine_current_state(eng);
        if (st & BR_SSL_CLOSED)
            return done ? (ssize_t)done : engine_error(t);
        if (st & BR_SSL_SENDAPP) {
            size_t len;
            unsigned char *p = br_ssl_engine_sendapp_buf(eng, &len);
            size_t k = iov[i].iov_len - off;
            if (k > len)
                k = len;
            memcpy(p, (const char *)iov[i].iov_base + off, k);
            br_ssl_engine_sendapp_ack(eng, k);
            done += k;
            off += k;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
            continue;
        }
        /* The record buffer is full or the handshake is not done: move
         * records, and give up for now if nothing moves. A record that
         * filled up with this call's bytes has more of them behind it:
         * it goes with MSG_MORE (the flush after the writev ends the
         * batch). */
        int r = pump(t, PUMP_SEND | (done ? PUMP_MORE : 0));
        if (r < 0)
            return done ? (ssize_t)done : r;
        if (r == 0)
            return done ? (ssize_t)done : -EAGAIN;
    }
    return (ssize_t)done;
}

/* Nothing is left to send but the kernel may still hold the last records
 * sent with MSG_MORE (their writer stopped early, e.g. at the peer's
 * close_notify): setting TCP_NODELAY pushes what is queued. */
static void uncork(struct tls_stream *t)
{
    int one = 1;
    setsockopt(snow_io_fd(t->base.io), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->corked = 0;
}

static int tls_flush(struct http_stream *s)
{
    struct tls_stream *t = (struct tls_stream *)s;
    br_ssl_engine_flush(&t->sc.eng, 0);
    for (;;) {
        unsigned st = br_ssl_engine_current_state(&t->sc.eng);
        if (st & BR_SSL_CLOSED)
            return engine_error(t);
        if (!(st & BR_SSL_SENDREC)) {
            if (t->corked)
                uncork(t);
            return 0;
        }
        int r = pump(t, PUMP_SEND);
        if (r < 0)
            return r;
        if (r == 0)
            return -EAGAIN;
    }
}

static int tls_wait(struct http_stream *s, unsigned events, int64_t deadline)
{
    struct tls_stream *t = (struct tls_stream *)s;
    unsigned st = br_ssl_engine_current_state(&t->sc.eng);
    unsigned ready = 0;
    if ((events & SNOW_WAIT_READABLE) &&
        ((st & (BR_SSL_RECVAPP | BR_SSL_CLOSED)) || (t->stage_len && (st & BR_SSL_RECVREC))))
        ready |= SNOW_WAIT_READABLE;
    if ((events & SNOW_WAIT_WRITABLE) && (st & BR_SSL_CLOSED))
        ready |= SNOW_WAIT_WRITABLE;
    /* Room for application data with no record left to send is
     * writability too: a writev that just gave up may have been followed
     * by a flush that emptied the record buffer, and parking for the
     * engine's own need (often only READABLE then) would wait for the peer
     * to send something. */
    if ((events & SNOW_WAIT_WRITABLE) && (st & BR_SSL_SENDAPP) && !(st & BR_SSL_SENDREC))
        ready |= SNOW_WAIT_WRITABLE;
    /* A socket error or (for readers) end of stream is reported at once so
     * the caller's retry surfaces it; a writer after the peer's FIN still
     * parks for writability. */
    if (!ready && (t->err || (t->eof && (events & SNOW_WAIT_READABLE))))
        ready = events & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE);
    if (ready)
        return (int)ready;
    /* Park for the socket direction the engine needs next. */
    unsigned need = 0;
    if (st & BR_SSL_SENDREC)
        need |= SNOW_WAIT_WRITABLE;
    if (st & BR_SSL_RECVREC)
        need |= SNOW_WAIT_READABLE;
    int w = actor_wait(t->base.io, need | (events & SNOW_WAIT_MAILBOX), deadline);
    if (w < 0)
        return w;
    /* The wait consumed the edge that stands for bytes after the last
     * read: the next read must be made. */
    if ((unsigned)w & (SNOW_WAIT_READABLE | SNOW_WAIT_HANGUP))
        t->drained = 0;
    if ((unsigned)w & (SNOW_WAIT_WRITABLE | SNOW_WAIT_HANGUP))
        t->full = 0;
    unsigned out = (unsigned)w & (SNOW_WAIT_MAILBOX | SNOW_WAIT_TIMEOUT | SNOW_WAIT_HANGUP);
    /* Socket progress is reported as the direction the caller asked for:
     * the caller retries its operation, which pumps again. */
    if ((unsigned)w & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE | SNOW_WAIT_HANGUP))
        out |= events & (SNOW_WAIT_READABLE | SNOW_WAIT_WRITABLE);
    return (int)out;
}

static unsigned tls_idle_events(struct http_stream *s)
{
    struct tls_stream *t = (struct tls_stream *)s;
    unsigned st = br_ssl_engine_current_state(&t->sc.eng);
    if ((st & (BR_SSL_RECVAPP | BR_SSL_CLOSED)) || t->err || t->eof || t->stage_len)
        return 0;
    /* The caller parks on the socket itself (actor_hibernate), which
     * consumes the readable (and writable) edge: the read and the send
     * after it must be made. */
    t->drained = 0;
    t->full = 0;

    unsigned need = 0;
    if (st & BR_SSL_SENDREC)
        need |= SNOW_WAIT_WRITABLE;
    if (st & BR_SSL_RECVREC)
        need |= SNOW_WAIT_READABLE;
    return need;
}

static void tls_shutdown(struct http_stream *s)
{
    struct tls_stream *t = (struct tls_stream *)s;
    if (s->shut)
        return;
    s->shut = 1;
    /* close_notify, sent only if it fits without waiting: a peer that stopped
     * reading must not hold the actor here. */
    br_ssl_engine_close(&t->sc.eng);
    pump(t, PUMP_SEND);
    shutdown(snow_io_fd(s->io), SHUT_WR);
}

static void tls_destroy(struct http_stream *s)
{
    snow_io_close(s->io);
    free(s);
}

static const struct http_stream_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .flush = tls_flush,
    .wait = tls_wait,
    .idle_events = tls_idle_events,
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
};

struct http_stream *http_stream_tls(SnowIo *io, const struct http_tls_config *cfg)
{
    struct tls_stream *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, offsetof(struct tls_stream, iobuf));
    t->base.ops = &tls_ops;
    t->base.io = io;
    t->base.turn_bytes = TLS_TURN_BYTES;
    if (cfg->key_type == BR_KEYTYPE_RSA) {
        br_ssl_server_init_full_rsa(&t->sc, cfg->chain, cfg->chain_len, br_skey_decoder_get_rsa(&cfg->skey));
    } else {
        br_ssl_server_init_full_ec(&t->sc, cfg->chain, cfg->chain_len, (unsigned)cfg->issuer_key_type,
                                   br_skey_decoder_get_ec(&cfg->skey));
    }
    br_ssl_engine_set_suites(&t->sc.eng, cfg->suites, cfg->nsuites);
    /* AES-GCM over 256-bit registers where the CPU has VAES and
     * VPCLMULQDQ (tls_aes.c): the same records, at a fraction of the
     * cycles per byte of BearSSL's one-block-per-instruction code. */
    if (cfg->wide_aes) {
        br_ssl_engine_set_aes_ctr(&t->sc.eng, &http_tls_aes_ctr_wide_vtable);
        br_ssl_engine_set_ghash(&t->sc.eng, http_tls_ghash_wide);
    }
    br_ssl_engine_set_versions(&t->sc.eng, BR_TLS12, BR_TLS12);
    /* A renegotiation is a full handshake, with a private-key operation
     * on our side, that the client may ask for at any time and as often
     * as it likes: a CPU denial of service for one TCP connection. Nothing
     * here needs it, so a client's ClientHello after the first handshake
     * is answered with a no_renegotiation alert (RFC 5246 §7.2.2). */
    br_ssl_engine_add_flags(&t->sc.eng, BR_OPT_NO_RENEGOTIATION | BR_OPT_ENFORCE_SERVER_PREFERENCES);
    br_ssl_engine_set_buffer(&t->sc.eng, t->iobuf, sizeof t->iobuf, 1);
    if (!br_ssl_server_reset(&t->sc)) {
        free(t);
        return NULL;
    }
    return &t->base;
}
