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
    SE_ROWS_PER_BATCH = 65535 /* int32 row sums of int16 weights stay exact below 65536 rows */
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
                stdp_row_s16(W + (int64_t)i * n_post, yp, (int32_t)lo, (int32_t)hi, n_post);
        }
        int g_post = k->tgt_group[p];
        for (int s = k->grp_ptr[g_post]; s < k->grp_ptr[g_post + 1]; s++) {
            int j = k->spk[s];
            yp[j] = se_sat32((int64_t)yp[j] + a_post);
            for (int i = 0; i < n_pre; i++) {
                int64_t wij = W[(int64_t)i * n_post + j];
                if (mult)
                    W[(int64_t)i * n_post + j] = (int16_t)se_clip16(
                        wij + se_rdiv((int64_t)xp[i] * (hi - wij), (hi - lo) << SE_TRACE_FRAC),
                        lo, hi);
                else
                    W[(int64_t)i * n_post + j] = (int16_t)se_clip16(wij + se_trace_dw(xp[i]),
                                                                    lo, hi);
            }
        }
    }
}

/* T steps (one clone per instruction set on x86-64 Linux). inp [T][n_in], spikes [T][N]; rec_v [T][N] and rec_i [T][K][N] when record. */
SE_CLONES
static void se_steps(se_kernel *k, const uint8_t *inp, int T, int32_t *v, int32_t *i_syn,
                     int32_t *ref, int32_t *x_pre, int32_t *x_post, int16_t *w,
                     int32_t *theta_a, uint8_t *spikes, int32_t *rec_v, int32_t *rec_i,
                     int record, int adaptive, int learn) {
    int N = k->N, K = k->K;
    for (int t = 0; t < T; t++) {
        se_neurons(k, k->n_in > 0 ? inp + (int64_t)t * k->n_in : NULL, v, i_syn, ref, theta_a,
                   adaptive, spikes + (int64_t)t * N);
        se_propagate(k, w);
        se_fold(k, i_syn);
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
