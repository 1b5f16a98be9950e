/* Sampler and command handler of a front end; see se_device.h. */
#include "se_device.h"

#include <string.h>

/*
 * Frame buf[0..len) (which has room for the CRC after it) and transmit it. Control packets
 * (ACK, HEADER) get an extra leading delimiter, so that a host that has just opened the port
 * in the middle of a DATA frame still receives them.
 */
static void send_payload(se_device *d, uint8_t *buf, size_t len, size_t cap, int lead)
{
    d->wire[0] = 0u;
    long n = se_proto_frame(buf, len, buf, cap, d->wire + 1, sizeof d->wire - 1u);
    const uint8_t *start = lead ? d->wire : d->wire + 1;
    if (n < 0 || d->hal.uart_write(d->hal.ctx, start, (size_t)n + (lead ? 1u : 0u)) != 0) {
        d->stats.tx_errors++;
    }
}

static void send_ack(se_device *d, uint8_t token, uint8_t opcode, uint8_t status, uint32_t value)
{
    se_ack a = {token, opcode, status, value};
    int len = se_build_ack(&a, d->ctl, sizeof d->ctl);
    if (len > 0) {
        send_payload(d, d->ctl, (size_t)len, sizeof d->ctl, 1);
    }
}

static void send_header(se_device *d)
{
    se_header h;
    memset(&h, 0, sizeof h);
    h.version = SE_PROTO_VERSION;
    h.stream = d->stream;
    h.format = d->cfg.format;
    h.channels = d->cfg.channels;
    h.samples_per_frame = d->cfg.samples_per_frame;
    h.device_id = d->cfg.device_id;
    h.rate_hz = d->cfg.rate_hz;
    h.offset = d->cfg.offset;
    h.gain_milli = d->cfg.gain_milli;
    size_t name_len = d->cfg.name != NULL ? strlen(d->cfg.name) : 0u;
    if (name_len > SE_HEADER_NAME_MAX) {
        name_len = SE_HEADER_NAME_MAX;
    }
    h.name_len = (uint8_t)name_len;
    if (name_len > 0u) {
        memcpy(h.name, d->cfg.name, name_len);
    }
    int len = se_build_header(&h, d->ctl, sizeof d->ctl);
    if (len > 0) {
        send_payload(d, d->ctl, (size_t)len, sizeof d->ctl, 1);
    }
}

/* Nominal device time of sample k of the stream, in microseconds since START. */
static uint64_t sample_time_us(const se_device *d, uint64_t k)
{
    return k * 1000000u / d->cfg.rate_hz;
}

static void send_frame(se_device *d)
{
    se_data f;
    f.stream = d->stream;
    f.flags = d->frame_flags;
    f.format = d->cfg.format;
    f.channels = d->cfg.channels;
    f.n = d->fill;
    f.seq = d->seq;
    f.sample_index = (uint32_t)d->frame_k;
    f.t_us = sample_time_us(d, d->frame_k);
    f.samples = d->payload + SE_DATA_FIXED_LEN; /* already packed there */
    int len = se_build_data(&f, d->payload, sizeof d->payload);
    if (len > 0) {
        send_payload(d, d->payload, (size_t)len, sizeof d->payload, 0);
        d->stats.frames_sent++;
        d->stats.samples_sent += d->fill;
    }
    d->seq++;
    d->fill = 0u;
    d->frame_flags = 0u;
}

static void begin_stream(se_device *d)
{
    d->stream++;
    d->streaming = 1u;
    d->ended = 0u;
    d->seq = 0u;
    d->k = 0u;
    d->frame_k = 0u;
    d->fill = 0u;
    d->frame_flags = 0u;
    d->t_start_us = d->hal.now_us(d->hal.ctx);
    send_header(d);
}

void se_device_start(se_device *d)
{
    if (d->hal.restart != NULL) {
        d->hal.restart(d->hal.ctx);
    }
    begin_stream(d);
}

int se_device_init(se_device *d, const se_hal *hal, const se_device_config *cfg)
{
    unsigned size = se_format_size(cfg->format);
    if (hal == NULL || hal->now_us == NULL || hal->read_sample == NULL ||
        hal->uart_write == NULL || size == 0u || cfg->channels == 0u ||
        cfg->channels > SE_MAX_CHANNELS || cfg->samples_per_frame == 0u ||
        (uint32_t)cfg->samples_per_frame * cfg->channels * size > SE_DATA_MAX_SAMPLE_BYTES ||
        cfg->rate_hz == 0u || cfg->rate_hz > cfg->max_rate_hz) {
        return -1;
    }
    memset(d, 0, sizeof *d);
    d->hal = *hal;
    d->cfg = *cfg;
    if (cfg->autostart) {
        se_device_start(d);
    }
    return 0;
}

static void handle_command(se_device *d, const se_command *c)
{
    d->stats.commands++;
    switch (c->opcode) {
    case SE_OP_START:
        send_ack(d, c->token, c->opcode, SE_ACK_OK, d->cfg.rate_hz);
        se_device_start(d);
        break;
    case SE_OP_STOP:
        d->streaming = 0u;
        d->fill = 0u;
        send_ack(d, c->token, c->opcode, SE_ACK_OK, 0u);
        break;
    case SE_OP_SET_RATE:
        if (c->arg == 0u || c->arg > d->cfg.max_rate_hz) {
            send_ack(d, c->token, c->opcode, SE_ACK_BAD_ARGUMENT, d->cfg.rate_hz);
            break;
        }
        d->cfg.rate_hz = c->arg;
        send_ack(d, c->token, c->opcode, SE_ACK_OK, d->cfg.rate_hz);
        if (d->streaming) {
            /* A new rate starts a new stream (new HEADER, seq and time from 0). */
            begin_stream(d);
        }
        break;
    case SE_OP_IDENTIFY:
        send_ack(d, c->token, c->opcode, SE_ACK_OK, d->cfg.device_id);
        send_header(d);
        break;
    default:
        send_ack(d, c->token, c->opcode, SE_ACK_UNKNOWN_OPCODE, 0u);
        break;
    }
}

static void handle_packet(se_device *d)
{
    uint8_t buf[SE_RX_MAX];
    long n = se_proto_unframe(d->rx, d->rx_len, buf, sizeof buf);
    if (n < 0 || buf[0] != SE_PKT_COMMAND) {
        d->stats.rx_errors++;
        return;
    }
    se_command c;
    if (se_parse_command(buf, (size_t)n, &c) != SE_OK) {
        if (n >= 3) {
            send_ack(d, buf[1], buf[2], SE_ACK_BAD_LENGTH, 0u);
        } else {
            d->stats.rx_errors++;
        }
        return;
    }
    handle_command(d, &c);
}

void se_device_rx_byte(se_device *d, uint8_t b)
{
    if (b == 0u) {
        if (d->rx_overflow) {
            d->stats.rx_errors++;
        } else if (d->rx_len > 0u) {
            handle_packet(d);
        }
        d->rx_len = 0u;
        d->rx_overflow = 0u;
        return;
    }
    if (d->rx_len >= SE_RX_MAX) {
        d->rx_overflow = 1u;
        return;
    }
    d->rx[d->rx_len++] = b;
}

uint32_t se_device_poll(se_device *d)
{
    uint8_t buf[16];
    if (d->hal.uart_read != NULL) {
        long n = d->hal.uart_read(d->hal.ctx, buf, sizeof buf);
        for (long i = 0; i < n; i++) {
            se_device_rx_byte(d, buf[i]);
        }
    }
    if (!d->streaming) {
        return UINT32_MAX;
    }
    uint64_t now = d->hal.now_us(d->hal.ctx) - d->t_start_us;
    if (d->cfg.max_lag_us != 0u && now > sample_time_us(d, d->k) + d->cfg.max_lag_us) {
        /* Fell behind (the link is slower than the sensor): drop the late samples, as a
         * hardware FIFO would, and flag the next frame. */
        uint64_t target = now * d->cfg.rate_hz / 1000000u;
        int32_t skip[SE_MAX_CHANNELS];
        if (d->fill > 0u) {
            send_frame(d);
        }
        while (d->k < target) {
            if (d->hal.read_sample(d->hal.ctx, skip) == 0) {
                break;
            }
            d->k++;
            d->stats.samples_skipped++;
        }
        d->frame_flags |= SE_DATA_FLAG_OVERRUN;
    }
    const unsigned size = se_format_size(d->cfg.format);
    for (unsigned budget = d->cfg.samples_per_frame; budget > 0u; budget--) {
        uint64_t due = sample_time_us(d, d->k);
        if (due > now) {
            uint64_t wait = due - now;
            return wait > UINT32_MAX - 1u ? UINT32_MAX - 1u : (uint32_t)wait;
        }
        int32_t values[SE_MAX_CHANNELS];
        if (d->hal.read_sample(d->hal.ctx, values) == 0) {
            /* End of a finite recording: send what is left, flagged as the end. */
            d->frame_flags |= SE_DATA_FLAG_END;
            if (d->fill > 0u) {
                send_frame(d);
            } else {
                /* An empty frame still carries the END flag. */
                d->frame_k = d->k;
                send_frame(d);
            }
            d->streaming = 0u;
            d->ended = 1u;
            return UINT32_MAX;
        }
        if (d->fill == 0u) {
            d->frame_k = d->k;
        }
        uint8_t *dst = d->payload + SE_DATA_FIXED_LEN + (size_t)d->fill * d->cfg.channels * size;
        for (unsigned c = 0u; c < d->cfg.channels; c++) {
            se_sample_put(dst + c * size, d->cfg.format, values[c]);
        }
        d->fill++;
        d->k++;
        if (d->fill == d->cfg.samples_per_frame) {
            send_frame(d);
        }
    }
    return 0u;
}
