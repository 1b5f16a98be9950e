# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled fixed-point kernels (private). Use them through ``spikeedge.kernels``.

Bit-exact with the golden reference ``spikeedge.reference``; the arithmetic is the contract in
``spikeedge.contract``. The kernel object is prepared once from a Program (Init -> Prepare ->
Eval); ``run`` then runs T steps with the GIL released and allocates nothing.
"""
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t
from libc.string cimport memset

import numpy as np

# projection / plasticity descriptor columns must match spikeedge.program
cdef enum:
    FRAC = 24
    HALF = 8388608          # 2**23
    I32_MAX = 2147483647
    I32_MIN = -2147483648
    ROWS_PER_BATCH = 65535  # int32 row sums of int16 weights stay exact below 65536 rows
    PJ_KIND = 0
    PJ_SRC_GROUP = 1
    PJ_N_PRE = 2
    PJ_TGT_START = 3
    PJ_N_POST = 4
    PJ_CHANNEL = 5
    PJ_SHIFT = 6
    PJ_W_OFF = 7
    PJ_PTR_OFF = 8
    PJ_IDX_OFF = 10
    PL_PROJ = 0
    PL_XPRE_OFF = 1
    PL_XPOST_OFF = 2
    PL_A_PRE = 3
    PL_A_POST = 4
    PL_ALPHA_PRE = 5
    PL_ALPHA_POST = 6
    PL_W_MIN = 7
    PL_W_MAX = 8
    PL_RULE = 9
    RULE_MULTIPLICATIVE = 1
    KIND_DENSE = 0
    PJ_NCOL = 11
    PL_NCOL = 10


cdef extern from "lif_ops.h" nogil:
    void lif_membrane_decay_q24(int32_t* out, const int32_t* v, const int32_t* am,
                                int32_t* i_syn, const int32_t* beta, const int32_t* alpha_s,
                                const int32_t* bias, int K, int64_t stride, int n)
    void decay_q24_s32_scalar(int32_t* x, int32_t a, int n)
    void syn_fold_s64(int32_t* cur, int64_t* acc, int n)
    void syn_rowsum_s16(int32_t* rs, const int16_t* w, int n)
    void syn_scale_add_s32(int64_t* acc, const int32_t* rs, int64_t mul, int n)
    int spk_collect_u8(const uint8_t* x, int n, int32_t* out)
    int lif_threshold_s32(int32_t* v, const int32_t* vnew, int32_t* ref, const int32_t* theta,
                          uint8_t* spikes, int n)
    void decay_q24_s32(int32_t* x, const int32_t* a, int n)
    void lif_threshold_eff_s32(int32_t* out, const int32_t* theta, const int32_t* theta_a, int n)
    int64_t se_rdiv(int64_t a, int64_t r)
    void stdp_row_mult_s16(int16_t* w, const int32_t* x, int32_t lo, int32_t hi,
                           int potentiate, int n)
    void stdp_row_s16(int16_t* w, const int32_t* x, int32_t lo, int32_t hi, int n)


cdef inline int32_t sat32(int64_t x) noexcept nogil:
    if x > I32_MAX:
        return I32_MAX
    if x < I32_MIN:
        return I32_MIN
    return <int32_t>x


cdef inline int16_t clip16(int64_t x, int64_t lo, int64_t hi) noexcept nogil:
    if x > hi:
        return <int16_t>hi
    if x < lo:
        return <int16_t>lo
    return <int16_t>x


cdef class LifKernel:
    """A Program prepared for the compiled kernels: raw pointers to its flat arrays and the
    scratch buffers, all allocated here and reused by every ``run``."""

    cdef const int32_t* alpha_m
    cdef const int32_t* alpha_s
    cdef const int32_t* beta
    cdef const int32_t* bias
    cdef const int32_t* theta
    cdef const int32_t* v_reset
    cdef const int32_t* ref_steps
    cdef const int32_t* theta_plus
    cdef const int32_t* alpha_theta
    cdef const int32_t* pop_start
    cdef const int32_t* pop_n
    cdef const int32_t* proj
    cdef const int32_t* plast
    cdef const uint8_t* reset_sub
    cdef const int32_t* csr_ptr
    cdef const int32_t* csr_idx
    cdef int64_t* acc
    cdef int32_t* rowsum
    cdef int32_t* spk
    cdef int32_t* grp_ptr
    cdef int32_t* tgt_group
    cdef uint8_t* touched
    cdef int32_t* vnew
    cdef int32_t* thr
    cdef int n_in, N, K, G, P, L
    cdef object _keep

    def __init__(self, prog):
        cdef const int32_t[::1] v32
        cdef const uint8_t[::1] v8
        cdef int64_t[:, ::1] a64
        cdef int32_t[::1] w32
        cdef uint8_t[::1] w8
        keep = []

        def c32(a):
            a = np.ascontiguousarray(a, dtype=np.int32)
            if a.size == 0:
                a = np.zeros(1, np.int32)
            keep.append(a)
            return a

        self.n_in = prog.n_in
        self.N = prog.alpha_m.shape[0]
        self.K = prog.alpha_s.shape[0]
        self.G = prog.pop_n.shape[0] + 1
        self.P = prog.proj.shape[0]
        self.L = prog.plast.shape[0]
        v32 = c32(prog.alpha_m)
        self.alpha_m = &v32[0]
        v32 = c32(prog.alpha_s).ravel()
        self.alpha_s = &v32[0]
        v32 = c32(prog.beta).ravel()
        self.beta = &v32[0]
        v32 = c32(prog.bias)
        self.bias = &v32[0]
        v32 = c32(prog.theta)
        self.theta = &v32[0]
        v32 = c32(prog.v_reset)
        self.v_reset = &v32[0]
        v32 = c32(prog.ref_steps)
        self.ref_steps = &v32[0]
        v32 = c32(prog.theta_plus)
        self.theta_plus = &v32[0]
        v32 = c32(prog.alpha_theta)
        self.alpha_theta = &v32[0]
        v32 = c32(prog.pop_start)
        self.pop_start = &v32[0]
        v32 = c32(prog.pop_n)
        self.pop_n = &v32[0]
        v32 = c32(prog.proj).ravel()
        self.proj = &v32[0]
        v32 = c32(prog.plast).ravel()
        self.plast = &v32[0]
        v32 = c32(prog.csr_ptr)
        self.csr_ptr = &v32[0]
        v32 = c32(prog.csr_idx)
        self.csr_idx = &v32[0]
        rs = np.ascontiguousarray(prog.reset_sub, dtype=np.uint8)
        keep.append(rs)
        v8 = rs
        self.reset_sub = &v8[0]
        acc = np.zeros((self.K, self.N), np.int64)
        keep.append(acc)
        a64 = acc
        self.acc = &a64[0, 0]
        max_post = max([int(r[PJ_N_POST]) for r in prog.proj] + [1])
        for arr_len, attr in ((self.N, "vnew"), (self.N, "thr"), (max_post, "rowsum"),
                              (self.n_in + self.N + 1, "spk"), (self.G + 1, "grp_ptr"),
                              (max(self.P, 1), "tgt_group")):
            a = np.zeros(arr_len, np.int32)
            keep.append(a)
            w32 = a
            if attr == "vnew":
                self.vnew = &w32[0]
            elif attr == "thr":
                self.thr = &w32[0]
            elif attr == "rowsum":
                self.rowsum = &w32[0]
            elif attr == "spk":
                self.spk = &w32[0]
            elif attr == "grp_ptr":
                self.grp_ptr = &w32[0]
            else:
                self.tgt_group = &w32[0]
        starts = [int(s) for s in prog.pop_start]
        for p in range(self.P):
            self.tgt_group[p] = starts.index(int(prog.proj[p, PJ_TGT_START])) + 1
        tch = np.zeros(self.K * self.G, np.uint8)
        keep.append(tch)
        w8 = tch
        self.touched = &w8[0]
        self._keep = (prog, keep)

    def run(self, const uint8_t[:, ::1] inp, int32_t[::1] v, int32_t[:, ::1] i_syn,
            int32_t[::1] ref, int32_t[::1] x_pre, int32_t[::1] x_post, int16_t[::1] w,
            int32_t[::1] theta_a, uint8_t[:, ::1] spikes, int32_t[:, ::1] rec_v,
            int32_t[:, :, ::1] rec_i, bint record, bint adaptive, bint learn):
        """Run inp.shape[0] steps in place on the state arrays. The caller (the public
        wrapper) has checked every shape and dtype."""
        cdef int T = inp.shape[0]
        cdef int n_in = inp.shape[1]
        cdef int t, k, j
        cdef const uint8_t* inp_p = &inp[0, 0] if T > 0 and n_in > 0 else NULL
        cdef int32_t* vp = &v[0]
        cdef int32_t* ip = &i_syn[0, 0]
        cdef int32_t* rp = &ref[0]
        cdef int16_t* wp = &w[0]
        cdef int32_t* xpre = &x_pre[0]
        cdef int32_t* xpost = &x_post[0]
        cdef int32_t* tha = &theta_a[0]
        if T == 0:
            return
        with nogil:
            for t in range(T):
                self._neurons(inp_p + <int64_t>t * n_in if inp_p != NULL else NULL,
                              vp, ip, rp, tha, adaptive, &spikes[t, 0])
                self._propagate(wp)
                self._fold(ip)
                if self.L > 0 and learn:
                    self._stdp(xpre, xpost, wp)
                if record:
                    for j in range(self.N):
                        rec_v[t, j] = vp[j]
                    for k in range(self.K):
                        for j in range(self.N):
                            rec_i[t, k, j] = ip[k * self.N + j]

    cdef void _neurons(self, const uint8_t* inp, int32_t* v, int32_t* i_syn, int32_t* ref,
                       int32_t* theta_a, bint adaptive, uint8_t* spikes) noexcept nogil:
        """Steps 1-5 of the contract for every neuron; collects spiking indices per group.
        Invariant: spk[grp_ptr[g]:grp_ptr[g+1]] are the local indices of group g's spikes."""
        cdef int i, j, g, s0, n, first, nspk = 0
        cdef int N = self.N, K = self.K
        cdef int32_t* spk = self.spk
        cdef const int32_t* am = self.alpha_m
        cdef const int32_t* be = self.beta
        cdef const int32_t* bias = self.bias
        cdef const int32_t* th = self.theta
        cdef const int32_t* thr
        self.grp_ptr[0] = 0
        if self.n_in > 0:
            nspk = spk_collect_u8(inp, self.n_in, spk)
        self.grp_ptr[1] = nspk
        lif_membrane_decay_q24(self.vnew, v, am, i_syn, be, self.alpha_s, bias, K, N, N)
        if adaptive:
            decay_q24_s32(theta_a, self.alpha_theta, N)
            lif_threshold_eff_s32(self.thr, th, theta_a, N)
        thr = self.thr if adaptive else th
        for g in range(self.G - 1):
            s0 = self.pop_start[g]
            n = self.pop_n[g]
            if lif_threshold_s32(v + s0, self.vnew + s0, ref + s0, thr + s0, spikes + s0, n):
                first = nspk
                nspk += spk_collect_u8(spikes + s0, n, spk + nspk)
                for i in range(first, nspk):
                    j = s0 + spk[i]
                    if self.reset_sub[j]:
                        v[j] = sat32(<int64_t>v[j] - (<int64_t>th[j] - self.v_reset[j]))
                    else:
                        v[j] = self.v_reset[j]
                    ref[j] = self.ref_steps[j]
                    if adaptive:
                        theta_a[j] = sat32(<int64_t>theta_a[j] + self.theta_plus[j])
            self.grp_ptr[g + 2] = nspk

    cdef void _propagate(self, const int16_t* w) noexcept nogil:
        """Step 6a: event-driven; only rows of the sources that spiked are read."""
        cdef int p, a, b, s, s_end, e, pre, n_post, tgt0, k
        cdef int64_t mul, w_off
        cdef const int32_t* row
        cdef int32_t* rs = self.rowsum
        cdef int64_t* accp
        cdef const int32_t* ptr
        cdef const int32_t* idx
        cdef const int16_t* wv
        for p in range(self.P):
            row = self.proj + p * PJ_NCOL
            a = self.grp_ptr[row[PJ_SRC_GROUP]]
            b = self.grp_ptr[row[PJ_SRC_GROUP] + 1]
            if a == b:
                continue
            n_post = row[PJ_N_POST]
            tgt0 = row[PJ_TGT_START]
            k = row[PJ_CHANNEL]
            mul = (<int64_t>1) << row[PJ_SHIFT]
            w_off = row[PJ_W_OFF]
            accp = self.acc + <int64_t>k * self.N + tgt0
            self.touched[k * self.G + self.tgt_group[p]] = 1
            if row[PJ_KIND] == KIND_DENSE:
                while a < b:
                    s_end = b if b - a <= ROWS_PER_BATCH else a + ROWS_PER_BATCH
                    memset(rs, 0, n_post * sizeof(int32_t))
                    for s in range(a, s_end):
                        syn_rowsum_s16(rs, w + w_off + (<int64_t>self.spk[s]) * n_post, n_post)
                    syn_scale_add_s32(accp, rs, mul, n_post)
                    a = s_end
            else:
                ptr = self.csr_ptr + row[PJ_PTR_OFF]
                idx = self.csr_idx + row[PJ_IDX_OFF]
                wv = w + w_off
                for s in range(a, b):
                    pre = self.spk[s]
                    for e in range(ptr[pre], ptr[pre + 1]):
                        accp[idx[e]] += wv[e] * mul

    cdef void _fold(self, int32_t* i_syn) noexcept nogil:
        """Step 6b: add the exact step sums to the currents, saturating once; clear them.
        Only (channel, population) ranges that received rows this step are visited."""
        cdef int k, g, s0, n
        cdef int64_t* accp
        cdef int32_t* cur
        for k in range(self.K):
            for g in range(1, self.G):
                if not self.touched[k * self.G + g]:
                    continue
                self.touched[k * self.G + g] = 0
                s0 = self.pop_start[g - 1]
                n = self.pop_n[g - 1]
                accp = self.acc + <int64_t>k * self.N + s0
                cur = i_syn + <int64_t>k * self.N + s0
                syn_fold_s64(cur, accp, n)

    cdef void _stdp(self, int32_t* x_pre, int32_t* x_post, int16_t* w) noexcept nogil:
        """Step 7: trace decay, presynaptic then postsynaptic weight updates."""
        cdef int rule, p, i, j, s, n_pre, n_post, g_pre, g_post
        cdef int64_t lo, hi, wij
        cdef int32_t a_pre, a_post, d_pre, d_post
        cdef bint mult
        cdef int16_t* W
        cdef int32_t* xp
        cdef int32_t* yp
        cdef const int32_t* lrow
        cdef const int32_t* prow
        for rule in range(self.L):
            lrow = self.plast + rule * PL_NCOL
            p = lrow[PL_PROJ]
            prow = self.proj + p * PJ_NCOL
            n_pre = prow[PJ_N_PRE]
            n_post = prow[PJ_N_POST]
            W = w + prow[PJ_W_OFF]
            xp = x_pre + lrow[PL_XPRE_OFF]
            yp = x_post + lrow[PL_XPOST_OFF]
            a_pre = lrow[PL_A_PRE]
            a_post = lrow[PL_A_POST]
            d_pre = lrow[PL_ALPHA_PRE]
            d_post = lrow[PL_ALPHA_POST]
            lo = lrow[PL_W_MIN]
            hi = lrow[PL_W_MAX]
            mult = lrow[PL_RULE] == RULE_MULTIPLICATIVE
            decay_q24_s32_scalar(xp, d_pre, n_pre)
            decay_q24_s32_scalar(yp, d_post, n_post)
            g_pre = prow[PJ_SRC_GROUP]
            for s in range(self.grp_ptr[g_pre], self.grp_ptr[g_pre + 1]):
                i = self.spk[s]
                xp[i] = sat32(<int64_t>xp[i] + a_pre)
                if mult:
                    stdp_row_mult_s16(W + (<int64_t>i) * n_post, yp, <int32_t>lo, <int32_t>hi,
                                      0, n_post)
                else:
                    stdp_row_s16(W + (<int64_t>i) * n_post, yp, <int32_t>lo, <int32_t>hi,
                                 n_post)
            g_post = self.tgt_group[p]
            for s in range(self.grp_ptr[g_post], self.grp_ptr[g_post + 1]):
                j = self.spk[s]
                yp[j] = sat32(<int64_t>yp[j] + a_post)
                for i in range(n_pre):
                    wij = W[(<int64_t>i) * n_post + j]
                    if mult:
                        W[(<int64_t>i) * n_post + j] = clip16(
                            wij + se_rdiv((<int64_t>xp[i]) * (hi - wij), hi - lo), lo, hi)
                    else:
                        W[(<int64_t>i) * n_post + j] = clip16(wij + xp[i], lo, hi)


def build_info():
    """Compile-time facts about this build."""
    return {"compile_args": SPIKEEDGE_COMPILE_ARGS_STR}


cdef extern from *:
    """
    #ifndef SPIKEEDGE_COMPILE_ARGS
    #define SPIKEEDGE_COMPILE_ARGS "unknown"
    #endif
    static const char *spikeedge_compile_args = SPIKEEDGE_COMPILE_ARGS;
    """
    const char *spikeedge_compile_args

SPIKEEDGE_COMPILE_ARGS_STR = spikeedge_compile_args.decode()
