#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/mman.h>

#include "common/crc32c.h"

/* Bitwise reference CRC-32C (reflected polynomial 0x82F63B78), chainable like the real one. */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void test_known_vectors(void **state)
{
    assert_int_equal(curve_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(curve_crc32c(0, "", 0), 0u);
    assert_int_equal(curve_crc32c(0, NULL, 0), 0u);
    /* RFC 3720 B.4: 32 bytes of zeros / ones / incrementing / decrementing */
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    assert_int_equal(curve_crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(curve_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(curve_crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(curve_crc32c(0, b, 32), 0x113FDB5Cu);
}

static void test_reference_and_chaining(void **state)
{
    unsigned seed = 12345;
    printf("seed %u\n", seed);
    srand(seed);
    enum { N = 5000 };
    uint8_t *buf = malloc(N + 16);
    assert_non_null(buf);
    for (int i = 0; i < N + 16; i++)
        buf[i] = (uint8_t)rand();
    for (int iter = 0; iter < 300; iter++) {
        size_t off = (size_t)rand() % 16; /* unaligned starts */
        size_t len = (size_t)rand() % N;
        uint32_t want = ref_crc32c(0, buf + off, len);
        assert_int_equal(curve_crc32c(0, buf + off, len), want);
        size_t cut = len ? (size_t)rand() % len : 0;
        uint32_t c = curve_crc32c(0, buf + off, cut);
        c = curve_crc32c(c, buf + off + cut, len - cut);
        assert_int_equal(c, want);
        /* non-zero seed chaining matches the reference too */
        assert_int_equal(curve_crc32c(0xdeadbeef, buf + off, len),
                         ref_crc32c(0xdeadbeef, buf + off, len));
    }
    free(buf);
}

static void test_detects_change(void **state)
{
    uint8_t b[4096];
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 7);
    uint32_t a = curve_crc32c(0, b, sizeof(b));
    b[1000] ^= 1;
    assert_int_not_equal(curve_crc32c(0, b, sizeof(b)), a);
}

/* Lengths above INT_MAX must be handled (ISA-L takes an int). A 3 GiB anonymous mapping of
 * zero pages costs no memory; the one-call result must equal 512 MiB pieces chained. */
static void test_len_above_int_max(void **state)
{
    const size_t len = 3ull << 30, piece = 512ull << 20;
    uint8_t *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        skip();
    uint32_t whole = curve_crc32c(0, p, len);
    uint32_t c = 0;
    for (size_t off = 0; off < len; off += piece)
        c = curve_crc32c(c, p + off, piece);
    assert_int_equal(whole, c);
    /* and it is not the CRC of a shorter prefix (the length really got consumed) */
    assert_int_not_equal(whole, curve_crc32c(0, p, len - piece));
    munmap(p, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_reference_and_chaining),
        cmocka_unit_test(test_detects_change),
        cmocka_unit_test(test_len_above_int_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
