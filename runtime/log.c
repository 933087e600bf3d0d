#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static int log_level(void)
{
    /* Read once; a racing first read from two threads computes the same value. */
    static volatile int level = -1;
    int l = level;
    if (l >= 0)
        return l;
    const char *s = getenv("SNOW_LOG");
    l = RT_LOG_WARN;
    if (s) {
        if (!strcmp(s, "error"))
            l = RT_LOG_ERROR;
        else if (!strcmp(s, "info"))
            l = RT_LOG_INFO;
        else if (!strcmp(s, "debug"))
            l = RT_LOG_DEBUG;
    }
    level = l;
    return l;
}

bool rt_log_enabled(enum rt_log_level level)
{
    return (int)level <= log_level();
}

void rt_log(enum rt_log_level level, const char *fmt, ...)
{
    if (!rt_log_enabled(level))
        return;
    /* One fprintf call per line so lines from different workers do not interleave. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "snow-rt: %s\n", line);
}
