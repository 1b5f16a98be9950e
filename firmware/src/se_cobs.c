/* COBS encoder and decoder; see se_cobs.h. */
#include "se_cobs.h"

size_t se_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    /* Invariant: dst[code_at] is the code byte of the current block, which so far holds
     * (code - 1) non-zero data bytes copied after it. */
    size_t out = 1u;
    size_t code_at = 0u;
    uint8_t code = 1u;

    if (cap < SE_COBS_MAX_ENCODED(n)) {
        return 0u;
    }
    for (size_t i = 0u; i < n; i++) {
        if (src[i] == 0u) {
            dst[code_at] = code;
            code_at = out++;
            code = 1u;
        } else {
            dst[out++] = src[i];
            code++;
            if (code == 0xFFu) {
                /* A full block of 254 data bytes: close it; the next block starts here. */
                dst[code_at] = code;
                code_at = out++;
                code = 1u;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

long se_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t in = 0u;
    size_t out = 0u;

    while (in < n) {
        uint8_t code = src[in++];
        if (code == 0u) {
            return -1;
        }
        size_t run = (size_t)code - 1u;
        if (run > n - in || out + run > cap) {
            return -1;
        }
        for (size_t k = 0u; k < run; k++) {
            uint8_t b = src[in + k];
            if (b == 0u) {
                return -1;
            }
            dst[out + k] = b;
        }
        in += run;
        out += run;
        /* A block shorter than 254 data bytes stands for "data, then a zero", except at the
         * very end of the packet, where the implicit zero is dropped. */
        if (code != 0xFFu && in < n) {
            if (out >= cap) {
                return -1;
            }
            dst[out++] = 0u;
        }
    }
    return (long)out;
}
