/* Inner loops of spikeedge.sensors._fastsig written in plain C (restrict pointers, so the
 * compiler vectorizes them). First, a bank of IIR band-pass filters run side by side
 * (_fastsig.filterbank).
 *
 * B filters, each a cascade of S second-order sections, all fed the same input x[n]. The
 * coefficients are band-minor, coef[S][6][B] (b0 b1 b2 a0 a1 a2 per section, a0 = 1 unused),
 * the states zi[S][2][B] (transposed direct form II, as scipy.signal.sosfilt), and the output
 * out[n][B]. The band loop is innermost and its iterations are independent, so the compiler
 * runs it in SIMD lanes; every lane does exactly the operations of scipy's _sosfilt, in the
 * same order, and the file is compiled with -ffp-contract=off (no fused multiply-add), so each
 * value is bit-identical to SciPy's whatever the vector width.
 *
 * Loop invariant: after sample i, zi holds every filter's state after x[0..i].
 */
#ifndef SPIKEEDGE_FASTSIG_LOOPS_H
#define SPIKEEDGE_FASTSIG_LOOPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static int se_filterbank_f64(const double *restrict x, ptrdiff_t n,
                             const double *restrict coef, double *restrict zi,
                             int S, int B, double *restrict out)
{
    int finite = 1;
    for (ptrdiff_t i = 0; i < n; i++) {
        double *restrict row = out + i * (ptrdiff_t)B;
        const double xi = x[i];
        for (int b = 0; b < B; b++)
            row[b] = xi;
        for (int s = 0; s < S; s++) {
            const double *restrict b0 = coef + (ptrdiff_t)(6 * s) * B;
            const double *restrict b1 = b0 + B;
            const double *restrict b2 = b0 + 2 * B;
            const double *restrict a1 = b0 + 4 * B;
            const double *restrict a2 = b0 + 5 * B;
            double *restrict z0 = zi + (ptrdiff_t)(2 * s) * B;
            double *restrict z1 = z0 + B;
            for (int b = 0; b < B; b++) {
                const double xc = row[b];
                const double xn = b0[b] * xc + z0[b];
                z0[b] = b1[b] * xc - a1[b] * xn + z1[b];
                z1[b] = b2[b] * xc - a2[b] * xn;
                row[b] = xn;
            }
        }
    }
    for (ptrdiff_t k = 0; k < n * (ptrdiff_t)B; k++)
        finite &= isfinite(out[k]) != 0;
    return finite;
}

/* The step binner's sum (sensors.encoders._StepBinner, _fastsig.lif_encode): for rows
 * r = 0..rows-1 of x[rows][C], acc[c] += (int64) rint(clamp(x[r][c] * qscale, -qlimit,
 * qlimit)). Integer sums: exact, so the order of the rows does not matter.
 *
 * rint without a conversion instruction (SSE2 has no double -> int64 vector conversion):
 * for |q| <= qlimit = 2**50 < 2**51, q + 1.5 * 2**52 lies in [2**52, 2**53), where the
 * spacing of doubles is 1, so the addition rounds q to the nearest integer, ties to even,
 * as rint does (default rounding mode); that integer is then the bit pattern of the sum minus
 * the bit pattern of 1.5 * 2**52. With SSE2, two channels per register. */
static inline int64_t se_round_q(double q, double qlimit)
{
    const double magic = 6755399441055744.0;            /* 1.5 * 2**52 */
    const int64_t magic_bits = 0x4338000000000000LL;     /* its bit pattern */
    q = q > -qlimit ? q : -qlimit;
    q = q < qlimit ? q : qlimit;
    const double t = q + magic;
    int64_t bits;
    memcpy(&bits, &t, sizeof bits);
    return bits - magic_bits;
}

static void se_bin_add_f64(const double *restrict x, ptrdiff_t rows, int C,
                           int64_t *restrict acc, double qscale, double qlimit)
{
    int c0 = 0;
#ifdef __SSE2__
    /* two channels per SSE2 register (the x86-64 baseline); maxpd / minpd are the clamps
     * above for finite values, the rest is the same addition and subtraction */
    const __m128d vs = _mm_set1_pd(qscale), vlo = _mm_set1_pd(-qlimit),
                  vhi = _mm_set1_pd(qlimit), vm = _mm_set1_pd(6755399441055744.0);
    const __m128i vmb = _mm_set1_epi64x(0x4338000000000000LL);
    for (; c0 + 2 <= C; c0 += 2) {
        __m128i sum = _mm_loadu_si128((const __m128i *)(acc + c0));
        for (ptrdiff_t r = 0; r < rows; r++) {
            __m128d q = _mm_mul_pd(_mm_loadu_pd(x + r * (ptrdiff_t)C + c0), vs);
            q = _mm_min_pd(_mm_max_pd(q, vlo), vhi);
            sum = _mm_add_epi64(sum, _mm_sub_epi64(_mm_castpd_si128(_mm_add_pd(q, vm)), vmb));
        }
        _mm_storeu_si128((__m128i *)(acc + c0), sum);
    }
#endif
    for (ptrdiff_t r = 0; r < rows; r++) {
        const double *restrict xr = x + r * (ptrdiff_t)C;
        for (int c = c0; c < C; c++)
            acc[c] += se_round_q(xr[c] * qscale, qlimit);
    }
}

#endif
