/*
 * Consistent Overhead Byte Stuffing (COBS).
 *
 * The encoded form of a buffer contains no 0x00 byte, so 0x00 can delimit packets on the wire.
 * Overhead is at most one byte per 254 input bytes plus one: se_cobs_max_encoded(n).
 * Both functions are pure: no I/O, no allocation, caller-owned buffers.
 */
#ifndef SE_COBS_H
#define SE_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoded size of n input bytes (without the 0x00 delimiter). */
#define SE_COBS_MAX_ENCODED(n) ((n) + ((n) / 254u) + 1u)

/*
 * Encode src[0..n) into dst (capacity cap). Returns the encoded length, or 0 when dst is too
 * small. The 0x00 delimiter is not written.
 */
size_t se_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/*
 * Decode src[0..n) (one packet, without its delimiter) into dst (capacity cap). Returns the
 * decoded length, or -1 when the input is not valid COBS (a 0x00 byte inside, a code byte that
 * points past the end) or dst is too small. dst may equal src (in-place decoding).
 */
long se_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

#endif /* SE_COBS_H */
