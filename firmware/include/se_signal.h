/*
 * Deterministic integer test signals, identical on every target and reproduced bit for bit by
 * spikeedge.sensors.fake_serial (Python), so that a test can check streamed samples exactly.
 *
 *   RAMP  channel c, sample k: (k + 1000 c) modulo 2^bits, read as a signed value
 *   SINE  amplitude * sin(2 pi (k + c period / 8) / period), by Bhaskara I's rational formula
 *   ECG   a piecewise-linear P-QRS-T beat of `period` samples (channel c shifted by period / 8)
 *
 * Integer division truncates toward zero (C semantics), which the Python twin reproduces.
 */
#ifndef SE_SIGNAL_H
#define SE_SIGNAL_H

#include <stdint.h>

enum se_signal_kind {
    SE_SIG_RAMP = 0,
    SE_SIG_SINE = 1,
    SE_SIG_ECG = 2,
};

typedef struct se_signal {
    uint8_t kind;      /* enum se_signal_kind */
    uint8_t format;    /* enum se_sample_format: RAMP wraps at its width */
    uint8_t channels;
    uint32_t period;   /* samples per cycle (SINE, ECG); >= 8 */
    int32_t amplitude; /* peak value (SINE, ECG); must fit the format */
    uint32_t k;        /* index of the next sample */
} se_signal;

/* Value of channel c at sample k (pure function of the configuration). */
int32_t se_signal_value(const se_signal *s, uint32_t k, uint8_t c);

/* Write the next sample of every channel into values[0..channels) and advance. */
void se_signal_next(se_signal *s, int32_t *values);

#endif /* SE_SIGNAL_H */
