/* spikeedge fixed-point primitives: plain C99, shared by the Cython kernels (and usable by the
 * firmware's C kernel). Integer arithmetic only, so every instruction set gives the same bits;
 * on x86-64 GCC builds SIMD clones (AVX2, AVX-512) chosen at load time, while the default clone
 * keeps the build portable. Arithmetic: spikeedge.contract. Names: <family>_<op>_<dtype>. */
#ifndef SPIKEEDGE_LIF_OPS_H
#define SPIKEEDGE_LIF_OPS_H
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define SE_HAVE_SSE2 1
#endif

/* SE_CLONES goes on the step loop (lif_kernel.h: se_steps), which inlines every primitive
 * below, so each instruction set gets its own fully inlined, vectorized loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SPIKEEDGE_NO_CLONES) && defined(__linux__)
#define SE_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
/* hand-written AVX2 / AVX-512 loops (lif_kernel.h: se_pop_avx2, se_pop_avx512), compiled with
 * their own target attribute; a clone inlines the ones its instruction set allows and calls
 * them only when the CPU has them (se_kernel.isa, set once by se_prepare) */
#define SE_X86_SIMD 1
#include <immintrin.h>
#else
#define SE_CLONES
#define SE_X86_SIMD 0
#endif
#if defined(__GNUC__)
#define SE_INLINE static inline __attribute__((always_inline))
#else
#define SE_INLINE static inline
#endif

/* index of the lowest set bit of m != 0 */
SE_INLINE int se_ctz64(uint64_t m) {
#if defined(__GNUC__)
    return __builtin_ctzll(m);
#else
    int b = 0;
    while (!(m & 1)) {
        m >>= 1;
        b++;
    }
    return b;
#endif
}

#define SE_FRAC 24
#define SE_HALF ((int64_t)1 << (SE_FRAC - 1))
/* STDP traces carry 8 fractional bits below a weight unit (spikeedge.contract.TRACE_FRAC_BITS) */
#define SE_TRACE_FRAC 8
#define SE_TRACE_HALF ((int64_t)1 << (SE_TRACE_FRAC - 1))

SE_INLINE int32_t se_sat32(int64_t x) {
    return (int32_t)(x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : x));
}

/* Decay of one value by a Q0.24 constant: sat32((x*c + 2^23) >> 24). For 0 <= c <= 2^24 (the
 * contract's range of every decay constant, checked when a kernel is prepared) the result lies
 * between min(x, 0) and max(x, 0): for x >= 0, x*c + 2^23 < (x + 1) * 2^24; for x < 0,
 * x*c + 2^23 > x * 2^24. So it always fits int32 and the saturation is the identity; the
 * "exact" variant leaves it out (int64 clamps are the most expensive part of these loops
 * without AVX-512). Both give the same bits on in-range constants. */
#define SE_DECAY_EXACT(x, c) ((int32_t)(((int64_t)(x) * (c) + SE_HALF) >> SE_FRAC))
#define SE_DECAY_SAT(x, c) se_sat32(((int64_t)(x) * (c) + SE_HALF) >> SE_FRAC)

/* Membrane candidate and current decay for n neurons, in one pass (steps 2 and 3):
 *   out = sat32(((v*am + sum_k i[k]*beta[k] + 2^23) >> 24) + bias)   from the old currents,
 *   i[k] = sat32((i[k]*alpha_s[k] + 2^23) >> 24)   (no clamp needed when decay_exact).
 * i, beta and alpha_s are [K][stride]; the caller applies refractoriness to out. */
#define SE_MEMBRANE_LOOPS(DECAY)                                                             \
    if (K == 1) {                                                                            \
        for (int j = 0; j < n; j++) {                                                        \
            int64_t i0 = i_syn[j];                                                           \
            int64_t tot = (int64_t)v[j] * am[j] + i0 * beta[j];                              \
            out[j] = se_sat32(((tot + SE_HALF) >> SE_FRAC) + bias[j]);                       \
            i_syn[j] = DECAY(i0, alpha_s[j]);                                                \
        }                                                                                    \
    } else if (K == 2) {                                                                     \
        int32_t *restrict i1 = i_syn + stride;                                               \
        const int32_t *b1 = beta + stride, *a1 = alpha_s + stride;                           \
        for (int j = 0; j < n; j++) {                                                        \
            int64_t i0 = i_syn[j], i1j = i1[j];                                              \
            int64_t tot = (int64_t)v[j] * am[j] + i0 * beta[j] + i1j * b1[j];                \
            out[j] = se_sat32(((tot + SE_HALF) >> SE_FRAC) + bias[j]);                       \
            i_syn[j] = DECAY(i0, alpha_s[j]);                                                \
            i1[j] = DECAY(i1j, a1[j]);                                                       \
        }                                                                                    \
    } else {                                                                                 \
        for (int j = 0; j < n; j++) {                                                        \
            int64_t tot = (int64_t)v[j] * am[j];                                             \
            for (int k = 0; k < K; k++) {                                                    \
                int64_t ik = i_syn[k * stride + j];                                          \
                tot += ik * beta[k * stride + j];                                            \
                i_syn[k * stride + j] = DECAY(ik, alpha_s[k * stride + j]);                  \
            }                                                                                \
            out[j] = se_sat32(((tot + SE_HALF) >> SE_FRAC) + bias[j]);                       \
        }                                                                                    \
    }

SE_INLINE void lif_membrane_decay_q24(int32_t *restrict out, const int32_t *restrict v,
                                      const int32_t *restrict am, int32_t *restrict i_syn,
                                      const int32_t *restrict beta,
                                      const int32_t *restrict alpha_s,
                                      const int32_t *restrict bias, int K, int64_t stride,
                                      int n, int decay_exact) {
    if (decay_exact) {
        SE_MEMBRANE_LOOPS(SE_DECAY_EXACT)
    } else {
        SE_MEMBRANE_LOOPS(SE_DECAY_SAT)
    }
}

/* Refractory countdown, membrane commit and spike test for n neurons (steps 1, 2 and 4):
 * ref -= (ref > 0); a neuron with ref == 0 takes its membrane candidate and spikes when it
 * exceeds theta. Writes 0/1 into spikes; returns the number of spikes. Branch-free. */
SE_INLINE int lif_threshold_s32(int32_t *restrict v, const int32_t *restrict vnew,
                             int32_t *restrict ref, const int32_t *restrict theta,
                             uint8_t *restrict spikes, int n) {
    int count = 0;
    for (int j = 0; j < n; j++) {
        int32_t r = ref[j];
        r -= (r > 0);
        ref[j] = r;
        int32_t vj = (r == 0) ? vnew[j] : v[j];
        v[j] = vj;
        uint8_t s = (uint8_t)((r == 0) & (vj > theta[j]));
        spikes[j] = s;
        count += s;
    }
    return count;
}

/* x = sat32((x*a + 2^23) >> 24) over n values, one constant each (homeostasis). */
SE_INLINE void decay_q24_s32(int32_t *restrict x, const int32_t *restrict a, int n,
                             int exact) {
    if (exact)
        for (int j = 0; j < n; j++)
            x[j] = SE_DECAY_EXACT(x[j], a[j]);
    else
        for (int j = 0; j < n; j++)
            x[j] = SE_DECAY_SAT(x[j], a[j]);
}

/* out = sat32(theta + theta_a): the effective threshold under homeostasis. */
SE_INLINE void lif_threshold_eff_s32(int32_t *restrict out, const int32_t *restrict theta,
                                  const int32_t *restrict theta_a, int n) {
    for (int j = 0; j < n; j++)
        out[j] = se_sat32((int64_t)theta[j] + theta_a[j]);
}

/* a / r rounded half up, r > 0: floor((2a + r) / (2r)); C division truncates, so fix the
 * quotient of a negative numerator. */
SE_INLINE int64_t se_rdiv(int64_t a, int64_t r) {
    int64_t num = 2 * a + r, den = 2 * r;
    int64_t q = num / den;
    if ((num % den != 0) && (num < 0))
        q -= 1;
    return q;
}

/* Multiplicative (soft-bound) STDP on one row: w += rdiv(x * room, (hi - lo) * 2^8), room =
 * hi - w (potentiate) or w - lo (depress); then clip to [lo, hi]. */
SE_INLINE void stdp_row_mult_s16(int16_t *restrict w, const int32_t *restrict x, int32_t lo,
                              int32_t hi, int potentiate, int n) {
    int64_t range = ((int64_t)hi - lo) << SE_TRACE_FRAC;
    for (int j = 0; j < n; j++) {
        int64_t room = potentiate ? (int64_t)hi - w[j] : (int64_t)w[j] - lo;
        int64_t t = (int64_t)w[j] + se_rdiv((int64_t)x[j] * room, range);
        w[j] = (int16_t)(t > hi ? hi : (t < lo ? lo : t));
    }
}

/* x = sat32((x*a + 2^23) >> 24) over n values with one constant (STDP traces). */
SE_INLINE void decay_q24_s32_scalar(int32_t *restrict x, int32_t a, int n) {
    if (a >= 0 && a <= ((int32_t)1 << SE_FRAC))
        for (int j = 0; j < n; j++)
            x[j] = SE_DECAY_EXACT(x[j], a);
    else
        for (int j = 0; j < n; j++)
            x[j] = SE_DECAY_SAT(x[j], a);
}

#if SE_X86_SIMD
#define SE_AVX512 "avx512f,avx512bw,avx512vl,avx512dq"

/* x = (x*a + 2^23) >> 24 for 0 <= a <= 2^24 (no clamp needed, see SE_DECAY_EXACT) with
 * vpmuldq on the even and odd int32 lanes (lif_kernel.h: se_pop_avx2 explains the
 * recombination); returns how many values it did (the rest: the plain C loop). */
__attribute__((target("avx2"))) static inline int se_decay_avx2(int32_t *restrict x, int32_t a,
                                                                 int n) {
    const __m256i A = _mm256_set1_epi32(a), HALF = _mm256_set1_epi64x(SE_HALF);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(x + j));
        __m256i e = _mm256_add_epi64(_mm256_mul_epi32(v, A), HALF);
        __m256i o = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), A), HALF);
        _mm256_storeu_si256((__m256i *)(void *)(x + j),
                            _mm256_blend_epi32(_mm256_srli_epi64(e, SE_FRAC),
                                               _mm256_slli_epi64(o, 32 - SE_FRAC), 0xAA));
    }
    return j;
}

__attribute__((target(SE_AVX512))) static inline int se_decay_avx512(int32_t *restrict x,
                                                                     int32_t a, int n) {
    const __m512i A = _mm512_set1_epi32(a), HALF = _mm512_set1_epi64(SE_HALF);
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512i v = _mm512_maskz_loadu_epi32(m, x + j);
        __m512i e = _mm512_add_epi64(_mm512_mul_epi32(v, A), HALF);
        __m512i o = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), A), HALF);
        _mm512_mask_storeu_epi32(x + j, m,
                                 _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e, SE_FRAC),
                                                         _mm512_slli_epi64(o, 32 - SE_FRAC)));
    }
    return n;
}
#endif

/* decay_q24_s32_scalar with the hand-written loops of instruction-set level isa (lif_kernel.h:
 * se_kernel.isa) where the constant allows them. */
SE_INLINE void decay_q24_s32_isa(int32_t *restrict x, int32_t a, int n, int isa) {
    int j = 0;
#if SE_X86_SIMD
    if (a >= 0 && a <= ((int32_t)1 << SE_FRAC) && isa)
        j = isa == 2 ? se_decay_avx512(x, a, n) : se_decay_avx2(x, a, n);
#else
    (void)isa;
#endif
    decay_q24_s32_scalar(x + j, a, n - j);
}

/* cur = sat32(cur + acc); acc = 0. */
SE_INLINE void syn_fold_s64(int32_t *restrict cur, int64_t *restrict acc, int n) {
    for (int j = 0; j < n; j++) {
        cur[j] = se_sat32((int64_t)cur[j] + acc[j]);
        acc[j] = 0;
    }
}

/* rs += w (one dense row of int16 weights into an exact int32 row sum). */
SE_INLINE void syn_rowsum_s16(int32_t *restrict rs, const int16_t *restrict w, int n) {
    for (int j = 0; j < n; j++)
        rs[j] += w[j];
}

/* rs += w0 + w1 + w2 + w3 (four rows per pass over rs: a quarter of its loads and stores). */
SE_INLINE void syn_rowsum4_s16(int32_t *restrict rs, const int16_t *restrict w0,
                               const int16_t *restrict w1, const int16_t *restrict w2,
                               const int16_t *restrict w3, int n) {
    for (int j = 0; j < n; j++)
        rs[j] += ((int32_t)w0[j] + w1[j]) + ((int32_t)w2[j] + w3[j]);
}

/* rs = w (the first row of a row sum). */
SE_INLINE void syn_rowinit_s16(int32_t *restrict rs, const int16_t *restrict w, int n) {
    for (int j = 0; j < n; j++)
        rs[j] = w[j];
}

/* cur += rs * mul in int32, for sums the caller has shown cannot overflow. */
SE_INLINE void syn_scale_add32_s32(int32_t *restrict cur, const int32_t *restrict rs, int32_t mul,
                                   int n) {
    for (int j = 0; j < n; j++)
        cur[j] += rs[j] * mul;
}

/* cur += w * mul in int32 (one row), for sums the caller has shown cannot overflow. */
SE_INLINE void syn_row_add_s16(int32_t *restrict cur, const int16_t *restrict w, int32_t mul,
                               int n) {
    for (int j = 0; j < n; j++)
        cur[j] += (int32_t)w[j] * mul;
}

/* acc += rs * 2^shift (as a multiplication: left shifts of negative values are undefined). */
SE_INLINE void syn_scale_add_s32(int64_t *restrict acc, const int32_t *restrict rs, int64_t mul,
                              int n) {
    for (int j = 0; j < n; j++)
        acc[j] += (int64_t)rs[j] * mul;
}

/* The weight change of an additive STDP trace: the trace rounded half up to a weight unit,
 * (x + 2^7) >> 8 (>> is arithmetic on every compiler we build with: GCC, Clang). */
SE_INLINE int64_t se_trace_dw(int64_t x) {
    return (x + SE_TRACE_HALF) >> SE_TRACE_FRAC;
}

/* se_trace_dw in 32-bit lanes: floor((x + 2^7) / 2^8) = (x >> 8) + bit 7 of x (x = 256q + r,
 * 0 <= r < 256: the quotient is q plus 1 when r >= 128). No overflow for any int32 x. */
SE_INLINE int32_t se_trace_dw32(int32_t x) {
    return (x >> SE_TRACE_FRAC) + ((x >> (SE_TRACE_FRAC - 1)) & 1);
}

/* The weight clip of the contract, min(max(t, lo), hi) with lo and hi already limited to the
 * int16 range (reference.clip16, NumPy's clip order). */
SE_INLINE int32_t se_clip_w(int32_t t, int32_t lo, int32_t hi) {
    t = t < lo ? lo : t;
    return t > hi ? hi : t;
}

/* Additive STDP row update: w = clip(w + trace_dw(x), lo, hi), in 32-bit lanes (|trace_dw| <
 * 2^23, so w + trace_dw cannot overflow); lo and hi within the int16 range. */
SE_INLINE void stdp_row_s16(int16_t *restrict w, const int32_t *restrict x, int32_t lo, int32_t hi,
                         int n) {
    for (int j = 0; j < n; j++)
        w[j] = (int16_t)se_clip_w((int32_t)w[j] + se_trace_dw32(x[j]), lo, hi);
}

/* Rows and columns of additive STDP are processed in blocks of this many weights (stack buffers
 * in lif_kernel.h: se_stdp). */
#define SE_STDP_BLOCK 256

/* Additive STDP on the rows of the presynaptic spikes si[0..ns) over columns [j0, j0 + nb) of a
 * row-major [.][n_post] int16 matrix W: w = clip(w + dw_j, lo, hi) with dw_j =
 * se_trace_dw32(x[j]), lo and hi in the int16 range. Computed in int16 lanes by translation:
 * clip(w + d, lo, hi) = min(max(w, lo - d), hi - d) + d, exact when lo - d and hi - d both fit
 * int16 (then the max and min are exact int16 operations, and the final int16 add wraps to
 * the true value, which lies in the int16 range; this holds for lo > hi too, where both sides
 * give hi). Per column, lo - d, hi - d and d (wrapped to 16 bits) are computed once per block;
 * when some column does not fit, the block takes stdp_row_s16 (int32 lanes). */
SE_INLINE void stdp_rows_add_s16(int16_t *restrict W, const int32_t *restrict x,
                                 const int32_t *restrict si, int ns, int n_post, int32_t lo,
                                 int32_t hi) {
    int16_t L[SE_STDP_BLOCK], H[SE_STDP_BLOCK], D[SE_STDP_BLOCK];
    for (int j0 = 0; j0 < n_post; j0 += SE_STDP_BLOCK) {
        int nb = n_post - j0 < SE_STDP_BLOCK ? n_post - j0 : SE_STDP_BLOCK;
        int32_t lmin = INT32_MAX, lmax = INT32_MIN;
        const int32_t *restrict xb = x + j0; /* not x[j0 + j]: with -fwrapv (Python's
                                                * CFLAGS) that index blocks vectorisation */
        for (int j = 0; j < nb; j++) {
            int32_t d = se_trace_dw32(xb[j]);
            int32_t l = lo - d, h = hi - d; /* |d| < 2^23: no overflow */
            lmin = l < lmin ? l : lmin;
            lmin = h < lmin ? h : lmin;
            lmax = l > lmax ? l : lmax;
            lmax = h > lmax ? h : lmax;
            L[j] = (int16_t)l;
            H[j] = (int16_t)h;
            D[j] = (int16_t)(uint16_t)(uint32_t)d; /* d modulo 2^16 */
        }
        if (lmin >= INT16_MIN && lmax <= INT16_MAX) {
            for (int s = 0; s < ns; s++) {
                int16_t *restrict w = W + (int64_t)si[s] * n_post + j0;
                for (int j = 0; j < nb; j++) {
                    int16_t t = w[j] < L[j] ? L[j] : w[j];
                    t = t > H[j] ? H[j] : t;
                    w[j] = (int16_t)(uint16_t)((uint32_t)(uint16_t)t + (uint16_t)D[j]);
                }
            }
        } else {
            for (int s = 0; s < ns; s++)
                stdp_row_s16(W + (int64_t)si[s] * n_post + j0, x + j0, lo, hi, nb);
        }
    }
}

/* One weight after an additive change t = w + d: the contract's clip to [lo, hi] (MODE 0), or
 * only its upper (MODE 1: d >= 0 and w >= lo known) or lower side (MODE 2: d <= 0, w <= hi),
 * the other side being unable to act. */
SE_INLINE int32_t se_clip_side(int32_t t, int32_t lo, int32_t hi, const int MODE) {
    if (MODE == 1)
        return t > hi ? hi : t;
    if (MODE == 2)
        return t < lo ? lo : t;
    return se_clip_w(t, lo, hi);
}

/* Additive STDP on NC (1-4) columns c[0..NC) of nb consecutive rows of a row-major [.][n_post]
 * int16 matrix, row r changing by dv[r]: one pass over the rows for all NC columns, with the
 * column offsets in registers (no per-element index loads or loop control). */
SE_INLINE void stdp_cols_add_s16(int16_t *restrict W, const int32_t *restrict dv, int nb,
                                 int64_t n_post, const int32_t *restrict c, int32_t lo,
                                 int32_t hi, const int NC, const int MODE) {
    int64_t c0 = c[0], c1 = NC > 1 ? c[1] : 0, c2 = NC > 2 ? c[2] : 0, c3 = NC > 3 ? c[3] : 0;
#define SE_COLS_ROW(Wr, d)                                                                  \
    do {                                                                                    \
        Wr[c0] = (int16_t)se_clip_side((int32_t)Wr[c0] + (d), lo, hi, MODE);                \
        if (NC > 1)                                                                         \
            Wr[c1] = (int16_t)se_clip_side((int32_t)Wr[c1] + (d), lo, hi, MODE);            \
        if (NC > 2)                                                                         \
            Wr[c2] = (int16_t)se_clip_side((int32_t)Wr[c2] + (d), lo, hi, MODE);            \
        if (NC > 3)                                                                         \
            Wr[c3] = (int16_t)se_clip_side((int32_t)Wr[c3] + (d), lo, hi, MODE);            \
    } while (0)
    int r = 0;
    for (; r + 2 <= nb; r += 2, W += 2 * n_post) { /* two rows per iteration */
        int16_t *W1 = W + n_post;
        SE_COLS_ROW(W, dv[r]);
        SE_COLS_ROW(W1, dv[r + 1]);
    }
    if (r < nb)
        SE_COLS_ROW(W, dv[r]);
#undef SE_COLS_ROW
}

#define SE_COLS_CASE(NC, MODE)                                                              \
    case (NC - 1) * 3 + MODE:                                                               \
        stdp_cols_add_s16(Wb, dv, nb, n_post, c + s, lo, hi, NC, MODE);                     \
        break;

/* Additive STDP on the columns of the postsynaptic spikes c[0..ns) (distinct) of a row-major
 * [n_pre][n_post] int16 matrix: w[i][c] = clip(w[i][c] + se_trace_dw32(x[i]), lo, hi), lo and
 * hi in the int16 range. Rows in blocks: the block's changes are computed once (vectorised),
 * then every column is updated in passes over the block's rows, four columns per pass. When
 * inrange (every weight is known to lie in [lo, hi]), a block whose changes are all >= 0 (all
 * <= 0) needs only the upper (lower) clip, and one whose changes are all 0 changes nothing. */
SE_INLINE void stdp_cols_add_block(int16_t *restrict W, const int32_t *restrict x,
                                   const int32_t *restrict c, int ns, int n_pre, int n_post,
                                   int32_t lo, int32_t hi, int inrange) {
    int32_t dv[SE_STDP_BLOCK];
    for (int i0 = 0; i0 < n_pre; i0 += SE_STDP_BLOCK) {
        int nb = n_pre - i0 < SE_STDP_BLOCK ? n_pre - i0 : SE_STDP_BLOCK;
        int32_t dmin = 0, dmax = 0;
        const int32_t *restrict xb = x + i0; /* see stdp_rows_add_s16 */
        for (int r = 0; r < nb; r++) {
            int32_t d = se_trace_dw32(xb[r]);
            dv[r] = d;
            dmin = d < dmin ? d : dmin;
            dmax = d > dmax ? d : dmax;
        }
        int mode = 0;
        if (inrange) {
            if (dmin == 0 && dmax == 0)
                continue;
            mode = dmin >= 0 ? 1 : (dmax <= 0 ? 2 : 0);
        }
        int16_t *Wb = W + (int64_t)i0 * n_post;
        for (int s = 0; s < ns;) {
            int m = ns - s >= 4 ? 4 : ns - s;
            switch ((m - 1) * 3 + mode) {
                SE_COLS_CASE(1, 0)
                SE_COLS_CASE(1, 1)
                SE_COLS_CASE(1, 2)
                SE_COLS_CASE(2, 0)
                SE_COLS_CASE(2, 1)
                SE_COLS_CASE(2, 2)
                SE_COLS_CASE(3, 0)
                SE_COLS_CASE(3, 1)
                SE_COLS_CASE(3, 2)
                SE_COLS_CASE(4, 0)
                SE_COLS_CASE(4, 1)
                SE_COLS_CASE(4, 2)
            }
            s += m;
        }
    }
}

/* 1 when every one of the n weights lies in [lo, hi] (a min/max reduction in int16 lanes). */
SE_INLINE int se_w_in_range(const int16_t *restrict w, int64_t n, int16_t lo, int16_t hi) {
    int16_t mn = INT16_MAX, mx = INT16_MIN;
    for (int64_t j = 0; j < n; j++) {
        mn = w[j] < mn ? w[j] : mn;
        mx = w[j] > mx ? w[j] : mx;
    }
    return n == 0 || (mn >= lo && mx <= hi);
}

/* Bit b of the result: byte b of x[0..64) is non-zero. x86-64: SSE2 (every x86-64 CPU; the
 * AVX2 and AVX-512 clones get the VEX forms), compare with zero and movemask, 16 bytes per 3
 * instructions; aarch64: NEON compare-test, narrowed to four bits per byte; elsewhere one
 * word at a time, the high bit of each non-zero byte set without carries between bytes and
 * the eight bits gathered into one byte by a multiplication. */
SE_INLINE uint64_t spk_mask64_u8(const uint8_t *restrict x) {
#if defined(SE_HAVE_SSE2)
    const __m128i z = _mm_setzero_si128();
    uint64_t m = 0;
    for (int q = 0; q < 4; q++) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(x + 16 * q));
        m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, z)) << (16 * q);
    }
    return ~m;
#else
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
    uint64_t m = 0;
    for (int q = 0; q < 8; q++) {
        uint64_t word;
        memcpy(&word, x + 8 * q, 8);
        if (!word) /* inputs are sparse: most words hold no spike */
            continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        word = __builtin_bswap64(word);
#endif
        uint64_t hi = ((((word & lo7) + lo7) | word) & ~lo7) >> 7; /* bit 8i: byte i != 0 */
        m |= ((hi * 0x0102040810204080ULL) >> 56) << (8 * q);
    }
    return m;
#endif
}

/* The first two set bits of the 64-bit mask m of the block at i into out[c], c, without a
 * branch: a block's spike count is as good as random, so the exit of a loop over its bits was
 * mispredicted about once per non-empty block (and the test for an empty one half the time
 * when spikes are sparse). Each pop writes out[c] unconditionally and advances c only for a
 * real bit; for m = 0 the value is scratch, at out[c] with c <= the spikes found so far. The
 * caller's loop takes the rest (rare at the sparse rates of spiking networks). */
#define SE_POP2(out, c, i, m) \
    do { \
        (out)[c] = (i) + se_ctz64((m) | ((uint64_t)1 << 63)); \
        (c) += (m) != 0; \
        (m) &= (m) - 1; \
        (out)[c] = (i) + se_ctz64((m) | ((uint64_t)1 << 63)); \
        (c) += (m) != 0; \
        (m) &= (m) - 1; \
    } while (0)

/* Indices of the non-zero bytes of x[0..n) into out, in increasing order; returns how many.
 * 64 bytes at a time as a bit mask (spk_mask64_u8, no branch per byte or word), whose set
 * bits are visited with count-trailing-zeros; a tail of 16 or more bytes goes through a
 * zero-padded block, a shorter one a byte at a time. out must have room for n + 1 values
 * (SE_POP2). */
SE_INLINE int spk_collect_u8(const uint8_t *restrict x, int n, int32_t *restrict out) {
    int c = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t m = spk_mask64_u8(x + i);
        SE_POP2(out, c, i, m);
        while (m) {
            out[c++] = i + se_ctz64(m);
            m &= m - 1;
        }
    }
    if (n - i >= 16) { /* a long tail: through a zero-padded block */
        uint8_t buf[64];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + i, (size_t)(n - i));
        uint64_t m = spk_mask64_u8(buf);
        while (m) {
            out[c++] = i + se_ctz64(m);
            m &= m - 1;
        }
        return c;
    }
    for (; i < n; i++) {
        out[c] = i; /* branch-free: out[c] past the last index is scratch (c < n) */
        c += x[i] != 0;
    }
    return c;
}

#if SE_X86_SIMD
/* spk_collect_u8 with AVX-512 (BW): one test per 64 bytes straight into a mask register, the
 * tail through a masked load (no copy). */
__attribute__((target(SE_AVX512))) static inline int
spk_collect_avx512(const uint8_t *restrict x, int n, int32_t *restrict out) {
    int c = 0;
    for (int i = 0; i < n; i += 64) {
        __mmask64 lm = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        __m512i b = _mm512_maskz_loadu_epi8(lm, x + i);
        uint64_t m = (uint64_t)_mm512_test_epi8_mask(b, b);
        SE_POP2(out, c, i, m);
        while (m) {
            out[c++] = i + se_ctz64(m);
            m &= m - 1;
        }
    }
    return c;
}

/* spk_collect_u8 with AVX2: two 32-byte compares per 64-byte mask. */
__attribute__((target("avx2"))) static inline int
spk_collect_avx2(const uint8_t *restrict x, int n, int32_t *restrict out, int *done) {
    const __m256i z = _mm256_setzero_si256();
    int c = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(x + i + 32));
        uint64_t m = ~((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b0, z)) |
                       (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b1, z)) << 32);
        SE_POP2(out, c, i, m);
        while (m) {
            out[c++] = i + se_ctz64(m);
            m &= m - 1;
        }
    }
    *done = i;
    return c;
}
#endif

/* spk_collect_u8 with the hand-written loops of instruction-set level isa. */
SE_INLINE int spk_collect_u8_isa(const uint8_t *restrict x, int n, int32_t *restrict out,
                                 int isa) {
#if SE_X86_SIMD
    if (isa == 2)
        return spk_collect_avx512(x, n, out);
    if (isa == 1) {
        int i = 0, c = spk_collect_avx2(x, n, out, &i);
        if (i == n)
            return c;
        int c2 = spk_collect_u8(x + i, n - i, out + c);
        for (int q = c; q < c + c2; q++)
            out[q] += i;
        return c + c2;
    }
#else
    (void)isa;
#endif
    return spk_collect_u8(x, n, out);
}

#endif
