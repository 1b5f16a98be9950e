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
    SE_FAST_POPS = 16, SE_FAST_PROJ = 32, SE_FAST_CG = 2 * (SE_FAST_POPS + 1)
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
    /* bit g: population g's membrane update cannot leave int32 (se_prepare), no clamp */
    uint32_t nosat;
    int32_t mult[SE_FAST_PROJ];
    /* per step, index ch * G + g: range of the decayed currents, bound of the step's sum */
    int32_t imax[SE_FAST_CG], imin[SE_FAST_CG];
    int64_t bnd[SE_FAST_CG];
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
        nspk = spk_collect_u8(inp, k->n_in, spk);
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
            nspk += spk_collect_u8(spikes + s0, n, spk + nspk);
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
        decay_q24_s32_scalar(xp, lrow[SE_PL_ALPHA_PRE], n_pre);
        decay_q24_s32_scalar(yp, lrow[SE_PL_ALPHA_POST], n_post);
        int g_pre = prow[SE_PJ_SRC_GROUP];
        for (int s = k->grp_ptr[g_pre]; s < k->grp_ptr[g_pre + 1]; s++) {
            int i = k->spk[s];
            xp[i] = se_sat32((int64_t)xp[i] + a_pre);
            if (mult)
                stdp_row_mult_s16(W + (int64_t)i * n_post, yp, (int32_t)lo, (int32_t)hi, 0,
                                  n_post);
            else
                stdp_row_s16(W + (int64_t)i * n_post, yp, lo < INT16_MIN ? INT16_MIN : (int32_t)lo,
                             hi > INT16_MAX ? INT16_MAX : (int32_t)hi, n_post);
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
            int32_t lo16 = lo < INT16_MIN ? INT16_MIN : (int32_t)lo;
            int32_t hi16 = hi > INT16_MAX ? INT16_MAX : (int32_t)hi;
            /* two columns per pass over the rows, then the odd one */
            int s = 0;
            for (; s + 2 <= ns; s += 2) {
                int16_t *c0 = W + sj[s], *c1 = W + sj[s + 1];
                for (int64_t i = 0; i < n_pre; i++) {
                    int32_t d = se_trace_dw32(xp[i]);
                    c0[i * n_post] = (int16_t)se_clip_w((int32_t)c0[i * n_post] + d, lo16, hi16);
                    c1[i * n_post] = (int16_t)se_clip_w((int32_t)c1[i * n_post] + d, lo16, hi16);
                }
            }
            if (s < ns) {
                int16_t *c0 = W + sj[s];
                for (int64_t i = 0; i < n_pre; i++)
                    c0[i * n_post] = (int16_t)se_clip_w((int32_t)c0[i * n_post] +
                                                        se_trace_dw32(xp[i]), lo16, hi16);
            }
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
    for (int j = 0; j < n; j++) {
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
        nspk = spk_collect_u8(inp, k->n_in, spk);
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
            nspk += spk_collect_u8(spikes + s0, k->pop_n[g], spk + nspk);
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
