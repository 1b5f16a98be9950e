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

/* FftFilterbank (_fastsig.fft_filterbank): the whole front end after framing, for m frames
 * of N = 2M samples (N a power of two) that start every `hop` samples of buf. Single
 * precision (float) throughout the FFT, as FftFilterbank.power computes it in NumPy.
 *
 * 1. Hann window ((float) x times win), and the real FFT of N points computed as a complex
 *    FFT of M points, z[n] = x[2n] + i x[2n+1], radix-2 decimation in time: z[n] goes to
 *    position rev[n] (bit reversal), then stages of butterflies a, b = a + half with the
 *    twiddle w = twr[j * step] + i twi[j * step] (twr[t] = cos(2 pi t / M),
 *    twi[t] = -sin(2 pi t / M)):  t = w * z[b];  z[b] = z[a] - t;  z[a] = z[a] + t.
 *    The first two stages, whose twiddles are exactly 1 and -i, skip the products (the same
 *    values up to the sign of a zero, which the power squares away).
 * 2. The split: for bin k, with Z = z[k mod M] and Y = z[(M - k) mod M],
 *        E = (Z + conj Y) / 2,  O = (Z - conj Y) / 2i,  X[k] = E + (pcr + i pci) O
 *    (pcr = cos(2 pi k / N), pci = -sin(2 pi k / N)), and the power |X[k]|^2 * qscale.
 * 3. The power of bins lo..lo+nbins, capped at qlimit (NaN, from an overflowing input,
 *    counts as the cap) and truncated to int64, pooled into the triangular bands: segment s
 *    (bins starts[s]..starts[s+1]) sums p * w_up and p in 64-bit wrap-around arithmetic, as
 *    NumPy's int64 reduceat does; band b is up[b] + 256 * whole[b+1] - up[b+1], times norm.
 *
 * No multiply-add is fused, so the NumPy reference gives the same bits on every platform.
 * Sixteen frames run side by side as one GCC vector value (the innermost dimension), so an
 * AVX-512 register holds one value of all sixteen; scratch holds (2 M + nbins) * 16 floats. */
#define SE_FFT_LANES 16
#if defined(__GNUC__) && !defined(SPIKEEDGE_NO_VECTOR_EXT)
#define SE_FFT_VEC 1
#endif

SE_SIG_CLONES
static void se_fft_filterbank(const double *restrict buf, ptrdiff_t m, ptrdiff_t hop, int M,
                              const float *restrict win, const int32_t *restrict rev,
                              const float *restrict twr, const float *restrict twi,
                              const float *restrict pcr, const float *restrict pci,
                              int lo, int nbins, const int64_t *restrict starts, int nseg,
                              const int64_t *restrict w_up, int bands, double norm,
                              float qscale, float qlimit, float *restrict scratch,
                              double *restrict out)
{
    enum { L = SE_FFT_LANES };
    float *restrict zr = scratch;
    float *restrict zi = scratch + (ptrdiff_t)M * L;
    float *restrict pw = scratch + (ptrdiff_t)2 * M * L;
    for (ptrdiff_t f0 = 0; f0 < m; f0 += L) {
        const int nl = m - f0 < L ? (int)(m - f0) : L;
        if (nl == L) {
            /* sixteen frames hop samples apart: sample 2n of every frame, then 2n + 1 */
            const double *restrict x0 = buf + f0 * hop;
            for (int n = 0; n < M; n++) {
                float *restrict dr = zr + (ptrdiff_t)rev[n] * L;
                float *restrict di = zi + (ptrdiff_t)rev[n] * L;
                const float we = win[2 * n], wo = win[2 * n + 1];
                for (int l = 0; l < L; l++) {
                    dr[l] = (float)x0[l * hop + 2 * n] * we;
                    di[l] = (float)x0[l * hop + 2 * n + 1] * wo;
                }
            }
        } else {
            for (int l = 0; l < L; l++) {
                /* lanes past the last frame repeat it; their results are never stored */
                const double *restrict x = buf + (f0 + (l < nl ? l : nl - 1)) * hop;
                for (int n = 0; n < M; n++) {
                    zr[(ptrdiff_t)rev[n] * L + l] = (float)x[2 * n] * win[2 * n];
                    zi[(ptrdiff_t)rev[n] * L + l] = (float)x[2 * n + 1] * win[2 * n + 1];
                }
            }
        }
#ifdef SE_FFT_VEC
        /* sixteen frames as one vector value: GCC and Clang lower it to one AVX-512, two AVX2
         * or four SSE2 / NEON registers (element-wise IEEE operations, never contracted) */
        typedef float vf __attribute__((vector_size(64), aligned(4)));
        vf *restrict vr = (vf *)zr, *restrict vi = (vf *)zi, *restrict vp = (vf *)pw;
#else
        /* without vector types: the same operations, one frame at a time */
        typedef struct { float v[L]; } vf;
        vf *vr = (vf *)zr, *vi = (vf *)zi, *vp = (vf *)pw;
#endif
        int half0 = 1;
        if (M >= 4) {
            for (int g = 0; g < M; g += 4) {
#ifdef SE_FFT_VEC
                const vf r0 = vr[g], i0 = vi[g], r1 = vr[g + 1], i1 = vi[g + 1];
                const vf r2 = vr[g + 2], i2 = vi[g + 2], r3 = vr[g + 3], i3 = vi[g + 3];
                const vf ar0 = r0 + r1, ai0 = i0 + i1, ar1 = r0 - r1, ai1 = i0 - i1;
                const vf ar2 = r2 + r3, ai2 = i2 + i3, ar3 = r2 - r3, ai3 = i2 - i3;
                vr[g] = ar0 + ar2;
                vi[g] = ai0 + ai2;
                vr[g + 2] = ar0 - ar2;
                vi[g + 2] = ai0 - ai2;
                vr[g + 1] = ar1 + ai3;    /* t = -i * a3 = (ai3, -ar3) */
                vi[g + 1] = ai1 - ar3;
                vr[g + 3] = ar1 - ai3;
                vi[g + 3] = ai1 + ar3;
#else
                for (int l = 0; l < L; l++) {
                    const float r0 = vr[g].v[l], i0 = vi[g].v[l];
                    const float r1 = vr[g + 1].v[l], i1 = vi[g + 1].v[l];
                    const float r2 = vr[g + 2].v[l], i2 = vi[g + 2].v[l];
                    const float r3 = vr[g + 3].v[l], i3 = vi[g + 3].v[l];
                    const float ar0 = r0 + r1, ai0 = i0 + i1, ar1 = r0 - r1, ai1 = i0 - i1;
                    const float ar2 = r2 + r3, ai2 = i2 + i3, ar3 = r2 - r3, ai3 = i2 - i3;
                    vr[g].v[l] = ar0 + ar2;
                    vi[g].v[l] = ai0 + ai2;
                    vr[g + 2].v[l] = ar0 - ar2;
                    vi[g + 2].v[l] = ai0 - ai2;
                    vr[g + 1].v[l] = ar1 + ai3;
                    vi[g + 1].v[l] = ai1 - ar3;
                    vr[g + 3].v[l] = ar1 - ai3;
                    vi[g + 3].v[l] = ai1 + ar3;
                }
#endif
            }
            half0 = 4;
        }
        for (int half = half0; half < M; half *= 2) {
            const int step = M / (2 * half);
            for (int b0 = 0; b0 < M; b0 += 2 * half) {
                for (int j = 0; j < half; j++) {
                    const float wr = twr[j * step], wi = twi[j * step];
                    const int a = b0 + j, b = a + half;
#ifdef SE_FFT_VEC
                    const vf br = vr[b], bi = vi[b], xr = vr[a], xi = vi[a];
                    const vf tr = wr * br - wi * bi;
                    const vf ti = wr * bi + wi * br;
                    vr[b] = xr - tr;
                    vi[b] = xi - ti;
                    vr[a] = xr + tr;
                    vi[a] = xi + ti;
#else
                    for (int l = 0; l < L; l++) {
                        const float br = vr[b].v[l], bi = vi[b].v[l];
                        const float xr = vr[a].v[l], xi = vi[a].v[l];
                        const float tr = wr * br - wi * bi;
                        const float ti = wr * bi + wi * br;
                        vr[b].v[l] = xr - tr;
                        vi[b].v[l] = xi - ti;
                        vr[a].v[l] = xr + tr;
                        vi[a].v[l] = xi + ti;
                    }
#endif
                }
            }
        }
        for (int q = 0; q < nbins; q++) {
            const int ka = (lo + q) % M, kb = (M - ka) % M;
            const float cr = pcr[q], ci = pci[q];
#ifdef SE_FFT_VEC
            const vf ar = vr[ka], ai = vi[ka], br = vr[kb], bi = vi[kb];
            const vf er = (ar + br) * 0.5f, ei = (ai - bi) * 0.5f;
            const vf orr = (ai + bi) * 0.5f, oi = (br - ar) * 0.5f;
            const vf xr = er + (cr * orr - ci * oi);
            const vf xi = ei + (cr * oi + ci * orr);
            vf p = xr * xr;
            p = p + xi * xi;
            vp[q] = p * qscale;  /* capped at qlimit below */
#else
            for (int l = 0; l < L; l++) {
                const float ar = vr[ka].v[l], ai = vi[ka].v[l];
                const float br = vr[kb].v[l], bi = vi[kb].v[l];
                const float er = (ar + br) * 0.5f, ei = (ai - bi) * 0.5f;
                const float orr = (ai + bi) * 0.5f, oi = (br - ar) * 0.5f;
                const float xr = er + (cr * orr - ci * oi);
                const float xi = ei + (cr * oi + ci * orr);
                float p = xr * xr;
                p = p + xi * xi;
                vp[q].v[l] = p * qscale;
            }
#endif
        }
        /* integer band pooling, the sixteen frames side by side (exact: uint64 sums in any
         * order); lanes past the last frame are computed and never stored */
        uint64_t us[L], ws[L], up_prev[L];
        for (int l = 0; l < L; l++)
            up_prev[l] = 0;
        for (int s = 0; s < nseg; s++) {
            const int a = (int)starts[s], b = s + 1 < nseg ? (int)starts[s + 1] : nbins;
            for (int l = 0; l < L; l++)
                us[l] = ws[l] = 0;
            for (int j = a; j < b; j++) {
                const float *restrict pr = pw + (ptrdiff_t)j * L;
                const uint64_t wj = (uint64_t)w_up[j];
                for (int l = 0; l < L; l++) {
                    const float pf = pr[l];
                    const uint64_t pj = (uint64_t)(int64_t)(pf <= qlimit ? pf : qlimit);
                    us[l] += pj * wj;
                    ws[l] += pj;
                }
            }
            /* band s - 1 rises over segment s - 1 and falls over segment s */
            if (s > 0)
                for (int l = 0; l < nl; l++)
                    out[(f0 + l) * (ptrdiff_t)bands + s - 1] =
                        (double)(int64_t)(up_prev[l] + (ws[l] * 256u - us[l])) * norm;
            for (int l = 0; l < L; l++)
                up_prev[l] = us[l];
        }
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
