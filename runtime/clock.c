#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "rt.h"

int64_t snow_now_ms(void)
{
    return rt_now_ns() / 1000000;
}

long rt_env_long(const char *name, long def, long min, long max)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return def;
    return v;
}
