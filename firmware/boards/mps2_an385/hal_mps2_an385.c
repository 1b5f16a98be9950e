/*
 * HAL of the Arm MPS2 board with the AN385 FPGA image (Cortex-M3 at 25 MHz), the machine that
 * `qemu-system-arm -M mps2-an385` emulates: UART0 is a CMSDK APB UART, the clock is SysTick,
 * the "ADC" is the built-in deterministic test signal (se_signal). main() lives here too:
 * it is the board's configuration of the device.
 */
#include <stdint.h>

#include "se_device.h"
#include "se_signal.h"

#define SYSCLK_HZ 25000000u
#define BAUD 115200u

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x000u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x004u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x008u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x010u))
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u

/* SysTick (Armv7-M system control space) */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE 0x1u
#define SYST_CSR_TICKINT 0x2u
#define SYST_CSR_CLKSOURCE 0x4u /* processor clock */
#define TICKS_PER_MS (SYSCLK_HZ / 1000u)

void SysTick_Handler(void);

static volatile uint32_t ms_ticks;
static se_signal board_signal;
static se_device device;

void SysTick_Handler(void)
{
    ms_ticks++;
}

static uint64_t board_now_us(void *ctx)
{
    (void)ctx;
    uint32_t ms;
    uint32_t val;
    do {
        ms = ms_ticks;
        val = SYST_CVR;
    } while (ms != ms_ticks);
    return (uint64_t)ms * 1000u + (TICKS_PER_MS - 1u - val) / (TICKS_PER_MS / 1000u);
}

static int board_read_sample(void *ctx, int32_t *values)
{
    se_signal_next(ctx, values);
    return 1;
}

static void board_restart(void *ctx)
{
    ((se_signal *)ctx)->k = 0u;
}

static long board_uart_read(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    size_t n = 0u;
    while (n < cap && (UART_STATE & UART_STATE_RX_FULL)) {
        buf[n++] = (uint8_t)(UART_DATA & 0xFFu);
    }
    return (long)n;
}

static int board_uart_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0u; i < len; i++) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = buf[i];
    }
    return 0;
}

int main(void)
{
    UART_BAUDDIV = SYSCLK_HZ / BAUD;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
    SYST_RVR = TICKS_PER_MS - 1u;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;

    board_signal.kind = SE_SIG_ECG;
    board_signal.format = SE_FMT_S16;
    board_signal.channels = 2u;
    board_signal.period = 288u; /* 75 beats per minute at 360 Hz */
    board_signal.amplitude = 1000;

    const se_hal hal = {
        &board_signal, board_now_us, board_read_sample, board_restart, board_uart_read,
        board_uart_write,
    };
    const se_device_config cfg = {
        .device_id = 0x5E00A385u,
        .rate_hz = 360u,
        .max_rate_hz = 8000u, /* 115200 baud carries about 9 kB/s */
        .format = SE_FMT_S16,
        .channels = 2u,
        .samples_per_frame = 32u,
        .offset = 0,
        .gain_milli = 1000000u, /* the test signal is in microvolts: 1000 counts per mV */
        .max_lag_us = 100000u,
        .autostart = 1u,
        .name = "spikeedge-mps2-an385",
    };
    if (se_device_init(&device, &hal, &cfg) != 0) {
        for (;;) {
        }
    }
    for (;;) {
        (void)se_device_poll(&device);
    }
}
