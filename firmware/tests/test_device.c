/* cmocka tests of the device logic (sampler, framing, commands) on a mock HAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "se_device.h"
#include "se_signal.h"

/* ------------------------------------------------------------------ mock board */
typedef struct mock {
    uint64_t now;
    uint64_t limit; /* samples before the recording ends (0 = endless) */
    uint64_t taken;
    int restarts;
    se_signal sig;
    uint8_t rx[256];
    size_t rx_len, rx_pos;
    uint8_t tx[65536];
    size_t tx_len;
} mock;

static mock M;
static se_device dev;

static uint64_t m_now(void *ctx) { return ((mock *)ctx)->now; }

static int m_read(void *ctx, int32_t *values)
{
    mock *m = ctx;
    if (m->limit != 0u && m->taken >= m->limit) {
        return 0;
    }
    m->taken++;
    se_signal_next(&m->sig, values);
    return 1;
}

static void m_restart(void *ctx)
{
    mock *m = ctx;
    m->restarts++;
    m->taken = 0u;
    m->sig.k = 0u;
}

static long m_uart_read(void *ctx, uint8_t *buf, size_t cap)
{
    mock *m = ctx;
    size_t n = m->rx_len - m->rx_pos;
    if (n > cap) {
        n = cap;
    }
    memcpy(buf, m->rx + m->rx_pos, n);
    m->rx_pos += n;
    return (long)n;
}

static int m_uart_write(void *ctx, const uint8_t *buf, size_t len)
{
    mock *m = ctx;
    assert_true(m->tx_len + len <= sizeof m->tx);
    memcpy(m->tx + m->tx_len, buf, len);
    m->tx_len += len;
    return 0;
}

static const se_hal HAL = {&M, m_now, m_read, m_restart, m_uart_read, m_uart_write};

static se_device_config config(void)
{
    se_device_config c = {
        .device_id = 0xABCD0001u, .rate_hz = 1000u, .max_rate_hz = 100000u,
        .format = SE_FMT_S16, .channels = 2u, .samples_per_frame = 10u,
        .offset = 0, .gain_milli = 0u, .max_lag_us = 0u, .autostart = 0u, .name = "mock",
    };
    return c;
}

static int setup(void **state)
{
    (void)state;
    memset(&M, 0, sizeof M);
    M.sig.kind = SE_SIG_RAMP;
    M.sig.format = SE_FMT_S16;
    M.sig.channels = 2u;
    M.sig.period = 8u;
    se_device_config c = config();
    assert_int_equal(se_device_init(&dev, &HAL, &c), 0);
    return 0;
}

static void send_command(uint8_t token, uint8_t opcode, uint32_t arg)
{
    uint8_t p[16];
    se_command c = {token, opcode, arg};
    int n = se_build_command(&c, p, sizeof p);
    long w = se_proto_frame(p, (size_t)n, p, sizeof p, M.rx + M.rx_len, sizeof M.rx - M.rx_len);
    assert_true(w > 0);
    M.rx_len += (size_t)w;
}

/* Packets the device sent since the last call: payloads into out[], their lengths in lens[]. */
typedef struct { uint8_t p[SE_MAX_PAYLOAD + SE_CRC_LEN]; long len; } pkt;
static pkt OUT[64];
static size_t tx_seen;

static size_t take_packets(void)
{
    size_t count = 0u;
    size_t start = tx_seen;
    for (size_t i = tx_seen; i < M.tx_len; i++) {
        if (M.tx[i] != 0u) {
            continue;
        }
        if (i > start) {
            assert_true(count < 64u);
            OUT[count].len = se_proto_unframe(M.tx + start, i - start, OUT[count].p,
                                              sizeof OUT[count].p);
            assert_true(OUT[count].len > 0);
            count++;
        }
        start = i + 1u;
    }
    tx_seen = start;
    return count;
}

static void test_idle_until_start(void **state)
{
    (void)state;
    tx_seen = 0u;
    M.now = 5000000u;
    assert_int_equal(se_device_poll(&dev), UINT32_MAX);
    assert_int_equal(take_packets(), 0u);
    send_command(7, SE_OP_START, 0u);
    se_device_poll(&dev);
    assert_int_equal(take_packets(), 2u);
    se_ack a;
    se_header h;
    assert_int_equal(se_parse_ack(OUT[0].p, (size_t)OUT[0].len, &a), SE_OK);
    assert_int_equal(a.token, 7);
    assert_int_equal(a.status, SE_ACK_OK);
    assert_int_equal(a.value, 1000);
    assert_int_equal(se_parse_header(OUT[1].p, (size_t)OUT[1].len, &h), SE_OK);
    assert_int_equal(h.rate_hz, 1000);
    assert_int_equal(h.channels, 2);
    assert_int_equal(h.stream, 1);
    assert_int_equal(h.name_len, 4);
    assert_int_equal(M.restarts, 1);
}

static void test_frames_at_rate(void **state)
{
    (void)state;
    tx_seen = 0u;
    send_command(1, SE_OP_START, 0u);
    se_device_poll(&dev);
    take_packets();
    /* Sample k is due at k ms; at 9.5 ms samples 0..9 are due: exactly one frame. */
    M.now += 9500u;
    while (se_device_poll(&dev) == 0u) {
    }
    assert_int_equal(take_packets(), 1u);
    se_data d;
    assert_int_equal(se_parse_data(OUT[0].p, (size_t)OUT[0].len, &d), SE_OK);
    assert_int_equal(d.seq, 0);
    assert_int_equal(d.sample_index, 0);
    assert_true(d.t_us == 0u);
    assert_int_equal(d.n, 10);
    for (unsigned k = 0; k < 10u; k++) {
        assert_int_equal(se_sample_get(d.samples + 4u * k, SE_FMT_S16), (int32_t)k);
        assert_int_equal(se_sample_get(d.samples + 4u * k + 2u, SE_FMT_S16), (int32_t)k + 1000);
    }
    M.now += 30000u;
    while (se_device_poll(&dev) == 0u) {
    }
    assert_int_equal(take_packets(), 3u);
    assert_int_equal(se_parse_data(OUT[2].p, (size_t)OUT[2].len, &d), SE_OK);
    assert_int_equal(d.seq, 3);
    assert_int_equal(d.sample_index, 30);
    assert_true(d.t_us == 30000u);
    assert_int_equal(dev.stats.frames_sent, 4);
}

static void test_stop_and_identify(void **state)
{
    (void)state;
    tx_seen = 0u;
    send_command(1, SE_OP_START, 0u);
    se_device_poll(&dev);
    M.now += 4500u; /* 5 samples into the first frame */
    se_device_poll(&dev);
    send_command(2, SE_OP_IDENTIFY, 0u);
    se_device_poll(&dev);
    M.now += 5000u;
    se_device_poll(&dev);
    size_t n = take_packets();
    assert_int_equal(n, 5u); /* ACK, HEADER, ACK, HEADER, DATA */
    se_ack a;
    se_data d;
    assert_int_equal(se_parse_ack(OUT[2].p, (size_t)OUT[2].len, &a), SE_OK);
    assert_int_equal(a.value, 0xABCD0001u);
    /* The HEADER sent by IDENTIFY must not have disturbed the frame being filled. */
    assert_int_equal(se_parse_data(OUT[4].p, (size_t)OUT[4].len, &d), SE_OK);
    for (unsigned k = 0; k < 10u; k++) {
        assert_int_equal(se_sample_get(d.samples + 4u * k, SE_FMT_S16), (int32_t)k);
    }
    send_command(3, SE_OP_STOP, 0u);
    se_device_poll(&dev);
    M.now += 100000u;
    assert_int_equal(se_device_poll(&dev), UINT32_MAX);
    assert_int_equal(take_packets(), 1u);
    assert_int_equal(se_parse_ack(OUT[0].p, (size_t)OUT[0].len, &a), SE_OK);
    assert_int_equal(a.opcode, SE_OP_STOP);
}

static void test_set_rate(void **state)
{
    (void)state;
    tx_seen = 0u;
    se_ack a;
    se_header h;
    send_command(1, SE_OP_SET_RATE, 0u);
    send_command(2, SE_OP_SET_RATE, 100001u);
    send_command(3, SE_OP_SET_RATE, 8000u);
    for (int i = 0; i < 8; i++) {
        se_device_poll(&dev);
    }
    assert_int_equal(take_packets(), 3u);
    assert_int_equal(se_parse_ack(OUT[0].p, (size_t)OUT[0].len, &a), SE_OK);
    assert_int_equal(a.status, SE_ACK_BAD_ARGUMENT);
    assert_int_equal(se_parse_ack(OUT[1].p, (size_t)OUT[1].len, &a), SE_OK);
    assert_int_equal(a.status, SE_ACK_BAD_ARGUMENT);
    assert_int_equal(a.value, 1000);
    assert_int_equal(se_parse_ack(OUT[2].p, (size_t)OUT[2].len, &a), SE_OK);
    assert_int_equal(a.status, SE_ACK_OK);
    assert_int_equal(a.value, 8000);
    /* While streaming, a new rate starts a new stream with its own HEADER. */
    send_command(4, SE_OP_START, 0u);
    se_device_poll(&dev);
    send_command(5, SE_OP_SET_RATE, 4000u);
    se_device_poll(&dev);
    assert_int_equal(take_packets(), 4u);
    assert_int_equal(se_parse_header(OUT[3].p, (size_t)OUT[3].len, &h), SE_OK);
    assert_int_equal(h.rate_hz, 4000);
    assert_int_equal(h.stream, 2);
}

static void test_bad_commands(void **state)
{
    (void)state;
    tx_seen = 0u;
    se_ack a;
    send_command(9, 0x42, 0u); /* unknown opcode */
    /* A COMMAND with a good CRC but the wrong length for SET_RATE. */
    uint8_t p[16] = {SE_PKT_COMMAND, 10, SE_OP_SET_RATE, 1};
    long w = se_proto_frame(p, 4, p, sizeof p, M.rx + M.rx_len, sizeof M.rx - M.rx_len);
    M.rx_len += (size_t)w;
    /* A corrupted command: no ACK (its token cannot be trusted), one rx error. */
    size_t at = M.rx_len;
    send_command(11, SE_OP_START, 0u);
    M.rx[at + 2] ^= 0x01u;
    /* An overlong packet. */
    memset(M.rx + M.rx_len, 0x55, 40);
    M.rx_len += 40u;
    M.rx[M.rx_len++] = 0u;
    for (int i = 0; i < 10; i++) {
        se_device_poll(&dev);
    }
    assert_int_equal(take_packets(), 2u);
    assert_int_equal(se_parse_ack(OUT[0].p, (size_t)OUT[0].len, &a), SE_OK);
    assert_int_equal(a.status, SE_ACK_UNKNOWN_OPCODE);
    assert_int_equal(a.token, 9);
    assert_int_equal(se_parse_ack(OUT[1].p, (size_t)OUT[1].len, &a), SE_OK);
    assert_int_equal(a.status, SE_ACK_BAD_LENGTH);
    assert_int_equal(a.token, 10);
    assert_int_equal(dev.stats.rx_errors, 2);
    assert_int_equal(dev.streaming, 0);
}

static void run_to_end(uint64_t limit, size_t *frames, se_data *last)
{
    tx_seen = M.tx_len;
    M.limit = limit;
    se_device_start(&dev);
    for (int i = 0; i < 100 && !dev.ended; i++) {
        M.now += 10000u;
        se_device_poll(&dev);
    }
    assert_int_equal(dev.ended, 1);
    size_t n = take_packets();
    *frames = n - 1u; /* minus the HEADER */
    assert_int_equal(se_parse_data(OUT[n - 1u].p, (size_t)OUT[n - 1u].len, last), SE_OK);
}

static void test_end_of_recording(void **state)
{
    (void)state;
    size_t frames;
    se_data last;
    run_to_end(25u, &frames, &last);
    assert_int_equal(frames, 3u);
    assert_int_equal(last.n, 5);
    assert_int_equal(last.flags, SE_DATA_FLAG_END);
    assert_int_equal(last.sample_index, 20);
    run_to_end(30u, &frames, &last);
    assert_int_equal(frames, 4u); /* three full frames and an empty END frame */
    assert_int_equal(last.n, 0);
    assert_int_equal(last.flags, SE_DATA_FLAG_END);
    assert_int_equal(last.sample_index, 30);
    assert_int_equal(last.seq, 3);
}

static void test_overrun_skips_and_flags(void **state)
{
    (void)state;
    se_device_config c = config();
    c.max_lag_us = 50000u;
    assert_int_equal(se_device_init(&dev, &HAL, &c), 0);
    tx_seen = 0u;
    se_device_start(&dev);
    M.now += 5500u;
    se_device_poll(&dev); /* 6 samples in the frame */
    M.now += 1000000u;    /* one second stalled */
    se_device_poll(&dev);
    size_t n = take_packets();
    assert_int_equal(n, 2u); /* HEADER and the partial frame flushed before skipping */
    se_data d;
    assert_int_equal(se_parse_data(OUT[1].p, (size_t)OUT[1].len, &d), SE_OK);
    assert_int_equal(d.n, 6);
    assert_int_equal(d.flags, 0);
    assert_true(dev.stats.samples_skipped > 900u);
    M.now += 20000u;
    while (se_device_poll(&dev) == 0u) {
    }
    n = take_packets();
    assert_true(n >= 1u);
    assert_int_equal(se_parse_data(OUT[0].p, (size_t)OUT[0].len, &d), SE_OK);
    assert_int_equal(d.flags, SE_DATA_FLAG_OVERRUN);
    assert_int_equal(d.seq, 1);
    assert_int_equal(d.sample_index, 6u + dev.stats.samples_skipped);
}

static void test_init_rejects_bad_config(void **state)
{
    (void)state;
    se_device_config c = config();
    c.samples_per_frame = 300u; /* 300 x 2 x 2 bytes > 1024 */
    assert_int_equal(se_device_init(&dev, &HAL, &c), -1);
    c = config();
    c.format = 7u;
    assert_int_equal(se_device_init(&dev, &HAL, &c), -1);
    c = config();
    c.rate_hz = 0u;
    assert_int_equal(se_device_init(&dev, &HAL, &c), -1);
    c = config();
    c.channels = 17u;
    assert_int_equal(se_device_init(&dev, &HAL, &c), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_idle_until_start, setup),
        cmocka_unit_test_setup(test_frames_at_rate, setup),
        cmocka_unit_test_setup(test_stop_and_identify, setup),
        cmocka_unit_test_setup(test_set_rate, setup),
        cmocka_unit_test_setup(test_bad_commands, setup),
        cmocka_unit_test_setup(test_end_of_recording, setup),
        cmocka_unit_test_setup(test_overrun_skips_and_flags, setup),
        cmocka_unit_test_setup(test_init_rejects_bad_config, setup),
    };
    return cmocka_run_group_tests_name("device", tests, NULL, NULL);
}
