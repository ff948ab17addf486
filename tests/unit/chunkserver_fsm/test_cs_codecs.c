/* Unit tests for the chunkserver's small codecs: peer strings and chunkserver.dat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "chunkserver/cs_heartbeat.h"
#include "curve/errors.h"

static void test_peer_strings(void **state)
{
    (void)state;
    uint64_t id;
    char buf[CS_PEER_STR_MAX];
    assert_int_equal(cs_peer_parse("127.0.0.1:8200:0", &id), 0);
    assert_int_equal(id, ((uint64_t)0x7f000001 << 16) | 8200);
    cs_peer_format(id, true, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:8200:0");
    cs_peer_format(id, false, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:8200");
    uint64_t id2;
    assert_int_equal(cs_peer_parse(buf, &id2), 0);
    assert_int_equal(id, id2);
    assert_int_equal(cs_peer_parse("255.255.255.255:65535:7", &id), 0);
    cs_peer_format(id, false, buf, sizeof(buf));
    assert_string_equal(buf, "255.255.255.255:65535");
    static const char *bad[] = {
        "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
        "1.2.3:80", "host:80", "127.0.0.1:80:", "127.0.0.1:80:x", "127.0.0.1:80:0:0",
        "127.0.0.1:-1", "0123456789012345678901234567890123:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cs_peer_parse(bad[i], &id), -EINVAL);
    assert_int_equal(cs_peer_parse(NULL, &id), -EINVAL);
}

static void test_dat_codec(void **state)
{
    (void)state;
    uint8_t buf[CS_DAT_MAX];
    int len = cs_dat_encode(42, "secret-token", buf, sizeof(buf));
    assert_int_equal(len, 20 + 12);
    uint32_t id = 0;
    char tok[CS_HB_TOKEN_MAX + 1];
    assert_int_equal(cs_dat_decode(buf, (size_t)len, &id, tok, sizeof(tok)), 0);
    assert_int_equal(id, 42);
    assert_string_equal(tok, "secret-token");
    for (int i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(cs_dat_decode(buf, (size_t)len, &id, tok, sizeof(tok)),
                             CURVE_ERR_CORRUPT);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (int l = 0; l < len; l++)
        assert_int_equal(cs_dat_decode(buf, (size_t)l, &id, tok, sizeof(tok)),
                         CURVE_ERR_CORRUPT);
    /* a token that does not fit the caller's buffer is refused, not truncated */
    assert_int_equal(cs_dat_decode(buf, (size_t)len, &id, tok, 5), CURVE_ERR_CORRUPT);
    char big[CS_HB_TOKEN_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cs_dat_encode(1, big, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_strings),
        cmocka_unit_test(test_dat_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
