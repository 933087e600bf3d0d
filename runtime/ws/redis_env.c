/*
 * redis_env.c: the envelope in front of every payload the Redis room
 * backend publishes (layout in rooms_redis.h). Pure: no I/O, no
 * allocation. Fixed little-endian fields, so nodes of any build agree.
 */
#include <errno.h>
#include <string.h>

#include "ws/rooms_redis.h"

#define ENV_MAGIC 0x31524e53u /* "SNR1" read as a little-endian u32 */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void redis_env_encode(unsigned char *h, const struct redis_env *e)
{
    put64(h, ENV_MAGIC | (uint64_t)e->flags << 32);
    put64(h + 8, e->node);
    put64(h + 16, e->epoch);
    put64(h + 24, e->pseq);
    put64(h + 32, e->seq);
    put64(h + 40, e->seq_at);
    put64(h + 48, e->epoch_at);
}

int redis_env_decode(const unsigned char *b, size_t n, struct redis_env *e)
{
    if (n < REDIS_ENV_HEADER)
        return -EINVAL;
    uint64_t w = get64(b);
    if ((uint32_t)w != ENV_MAGIC)
        return -EINVAL;
    e->flags = (uint32_t)(w >> 32);
    e->node = get64(b + 8);
    e->epoch = get64(b + 16);
    e->pseq = get64(b + 24);
    e->seq = get64(b + 32);
    e->seq_at = get64(b + 40);
    e->epoch_at = get64(b + 48);
    e->payload = b + REDIS_ENV_HEADER;
    e->len = n - REDIS_ENV_HEADER;
    return 0;
}
