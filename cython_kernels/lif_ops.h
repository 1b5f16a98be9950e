/* spikeedge fixed-point primitives: plain C99, shared by the Cython kernels (and usable by the
 * firmware's C kernel). Integer arithmetic only, so every instruction set gives the same bits;
 * on x86-64 GCC builds SIMD clones (AVX2, AVX-512) chosen at load time, while the default clone
 * keeps the build portable. Arithmetic: spikeedge.contract. Names: <family>_<op>_<dtype>. */
#ifndef SPIKEEDGE_LIF_OPS_H
#define SPIKEEDGE_LIF_OPS_H
#include <stdint.h>
#include <string.h>

/* SE_CLONES goes on the step loop (lif_kernel.h: se_steps), which inlines every primitive
 * below, so each instruction set gets its own fully inlined, vectorized loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SPIKEEDGE_NO_CLONES) && defined(__linux__)
#define SE_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define SE_CLONES
#endif
#if defined(__GNUC__)
#define SE_INLINE static inline __attribute__((always_inline))
#else
#define SE_INLINE static inline
#endif

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

/* Indices of the non-zero bytes of x[0..n) into out; returns how many. Skips zero words
 * eight bytes at a time (input spikes are sparse); within a non-zero word, the high bit of
 * each non-zero byte is set without carries between bytes, and the set bits are visited in
 * order with count-trailing-zeros (GCC, Clang; a byte loop elsewhere). */
SE_INLINE int spk_collect_u8(const uint8_t *restrict x, int n, int32_t *restrict out) {
    int c = 0, i = 0;
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, x + i, 8);
        if (word == 0)
            continue;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__)) && \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t m = (((word & lo7) + lo7) | word) & ~lo7;
        while (m) {
            out[c++] = i + (__builtin_ctzll(m) >> 3);
            m &= m - 1;
        }
#else
        for (int b = 0; b < 8; b++)
            if (x[i + b])
                out[c++] = i + b;
#endif
    }
    for (; i < n; i++)
        if (x[i])
            out[c++] = i;
    return c;
}

#endif
