/*
 * tls_aes.h: AES-CTR and GHASH over 256-bit registers (VAES, VPCLMULQDQ)
 * for BearSSL's AES-GCM record layer, where the CPU has them.
 */
#ifndef SNOW_HTTP_TLS_AES_H
#define SNOW_HTTP_TLS_AES_H

#include <bearssl/bearssl.h>
#include <stdbool.h>

/* True when the CPU (and the OS, for the 256-bit register state) offers
 * AVX2, VAES and VPCLMULQDQ. Runs CPUID, which a virtual machine may trap:
 * ask once per configuration (tls.c pick_suites). */
bool http_tls_aes_wide(void);

/* Drop-in replacements for br_aes_x86ni_ctr_vtable and br_ghash_pclmul,
 * with the same results byte for byte; call only when http_tls_aes_wide().
 * The CTR context is a br_aes_x86ni_ctr_keys (its key schedule is
 * BearSSL's). */
extern const br_block_ctr_class http_tls_aes_ctr_wide_vtable;
void http_tls_ghash_wide(void *y, const void *h, const void *data, size_t len);

#endif
