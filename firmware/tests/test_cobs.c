/* cmocka tests of the COBS encoder and decoder (hand-checked cases; vectors: test_vectors.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "se_cobs.h"

static void check_roundtrip(const uint8_t *raw, size_t n)
{
    uint8_t enc[700];
    uint8_t dec[700];
    size_t e = se_cobs_encode(raw, n, enc, sizeof enc);
    assert_true(e > 0u);
    assert_true(e <= SE_COBS_MAX_ENCODED(n));
    for (size_t i = 0; i < e; i++) {
        assert_int_not_equal(enc[i], 0);
    }
    long d = se_cobs_decode(enc, e, dec, sizeof dec);
    assert_int_equal(d, (long)n);
    assert_memory_equal(dec, raw, n > 0 ? n : 1);
}

static void test_known_examples(void **state)
{
    (void)state;
    /* Examples worked by hand from the COBS definition. */
    const uint8_t in1[] = {0x00};
    const uint8_t out1[] = {0x01, 0x01};
    const uint8_t in2[] = {0x11, 0x22, 0x00, 0x33};
    const uint8_t out2[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    uint8_t buf[16];
    assert_int_equal(se_cobs_encode(in1, 1, buf, sizeof buf), 2);
    assert_memory_equal(buf, out1, 2);
    assert_int_equal(se_cobs_encode(in2, 4, buf, sizeof buf), 5);
    assert_memory_equal(buf, out2, 5);
    assert_int_equal(se_cobs_encode(NULL, 0, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 0x01);
}

static void test_roundtrip_lengths(void **state)
{
    (void)state;
    uint8_t raw[600];
    for (size_t n = 0; n <= sizeof raw; n += (n < 300 ? 1u : 37u)) {
        for (size_t i = 0; i < n; i++) {
            raw[i] = (uint8_t)((i * 31u + n) % 7u == 0u ? 0u : (i * 13u + 1u));
        }
        check_roundtrip(raw, n);
        memset(raw, 0xAB, n);
        check_roundtrip(raw, n);
        memset(raw, 0x00, n);
        check_roundtrip(raw, n);
    }
}

static void test_decode_rejects_invalid(void **state)
{
    (void)state;
    uint8_t out[16];
    const uint8_t past_end[] = {0x05, 0x01, 0x02};
    const uint8_t zero_code[] = {0x02, 0x01, 0x00};
    const uint8_t zero_in_block[] = {0x04, 0x01, 0x00, 0x02};
    assert_int_equal(se_cobs_decode(past_end, sizeof past_end, out, sizeof out), -1);
    assert_int_equal(se_cobs_decode(zero_code, sizeof zero_code, out, sizeof out), -1);
    assert_int_equal(se_cobs_decode(zero_in_block, sizeof zero_in_block, out, sizeof out), -1);
}

static void test_buffer_limits(void **state)
{
    (void)state;
    const uint8_t raw[] = {1, 2, 3, 0, 4};
    uint8_t enc[8];
    uint8_t small[3];
    assert_int_equal(se_cobs_encode(raw, sizeof raw, enc, 5), 0); /* needs 6 */
    size_t e = se_cobs_encode(raw, sizeof raw, enc, sizeof enc);
    assert_int_equal(se_cobs_decode(enc, e, small, sizeof small), -1);
}

static void test_decode_in_place(void **state)
{
    (void)state;
    const uint8_t raw[] = {0, 9, 8, 0, 0, 7};
    uint8_t buf[16];
    size_t e = se_cobs_encode(raw, sizeof raw, buf, sizeof buf);
    assert_int_equal(se_cobs_decode(buf, e, buf, sizeof buf), (long)sizeof raw);
    assert_memory_equal(buf, raw, sizeof raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_examples),
        cmocka_unit_test(test_roundtrip_lengths),
        cmocka_unit_test(test_decode_rejects_invalid),
        cmocka_unit_test(test_buffer_limits),
        cmocka_unit_test(test_decode_in_place),
    };
    return cmocka_run_group_tests_name("cobs", tests, NULL, NULL);
}
