#include <string.h>

#include "rt.h"

const char *snow_strerror(int err)
{
    switch (err) {
#define SNOW_ERR_CASE_(name, value, msg) \
    case value:                          \
        return msg;
        SNOW_ERROR_TABLE(SNOW_ERR_CASE_)
#undef SNOW_ERR_CASE_
    default:
        break;
    }
    if (err == 0)
        return "success";
    if (err < 0 && err > -4096) {
        /* strerrordesc_np is thread-safe and never formats into a buffer. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}
