/*
 * wsclient.h: the client side of RFC 6455 for the load generator, over
 * non-blocking sockets driven by one epoll loop. Every frame it sends is
 * masked with a fresh key (§5.3); every opening handshake is checked
 * (status 101, Upgrade, Connection, Sec-WebSocket-Accept, §4.1); every
 * server frame is checked (no mask, no RSV bits, control frames whole and
 * at most 125 bytes, continuation only inside a message, §5.2-5.5).
 * Optionally over TLS with BearSSL's client engine, the server's public
 * key pinned from its certificate file.
 *
 * A connection reports what happens to it through the callbacks in its
 * wsc_ops; the modes of the load generator (loadgen.c) decide what to send.
 */
#ifndef SNOW_BENCH_WSCLIENT_H
#define SNOW_BENCH_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bearssl.h>

enum wsc_state {
    WSC_CONNECTING,   /* TCP connect in progress */
    WSC_HANDSHAKE,    /* upgrade request queued or sent, waiting for the 101 */
    WSC_OPEN,
    WSC_CLOSING,      /* our Close sent, waiting for the server's */
    WSC_CLOSED_WAIT,  /* Close exchanged, waiting for the server to close TCP */
    WSC_DONE,         /* fd closed; the slot may be reused */
};

struct wsc_conn;

struct wsc_ops {
    /* The 101 was received and checked. */
    void (*on_open)(struct wsc_conn *c);
    /* A whole data message (text or binary), reassembled when fragmented.
     * The view is valid until the callback returns. */
    void (*on_message)(struct wsc_conn *c, int opcode, const uint8_t *p, size_t n);
    void (*on_pong)(struct wsc_conn *c, const uint8_t *p, size_t n);
    /* The connection ended: cleanly (clean == true: Close frames exchanged
     * and the server closed TCP) or not, with a message saying why. */
    void (*on_done)(struct wsc_conn *c, bool clean, const char *why);
};

/* What every connection of a run shares. */
struct wsc_shared {
    int epfd;
    const char *host;      /* numeric IPv4 address */
    int port;
    bool tls;
    const br_x509_pkey *pinned; /* server key for TLS (from --tls-ca) */
    const char *sni;
    const uint16_t *suites;  /* cipher suites offered, in order (wsc_pick_suites) */
    size_t nsuites;
    bool wide_aes;         /* AES-GCM through the runtime's VAES/VPCLMULQDQ code (wsc_pick_suites) */
    uint64_t max_message;  /* a larger server message is a failure */
    bool nagle;            /* leave Nagle's algorithm on (no TCP_NODELAY): for
                            * modes that never have two small writes in flight */
    uint8_t *scratch;      /* shared read buffer */
    size_t scratch_cap;
    int64_t now_ns;        /* time of the last read batch (CLOCK_MONOTONIC) */
    /* Built once, not per connection (wsc_connect): the server's address
     * and the upgrade request up to the key, for req_path. */
    uint32_t addr;         /* network order; 0: not parsed yet */
    const char *req_path;
    char req_head[400];
    size_t req_head_len;
    uint64_t rng;          /* xorshift64* state for keys and masks */
    /* Plain connections whose last read filled the buffer: the socket may
     * hold more, and (edge-triggered) epoll will not say so again. Read
     * once more each by wsc_run_more, after the other ready connections'
     * turns; an entry whose in_more was cleared (the slot was reused) is
     * skipped. */
    struct wsc_conn **more;
    size_t nmore, capmore; /* entries; capacity in bytes (wsc_grow) */
};

struct wsc_tls;

struct wsc_conn {
    struct wsc_shared *sh;
    const struct wsc_ops *ops;
    int fd;
    enum wsc_state state;
    int id;             /* index chosen by the caller */
    int role;           /* caller's use */
    bool want_out;      /* EPOLLOUT is in the interest set */
    bool got_close;     /* the server's Close frame arrived */
    bool violation;     /* ended because the server broke RFC 6455 */
    bool peer_shut;     /* epoll reported the server's FIN (EPOLLRDHUP) */
    bool in_more;       /* listed in sh->more */
    uint16_t close_code;/* code in the server's Close (1005 when none) */
    char accept[29];    /* expected Sec-WebSocket-Accept */
    const char *path;

    uint8_t *rbuf;      /* unparsed input (kept across reads) */
    size_t rlen, rcap;
    size_t need;        /* bytes of rbuf the next frame needs, when known */
    bool in_parse;      /* callbacks are running: flushes wait till after */
    uint8_t *wbuf;      /* output not yet written */
    size_t woff, wlen, wcap;
    uint8_t *msg;       /* fragments of a message being reassembled */
    size_t mlen, mcap;
    int mop;            /* opcode of that message; 0 when none */

    struct wsc_tls *t;  /* NULL for plain TCP */

    /* Mode state, owned by loadgen.c. */
    uint64_t sent, recvd;
    int64_t t0;
    void *user;
};

/* Sets sh->suites: the ECDHE suites, AES-GCM first when the CPU has AES
 * instructions, ChaCha20-Poly1305 first when not. */
void wsc_pick_suites(struct wsc_shared *sh);

/* Seeds sh->rng from the kernel. */
void wsc_shared_seed(struct wsc_shared *sh);
uint64_t wsc_rand(struct wsc_shared *sh);

/* Starts a non-blocking connect to sh->host:sh->port (from src when it is
 * not NULL: a 127.0.0.x source address) and queues the upgrade request for
 * path. Returns 0, or a negative errno with c->state == WSC_DONE. */
int wsc_connect(struct wsc_conn *c, struct wsc_shared *sh, const struct wsc_ops *ops,
                const char *path, const char *src);

/* Handles the epoll events of c (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP). */
void wsc_event(struct wsc_conn *c, uint32_t events);
/* Gives each connection in sh->more its next read (after a loop's batch of
 * events). Returns whether some are listed again. */
bool wsc_run_more(struct wsc_shared *sh);

/* Queues one masked frame (opcode, FIN set) with payload p[0..n) and
 * writes what the socket takes now. Payload bytes come from p; the mask
 * is applied on the copy. */
void wsc_send(struct wsc_conn *c, int opcode, const uint8_t *p, size_t n);
/* Like wsc_send, but only queues: call wsc_flush after a batch. */
void wsc_queue(struct wsc_conn *c, int opcode, const uint8_t *p, size_t n);
void wsc_flush(struct wsc_conn *c);
/* Queues a Close with code (and no reason) and moves to WSC_CLOSING. */
void wsc_close(struct wsc_conn *c, uint16_t code);
/* Closes the socket now, without a close handshake, and reports on_done. */
void wsc_abort(struct wsc_conn *c, const char *why);
/* Frees the buffers of a slot in state WSC_DONE (not c->user). */
void wsc_release(struct wsc_conn *c);
/* For diagnostics: BearSSL's engine state bits (BR_SSL_SENDREC, ...), 0
 * for a plain connection. */
unsigned wsc_tls_state(const struct wsc_conn *c);
/* The cipher suite the TLS handshake agreed on (its IANA number), 0 for
 * a plain connection. */
unsigned wsc_tls_suite(const struct wsc_conn *c);
/* Bytes queued and not yet written. */
size_t wsc_pending(const struct wsc_conn *c);

/* base64(SHA-1(key ++ GUID)) with BearSSL's SHA-1 and the runtime's base64. */
void wsc_accept_for(const char *key, char out[29]);

/* Loads the first certificate of a PEM file and returns its public key
 * (heap-allocated, never freed: one per run). NULL with a message on stderr. */
br_x509_pkey *wsc_load_pinned_key(const char *pem_file);

#endif
