/*
 * rt.h: what every part of the runtime shares: the ABI header, the monotonic
 * clock, logging, and a few compiler helpers. Internal cross-file symbols
 * carry a module prefix (rt_, actor_, http_, ws_); only SNOW_API symbols are
 * exported from the shared object.
 */
#ifndef SNOW_RT_INTERNAL_H
#define SNOW_RT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "snow_rt.h"

#define RT_LIKELY(x) __builtin_expect(!!(x), 1)
#define RT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RT_NOINLINE __attribute__((noinline))

#if defined(__SANITIZE_ADDRESS__)
#define RT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define RT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RT_TSAN 1
#endif
#endif

/*
 * How the runtime's parsers answer (http_parse_request, http_chunked_decode,
 * ws_decoder_next), after picohttpparser:
 *
 *   >= 0                 something is complete; the value is the number of
 *                        input bytes it took (0 is possible: an event that
 *                        needed no new byte). The caller advances by it.
 *   RT_PARSE_INCOMPLETE  nothing is complete yet and every input byte has
 *                        been examined; supply more. The streaming decoders
 *                        (chunked, WebSocket) have then taken all len bytes
 *                        into their state, so the caller drops them; the
 *                        head parser, whose results are views into the
 *                        buffer, is called again with the same bytes plus
 *                        the new ones and resumes where it stopped.
 *   RT_PARSE_ERROR       the input is invalid. The parser's state says
 *                        how to answer (an HTTP status or a WebSocket close
 *                        code) and keeps saying it: errors are sticky.
 *
 * Other out-parameters (decoded bytes, an event) are filled on every
 * return where the parser documents them.
 */
#define RT_PARSE_ERROR (-1)
#define RT_PARSE_INCOMPLETE (-2)

/* Monotonic time. Inline: the WebSocket loop and the poller read the
 * clock once or twice per message, and the call around the vDSO's
 * clock_gettime was as many instructions as the read itself. */
static inline int64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Open addressing with backward-shift deletion (ws/table.c,
 * ws/room_members.c): with a hole at slot i, the entry at slot j further
 * along the same probe run (wrapping), whose home slot is home, moves into
 * the hole unless home lies cyclically in (i, j]. */
static inline bool rt_probe_moves(size_t i, size_t j, size_t home)
{
    return i <= j ? !(i < home && home <= j) : !(i < home || home <= j);
}

/* Logging to stderr, prefixed "snow-rt: ". Level from SNOW_LOG
 * (error, warn, info, debug; default warn). */
enum rt_log_level { RT_LOG_ERROR, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG };
void rt_log(enum rt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool rt_log_enabled(enum rt_log_level level);

/* Reads an integer from the environment; returns def when unset or invalid. */
long rt_env_long(const char *name, long def, long min, long max);

#endif
