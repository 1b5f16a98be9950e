/*
 * The front-end device: a sampler that fills DATA frames at a fixed rate and a command handler.
 * One statically allocated se_device per board; se_device_init() once, then se_device_poll()
 * from the main loop. Nothing is allocated.
 */
#ifndef SE_DEVICE_H
#define SE_DEVICE_H

#include <stdint.h>

#include "se_hal.h"
#include "se_proto.h"

#define SE_MAX_CHANNELS 16u
#define SE_RX_MAX 32u /* largest encoded command accepted (a command is at most 12 bytes) */

typedef struct se_device_config {
    uint32_t device_id;
    uint32_t rate_hz;     /* initial sample rate */
    uint32_t max_rate_hz; /* SET_RATE above this is refused */
    uint8_t format;       /* enum se_sample_format */
    uint8_t channels;
    uint16_t samples_per_frame;
    int32_t offset;       /* reported in the HEADER */
    uint32_t gain_milli;  /* reported in the HEADER */
    uint32_t max_lag_us;  /* when the sampler falls further behind, skip samples (0 = never) */
    uint8_t autostart;    /* stream from boot without waiting for START */
    const char *name;     /* at most 32 ASCII characters */
} se_device_config;

typedef struct se_device_stats {
    uint32_t frames_sent;
    uint32_t samples_sent;
    uint32_t samples_skipped; /* overruns: samples dropped because the sampler fell behind */
    uint32_t rx_errors;       /* command packets with bad COBS, CRC, type or an overlong packet */
    uint32_t commands;        /* commands acknowledged */
    uint32_t tx_errors;
} se_device_stats;

typedef struct se_device {
    se_hal hal;
    se_device_config cfg;
    se_device_stats stats;
    uint8_t streaming;
    uint8_t ended;
    uint8_t stream;      /* stream id, incremented by every (re)start */
    uint8_t frame_flags; /* flags of the frame being filled */
    uint16_t fill;       /* samples in the frame being filled */
    uint32_t seq;
    uint64_t k;          /* samples taken or skipped since the stream started */
    uint64_t frame_k;    /* k of the first sample in the frame being filled */
    uint64_t t_start_us; /* hal.now_us() at START */
    uint8_t rx_len;
    uint8_t rx_overflow;
    uint8_t rx[SE_RX_MAX];
    uint8_t payload[SE_MAX_PAYLOAD + SE_CRC_LEN]; /* the DATA frame being filled */
    uint8_t ctl[SE_HEADER_FIXED_LEN + SE_HEADER_NAME_MAX + SE_CRC_LEN]; /* HEADER and ACK */
    uint8_t wire[SE_MAX_WIRE + 1u]; /* a leading delimiter, then the framed packet */
} se_device;

/* Validate the configuration and reset the device. Returns 0, or -1 for a bad configuration. */
int se_device_init(se_device *d, const se_hal *hal, const se_device_config *cfg);

/*
 * Do one round of work: handle received command bytes and take the samples that are due (at
 * most one frame's worth). Returns the microseconds until the next sample is due (0 when
 * behind), or UINT32_MAX when not streaming.
 */
uint32_t se_device_poll(se_device *d);

/* Feed one received byte to the command decoder (se_device_poll does this from the UART). */
void se_device_rx_byte(se_device *d, uint8_t b);

/* Start (or restart) streaming now, as the START command does, without an ACK. */
void se_device_start(se_device *d);

#endif /* SE_DEVICE_H */
