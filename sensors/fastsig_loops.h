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

/* On x86-64 GCC builds for Linux the filterbank and the compression prefix get SIMD clones
 * (AVX2, AVX-512) chosen at load time, while the default clone keeps the build portable.
 * Every clone does the same IEEE operations in the same order (no contraction: see above),
 * so the results do not depend on the clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SPIKEEDGE_NO_CLONES) && defined(__linux__)
#define SE_SIG_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define SE_SIG_CLONES
#endif

SE_SIG_CLONES
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
    /* v - v is 0 for finite v and NaN for inf or NaN: a branch-free test that vectorizes */
    for (ptrdiff_t k = 0; k < n * (ptrdiff_t)B; k++)
        finite &= (out[k] - out[k]) == 0.0;
    return finite;
}

/* FftFilterbank after the FFT (_fastsig.fft_band_pool): for each of m frames, the power of
 * bins lo..lo+nbins (spec holds interleaved re, im of `stride` bins per frame) is scaled,
 * capped at qlimit and truncated to int64, then pooled into the triangular bands: segment s
 * (bins starts[s]..starts[s+1]) sums p * w_up and p in 64-bit wrap-around arithmetic, as
 * NumPy's int64 reduceat does; band b is up[b] + 256 * whole[b+1] - up[b+1], times norm. */
SE_SIG_CLONES
static void se_fft_band_pool(const double *restrict spec, ptrdiff_t m, ptrdiff_t stride,
                             int lo, int nbins, const int64_t *restrict starts, int nseg,
                             const int64_t *restrict w_up, int bands, double norm,
                             double qscale, double qlimit, int64_t *restrict p,
                             uint64_t *restrict up, uint64_t *restrict whole,
                             double *restrict out)
{
    for (ptrdiff_t f = 0; f < m; f++) {
        const double *restrict ri = spec + 2 * (f * stride + lo);
        for (int j = 0; j < nbins; j++) {
            const double re = ri[2 * j], im = ri[2 * j + 1];
            double q = re * re;
            q = q + im * im;
            q = q * qscale;
            q = q > qlimit ? qlimit : q;
            p[j] = (int64_t)q;
        }
        for (int s = 0; s < nseg; s++) {
            const int a = (int)starts[s], b = s + 1 < nseg ? (int)starts[s + 1] : nbins;
            uint64_t us = 0, ws = 0;
            for (int j = a; j < b; j++) {
                us += (uint64_t)p[j] * (uint64_t)w_up[j];
                ws += (uint64_t)p[j];
            }
            up[s] = us;
            whole[s] = ws * 256u;
        }
        double *restrict row = out + f * (ptrdiff_t)bands;
        for (int s = 0; s < bands; s++)
            row[s] = (double)(int64_t)(up[s] + (whole[s + 1] - up[s + 1])) * norm;
    }
}

/* Compress's prefix (sensors.encoders.Compress): out[k] = max(x[k], 0) / ref, as NumPy's
 * maximum and true_divide compute it for finite x (a negative zero becomes +0.0, which
 * compresses alike). Returns 0 when a quotient overflowed to inf. */
SE_SIG_CLONES
static int se_scale_pos_f64(const double *restrict x, ptrdiff_t n, double ref,
                            double *restrict out)
{
    int finite = 1;
    for (ptrdiff_t k = 0; k < n; k++) {
        const double v = x[k] > 0.0 ? x[k] : 0.0;
        const double q = v / ref;
        out[k] = q;
        finite &= (q - q) == 0.0;
    }
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
