/* Deterministic integer test signals; see se_signal.h. */
#include "se_signal.h"

#include "se_proto.h"

/* ECG template: breakpoints (phase in 1/1000 of the period, value in 1/1000 of amplitude). */
static const int16_t ECG_T[] = {0, 120, 160, 200, 260, 280, 300, 320, 340, 480, 560, 640, 1000};
static const int16_t ECG_V[] = {0, 0, 150, 0, 0, -100, 1000, -250, 0, 0, 300, 0, 0};
#define ECG_POINTS (sizeof(ECG_T) / sizeof(ECG_T[0]))

static int32_t sine_value(int64_t amp, uint32_t period, uint32_t phase)
{
    /* Bhaskara I: sin(x) ~ 16 x (pi - x) / (5 pi^2 - 4 x (pi - x)) on [0, pi]; with
     * x = pi u / h this is 16 u (h - u) / (5 h^2 - 4 u (h - u)). */
    int64_t h = (int64_t)(period / 2u);
    int64_t u = (int64_t)phase;
    int64_t sign = 1;
    if (u >= h) {
        u -= h;
        sign = -1;
    }
    int64_t p = u * (h - u);
    return (int32_t)(sign * (amp * 16 * p / (5 * h * h - 4 * p)));
}

static int32_t ecg_value(int64_t amp, uint32_t period, uint32_t phase)
{
    /* Position in thousandths of a sample period: x = 1000 phase, segment bounds T[i] period. */
    int64_t x = (int64_t)phase * 1000;
    int64_t per = (int64_t)period;
    for (unsigned i = 0u; i + 1u < ECG_POINTS; i++) {
        int64_t x0 = (int64_t)ECG_T[i] * per;
        int64_t x1 = (int64_t)ECG_T[i + 1u] * per;
        if (x < x1) {
            int64_t v = ECG_V[i] + ((int64_t)ECG_V[i + 1u] - ECG_V[i]) * (x - x0) / (x1 - x0);
            return (int32_t)(amp * v / 1000);
        }
    }
    return 0;
}

int32_t se_signal_value(const se_signal *s, uint32_t k, uint8_t c)
{
    uint32_t shift = s->period / 8u;
    switch (s->kind) {
    case SE_SIG_SINE:
        return sine_value(s->amplitude, s->period,
                          (uint32_t)(((uint64_t)k + (uint64_t)c * shift) % s->period));
    case SE_SIG_ECG:
        return ecg_value(s->amplitude, s->period,
                         (uint32_t)(((uint64_t)k + (uint64_t)c * shift) % s->period));
    case SE_SIG_RAMP:
    default: {
        unsigned bits = 8u * se_format_size(s->format);
        uint32_t u = k + 1000u * c;
        if (bits < 32u) {
            uint32_t m = 1u << bits;
            u &= m - 1u;
            return u >= m / 2u ? (int32_t)u - (int32_t)m : (int32_t)u;
        }
        return (u & 0x80000000u) ? -(int32_t)(~u) - 1 : (int32_t)u;
    }
    }
}

void se_signal_next(se_signal *s, int32_t *values)
{
    for (uint8_t c = 0u; c < s->channels; c++) {
        values[c] = se_signal_value(s, s->k, c);
    }
    s->k++;
}
