/*
 * CRC-32/ISO-HDLC (the CRC of zlib, Ethernet, PNG): reflected polynomial 0xEDB88320
 * (0x04C11DB7 unreflected), initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF.
 * Check value: se_crc32("123456789", 9) == 0xCBF43926.
 */
#ifndef SE_CRC32_H
#define SE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0, feed chunks, the result is the CRC of the whole. */
uint32_t se_crc32_update(uint32_t crc, const uint8_t *data, size_t n);

static inline uint32_t se_crc32(const uint8_t *data, size_t n)
{
    return se_crc32_update(0u, data, n);
}

#endif /* SE_CRC32_H */
