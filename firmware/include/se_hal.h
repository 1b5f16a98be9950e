/*
 * Hardware abstraction of a spikeedge front end. A board provides one HAL file that fills this
 * table (boards/<board>/hal_<board>.c); the device logic (se_device.c) only calls through it.
 */
#ifndef SE_HAL_H
#define SE_HAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct se_hal {
    void *ctx; /* passed to every hook */
    /* Monotonic time in microseconds (any origin). */
    uint64_t (*now_us)(void *ctx);
    /* Read one sample of every channel into values; 1 = ok, 0 = end of a finite recording. */
    int (*read_sample)(void *ctx, int32_t *values);
    /* Rewind a recording on START (may be NULL for a live sensor). */
    void (*restart)(void *ctx);
    /* Non-blocking UART receive: bytes copied into buf (0 when none), negative on failure. */
    long (*uart_read)(void *ctx, uint8_t *buf, size_t cap);
    /* Blocking UART transmit of all len bytes; 0 = ok, negative on failure. */
    int (*uart_write)(void *ctx, const uint8_t *buf, size_t len);
} se_hal;

#endif /* SE_HAL_H */
