/*
 * util.h: helpers shared by the ws suites: inputs placed right before a
 * PROT_NONE page, client frame builders with a reference masking loop, and
 * a decoder driver that records a transcript of events so that feeding an
 * input whole, split at every offset, and one byte at a time can be
 * compared exactly.
 */
#ifndef SNOW_TESTS_WS_UTIL_H
#define SNOW_TESTS_WS_UTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../guard.h"
#include "ws/frame.h"

#define CASE_TIMEOUT 180

/* Check records every passing ck_assert (a write per check), which
 * dominates loops that run a million checks; these only report failures. */
#define QCHECK(c)                                                      \
    do {                                                               \
        if (!(c))                                                      \
            ck_abort_msg("%s:%d: check failed: %s", __FILE__, __LINE__, #c); \
    } while (0)

Suite *base64_suite(void);
Suite *utf8_suite(void);
Suite *decoder_suite(void);
Suite *unmask_suite(void);
Suite *encoder_suite(void);
Suite *message_suite(void);
Suite *close_suite(void);
Suite *handshake_suite(void);
Suite *outq_suite(void);

/* A growable byte buffer. */
struct tbuf {
    uint8_t *p;
    size_t n;
    size_t cap;
    bool in_data;
};

void tb_init(struct tbuf *t);
void tb_free(struct tbuf *t);
void tb_put(struct tbuf *t, const void *p, size_t n);
void tb_printf(struct tbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Transcript entries, written by the driver and by tests building the
 * expected transcript. */
void tb_frame(struct tbuf *t, unsigned op, bool fin, uint64_t len);
void tb_data(struct tbuf *t, const void *p, size_t n);
void tb_end(struct tbuf *t, unsigned op, bool fin);
void tb_ctl(struct tbuf *t, unsigned op, const void *p, size_t n);
void tb_err(struct tbuf *t, unsigned code, uint64_t at);
void tb_close_run(struct tbuf *t);

/* Builds a client frame into t. b0 is FIN|RSV|opcode. len_bytes forces the
 * length encoding (1 = 7-bit, 2 = 16-bit, 8 = 64-bit; 0 = shortest), with
 * declared_len written instead of n when non-zero (payload n bytes follow
 * regardless). key NULL leaves the frame unmasked. */
void mk_frame_ex(struct tbuf *t, uint8_t b0, const uint8_t *key, const void *payload, size_t n, int len_bytes,
                 uint64_t declared_len);
void mk_frame(struct tbuf *t, uint8_t b0, const void *payload, size_t n);

/* n bytes of JSON-like text, compressible but not trivially: words drawn
 * from words[0..8) by a generator seeded with seed. Allocated (n + 1
 * bytes); the caller frees it. */
uint8_t *mk_words(size_t n, unsigned seed, const char *const words[8]);

/* Standard mask key used by mk_frame (the one from RFC 6455 §5.7). */
extern const uint8_t test_key[4];

/* Feeds in[0..n) through a fresh decoder, cut at cuts[0..ncuts) (sorted),
 * each chunk placed before a guard page. Appends the transcript to t. */
void run_decoder(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const size_t *cuts,
                 size_t ncuts, struct tbuf *t);

/* The same, trying ws_decoder_whole before ws_decoder_next at every step
 * (as the connection loop does); a whole message is recorded as the
 * FRAME, DATA and FRAME_END events it stands for. */
void run_decoder_whole_first(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const size_t *cuts,
                             size_t ncuts, struct tbuf *t);

/* Feeds in whole, at every split point (sampled for long inputs), and one
 * byte at a time; every transcript must equal expect (when not NULL) and
 * the whole-input transcript. */
void check_decoder(const struct ws_decoder_config *cfg, const uint8_t *in, size_t n, const struct tbuf *expect);

#endif
