/*
 * test_unmask.c: ws_unmask against a byte-at-a-time reference, at every
 * alignment and key phase, and with the phase carried across chunks.
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"

START_TEST(test_unmask_matches_reference)
{
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t *buf = malloc(4096 + 16), *ref = malloc(4096 + 16);
    static const size_t lens[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1000, 4096};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        for (size_t align = 0; align < 16; align++) {
            for (unsigned phase = 0; phase < 4; phase++) {
                for (size_t i = 0; i < n; i++)
                    buf[align + i] = ref[align + i] = (uint8_t)(i * 31 + align);
                for (size_t i = 0; i < n; i++)
                    ref[align + i] ^= key[(phase + i) % 4];
                unsigned end = ws_unmask(buf + align, n, key, phase);
                QCHECK(end == (phase + n) % 4);
                QCHECK(n == 0 || memcmp(buf + align, ref + align, n) == 0);
            }
        }
    }
    free(buf);
    free(ref);
}
END_TEST

START_TEST(test_unmask_phase_across_chunks)
{
    static const uint8_t key[4] = {1, 2, 4, 8};
    uint8_t buf[3000], ref[3000];
    srand(5);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = ref[i] = (uint8_t)rand();
        for (size_t i = 0; i < sizeof buf; i++)
            ref[i] ^= key[i % 4];
        size_t at = 0;
        unsigned phase = 0;
        while (at < sizeof buf) {
            size_t n = (size_t)rand() % 97;
            if (n > sizeof buf - at)
                n = sizeof buf - at;
            phase = ws_unmask(buf + at, n, key, phase);
            at += n;
        }
        ck_assert(memcmp(buf, ref, sizeof buf) == 0);
    }
}
END_TEST

Suite *unmask_suite(void)
{
    Suite *s = suite_create("unmask");
    TCase *tc = tcase_create("unmask");
    tcase_set_timeout(tc, CASE_TIMEOUT);
    tcase_add_test(tc, test_unmask_matches_reference);
    tcase_add_test(tc, test_unmask_phase_across_chunks);
    suite_add_tcase(s, tc);
    return s;
}
