/* spikeedge step loop in plain C99: steps 1-7 of the contract (docs/fixed_point.md) over the
 * flat arrays of a Program, built on the primitives of lif_ops.h. The Cython kernel
 * (_kernels.pyx) fills an se_kernel and calls se_steps; tools/aarch64 runs the same code on
 * golden vectors under QEMU. No allocation: the caller provides every buffer. */
#ifndef SPIKEEDGE_LIF_KERNEL_H
#define SPIKEEDGE_LIF_KERNEL_H
#include "lif_ops.h"

/* projection / plasticity descriptor columns (must match spikeedge.program) */
enum {
    SE_PJ_KIND = 0, SE_PJ_SRC_GROUP = 1, SE_PJ_N_PRE = 2, SE_PJ_TGT_START = 3,
    SE_PJ_N_POST = 4, SE_PJ_CHANNEL = 5, SE_PJ_SHIFT = 6, SE_PJ_W_OFF = 7, SE_PJ_PTR_OFF = 8,
    SE_PJ_IDX_OFF = 10, SE_PJ_NCOL = 11,
    SE_PL_PROJ = 0, SE_PL_XPRE_OFF = 1, SE_PL_XPOST_OFF = 2, SE_PL_A_PRE = 3, SE_PL_A_POST = 4,
    SE_PL_ALPHA_PRE = 5, SE_PL_ALPHA_POST = 6, SE_PL_W_MIN = 7, SE_PL_W_MAX = 8, SE_PL_RULE = 9,
    SE_PL_NCOL = 10,
    SE_KIND_DENSE = 0, SE_RULE_MULTIPLICATIVE = 1,
    SE_ROWS_PER_BATCH = 65535, /* int32 row sums of int16 weights stay exact below 65536 rows */
    /* limits of the specialised path (se_prepare): populations, projections */
    SE_FAST_POPS = 16, SE_FAST_PROJ = 32, SE_FAST_CG = 2 * (SE_FAST_POPS + 1),
    /* additive rules whose weight range is tracked during a call (se_stdp) */
    SE_STDP_RULES = 8
};

typedef struct {
    /* program (read only) */
    const int32_t *alpha_m, *alpha_s, *beta, *bias, *theta, *v_reset, *ref_steps;
    const int32_t *theta_plus, *alpha_theta, *pop_start, *pop_n, *proj, *plast;
    const int32_t *csr_ptr, *csr_idx;
    const uint8_t *reset_sub;
    int n_in, N, K, G, P, L; /* G = populations + 1 (group 0 is the input) */
    /* 1 when every alpha_s (alpha_theta) is in [0, 2^24]: the decays cannot saturate */
    int decay_exact, theta_exact;
    /* scratch: acc [K*N] (zero), rowsum [max n_post], spk [n_in + N + 1], grp_ptr [G + 1],
     * tgt_group [P], touched [K*G] (zero), vnew [N], thr [N] */
    int64_t *acc;
    int32_t *rowsum, *spk, *grp_ptr, *tgt_group, *vnew, *thr;
    uint8_t *touched;
    /* derived by se_prepare (zero-initialised struct: done on the first se_steps call):
     * fast = 1 when every population has one value per parameter (what a Population gives),
     * K <= 2, the decays need no clamp and the sizes fit the fixed arrays below; then the step
     * loop runs the specialised path (se_neurons_fast, se_propagate_direct). mult[p] = the
     * largest number of times one target occurs in one row of projection p (1 for dense). */
    int prepared, fast;
    /* bit g: population g's membrane update cannot leave int32 (se_prepare), no clamp;
     * vecok bit g: its 64-bit sum v*A_m + sum I_k*B_k cannot leave int64 (the SIMD passes
     * then do the clamp themselves) */
    uint32_t nosat, vecok;
    int32_t mult[SE_FAST_PROJ];
    /* per step, index ch * G + g: range of the decayed currents, bound of the step's sum */
    int32_t imax[SE_FAST_CG], imin[SE_FAST_CG];
    int64_t bnd[SE_FAST_CG];
    /* per additive rule, during one se_steps call: 0 not known yet, 1 every weight of its
     * projection lies in [lo, hi] (and only this rule changes them, so it stays there), 2 not */
    int8_t w_range[SE_STDP_RULES];
    /* x86-64: 2 when the CPU has AVX-512 (F, BW, VL, DQ), 1 with AVX2, else 0 (se_prepare) */
    int isa;
} se_kernel;

SE_INLINE int64_t se_clip16(int64_t x, int64_t lo, int64_t hi) {
    return x > hi ? hi : (x < lo ? lo : x);
}

/* Steps 1-5 for every neuron; collects spiking indices per group.
 * Invariant: spk[grp_ptr[g]:grp_ptr[g+1]] are the local indices of group g's spikes. */
SE_INLINE void se_neurons(se_kernel *k, const uint8_t *inp, int32_t *v, int32_t *i_syn,
                       int32_t *ref, int32_t *theta_a, int adaptive, uint8_t *spikes) {
    int nspk = 0, N = k->N;
    int32_t *spk = k->spk;
    const int32_t *th = k->theta, *thr;
    k->grp_ptr[0] = 0;
    if (k->n_in > 0)
        nspk = spk_collect_u8_isa(inp, k->n_in, spk, k->isa);
    k->grp_ptr[1] = nspk;
    lif_membrane_decay_q24(k->vnew, v, k->alpha_m, i_syn, k->beta, k->alpha_s, k->bias, k->K,
                           N, N, k->decay_exact);
    if (adaptive) {
        decay_q24_s32(theta_a, k->alpha_theta, N, k->theta_exact);
        lif_threshold_eff_s32(k->thr, th, theta_a, N);
    }
    thr = adaptive ? k->thr : th;
    for (int g = 0; g < k->G - 1; g++) {
        int s0 = k->pop_start[g], n = k->pop_n[g];
        if (lif_threshold_s32(v + s0, k->vnew + s0, ref + s0, thr + s0, spikes + s0, n)) {
            int first = nspk;
            nspk += spk_collect_u8_isa(spikes + s0, n, spk + nspk, k->isa);
            for (int i = first; i < nspk; i++) {
                int j = s0 + spk[i];
                if (k->reset_sub[j])
                    v[j] = se_sat32((int64_t)v[j] - ((int64_t)th[j] - k->v_reset[j]));
                else
                    v[j] = k->v_reset[j];
                ref[j] = k->ref_steps[j];
                if (adaptive)
                    theta_a[j] = se_sat32((int64_t)theta_a[j] + k->theta_plus[j]);
            }
        }
        k->grp_ptr[g + 2] = nspk;
    }
}

/* Step 6a: event-driven; only rows of the sources that spiked are read. */
SE_INLINE void se_propagate(se_kernel *k, const int16_t *w) {
    int32_t *rs = k->rowsum;
    for (int p = 0; p < k->P; p++) {
        const int32_t *row = k->proj + p * SE_PJ_NCOL;
        int a = k->grp_ptr[row[SE_PJ_SRC_GROUP]], b = k->grp_ptr[row[SE_PJ_SRC_GROUP] + 1];
        if (a == b)
            continue;
        int n_post = row[SE_PJ_N_POST], tgt0 = row[SE_PJ_TGT_START], ch = row[SE_PJ_CHANNEL];
        int64_t mul = (int64_t)1 << row[SE_PJ_SHIFT];
        int64_t w_off = row[SE_PJ_W_OFF];
        int64_t *accp = k->acc + (int64_t)ch * k->N + tgt0;
        k->touched[ch * k->G + k->tgt_group[p]] = 1;
        if (row[SE_PJ_KIND] == SE_KIND_DENSE) {
            while (a < b) {
                int s_end = b - a <= SE_ROWS_PER_BATCH ? b : a + SE_ROWS_PER_BATCH;
                memset(rs, 0, (size_t)n_post * sizeof(int32_t));
                for (int s = a; s < s_end; s++)
                    syn_rowsum_s16(rs, w + w_off + (int64_t)k->spk[s] * n_post, n_post);
                syn_scale_add_s32(accp, rs, mul, n_post);
                a = s_end;
            }
        } else {
            const int32_t *ptr = k->csr_ptr + row[SE_PJ_PTR_OFF];
            const int32_t *idx = k->csr_idx + row[SE_PJ_IDX_OFF];
            const int16_t *wv = w + w_off;
            for (int s = a; s < b; s++) {
                int pre = k->spk[s];
                for (int e = ptr[pre]; e < ptr[pre + 1]; e++)
                    accp[idx[e]] += wv[e] * mul;
            }
        }
    }
}

/* Step 6b: add the exact step sums to the currents, saturating once; clear them. Only
 * (channel, population) ranges that received rows this step are visited. */
SE_INLINE void se_fold(se_kernel *k, int32_t *i_syn) {
    for (int ch = 0; ch < k->K; ch++)
        for (int g = 1; g < k->G; g++) {
            if (!k->touched[ch * k->G + g])
                continue;
            k->touched[ch * k->G + g] = 0;
            int s0 = k->pop_start[g - 1], n = k->pop_n[g - 1];
            syn_fold_s64(i_syn + (int64_t)ch * k->N + s0, k->acc + (int64_t)ch * k->N + s0, n);
        }
}

/* Step 7: trace decay, presynaptic then postsynaptic weight updates. */
SE_INLINE void se_stdp(se_kernel *k, int32_t *x_pre, int32_t *x_post, int16_t *w) {
    for (int rule = 0; rule < k->L; rule++) {
        const int32_t *lrow = k->plast + rule * SE_PL_NCOL;
        int p = lrow[SE_PL_PROJ];
        const int32_t *prow = k->proj + p * SE_PJ_NCOL;
        int n_pre = prow[SE_PJ_N_PRE], n_post = prow[SE_PJ_N_POST];
        int16_t *W = w + prow[SE_PJ_W_OFF];
        int32_t *xp = x_pre + lrow[SE_PL_XPRE_OFF], *yp = x_post + lrow[SE_PL_XPOST_OFF];
        int32_t a_pre = lrow[SE_PL_A_PRE], a_post = lrow[SE_PL_A_POST];
        int64_t lo = lrow[SE_PL_W_MIN], hi = lrow[SE_PL_W_MAX];
        int mult = lrow[SE_PL_RULE] == SE_RULE_MULTIPLICATIVE;
        decay_q24_s32_isa(xp, lrow[SE_PL_ALPHA_PRE], n_pre, k->isa);
        decay_q24_s32_isa(yp, lrow[SE_PL_ALPHA_POST], n_post, k->isa);
        int g_pre = prow[SE_PJ_SRC_GROUP];
        int pa = k->grp_ptr[g_pre], pb = k->grp_ptr[g_pre + 1];
        int32_t lo16 = lo < INT16_MIN ? INT16_MIN : (int32_t)lo;
        int32_t hi16 = hi > INT16_MAX ? INT16_MAX : (int32_t)hi;
        /* presynaptic spikes: traces (read only by the column updates), then the rows */
        for (int s = pa; s < pb; s++) {
            int i = k->spk[s];
            xp[i] = se_sat32((int64_t)xp[i] + a_pre);
        }
        if (mult) {
            for (int s = pa; s < pb; s++)
                stdp_row_mult_s16(W + (int64_t)k->spk[s] * n_post, yp, (int32_t)lo, (int32_t)hi,
                                  0, n_post);
        } else if (lo16 <= INT16_MAX && hi16 >= INT16_MIN) {
            if (pb > pa)
                stdp_rows_add_s16(W, yp, k->spk + pa, pb - pa, n_post, lo16, hi16);
        } else {
            for (int s = pa; s < pb; s++)
                stdp_row_s16(W + (int64_t)k->spk[s] * n_post, yp, lo16, hi16, n_post);
        }
        int g_post = k->tgt_group[p];
        int a = k->grp_ptr[g_post], b = k->grp_ptr[g_post + 1];
        if (a == b)
            continue;
        /* Postsynaptic spikes: their traces first (the column updates read only x_pre), then
         * the columns; they are distinct, so the order does not change the result. */
        for (int s = a; s < b; s++) {
            int j = k->spk[s];
            yp[j] = se_sat32((int64_t)yp[j] + a_post);
        }
        const int32_t *sj = k->spk + a;
        int ns = b - a;
        if (mult) {
            for (int i = 0; i < n_pre; i++) {
                int16_t *Wi = W + (int64_t)i * n_post;
                for (int s = 0; s < ns; s++) {
                    int64_t wij = Wi[sj[s]];
                    Wi[sj[s]] = (int16_t)se_clip16(
                        wij + se_rdiv((int64_t)xp[i] * (hi - wij), (hi - lo) << SE_TRACE_FRAC),
                        lo, hi);
                }
            }
        } else {
            /* whether every weight lies in [lo16, hi16]: checked once per call, when first
             * needed; it then stays true, as long as no other rule changes these weights
             * (every update of this rule ends in that clip) */
            int inrange = 0;
            if (rule < SE_STDP_RULES && lo16 <= hi16) {
                if (k->w_range[rule] == 0) {
                    int alone = 1;
                    for (int r2 = 0; r2 < k->L; r2++)
                        alone &= r2 == rule || k->plast[r2 * SE_PL_NCOL + SE_PL_PROJ] != p;
                    /* lo16 <= hi16 and both within the int16 range here */
                    k->w_range[rule] = alone && se_w_in_range(W, (int64_t)n_pre * n_post,
                                                              (int16_t)lo16, (int16_t)hi16)
                                       ? 1 : 2;
                }
                inrange = k->w_range[rule] == 1;
            }
            stdp_cols_add_block(W, xp, sj, ns, n_pre, n_post, lo16, hi16, inrange);
        }
    }
}

/* ---- the specialised path ------------------------------------------------------------
 * Same arithmetic as se_neurons/se_propagate/se_fold, organised for the common networks:
 * 1. one fused pass per population (steps 1-5) with the population's constants as scalars
 *    (no parameter arrays streamed through the cache), with variants without refractoriness,
 *    for each reset mode, and without the membrane clamp where it provably cannot act; it
 *    also records the range of the decayed currents;
 * 2. propagation straight into the int32 currents when no saturation is possible in this step:
 *    |sum of the step's contributions to one neuron| <= B = sum over projections into it of
 *    (spiking sources) * mult * 2^15 * 2^shift (|w| <= 2^15 whatever the weights are, so
 *    plasticity or edited weights cannot break it), and max(I) + B <= INT32_MAX and
 *    min(I) - B >= INT32_MIN; then every partial sum is exact in int32 and sat32(I + acc) is
 *    I + acc, the contract's result. Otherwise that step takes the int64 accumulator path. */

/* 1 when the n values c[0], c[stride], ... are all equal */
static inline int se_uniform(const int32_t *c, int n) {
    for (int j = 1; j < n; j++)
        if (c[j] != c[0])
            return 0;
    return 1;
}

static void se_prepare(se_kernel *k) {
    k->nosat = 0;
    k->vecok = 0;
    k->isa = 0;
#if SE_X86_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        k->isa = 2;
    else if (__builtin_cpu_supports("avx2"))
        k->isa = 1;
#endif
    int fast = k->K >= 1 && k->K <= 2 && k->decay_exact && k->G - 1 <= SE_FAST_POPS &&
               k->P <= SE_FAST_PROJ;
    for (int g = 0; fast && g < k->G - 1; g++) {
        int s0 = k->pop_start[g], n = k->pop_n[g];
        const int32_t *arrs[] = {k->alpha_m, k->bias, k->theta, k->v_reset, k->ref_steps};
        for (int a = 0; a < 5; a++)
            fast &= se_uniform(arrs[a] + s0, n);
        for (int c = 0; c < k->K; c++)
            fast &= se_uniform(k->alpha_s + (int64_t)c * k->N + s0, n) &
                    se_uniform(k->beta + (int64_t)c * k->N + s0, n);
        for (int j = 1; j < n; j++)
            fast &= k->reset_sub[s0 + j] == k->reset_sub[s0];
        /* subtract reset: with 0 <= theta - v_reset <= INT32_MAX and v > theta, v - (theta -
         * v_reset) lies in (v_reset, v]: no clamp needed */
        int64_t d = (int64_t)k->theta[s0] - k->v_reset[s0];
        if (k->reset_sub[s0] && (d < 0 || d > INT32_MAX))
            fast = 0;
        /* bias 0 and A_m, B_k >= 0 with A_m + sum B_k <= 2^24: |v*A_m + sum I_k*B_k| <=
         * max(|v|, |I_k|) * 2^24, so (tot + 2^23) >> 24 lies in [-2^31, 2^31 - 1] */
        int64_t csum = k->alpha_m[s0];
        int ok = k->bias[s0] == 0 && k->alpha_m[s0] >= 0;
        for (int c = 0; c < k->K; c++) {
            int32_t b = k->beta[(int64_t)c * k->N + s0];
            ok &= b >= 0;
            csum += b;
        }
        if (ok && csum <= ((int64_t)1 << SE_FRAC) && g < 32)
            k->nosat |= (uint32_t)1 << g;
        /* |v|, |I_k| <= 2^31 and |A_m| + sum |B_k| <= 2^31: |tot| + 2^23 < 2^63 */
        int64_t asum = k->alpha_m[s0] < 0 ? -(int64_t)k->alpha_m[s0] : k->alpha_m[s0];
        for (int c = 0; c < k->K; c++) {
            int64_t b = k->beta[(int64_t)c * k->N + s0];
            asum += b < 0 ? -b : b;
        }
        if (asum <= ((int64_t)1 << 31) && g < 32)
            k->vecok |= (uint32_t)1 << g;
    }
    for (int p = 0; fast && p < k->P; p++) {
        const int32_t *row = k->proj + p * SE_PJ_NCOL;
        if (row[SE_PJ_SHIFT] > 15) {
            fast = 0;
            break;
        }
        k->mult[p] = 1;
        if (row[SE_PJ_KIND] == SE_KIND_DENSE)
            continue;
        /* CSR: count repeated targets within each row, vnew as zeroed counters */
        const int32_t *ptr = k->csr_ptr + row[SE_PJ_PTR_OFF];
        const int32_t *idx = k->csr_idx + row[SE_PJ_IDX_OFF];
        int32_t *cnt = k->vnew, m = 1;
        memset(cnt, 0, (size_t)row[SE_PJ_N_POST] * sizeof(int32_t));
        for (int i = 0; i < row[SE_PJ_N_PRE]; i++) {
            for (int e = ptr[i]; e < ptr[i + 1]; e++)
                if (++cnt[idx[e]] > m)
                    m = cnt[idx[e]];
            for (int e = ptr[i]; e < ptr[i + 1]; e++)
                cnt[idx[e]] = 0;
        }
        k->mult[p] = m;
    }
    k->fast = fast;
    k->prepared = 1;
}

/* Merge one SIMD pass's ranges of the decayed currents (channel 0, and channel 1 when K > 1)
 * and its "a neuron spiked" flag into st (max0, min0, max1, min1, flag). */
static inline void se_st_merge(int32_t *st, int32_t mx0, int32_t mn0, int32_t mx1, int32_t mn1,
                               int K, int any) {
    st[0] = mx0 > st[0] ? mx0 : st[0];
    st[1] = mn0 < st[1] ? mn0 : st[1];
    if (K > 1) {
        st[2] = mx1 > st[2] ? mx1 : st[2];
        st[3] = mn1 < st[3] ? mn1 : st[3];
    }
    st[4] |= any;
}

#if SE_X86_SIMD
/* The fused pass of se_pop_fast (below) for the populations whose membrane update needs no
 * clamp (NOSAT), in AVX2 and AVX-512 intrinsics, the same arithmetic: a 32x32->64-bit signed
 * product (vpmuldq) works on the even int32 lanes; the odd lanes are shifted down by 32 bits
 * for a second product. Of each 64-bit sum (tot + 2^23) only bits 24..55 are kept (NOSAT: the
 * result fits int32, and the decays' results always do), so a logical shift gives the same
 * bits as the contract's arithmetic one: even lanes shift right by 24, odd lanes left by 8
 * (their bits 24..55 land in the upper half), and a blend recombines them in int32 lanes.
 * Runs j = 0 .. n - n % 8 and returns where it stopped; st holds the running ranges of the
 * decayed currents (max0, min0, max1, min1) and the "a neuron spiked" flag. */
__attribute__((target("avx2"))) static inline int
se_pop_avx2(int n, int32_t *restrict vv, int32_t *restrict rr, int32_t *restrict i0,
            int32_t *restrict i1, uint8_t *restrict sp, const int32_t *c, const int64_t *lim,
            int32_t *st, const int K, const int NOREF, const int SUB, const int CLAMP) {
    /* c: am, b0, a0, b1, a1, th, vr, rsteps, dsub */
    const __m256i AM = _mm256_set1_epi32(c[0]), B0 = _mm256_set1_epi32(c[1]);
    const __m256i A0 = _mm256_set1_epi32(c[2]), B1 = _mm256_set1_epi32(c[3]);
    const __m256i A1 = _mm256_set1_epi32(c[4]), TH = _mm256_set1_epi32(c[5]);
    const __m256i VR = _mm256_set1_epi32(c[6]), RS = _mm256_set1_epi32(c[7]);
    const __m256i DS = _mm256_set1_epi32(c[8]), HALF = _mm256_set1_epi64x(SE_HALF);
    const __m256i BI = _mm256_set1_epi32(c[9]);
    const __m256i XMN = _mm256_set1_epi64x(lim[0]), XMX = _mm256_set1_epi64x(lim[1]);
    const __m256i Z = _mm256_setzero_si256();
    const __m128i ONE8 = _mm_set1_epi8(1);
    __m256i mx0 = _mm256_set1_epi32(st[0]), mn0 = _mm256_set1_epi32(st[1]);
    __m256i mx1 = _mm256_set1_epi32(st[2]), mn1 = _mm256_set1_epi32(st[3]), anyv = Z;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(vv + j));
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(i0 + j));
        __m256i vo = _mm256_srli_epi64(v, 32), x0o = _mm256_srli_epi64(x0, 32);
        __m256i te = _mm256_add_epi64(_mm256_mul_epi32(v, AM), _mm256_mul_epi32(x0, B0));
        __m256i to = _mm256_add_epi64(_mm256_mul_epi32(vo, AM), _mm256_mul_epi32(x0o, B0));
        __m256i de = _mm256_add_epi64(_mm256_mul_epi32(x0, A0), HALF);
        __m256i dd = _mm256_add_epi64(_mm256_mul_epi32(x0o, A0), HALF);
        __m256i d0 = _mm256_blend_epi32(_mm256_srli_epi64(de, SE_FRAC),
                                        _mm256_slli_epi64(dd, 32 - SE_FRAC), 0xAA);
        _mm256_storeu_si256((__m256i *)(void *)(i0 + j), d0);
        mx0 = _mm256_max_epi32(mx0, d0);
        mn0 = _mm256_min_epi32(mn0, d0);
        if (K > 1) {
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(i1 + j));
            __m256i x1o = _mm256_srli_epi64(x1, 32);
            te = _mm256_add_epi64(te, _mm256_mul_epi32(x1, B1));
            to = _mm256_add_epi64(to, _mm256_mul_epi32(x1o, B1));
            __m256i e1 = _mm256_add_epi64(_mm256_mul_epi32(x1, A1), HALF);
            __m256i o1 = _mm256_add_epi64(_mm256_mul_epi32(x1o, A1), HALF);
            __m256i d1 = _mm256_blend_epi32(_mm256_srli_epi64(e1, SE_FRAC),
                                            _mm256_slli_epi64(o1, 32 - SE_FRAC), 0xAA);
            _mm256_storeu_si256((__m256i *)(void *)(i1 + j), d1);
            mx1 = _mm256_max_epi32(mx1, d1);
            mn1 = _mm256_min_epi32(mn1, d1);
        }
        te = _mm256_add_epi64(te, HALF);
        to = _mm256_add_epi64(to, HALF);
        if (CLAMP) { /* x = tot + 2^23 into [XMN, XMX]: see se_pop_fast */
            te = _mm256_blendv_epi8(te, XMX, _mm256_cmpgt_epi64(te, XMX));
            te = _mm256_blendv_epi8(te, XMN, _mm256_cmpgt_epi64(XMN, te));
            to = _mm256_blendv_epi8(to, XMX, _mm256_cmpgt_epi64(to, XMX));
            to = _mm256_blendv_epi8(to, XMN, _mm256_cmpgt_epi64(XMN, to));
        }
        __m256i vj = _mm256_blend_epi32(_mm256_srli_epi64(te, SE_FRAC),
                                        _mm256_slli_epi64(to, 32 - SE_FRAC), 0xAA);
        if (CLAMP)
            vj = _mm256_add_epi32(vj, BI);
        __m256i s = _mm256_cmpgt_epi32(vj, TH), r = Z;
        if (!NOREF) {
            r = _mm256_loadu_si256((const __m256i *)(const void *)(rr + j));
            r = _mm256_add_epi32(r, _mm256_cmpgt_epi32(r, Z)); /* r -= (r > 0) */
            __m256i act = _mm256_cmpeq_epi32(r, Z);
            vj = _mm256_blendv_epi8(v, vj, act);
            s = _mm256_and_si256(_mm256_cmpgt_epi32(vj, TH), act);
        }
        __m256i vres = SUB ? _mm256_sub_epi32(vj, DS) : VR;
        _mm256_storeu_si256((__m256i *)(void *)(vv + j), _mm256_blendv_epi8(vj, vres, s));
        if (!NOREF)
            _mm256_storeu_si256((__m256i *)(void *)(rr + j), _mm256_blendv_epi8(r, RS, s));
        __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        _mm_storel_epi64((__m128i *)(void *)(sp + j),
                         _mm_and_si128(_mm_packs_epi16(p16, p16), ONE8));
        anyv = _mm256_or_si256(anyv, s);
    }
    int32_t t[4][8], r[4] = {INT32_MIN, INT32_MAX, INT32_MIN, INT32_MAX};
    _mm256_storeu_si256((__m256i *)(void *)t[0], mx0);
    _mm256_storeu_si256((__m256i *)(void *)t[1], mn0);
    _mm256_storeu_si256((__m256i *)(void *)t[2], mx1);
    _mm256_storeu_si256((__m256i *)(void *)t[3], mn1);
    for (int q = 0; q < 8; q++) {
        r[0] = t[0][q] > r[0] ? t[0][q] : r[0];
        r[1] = t[1][q] < r[1] ? t[1][q] : r[1];
        r[2] = t[2][q] > r[2] ? t[2][q] : r[2];
        r[3] = t[3][q] < r[3] ? t[3][q] : r[3];
    }
    se_st_merge(st, r[0], r[1], r[2], r[3], K, !_mm256_testz_si256(anyv, anyv));
    return j;
}

/* Bits 24..55 of the 64-bit lanes of e (even int32 positions) and of o (odd positions) as 16
 * int32: (x + 2^23) >> 24 for sums that fit int32 after the shift (se_pop_avx2's trick). */
__attribute__((target(SE_AVX512), always_inline)) static inline __m512i
se_q24_pack512(__m512i e, __m512i o) {
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e, SE_FRAC),
                                   _mm512_slli_epi64(o, 32 - SE_FRAC));
}

/* The exact decay (x*a + 2^23) >> 24 of 16 currents: x in the even lanes, xo its odd lanes
 * moved to even positions. */
__attribute__((target(SE_AVX512), always_inline)) static inline __m512i
se_decay512(__m512i x, __m512i xo, __m512i a, __m512i half) {
    return se_q24_pack512(_mm512_add_epi64(_mm512_mul_epi32(x, a), half),
                          _mm512_add_epi64(_mm512_mul_epi32(xo, a), half));
}

/* One block of se_pop_avx512: the 16 neurons from j on (those of mask m). The odd int32 lanes
 * are moved into the even positions with a shuffle (port 5) rather than a 64-bit shift, which
 * would compete with vpmuldq for port 0. */
__attribute__((target(SE_AVX512), always_inline)) static inline void
se_pop512_block(int j, __mmask16 m, int32_t *restrict vv, int32_t *restrict rr,
                int32_t *restrict i0, int32_t *restrict i1, uint8_t *restrict sp,
                const __m512i *C, __m512i *acc, __mmask16 *anym, const int K, const int NOREF,
                const int SUB, const int CLAMP) {
    const __m512i AM = C[0], B0 = C[1], A0 = C[2], B1 = C[3], A1 = C[4], TH = C[5], VR = C[6];
    const __m512i RS = C[7], DS = C[8], HALF = C[9], BI = C[10], XMN = C[11], XMX = C[12];
    const __m512i Z = _mm512_setzero_si512(), ONE = _mm512_set1_epi32(1);
    __m512i v = _mm512_maskz_loadu_epi32(m, vv + j);
    __m512i x0 = _mm512_maskz_loadu_epi32(m, i0 + j);
    __m512i vo = _mm512_shuffle_epi32(v, _MM_PERM_DDBB);
    __m512i x0o = _mm512_shuffle_epi32(x0, _MM_PERM_DDBB);
    __m512i te = _mm512_add_epi64(_mm512_mul_epi32(v, AM), _mm512_mul_epi32(x0, B0));
    __m512i to = _mm512_add_epi64(_mm512_mul_epi32(vo, AM), _mm512_mul_epi32(x0o, B0));
    __m512i d0 = se_decay512(x0, x0o, A0, HALF);
    _mm512_mask_storeu_epi32(i0 + j, m, d0);
    acc[0] = _mm512_mask_max_epi32(acc[0], m, acc[0], d0);
    acc[1] = _mm512_mask_min_epi32(acc[1], m, acc[1], d0);
    if (K > 1) {
        __m512i x1 = _mm512_maskz_loadu_epi32(m, i1 + j);
        __m512i x1o = _mm512_shuffle_epi32(x1, _MM_PERM_DDBB);
        te = _mm512_add_epi64(te, _mm512_mul_epi32(x1, B1));
        to = _mm512_add_epi64(to, _mm512_mul_epi32(x1o, B1));
        __m512i d1 = se_decay512(x1, x1o, A1, HALF);
        _mm512_mask_storeu_epi32(i1 + j, m, d1);
        acc[2] = _mm512_mask_max_epi32(acc[2], m, acc[2], d1);
        acc[3] = _mm512_mask_min_epi32(acc[3], m, acc[3], d1);
    }
    te = _mm512_add_epi64(te, HALF);
    to = _mm512_add_epi64(to, HALF);
    if (CLAMP) {
        te = _mm512_min_epi64(_mm512_max_epi64(te, XMN), XMX);
        to = _mm512_min_epi64(_mm512_max_epi64(to, XMN), XMX);
    }
    __m512i vj = se_q24_pack512(te, to);
    if (CLAMP)
        vj = _mm512_add_epi32(vj, BI);
    __m512i r = Z;
    __mmask16 s;
    if (!NOREF) {
        r = _mm512_maskz_loadu_epi32(m, rr + j);
        r = _mm512_mask_sub_epi32(r, _mm512_cmpgt_epi32_mask(r, Z), r, ONE); /* r -= r > 0 */
        __mmask16 act = _mm512_cmpeq_epi32_mask(r, Z);
        vj = _mm512_mask_blend_epi32(act, v, vj);
        s = _mm512_mask_cmpgt_epi32_mask(act & m, vj, TH);
    } else {
        s = _mm512_mask_cmpgt_epi32_mask(m, vj, TH);
    }
    __m512i vres = SUB ? _mm512_sub_epi32(vj, DS) : VR;
    _mm512_mask_storeu_epi32(vv + j, m, _mm512_mask_blend_epi32(s, vj, vres));
    if (!NOREF)
        _mm512_mask_storeu_epi32(rr + j, m, _mm512_mask_blend_epi32(s, r, RS));
    _mm_mask_storeu_epi8(sp + j, m, _mm_maskz_mov_epi8(s, _mm_set1_epi8(1)));
    *anym |= s;
}

/* se_pop_avx2 in 16 lanes with mask registers (AVX-512 F, BW, VL): whole blocks of 16 with
 * the constant full mask, then the last n % 16 neurons in one masked block, so this always
 * runs all n. */
__attribute__((target(SE_AVX512))) static inline int
se_pop_avx512(int n, int32_t *restrict vv, int32_t *restrict rr, int32_t *restrict i0,
              int32_t *restrict i1, uint8_t *restrict sp, const int32_t *c, const int64_t *lim,
              int32_t *st, const int K, const int NOREF, const int SUB, const int CLAMP) {
    const __m512i C[13] = {
        _mm512_set1_epi32(c[0]), _mm512_set1_epi32(c[1]), _mm512_set1_epi32(c[2]),
        _mm512_set1_epi32(c[3]), _mm512_set1_epi32(c[4]), _mm512_set1_epi32(c[5]),
        _mm512_set1_epi32(c[6]), _mm512_set1_epi32(c[7]), _mm512_set1_epi32(c[8]),
        _mm512_set1_epi64(SE_HALF), _mm512_set1_epi32(c[9]), _mm512_set1_epi64(lim[0]),
        _mm512_set1_epi64(lim[1])};
    __m512i acc[4] = {_mm512_set1_epi32(st[0]), _mm512_set1_epi32(st[1]),
                      _mm512_set1_epi32(st[2]), _mm512_set1_epi32(st[3])};
    __mmask16 anym = 0;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        se_pop512_block(j, (__mmask16)0xFFFF, vv, rr, i0, i1, sp, C, acc, &anym, K, NOREF, SUB,
                        CLAMP);
    if (j < n)
        se_pop512_block(j, (__mmask16)((1u << (n - j)) - 1), vv, rr, i0, i1, sp, C, acc, &anym,
                        K, NOREF, SUB, CLAMP);
    se_st_merge(st, _mm512_reduce_max_epi32(acc[0]), _mm512_reduce_min_epi32(acc[1]),
                K > 1 ? _mm512_reduce_max_epi32(acc[2]) : INT32_MIN,
                K > 1 ? _mm512_reduce_min_epi32(acc[3]) : INT32_MAX, K, anym != 0);
    return n;
}

/* Step 6's dense rows on the direct path (se_propagate_direct), for nsp >= 2 spiking sources:
 * cur[j] += (sum over the sources s of w[sp[s] * n + j]) << shift, the rows' int32 sum being
 * exact and its product with 2^shift fitting int32 (the caller's bound B), as in the row-sum
 * loops of lif_ops.h. Two rows at a time are interleaved word by word (vpunpck{l,h}wd) and
 * summed into int32 lanes by vpmaddwd against ones (w_a x 1 + w_b x 1: exact), so the sign
 * extension takes no vpmovsxwd: with 512-bit vectors only ports 0 and 5 take vector work,
 * and vpmovsxwd plus the shuffle that fed it put every 16 weights on port 5. The interleave
 * works inside 128-bit lanes: of a chunk of 32 columns, the sums "lo" hold columns {0-3,
 * 8-11, 16-19, 24-27} and "hi" {4-7, 12-15, 20-23, 28-31}; vpermt2d puts them back in order
 * once per chunk. Columns are the outer loop, so the sums stay in registers (no row-sum
 * buffer); an odd last row is paired with zeros; the last chunk is masked. There is no AVX2
 * version: with three vector ports, the AVX2 row sums of lif_ops.h were as fast in a test
 * (docs/performance.md). */
__attribute__((target(SE_AVX512))) static inline void
se_rows_avx512(int32_t *restrict cur, const int16_t *restrict w, const int32_t *restrict sp,
               int nsp, int n, int shift) {
    const __m512i ONES = _mm512_set1_epi16(1), Z = _mm512_setzero_si512();
    const __m512i P0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i P1 =
        _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    const __m128i SH = _mm_cvtsi32_si128(shift);
    for (int j = 0; j < n; j += 32) {
        const __mmask32 m = n - j >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (n - j)) - 1);
        __m512i lo = Z, hi = Z;
        int s = 0;
        for (; s + 2 <= nsp; s += 2) {
            const __m512i A = _mm512_maskz_loadu_epi16(m, w + (int64_t)sp[s] * n + j);
            const __m512i B = _mm512_maskz_loadu_epi16(m, w + (int64_t)sp[s + 1] * n + j);
            lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(A, B), ONES));
            hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(A, B), ONES));
        }
        if (s < nsp) {
            const __m512i A = _mm512_maskz_loadu_epi16(m, w + (int64_t)sp[s] * n + j);
            lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(A, Z), ONES));
            hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(A, Z), ONES));
        }
        const __m512i n0 = _mm512_sll_epi32(_mm512_permutex2var_epi32(lo, P0, hi), SH);
        const __m512i n1 = _mm512_sll_epi32(_mm512_permutex2var_epi32(lo, P1, hi), SH);
        const __mmask16 m0 = (__mmask16)m, m1 = (__mmask16)(m >> 16);
        _mm512_mask_storeu_epi32(cur + j, m0,
                                 _mm512_add_epi32(_mm512_maskz_loadu_epi32(m0, cur + j), n0));
        _mm512_mask_storeu_epi32(cur + j + 16, m1,
                                 _mm512_add_epi32(_mm512_maskz_loadu_epi32(m1, cur + j + 16), n1));
    }
}

#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define SE_NEON 1
#include <arm_neon.h>
/* The fused pass of se_pop_fast (below) in AArch64 Advanced SIMD (NEON, part of every armv8-a
 * core: no run-time check), the same arithmetic as se_pop_avx2, four neurons per iteration.
 * smull/smlal (and their "2" forms on the upper lanes) give the exact 64-bit products and sums;
 * rshrn by 24 adds 2^23, shifts and keeps the low 32 bits, which is the contract's result when
 * it fits int32 (the decays, and the membrane when NOSAT). With CLAMP (!NOSAT, vecok) the sum
 * is first clamped in 64-bit lanes to [XMN - 2^23, XMX - 2^23] (lim: see se_pop_fast) and the
 * bias added in wrapping int32 after the narrowing. Runs j = 0 .. n - n % 4, returns where it
 * stopped; st as for se_pop_avx2. */
static inline int
se_pop_neon(int n, int32_t *restrict vv, int32_t *restrict rr, int32_t *restrict i0,
            int32_t *restrict i1, uint8_t *restrict sp, const int32_t *c, const int64_t *lim,
            int32_t *st, const int K, const int NOREF, const int SUB, const int CLAMP) {
    const int32_t am = c[0], b0 = c[1], a0 = c[2], b1 = c[3], a1 = c[4];
    const int32x4_t TH = vdupq_n_s32(c[5]), VR = vdupq_n_s32(c[6]), RS = vdupq_n_s32(c[7]);
    const int32x4_t DS = vdupq_n_s32(c[8]), BI = vdupq_n_s32(c[9]), Z = vdupq_n_s32(0);
    const int64x2_t XMN = vdupq_n_s64(lim[0] - SE_HALF), XMX = vdupq_n_s64(lim[1] - SE_HALF);
    const uint8x8_t ONE8 = vdup_n_u8(1);
    int32x4_t mx0 = vdupq_n_s32(st[0]), mn0 = vdupq_n_s32(st[1]);
    int32x4_t mx1 = vdupq_n_s32(st[2]), mn1 = vdupq_n_s32(st[3]);
    uint32x4_t anyv = vdupq_n_u32(0);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const int32x4_t v = vld1q_s32(vv + j), x0 = vld1q_s32(i0 + j);
        int64x2_t tl = vmull_n_s32(vget_low_s32(v), am), th = vmull_high_n_s32(v, am);
        tl = vmlal_n_s32(tl, vget_low_s32(x0), b0);
        th = vmlal_high_n_s32(th, x0, b0);
        const int32x4_t d0 = vcombine_s32(vrshrn_n_s64(vmull_n_s32(vget_low_s32(x0), a0), 24),
                                          vrshrn_n_s64(vmull_high_n_s32(x0, a0), 24));
        vst1q_s32(i0 + j, d0);
        mx0 = vmaxq_s32(mx0, d0);
        mn0 = vminq_s32(mn0, d0);
        if (K > 1) {
            const int32x4_t x1 = vld1q_s32(i1 + j);
            tl = vmlal_n_s32(tl, vget_low_s32(x1), b1);
            th = vmlal_high_n_s32(th, x1, b1);
            const int32x4_t d1 =
                vcombine_s32(vrshrn_n_s64(vmull_n_s32(vget_low_s32(x1), a1), 24),
                             vrshrn_n_s64(vmull_high_n_s32(x1, a1), 24));
            vst1q_s32(i1 + j, d1);
            mx1 = vmaxq_s32(mx1, d1);
            mn1 = vminq_s32(mn1, d1);
        }
        if (CLAMP) {
            tl = vbslq_s64(vcgtq_s64(tl, XMX), XMX, tl);
            tl = vbslq_s64(vcgtq_s64(XMN, tl), XMN, tl);
            th = vbslq_s64(vcgtq_s64(th, XMX), XMX, th);
            th = vbslq_s64(vcgtq_s64(XMN, th), XMN, th);
        }
        int32x4_t vj = vcombine_s32(vrshrn_n_s64(tl, 24), vrshrn_n_s64(th, 24));
        if (CLAMP)
            vj = vaddq_s32(vj, BI);
        uint32x4_t s;
        int32x4_t r = Z;
        if (!NOREF) {
            r = vld1q_s32(rr + j);
            r = vaddq_s32(r, vreinterpretq_s32_u32(vcgtq_s32(r, Z)));   /* r -= (r > 0) */
            const uint32x4_t act = vceqq_s32(r, Z);
            vj = vbslq_s32(act, vj, v);
            s = vandq_u32(vcgtq_s32(vj, TH), act);
        } else {
            s = vcgtq_s32(vj, TH);
        }
        const int32x4_t vres = SUB ? vsubq_s32(vj, DS) : VR;
        vst1q_s32(vv + j, vbslq_s32(s, vres, vj));
        if (!NOREF)
            vst1q_s32(rr + j, vbslq_s32(s, RS, r));
        const uint16x4_t s16 = vmovn_u32(s);
        const uint8x8_t s8 = vand_u8(vmovn_u16(vcombine_u16(s16, s16)), ONE8);
        vst1_lane_u32((uint32_t *)(void *)(sp + j), vreinterpret_u32_u8(s8), 0);
        anyv = vorrq_u32(anyv, s);
    }
    se_st_merge(st, vmaxvq_s32(mx0), vminvq_s32(mn0), K > 1 ? vmaxvq_s32(mx1) : INT32_MIN,
                K > 1 ? vminvq_s32(mn1) : INT32_MAX, K, vmaxvq_u32(anyv) != 0);
    return j;
}
#else
#define SE_NEON 0
#endif

/* Steps 1-5 for population g with its constants as scalars. K, NOREF (no refractory counter
 * can be non-zero), SUB (reset by subtraction) and NOSAT (the membrane clamp cannot act,
 * se_prepare) are constants at every call site, so each combination compiles to its own
 * branch-free, vectorised loop. Returns 1 when a neuron spiked. */
SE_INLINE int se_pop_fast(se_kernel *k, int g, int32_t *v, int32_t *i_syn, int32_t *ref,
                          uint8_t *spikes, const int K, const int NOREF, const int SUB,
                          const int NOSAT) {
    int s0 = k->pop_start[g], n = k->pop_n[g], N = k->N, G = k->G;
    /* int32 constants, widened at each product (a 32x32->64-bit multiply where the compiler
     * picks it; GCC 12 still uses vpmullq for AVX-512 here, see docs/performance.md) */
    int32_t am = k->alpha_m[s0], bias = k->bias[s0];
    int32_t b0 = k->beta[s0], a0 = k->alpha_s[s0];
    int32_t b1 = K > 1 ? k->beta[N + s0] : 0, a1 = K > 1 ? k->alpha_s[N + s0] : 0;
    int32_t th = k->theta[s0], vr = k->v_reset[s0], rsteps = k->ref_steps[s0];
    int32_t dsub = (int32_t)((int64_t)th - vr); /* in [0, INT32_MAX] when SUB (se_prepare) */
    int32_t *restrict vv = v + s0;
    int32_t *restrict rr = ref + s0;
    int32_t *restrict i0 = i_syn + s0;
    int32_t *restrict i1 = i_syn + (K > 1 ? N : 0) + s0;
    uint8_t *restrict sp = spikes + s0;
    int32_t mx0 = INT32_MIN, mn0 = INT32_MAX, mx1 = INT32_MIN, mn1 = INT32_MAX, any = 0;
    int j = 0;
#if SE_X86_SIMD || SE_NEON
    /* aarch64: only where the clamp is needed; without it GCC's own NEON loop below counts
     * about 5 % fewer instructions per step than se_pop_neon (kws, shd under QEMU) */
    if (SE_NEON ? (!NOSAT && ((k->vecok >> g) & 1))
                : ((NOSAT || ((k->vecok >> g) & 1)) && k->isa)) {
        int32_t c[10] = {am, b0, a0, b1, a1, th, vr, rsteps, dsub, bias};
        /* !NOSAT: the contract's sat32(((tot + 2^23) >> 24) + bias) is computed as x = tot +
         * 2^23 clamped to [XMN, XMX], then the low 32 bits of x >> 24 plus bias, wrapping.
         * Inside the range both fit int32; XMX >> 24 + bias = INT32_MAX, XMN >> 24 + bias =
         * INT32_MIN, which is what the clamp gives beyond them (vecok: tot fits int64) */
        int64_t lim[2] = {((int64_t)INT32_MIN - bias) * ((int64_t)1 << SE_FRAC),
                          ((int64_t)INT32_MAX - bias) * ((int64_t)1 << SE_FRAC) +
                              (((int64_t)1 << SE_FRAC) - 1)};
        int32_t st[5] = {mx0, mn0, mx1, mn1, 0};
#if SE_NEON
        j = se_pop_neon(n, vv, rr, i0, i1, sp, c, lim, st, K, NOREF, SUB, !NOSAT);
#else
        if (k->isa == 2)
            j = se_pop_avx512(n, vv, rr, i0, i1, sp, c, lim, st, K, NOREF, SUB, !NOSAT);
        else
            j = se_pop_avx2(n, vv, rr, i0, i1, sp, c, lim, st, K, NOREF, SUB, !NOSAT);
#endif
        mx0 = st[0], mn0 = st[1], mx1 = st[2], mn1 = st[3], any = st[4];
    }
#endif
    for (; j < n; j++) {  /* all of it, or the last n % lanes after the SIMD loop */
        int32_t vj = vv[j], x0 = i0[j], x1 = K > 1 ? i1[j] : 0;
        int64_t tot = (int64_t)vj * am + (int64_t)x0 * b0;
        if (K > 1)
            tot += (int64_t)x1 * b1;
        int32_t vn = NOSAT ? (int32_t)((tot + SE_HALF) >> SE_FRAC)
                           : se_sat32(((tot + SE_HALF) >> SE_FRAC) + bias);
        int32_t d0 = SE_DECAY_EXACT(x0, a0);
        i0[j] = d0;
        mx0 = d0 > mx0 ? d0 : mx0;
        mn0 = d0 < mn0 ? d0 : mn0;
        if (K > 1) {
            int32_t d1 = SE_DECAY_EXACT(x1, a1);
            i1[j] = d1;
            mx1 = d1 > mx1 ? d1 : mx1;
            mn1 = d1 < mn1 ? d1 : mn1;
        }
        int32_t r = 0, act = 1;
        if (!NOREF) {
            r = rr[j];
            r -= (r > 0);
            act = r == 0;
            vj = act ? vn : vj;
        } else {
            vj = vn;
        }
        int32_t s = act & (vj > th);
        int32_t vres = SUB ? vj - dsub : vr;
        vv[j] = s ? vres : vj;
        if (!NOREF)
            rr[j] = s ? rsteps : r;
        sp[j] = (uint8_t)s;
        any = s > any ? s : any;    /* a max, not a sum: GCC vectorises it with the ranges */
    }
    k->imax[g + 1] = mx0;
    k->imin[g + 1] = mn0;
    if (K > 1) {
        k->imax[G + g + 1] = mx1;
        k->imin[G + g + 1] = mn1;
    }
    return any;
}

#define SE_POP_FAST_CASE(KK, NR, SB, NS) \
    case (KK - 1) * 8 + NR * 4 + SB * 2 + NS: \
        c = se_pop_fast(k, g, v, i_syn, ref, spikes, KK, NR, SB, NS); \
        break;

/* se_neurons on the specialised path; noref: bit g set when population g has no refractory
 * period and no counter running (then none can start). */
SE_INLINE void se_neurons_fast(se_kernel *k, const uint8_t *inp, int32_t *v, int32_t *i_syn,
                               int32_t *ref, uint8_t *spikes, uint32_t noref) {
    int nspk = 0;
    int32_t *spk = k->spk;
    k->grp_ptr[0] = 0;
    if (k->n_in > 0)
        nspk = spk_collect_u8_isa(inp, k->n_in, spk, k->isa);
    k->grp_ptr[1] = nspk;
    for (int g = 0; g < k->G - 1; g++) {
        int s0 = k->pop_start[g], c = 0;
        int variant = (k->K - 1) * 8 + (int)((noref >> g) & 1) * 4 +
                      (k->reset_sub[s0] != 0) * 2 + (int)((k->nosat >> g) & 1);
        switch (variant) {
            SE_POP_FAST_CASE(1, 0, 0, 0)
            SE_POP_FAST_CASE(1, 0, 0, 1)
            SE_POP_FAST_CASE(1, 0, 1, 0)
            SE_POP_FAST_CASE(1, 0, 1, 1)
            SE_POP_FAST_CASE(1, 1, 0, 0)
            SE_POP_FAST_CASE(1, 1, 0, 1)
            SE_POP_FAST_CASE(1, 1, 1, 0)
            SE_POP_FAST_CASE(1, 1, 1, 1)
            SE_POP_FAST_CASE(2, 0, 0, 0)
            SE_POP_FAST_CASE(2, 0, 0, 1)
            SE_POP_FAST_CASE(2, 0, 1, 0)
            SE_POP_FAST_CASE(2, 0, 1, 1)
            SE_POP_FAST_CASE(2, 1, 0, 0)
            SE_POP_FAST_CASE(2, 1, 0, 1)
            SE_POP_FAST_CASE(2, 1, 1, 0)
            SE_POP_FAST_CASE(2, 1, 1, 1)
        }
        if (c)
            nspk += spk_collect_u8_isa(spikes + s0, k->pop_n[g], spk + nspk, k->isa);
        k->grp_ptr[g + 2] = nspk;
    }
}

/* Step 6 without the int64 accumulator when this step's sums provably cannot saturate (see
 * above); returns 0, having changed nothing, when they might (the caller then runs
 * se_propagate + se_fold). */
SE_INLINE int se_propagate_direct(se_kernel *k, const int16_t *w, int32_t *i_syn) {
    int G = k->G, KG = k->K * G, any = 0;
    for (int c = 0; c < KG; c++)
        k->bnd[c] = 0;
    for (int p = 0; p < k->P; p++) {
        const int32_t *row = k->proj + p * SE_PJ_NCOL;
        int64_t ns = (int64_t)k->grp_ptr[row[SE_PJ_SRC_GROUP] + 1] -
                     k->grp_ptr[row[SE_PJ_SRC_GROUP]];
        if (ns == 0)
            continue;
        ns *= k->mult[p];
        if (ns > 65536)
            return 0;
        k->bnd[row[SE_PJ_CHANNEL] * G + k->tgt_group[p]] += ns << (15 + row[SE_PJ_SHIFT]);
        any = 1;
    }
    if (!any)
        return 1;
    for (int c = 0; c < KG; c++)
        if (k->bnd[c] && ((int64_t)k->imax[c] + k->bnd[c] > INT32_MAX ||
                          (int64_t)k->imin[c] - k->bnd[c] < INT32_MIN))
            return 0;
    int32_t *rs = k->rowsum;
    for (int p = 0; p < k->P; p++) {
        const int32_t *row = k->proj + p * SE_PJ_NCOL;
        int a = k->grp_ptr[row[SE_PJ_SRC_GROUP]], b = k->grp_ptr[row[SE_PJ_SRC_GROUP] + 1];
        if (a == b)
            continue;
        int n_post = row[SE_PJ_N_POST];
        int32_t mul = (int32_t)1 << row[SE_PJ_SHIFT];
        int32_t *restrict cur = i_syn + (int64_t)row[SE_PJ_CHANNEL] * k->N + row[SE_PJ_TGT_START];
        const int16_t *wv = w + row[SE_PJ_W_OFF];
        if (row[SE_PJ_KIND] == SE_KIND_DENSE) {
#if SE_X86_SIMD
            if (k->isa == 2 && b - a >= 2) {
                se_rows_avx512(cur, wv, k->spk + a, b - a, n_post, row[SE_PJ_SHIFT]);
                continue;
            }
#endif
            if (b - a <= 2) {
                for (int s = a; s < b; s++)
                    syn_row_add_s16(cur, wv + (int64_t)k->spk[s] * n_post, mul, n_post);
            } else {
                /* |row sum| * mul <= B: exact in int32 */
                const int32_t *sp = k->spk;
                syn_rowinit_s16(rs, wv + (int64_t)sp[a] * n_post, n_post);
                int s = a + 1;
                for (; s + 4 <= b; s += 4)
                    syn_rowsum4_s16(rs, wv + (int64_t)sp[s] * n_post,
                                    wv + (int64_t)sp[s + 1] * n_post,
                                    wv + (int64_t)sp[s + 2] * n_post,
                                    wv + (int64_t)sp[s + 3] * n_post, n_post);
                for (; s < b; s++)
                    syn_rowsum_s16(rs, wv + (int64_t)sp[s] * n_post, n_post);
                syn_scale_add32_s32(cur, rs, mul, n_post);
            }
        } else {
            const int32_t *ptr = k->csr_ptr + row[SE_PJ_PTR_OFF];
            const int32_t *idx = k->csr_idx + row[SE_PJ_IDX_OFF];
            for (int s = a; s < b; s++) {
                int pre = k->spk[s];
                for (int e = ptr[pre]; e < ptr[pre + 1]; e++)
                    cur[idx[e]] += (int32_t)wv[e] * mul;
            }
        }
    }
    return 1;
}

/* T steps (one clone per instruction set on x86-64 Linux). inp [T][n_in], spikes [T][N]; rec_v [T][N] and rec_i [T][K][N] when record. */
SE_CLONES
static void se_steps(se_kernel *k, const uint8_t *inp, int T, int32_t *v, int32_t *i_syn,
                     int32_t *ref, int32_t *x_pre, int32_t *x_post, int16_t *w,
                     int32_t *theta_a, uint8_t *spikes, int32_t *rec_v, int32_t *rec_i,
                     int record, int adaptive, int learn) {
    int N = k->N, K = k->K;
    if (!k->prepared)
        se_prepare(k);
    /* the weights may have changed between calls: their range is checked again when first
     * needed; not for a short call, where that pass over them would cost more than it saves */
    memset(k->w_range, T >= 16 ? 0 : 2, sizeof k->w_range);
    int fast = k->fast && !adaptive;
    uint32_t noref = 0;
    for (int g = 0; fast && g < k->G - 1; g++) {
        int s0 = k->pop_start[g], n = k->pop_n[g], idle = k->ref_steps[s0] == 0;
        for (int j = 0; idle && j < n; j++)
            idle = ref[s0 + j] == 0;
        noref |= (uint32_t)idle << g;
    }
    for (int t = 0; t < T; t++) {
        const uint8_t *in_t = k->n_in > 0 ? inp + (int64_t)t * k->n_in : NULL;
#if defined(__GNUC__)
        /* the next step's input row: a hint, so that its cache misses overlap this step */
        if (t + 1 < T)
            for (int o = 0; o < k->n_in; o += 64)
                __builtin_prefetch(in_t + k->n_in + o);
#endif
        if (fast) {
            se_neurons_fast(k, in_t, v, i_syn, ref, spikes + (int64_t)t * N, noref);
            if (!se_propagate_direct(k, w, i_syn)) {
                se_propagate(k, w);
                se_fold(k, i_syn);
            }
        } else {
            se_neurons(k, in_t, v, i_syn, ref, theta_a, adaptive, spikes + (int64_t)t * N);
            se_propagate(k, w);
            se_fold(k, i_syn);
        }
        if (k->L > 0 && learn)
            se_stdp(k, x_pre, x_post, w);
        if (record) {
            memcpy(rec_v + (int64_t)t * N, v, (size_t)N * sizeof(int32_t));
            memcpy(rec_i + (int64_t)t * K * N, i_syn, (size_t)K * N * sizeof(int32_t));
        }
    }
}

/* decay constants all within [0, 2^24]? (then the decays need no saturation, lif_ops.h) */
static inline int se_q24_in_range(const int32_t *c, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        if (c[j] < 0 || c[j] > ((int32_t)1 << SE_FRAC))
            return 0;
    return 1;
}

#endif
