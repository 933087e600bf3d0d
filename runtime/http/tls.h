/*
 * tls.h: TLS server configuration (loaded once per server from PEM files,
 * then shared read-only by every connection) and the TLS stream.
 */
#ifndef SNOW_HTTP_TLS_H
#define SNOW_HTTP_TLS_H

#include "http/stream.h"

struct http_tls_config;

/* Loads the certificate chain (leaf first) and the RSA or EC private key.
 * Reads the files with ordinary blocking I/O: call it at start-up, not from
 * a connection actor. Returns 0 or SNOW_ETLS / -errno, with a log line
 * saying what was wrong. */
int http_tls_config_load(struct http_tls_config **out, const char *cert_file, const char *key_file);
void http_tls_config_free(struct http_tls_config *cfg);

/* A TLS 1.2 server stream over io. The handshake runs lazily inside the first
 * read or write, parking on the poller like any other I/O. The ~33 KiB record
 * buffers live in the returned heap object. After a read that found the
 * socket empty, reads make no system call (-EAGAIN) until the stream's wait
 * or a hibernation on its io has seen the socket readable; likewise after a
 * send that found the socket full, no send is made (writev and flush say
 * -EAGAIN) until one has seen it writable. NULL on ENOMEM. */
struct http_stream *http_stream_tls(SnowIo *io, const struct http_tls_config *cfg);

#endif
