/* cmocka tests of CRC-32/ISO-HDLC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "protocol_vectors.h"
#include "se_crc32.h"

static void test_check_value(void **state)
{
    (void)state;
    /* The catalogue check value of CRC-32/ISO-HDLC. */
    assert_int_equal(se_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(se_crc32(NULL, 0), 0u);
}

static void test_incremental(void **state)
{
    (void)state;
    const uint8_t *s = (const uint8_t *)"123456789";
    uint32_t crc = se_crc32_update(0u, s, 4);
    crc = se_crc32_update(crc, s + 4, 5);
    assert_int_equal(crc, 0xCBF43926u);
}

static void test_shared_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VECTORS(CRC_VECTORS); i++) {
        assert_int_equal(se_crc32(CRC_VECTORS[i].data, CRC_VECTORS[i].len), CRC_VECTORS[i].crc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_shared_vectors),
    };
    return cmocka_run_group_tests_name("crc32", tests, NULL, NULL);
}
