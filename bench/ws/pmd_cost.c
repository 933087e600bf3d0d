/*
 * snow-bench-pmd-cost: what zlib really holds for one permessage-deflate
 * stream with context takeover, per window size and memory level, counted
 * by the runtime's own zlib allocator (ws_pmd_mem_held), next to the
 * reservation the memory cap charges for it (ws_zin_cost / ws_zout_cost).
 *
 *   bench pmd_cost bits=B inflate_bytes=I inflate_reserved=R deflate_mem=M deflate_bytes=D deflate_reserved=S
 *
 * The inflate figure includes its window, which zlib allocates at the
 * first message (one is inflated here first).
 */
#include <stdio.h>
#include <stdlib.h>

#include "ws/pmd.h"

static void *grow(void *ctx, void *old, size_t cap)
{
    (void)ctx;
    return realloc(old, cap);
}

int main(void)
{
    static const unsigned bits[] = {9, 10, 12, 15}, mems[] = {1, 4, 8, 9};
    static const char doc[] = "{\"id\":1,\"user\":\"alice\",\"text\":\"hello world\"}";
    uint8_t *p = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        p[i] = (uint8_t)doc[i % (sizeof doc - 1)];
    for (size_t b = 0; b < 4; b++) {
        uint8_t *c;
        size_t clen;
        if (ws_deflate_msg(NULL, bits[b], 8, p, 100000, &c, &clen) < 0)
            return 1;
        struct ws_msgbuf out;
        ws_msgbuf_init(&out, NULL, 0, 1 << 20, grow, NULL);
        size_t before = ws_pmd_mem_held();
        struct ws_zin *zi = ws_zin_new(bits[b]);
        if (!zi || ws_inflate_msg(zi, c, clen, true, &out) != 0)
            return 1;
        size_t in_bytes = ws_pmd_mem_held() - before;
        for (size_t m = 0; m < 4; m++) {
            before = ws_pmd_mem_held();
            struct ws_zout *zo = ws_zout_new(bits[b], mems[m]);
            if (!zo)
                return 1;
            printf("bench pmd_cost bits=%u inflate_bytes=%zu inflate_reserved=%zu deflate_mem=%u deflate_bytes=%zu "
                   "deflate_reserved=%zu\n",
                   bits[b], in_bytes, ws_zin_cost(bits[b]), mems[m], ws_pmd_mem_held() - before,
                   ws_zout_cost(bits[b], mems[m]));
            ws_zout_free(zo);
        }
        ws_zin_free(zi);
        free(c);
        free(out.data);
    }
    free(p);
    return 0;
}
