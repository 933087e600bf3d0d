/*
 * tls_test.c: the TLS stream (runtime/http/tls.c) against BearSSL's client
 * engine over a socketpair, inside one actor, without parking: both ends
 * are pumped in turn until they have nothing more to do.
 *
 * What a write turn does with the peer's records: it sends the records it
 * fills and reads nothing, so input that arrived meanwhile waits for the
 * connection's next read (and its next turn), and every record it wrote is
 * in the socket once flush returns.
 */
#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

#include "actor/actor.h"
#include "http/stream.h"
#include "http/tls.h"
#include "http/tls_aes.h"

#define WRITE_BYTES (48 * 1024) /* three full records and a part */
#define PEER_BYTES 100

struct peer {
    int fd;
    br_ssl_client_context cc;
    br_x509_minimal_context xc;
    br_x509_knownkey_context kk;
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
    unsigned char *got; /* the plaintext taken, up to cap bytes */
    size_t cap, ngot;
};

static char dir[64];
static char cert_path[96], key_path[96];
static br_x509_decoder_context xd;
static unsigned char der[8192];
static size_t der_len;
static atomic_int verdict; /* 0 running, 1 passed, 2 failed */
static char why[256];

static void append_der(void *ctx, const void *p, size_t n)
{
    (void)ctx;
    if (der_len + n <= sizeof der) {
        memcpy(der + der_len, p, n);
        der_len += n;
    }
}

/* The certificate's public key, for the client to pin. */
static const br_x509_pkey *load_pinned(void)
{
    FILE *f = fopen(cert_path, "rb");
    if (!f)
        return NULL;
    static unsigned char pem[8192];
    size_t n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    der_len = 0;
    const unsigned char *p = pem;
    bool done = false;
    while (n > 0 && !done) {
        size_t k = br_pem_decoder_push(&pc, p, n);
        p += k;
        n -= k;
        int ev = br_pem_decoder_event(&pc);
        if (ev == BR_PEM_BEGIN_OBJ)
            br_pem_decoder_setdest(&pc, append_der, NULL);
        else if (ev == BR_PEM_END_OBJ)
            done = true;
        else if (ev == BR_PEM_ERROR)
            return NULL;
    }
    br_x509_decoder_init(&xd, NULL, NULL);
    br_x509_decoder_push(&xd, der, der_len);
    return br_x509_decoder_last_error(&xd) ? NULL : br_x509_decoder_get_pkey(&xd);
}

/* Moves the client's records both ways and takes its plaintext. */
static void pump_peer(struct peer *c)
{
    br_ssl_engine_context *eng = &c->cc.eng;
    for (int i = 0; i < 1000; i++) {
        unsigned st = br_ssl_engine_current_state(eng);
        bool moved = false;
        size_t len;
        if (st & BR_SSL_SENDREC) {
            unsigned char *b = br_ssl_engine_sendrec_buf(eng, &len);
            ssize_t n = send(c->fd, b, len, MSG_NOSIGNAL);
            if (n > 0) {
                br_ssl_engine_sendrec_ack(eng, (size_t)n);
                moved = true;
            }
        }
        if (st & BR_SSL_RECVAPP) {
            unsigned char *b = br_ssl_engine_recvapp_buf(eng, &len);
            if (len > c->cap - c->ngot)
                len = c->cap - c->ngot;
            memcpy(c->got + c->ngot, b, len);
            c->ngot += len;
            br_ssl_engine_recvapp_ack(eng, len);
            if (len)
                moved = true;
        }
        if (st & BR_SSL_RECVREC) {
            unsigned char *b = br_ssl_engine_recvrec_buf(eng, &len);
            ssize_t n = read(c->fd, b, len);
            if (n > 0) {
                br_ssl_engine_recvrec_ack(eng, (size_t)n);
                moved = true;
            }
        }
        if (!moved)
            return;
    }
}

static int pending(int fd)
{
    int n = -1;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static void give_up(const char *msg)
{
    snprintf(why, sizeof why, "%s", msg);
    atomic_store(&verdict, 2);
}

/* The client's engine on fd, pinning the server's key. */
static void peer_start(struct peer *c, int fd, const br_x509_pkey *pk, unsigned char *got, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->got = got;
    c->cap = cap;
    br_ssl_client_init_full(&c->cc, &c->xc, NULL, 0);
    br_x509_knownkey_init_ec(&c->kk, &pk->key.ec, BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN);
    br_ssl_engine_set_x509(&c->cc.eng, &c->kk.vtable);
    br_ssl_engine_set_buffer(&c->cc.eng, c->iobuf, sizeof c->iobuf, 1);
    br_ssl_client_reset(&c->cc, "localhost", 0);
}

/* The handshake: the server's reads pump it; done when the client may
 * send data and the server has taken every handshake record. After a
 * read that found the socket empty the stream reads again only once a
 * wait has seen it readable (as every reader does after -EAGAIN). */
static bool handshake(struct peer *c, struct http_stream *s, int sfd)
{
    unsigned char in[4096];
    ssize_t r = 0;
    for (int i = 0; i < 1000; i++) {
        pump_peer(c);
        r = s->ops->read(s, in, sizeof in);
        if ((br_ssl_engine_current_state(&c->cc.eng) & BR_SSL_SENDAPP) && pending(sfd) == 0 &&
            pending(c->fd) == 0 && r == -EAGAIN)
            break;
        if (r == -EAGAIN)
            s->ops->wait(s, SNOW_WAIT_READABLE, actor_deadline_after_ms(5));
    }
    return (br_ssl_engine_current_state(&c->cc.eng) & BR_SSL_SENDAPP) && r == -EAGAIN;
}

static void writer_actor(void *arg)
{
    (void)arg;
    static struct peer c;
    static unsigned char out[WRITE_BYTES], in[4096], got[WRITE_BYTES];
    struct http_tls_config *cfg = NULL;
    if (http_tls_config_load(&cfg, cert_path, key_path) != 0)
        {
        give_up("http_tls_config_load failed");
        return;
    }
    const br_x509_pkey *pk = load_pinned();
    if (!pk)
        {
        give_up("certificate not decodable");
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        {
        give_up("socketpair failed");
        return;
    }
    int err = 0;
    SnowIo *io = snow_io_open(sv[0], &err);
    struct http_stream *s = io ? http_stream_tls(io, cfg) : NULL;
    if (!s)
        {
        give_up("no TLS stream");
        return;
    }
    peer_start(&c, sv[1], pk, got, sizeof got);
    ssize_t r;
    if (!handshake(&c, s, sv[0])) {
        give_up("the TLS handshake did not complete");
        return;
    }

    /* The peer's record arrives, then the server writes several records. */
    size_t len;
    unsigned char *b = br_ssl_engine_sendapp_buf(&c.cc.eng, &len);
    memset(b, 'p', PEER_BYTES);
    br_ssl_engine_sendapp_ack(&c.cc.eng, PEER_BYTES);
    br_ssl_engine_flush(&c.cc.eng, 0);
    pump_peer(&c);
    int peer_record = pending(sv[0]);
    if (peer_record <= PEER_BYTES)
        {
        give_up("the peer's record is not in the server's socket");
        return;
    }
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 7 + 1);
    size_t done = 0;
    while (done < sizeof out) {
        struct iovec rest = {out + done, sizeof out - done};
        ssize_t w = s->ops->writev(s, &rest, 1);
        if (w <= 0)
            {
        give_up("the write was refused although the socket has room");
        return;
    }
        done += (size_t)w;
    }
    if (s->ops->flush(s) != 0)
        {
        give_up("flush left records in the engine");
        return;
    }
    /* The write turn read nothing: the peer's record still waits. */
    if (pending(sv[0]) != peer_record) {
        snprintf(why, sizeof why, "the writer read the peer's record: %d of %d bytes left in the socket",
                 pending(sv[0]), peer_record);
        atomic_store(&verdict, 2);
        return;
    }
    /* Every record written is out: the peer decrypts all of it. */
    pump_peer(&c);
    if (c.ngot != sizeof out || memcmp(c.got, out, sizeof out) != 0)
        {
        give_up("the peer did not get every byte written");
        return;
    }
    /* The stream's last read found the socket empty, and no wait has
     * reported it readable since: a read makes no system call, and the
     * peer's record stays in the socket. */
    r = s->ops->read(s, in, sizeof in);
    if (r != -EAGAIN || pending(sv[0]) != peer_record) {
        snprintf(why, sizeof why, "a read before the wait returned %zd and left %d of %d bytes in the socket", r,
                 pending(sv[0]), peer_record);
        atomic_store(&verdict, 2);
        return;
    }
    /* The wait sees the edge the record raised, and the read after it
     * takes the peer's data. */
    r = http_stream_read(s, in, sizeof in, actor_deadline_after_ms(5000));
    if (r != PEER_BYTES || in[0] != 'p' || in[PEER_BYTES - 1] != 'p')
        {
        give_up("the server's read did not return the peer's data");
        return;
    }
    http_stream_close(s);
    close(sv[1]);
    http_tls_config_free(cfg);
    atomic_store(&verdict, 1);
}

static void fill(unsigned char *p, size_t n);

/* Runs fn in an actor on a one-worker runtime with a fresh P-256
 * certificate, and asserts its verdict. */
static void run_in_actor(void (*fn)(void *))
{
    snprintf(dir, sizeof dir, "/tmp/snow-tls-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s "
             "-days 2 -subj /CN=localhost >/dev/null 2>&1",
             key_path, cert_path);
    ck_assert_int_eq(system(cmd), 0);
    atomic_store(&verdict, 0);
    ck_assert_int_eq(snow_rt_init(1), 0);
    ck_assert(snow_actor_spawn(fn, NULL, 0) != 0);
    for (int i = 0; i < 3000 && !atomic_load(&verdict); i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    snow_rt_shutdown();
    snow_rt_run();
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    ck_assert_msg(atomic_load(&verdict) == 1, "%s", atomic_load(&verdict) ? why : "the actor did not finish");
}

START_TEST(writer_reads_nothing_and_flushes_all)
{
    run_in_actor(writer_actor);
}
END_TEST

/*
 * Writes of many sizes over TCP on 127.0.0.1, where a record sent with
 * MSG_MORE may wait in the kernel for the bytes behind it: every write is
 * split over three pieces, taken by writev (the peer reading whenever the
 * socket is full) and flushed. A write that fits in the peer's window is
 * all on the wire once flush returns (SIOCOUTQNSD: no byte held back), and the
 * peer gets every byte, in order, also of the 1 MiB one written under
 * backpressure.
 */
#define BATCH_MAX (1024 * 1024)
/* Writes up to this size (with their records' overhead) fit in the
 * peer's first receive window on loopback, so nothing but the stream
 * could hold their bytes back after flush. */
#define WINDOW_ROOM (3 * 16384 + 5)

static int tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int rc = -1;
    /* Room for much of a 1 MiB write from the peer before the server
     * reads (inherited by the accepted socket). */
    int rcv = 4 << 20;
    if (l >= 0)
        setsockopt(l, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (struct sockaddr *)&a, &al) == 0) {
        sv[1] = socket(AF_INET, SOCK_STREAM, 0);
        if (sv[1] >= 0 && connect(sv[1], (struct sockaddr *)&a, sizeof a) == 0) {
            sv[0] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
            if (sv[0] >= 0) {
                int one = 1;
                setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int fl = 1;
                ioctl(sv[1], FIONBIO, &fl);
                rc = 0;
            }
        }
    }
    if (l >= 0)
        close(l);
    return rc;
}

/* The peer's engine takes plaintext and sends records until the socket
 * (or its engine) takes no more. */
static void peer_push(struct peer *c, const unsigned char *p, size_t n, size_t *sent)
{
    br_ssl_engine_context *eng = &c->cc.eng;
    for (int i = 0; i < 100000; i++) {
        size_t before = *sent;
        if (*sent < n && (br_ssl_engine_current_state(eng) & BR_SSL_SENDAPP)) {
            size_t len;
            unsigned char *b = br_ssl_engine_sendapp_buf(eng, &len);
            if (len > n - *sent)
                len = n - *sent;
            memcpy(b, p + *sent, len);
            br_ssl_engine_sendapp_ack(eng, len);
            *sent += len;
            if (*sent == n)
                br_ssl_engine_flush(eng, 0);
        }
        int queued = -1;
        ioctl(c->fd, SIOCOUTQ, &queued);
        pump_peer(c);
        int after = -1;
        ioctl(c->fd, SIOCOUTQ, &after);
        if (*sent == before && after == queued)
            return;
    }
}

/*
 * The other way: the peer sends 1 MiB while the server does not read,
 * then the server reads with room for all of it: the bytes come whole and
 * in order, a few records a read (the records behind the first two stay
 * in the socket until the next). A TLS stream asks its connection for a
 * smaller turn than a plain socket's (http_stream_turn_bytes).
 */
static bool peer_writes_large(struct peer *c, struct http_stream *s, unsigned char *out, unsigned char *in)
{
    fill(out, BATCH_MAX);
    size_t sent = 0, got = 0, most = 0;
    size_t turn = http_stream_turn_bytes(s, SIZE_MAX);
    for (int spins = 0; got < BATCH_MAX && spins < 100000; spins++) {
        peer_push(c, out, BATCH_MAX, &sent);
        ssize_t r = s->ops->read(s, in + got, BATCH_MAX - got);
        if (r > 0) {
            got += (size_t)r;
            most = (size_t)r > most ? (size_t)r : most;
        } else if (r == -EAGAIN) {
            s->ops->wait(s, SNOW_WAIT_READABLE, actor_deadline_after_ms(5));
        } else {
            break;
        }
    }
    if (got != BATCH_MAX || memcmp(in, out, BATCH_MAX) != 0) {
        snprintf(why, sizeof why, "the server read %zu of the peer's %d bytes%s", got, BATCH_MAX,
                 got == BATCH_MAX ? ", not the same" : "");
        return false;
    }
    if (most > 2 * 16384 || turn == SIZE_MAX || http_stream_turn_bytes(s, 1024 * 1024) >= 1024 * 1024) {
        snprintf(why, sizeof why, "the largest read was %zu bytes, the turn share %zu", most, turn);
        return false;
    }
    return true;
}

/* The writer's socket is full: the peer reads, and the writer waits
 * for room as every writer does after -EAGAIN (after a send that found
 * the socket full the stream sends again only once a wait has seen it
 * writable). */
static void peer_drain(struct peer *c, struct http_stream *s)
{
    pump_peer(c);
    s->ops->wait(s, SNOW_WAIT_WRITABLE, actor_deadline_after_ms(5));
}

static void batch_actor(void *arg)
{
    (void)arg;
    static struct peer c;
    static unsigned char out[BATCH_MAX], got[BATCH_MAX];
    static const size_t sizes[] = {1, 100, 16383, 16384, 16385, 2 * 16384, 3 * 16384 + 5, 49152, BATCH_MAX};
    struct http_tls_config *cfg = NULL;
    const br_x509_pkey *pk = NULL;
    int sv[2] = {-1, -1};
    if (http_tls_config_load(&cfg, cert_path, key_path) != 0 || !(pk = load_pinned()) || tcp_pair(sv) != 0) {
        give_up("set-up failed");
        return;
    }
    int err = 0;
    SnowIo *io = snow_io_open(sv[0], &err);
    struct http_stream *s = io ? http_stream_tls(io, cfg) : NULL;
    if (!s) {
        give_up("no TLS stream");
        return;
    }
    peer_start(&c, sv[1], pk, got, sizeof got);
    if (!handshake(&c, s, sv[0])) {
        give_up("the TLS handshake did not complete");
        return;
    }
    for (size_t k = 0; k < RT_ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        fill(out, n);
        c.ngot = 0;
        struct iovec v[3] = {{out, n / 3}, {out + n / 3, n / 3}, {out + 2 * (n / 3), n - 2 * (n / 3)}};
        size_t done = 0;
        bool pushed = false;
        for (int spins = 0; done < n && spins < 100000; spins++) {
            /* The pieces not yet taken. */
            struct iovec rest[3];
            int nr = 0;
            size_t off = 0;
            for (int i = 0; i < 3; i++) {
                if (done < off + v[i].iov_len) {
                    size_t skip = done > off ? done - off : 0;
                    rest[nr].iov_base = (unsigned char *)v[i].iov_base + skip;
                    rest[nr++].iov_len = v[i].iov_len - skip;
                }
                off += v[i].iov_len;
            }
            ssize_t w = s->ops->writev(s, rest, nr);
            if (w > 0)
                done += (size_t)w;
            else if (w == -EAGAIN || w == 0)
                peer_drain(&c, s); /* the socket is full: the peer reads */
            else
                break;
            pushed |= w <= 0;
        }
        int f = -EAGAIN;
        for (int spins = 0; done == n && f == -EAGAIN && spins < 100000; spins++) {
            f = s->ops->flush(s);
            if (f == -EAGAIN) {
                pushed = true;
                peer_drain(&c, s);
            }
        }
        if (done != n || f != 0) {
            snprintf(why, sizeof why, "%zu bytes: writev took %zu, flush returned %d", n, done, f);
            atomic_store(&verdict, 2);
            return;
        }
        int unsent = -1;
        if (!pushed && n <= WINDOW_ROOM && (ioctl(sv[0], SIOCOUTQNSD, &unsent) != 0 || unsent != 0)) {
            snprintf(why, sizeof why, "%zu bytes: %d bytes held back in the kernel after flush", n, unsent);
            atomic_store(&verdict, 2);
            return;
        }
        for (int i = 0; i < 500 && c.ngot < n; i++) {
            pump_peer(&c);
            if (c.ngot < n)
                poll(&(struct pollfd){.fd = sv[1], .events = POLLIN}, 1, 10);
        }
        if (c.ngot != n || memcmp(got, out, n) != 0) {
            snprintf(why, sizeof why, "%zu bytes written, the peer got %zu%s", n, c.ngot,
                     c.ngot == n ? " but not the same" : "");
            atomic_store(&verdict, 2);
            return;
        }
    }
    if (!peer_writes_large(&c, s, out, got)) {
        atomic_store(&verdict, 2);
        return;
    }
    http_stream_close(s);
    close(sv[1]);
    http_tls_config_free(cfg);
    atomic_store(&verdict, 1);
}

START_TEST(writes_of_every_size_reach_the_peer_in_order)
{
    run_in_actor(batch_actor);
}
END_TEST


/* ---- the wide AES-CTR and GHASH against BearSSL's ---- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15u;

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rnd_state ^= rnd_state << 13;
        rnd_state ^= rnd_state >> 7;
        rnd_state ^= rnd_state << 17;
        p[i] = (unsigned char)(rnd_state >> 24);
    }
}

/* Lengths 0..600 (every tail of the 256-, 32- and 16-byte steps) and
 * records around the 16 KiB maximum. */
static size_t test_len(int i)
{
    static const size_t big[] = {16384, 16384 + 7, 16384 + 24, 4096 + 13, 1000};
    return i <= 600 ? (size_t)i : big[(i - 601) % RT_ARRAY_LEN(big)];
}
#define TEST_LENS (601 + 5)

static const br_block_ctr_class *reference_ctr(void)
{
    const br_block_ctr_class *c = br_aes_x86ni_ctr_get_vtable();
    return c ? c : &br_aes_ct64_ctr_vtable;
}

START_TEST(wide_ctr_matches_bearssl)
{
    /* The wide code needs BearSSL's x86ni key schedule and AVX2 as well. */
    if (http_tls_aes_wide())
        ck_assert(br_aes_x86ni_ctr_get_vtable() != NULL && __builtin_cpu_supports("avx2"));
    if (!http_tls_aes_wide())
        return; /* the engine keeps BearSSL's own code then (pick_suites) */
    static unsigned char a[16384 + 64], b[16384 + 64];
    static const size_t key_lens[] = {16, 24, 32};
    /* Counters at 0, in the middle and just below the 2^32 wrap. */
    static const uint32_t counters[] = {0, 2, 0x12345678u, 0xfffffffeu, 0xffffffffu};
    for (size_t kl = 0; kl < RT_ARRAY_LEN(key_lens); kl++) {
        unsigned char key[32], iv[12];
        fill(key, sizeof key);
        fill(iv, sizeof iv);
        br_aes_gen_ctr_keys ref, wide;
        reference_ctr()->init(&ref.vtable, key, key_lens[kl]);
        http_tls_aes_ctr_wide_vtable.init(&wide.vtable, key, key_lens[kl]);
        ck_assert_ptr_eq(wide.vtable, &http_tls_aes_ctr_wide_vtable);
        for (int i = 0; i < TEST_LENS; i++) {
            size_t n = test_len(i);
            uint32_t cc = counters[(size_t)i % RT_ARRAY_LEN(counters)];
            fill(a, n + 16);
            memcpy(b, a, n + 16);
            uint32_t r1 = ref.vtable->run(&ref.vtable, iv, cc, a, n);
            uint32_t r2 = wide.vtable->run(&wide.vtable, iv, cc, b, n);
            ck_assert_msg(r1 == r2, "key %zu bytes, length %zu, counter %u: returned %u, BearSSL %u", key_lens[kl], n,
                          cc, r2, r1);
            ck_assert_msg(memcmp(a, b, n + 16) == 0, "key %zu bytes, length %zu, counter %u: the output differs",
                          key_lens[kl], n, cc);
        }
    }
}
END_TEST

START_TEST(wide_ghash_matches_bearssl)
{
    if (!http_tls_aes_wide())
        return; /* not used on this CPU (checked in wide_ctr_matches_bearssl) */
    static unsigned char data[16384 + 64];
    for (int i = 0; i < TEST_LENS; i++) {
        size_t n = test_len(i);
        unsigned char h[16], y1[16], y2[16];
        fill(h, sizeof h);
        fill(y1, sizeof y1);
        memcpy(y2, y1, sizeof y1);
        fill(data, n);
        br_ghash_ctmul64(y1, h, data, n);
        http_tls_ghash_wide(y2, h, data, n);
        ck_assert_msg(memcmp(y1, y2, 16) == 0, "length %zu: the hash differs", n);
    }
    /* A zero key and a key of all ones: the edges of the field. */
    unsigned char h0[16] = {0}, h1[16], y1[16] = {0}, y2[16] = {0};
    memset(h1, 0xff, sizeof h1);
    fill(data, 1024);
    br_ghash_ctmul64(y1, h0, data, 1024);
    http_tls_ghash_wide(y2, h0, data, 1024);
    ck_assert(memcmp(y1, y2, 16) == 0);
    br_ghash_ctmul64(y1, h1, data, 1024);
    http_tls_ghash_wide(y2, h1, data, 1024);
    ck_assert(memcmp(y1, y2, 16) == 0);
}
END_TEST

Suite *tls_suite(void)
{
    Suite *s = suite_create("http_tls");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, writer_reads_nothing_and_flushes_all);
    tcase_add_test(tc, writes_of_every_size_reach_the_peer_in_order);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("aes_gcm");
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, wide_ctr_matches_bearssl);
    tcase_add_test(ta, wide_ghash_matches_bearssl);
    suite_add_tcase(s, ta);
    return s;
}
