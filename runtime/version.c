#include "snow_rt.h"

uint32_t snow_rt_abi_version(void)
{
    return SNOW_RT_ABI_VERSION;
}
