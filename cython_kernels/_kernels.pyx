# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled fixed-point kernels (private). Use them through ``spikeedge.kernels``.

Bit-exact with the golden reference ``spikeedge.reference``; the arithmetic is the contract in
``spikeedge.contract``. The kernel object is prepared once from a Program (Init -> Prepare ->
Eval); ``run`` then runs T steps with the GIL released and allocates nothing.
"""
cimport numpy as cnp
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t

import numpy as np

cnp.import_array()

# projection descriptor columns must match spikeedge.program (the rest: lif_kernel.h)
cdef enum:
    PJ_TGT_START = 3
    PJ_N_POST = 4


cdef extern from "lif_kernel.h" nogil:
    ctypedef struct se_kernel:
        const int32_t* alpha_m
        const int32_t* alpha_s
        const int32_t* beta
        const int32_t* bias
        const int32_t* theta
        const int32_t* v_reset
        const int32_t* ref_steps
        const int32_t* theta_plus
        const int32_t* alpha_theta
        const int32_t* pop_start
        const int32_t* pop_n
        const int32_t* proj
        const int32_t* plast
        const int32_t* csr_ptr
        const int32_t* csr_idx
        const uint8_t* reset_sub
        int n_in, N, K, G, P, L
        int decay_exact, theta_exact
        int prepared, fast
        int isa
        uint32_t nosat
        uint32_t vecok
        int64_t* acc
        int32_t* rowsum
        int32_t* spk
        int32_t* grp_ptr
        int32_t* tgt_group
        int32_t* vnew
        int32_t* thr
        uint8_t* touched
    void se_steps(se_kernel* k, const uint8_t* inp, int T, int32_t* v, int32_t* i_syn,
                  int32_t* ref, int32_t* x_pre, int32_t* x_post, int16_t* w,
                  int32_t* theta_a, uint8_t* spikes, int32_t* rec_v, int32_t* rec_i,
                  int record, int adaptive, int learn)
    int se_q24_in_range(const int32_t* c, int64_t n)
    void se_prepare(se_kernel* k)


cdef inline bint _ok(object a, int typenum, int ndim, cnp.npy_intp d0, cnp.npy_intp d1,
                     bint writeable):
    """a is an ndarray of this dtype, ndim and shape (d0 < 0: any), C-contiguous (and
    writeable when asked)."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim:
        return False
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    if writeable and not cnp.PyArray_ISWRITEABLE(arr):
        return False
    if d0 >= 0 and cnp.PyArray_DIM(arr, 0) != d0:
        return False
    if ndim == 2 and cnp.PyArray_DIM(arr, 1) != d1:
        return False
    return True


cdef class BoundState


cdef class LifKernel:
    """A Program prepared for the compiled kernels: raw pointers to its flat arrays and the
    scratch buffers, all allocated here and reused by every ``run``."""

    cdef se_kernel k
    cdef int n_pre, n_post
    cdef cnp.npy_intp w_shape0
    cdef int32_t dummy32[1]
    cdef int16_t dummy16[1]
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

        self.k.n_in = prog.n_in
        self.k.N = prog.alpha_m.shape[0]
        self.k.K = prog.alpha_s.shape[0]
        self.k.G = prog.pop_n.shape[0] + 1
        self.k.P = prog.proj.shape[0]
        self.k.L = prog.plast.shape[0]
        v32 = c32(prog.alpha_m)
        self.k.alpha_m = &v32[0]
        v32 = c32(prog.alpha_s).ravel()
        self.k.alpha_s = &v32[0]
        v32 = c32(prog.beta).ravel()
        self.k.beta = &v32[0]
        v32 = c32(prog.bias)
        self.k.bias = &v32[0]
        v32 = c32(prog.theta)
        self.k.theta = &v32[0]
        v32 = c32(prog.v_reset)
        self.k.v_reset = &v32[0]
        v32 = c32(prog.ref_steps)
        self.k.ref_steps = &v32[0]
        v32 = c32(prog.theta_plus)
        self.k.theta_plus = &v32[0]
        v32 = c32(prog.alpha_theta)
        self.k.alpha_theta = &v32[0]
        v32 = c32(prog.pop_start)
        self.k.pop_start = &v32[0]
        v32 = c32(prog.pop_n)
        self.k.pop_n = &v32[0]
        v32 = c32(prog.proj).ravel()
        self.k.proj = &v32[0]
        v32 = c32(prog.plast).ravel()
        self.k.plast = &v32[0]
        v32 = c32(prog.csr_ptr)
        self.k.csr_ptr = &v32[0]
        v32 = c32(prog.csr_idx)
        self.k.csr_idx = &v32[0]
        rs = np.ascontiguousarray(prog.reset_sub, dtype=np.uint8)
        keep.append(rs)
        v8 = rs
        self.k.reset_sub = &v8[0]
        acc = np.zeros((self.k.K, self.k.N), np.int64)
        keep.append(acc)
        a64 = acc
        self.k.acc = &a64[0, 0]
        max_post = max([int(r[PJ_N_POST]) for r in prog.proj] + [1])
        for arr_len, attr in ((self.k.N, "vnew"), (self.k.N, "thr"), (max_post, "rowsum"),
                              (self.k.n_in + self.k.N + 1, "spk"), (self.k.G + 1, "grp_ptr"),
                              (max(self.k.P, 1), "tgt_group")):
            a = np.zeros(arr_len, np.int32)
            keep.append(a)
            w32 = a
            if attr == "vnew":
                self.k.vnew = &w32[0]
            elif attr == "thr":
                self.k.thr = &w32[0]
            elif attr == "rowsum":
                self.k.rowsum = &w32[0]
            elif attr == "spk":
                self.k.spk = &w32[0]
            elif attr == "grp_ptr":
                self.k.grp_ptr = &w32[0]
            else:
                self.k.tgt_group = &w32[0]
        starts = [int(s) for s in prog.pop_start]
        for p in range(self.k.P):
            self.k.tgt_group[p] = starts.index(int(prog.proj[p, PJ_TGT_START])) + 1
        tch = np.zeros(self.k.K * self.k.G, np.uint8)
        keep.append(tch)
        w8 = tch
        self.k.touched = &w8[0]
        # decays cannot saturate with constants in [0, 2**24] (lif_ops.h): skip the clamps
        self.k.decay_exact = se_q24_in_range(self.k.alpha_s, <int64_t>self.k.K * self.k.N)
        self.k.theta_exact = se_q24_in_range(self.k.alpha_theta, self.k.N)
        self.n_pre, self.n_post = prog.trace_sizes()
        self.w_shape0 = prog.weights.shape[0]
        self._keep = (prog, keep)
        se_prepare(&self.k)     # the specialised path's facts (lif_kernel.h)

    @property
    def specialised(self):
        """True when the step loop can take the specialised path (lif_kernel.h: se_prepare)."""
        return bool(self.k.fast)

    @property
    def paths(self):
        """Which loops the step loop takes (lif_kernel.h: se_prepare): ``specialised``, ``isa``
        (hand-written loops used on x86-64: 2 AVX-512, 1 AVX2, 0 none), ``nosat`` (one
        bool per population: its membrane update provably needs no clamp) and ``vecok`` (one
        bool per population: the hand-written loops do its update, clamp included)."""
        return {"specialised": bool(self.k.fast), "isa": int(self.k.isa),
                "nosat": [bool((self.k.nosat >> g) & 1) for g in range(self.k.G - 1)],
                "vecok": [bool((self.k.vecok >> g) & 1) for g in range(self.k.G - 1)]}

    def limit_isa(self, int level):
        """Use hand-written loops of at most this level (0: none); for tests that check each
        level against the reference on one machine. Returns the level now in use."""
        if 0 <= level < self.k.isa:
            self.k.isa = level
        return int(self.k.isa)

    cdef bint _state_ok(self, v, i_syn, ref, x_pre, x_post, w, theta_a):
        """The state arrays have the kernel's dtypes and shapes, C order, writeable."""
        cdef int N = self.k.N
        return (_ok(v, cnp.NPY_INT32, 1, N, 0, True)
                and _ok(i_syn, cnp.NPY_INT32, 2, self.k.K, N, True)
                and _ok(ref, cnp.NPY_INT32, 1, N, 0, True)
                and _ok(x_pre, cnp.NPY_INT32, 1, self.n_pre, 0, True)
                and _ok(x_post, cnp.NPY_INT32, 1, self.n_post, 0, True)
                and _ok(w, cnp.NPY_INT16, 1, self.w_shape0, 0, True)
                and _ok(theta_a, cnp.NPY_INT32, 1, N, 0, True))

    def bind(self, v, i_syn, ref, x_pre, x_post, w, theta_a):
        """A BoundState over these state arrays, checked here once (None when a check fails:
        the caller then says what is wrong)."""
        cdef BoundState b
        if not self._state_ok(v, i_syn, ref, x_pre, x_post, w, theta_a):
            return None
        b = BoundState.__new__(BoundState)
        b.kern = self
        b.arrays = (v, i_syn, ref, x_pre, x_post, w, theta_a)
        b.v = <int32_t*>cnp.PyArray_DATA(v)
        b.i_syn = <int32_t*>cnp.PyArray_DATA(i_syn)
        b.ref = <int32_t*>cnp.PyArray_DATA(ref)
        b.x_pre = <int32_t*>cnp.PyArray_DATA(x_pre) if self.n_pre else self.dummy32
        b.x_post = <int32_t*>cnp.PyArray_DATA(x_post) if self.n_post else self.dummy32
        b.w = <int16_t*>cnp.PyArray_DATA(w) if self.w_shape0 else self.dummy16
        b.theta_a = <int32_t*>cnp.PyArray_DATA(theta_a)
        return b

    def run_state(self, inp, v, i_syn, ref, x_pre, x_post, w, theta_a, spikes,
                  bint learn):
        """``run`` without recording, for the common call: checks every array with the NumPy
        C API (dtype, shape, C order, writeable) and runs; returns False without touching
        anything when a check fails (the caller then takes the checked path, which says
        what is wrong)."""
        cdef int T, N = self.k.N
        cdef int32_t* xpre
        cdef int32_t* xpost
        cdef int16_t* wp
        cdef const int32_t* tha
        cdef const uint8_t* inp_p
        cdef int32_t* vp
        cdef int32_t* ip
        cdef int32_t* rp
        cdef int32_t* thp
        cdef uint8_t* sp
        cdef bint adaptive = False
        cdef int j
        if not (_ok(inp, cnp.NPY_UINT8, 2, -1, self.k.n_in, False)):
            return False
        T = <int>cnp.PyArray_DIM(inp, 0)
        if not (self._state_ok(v, i_syn, ref, x_pre, x_post, w, theta_a)
                and _ok(spikes, cnp.NPY_UINT8, 2, T, N, True)):
            return False
        if T == 0:
            return True
        xpre = <int32_t*>cnp.PyArray_DATA(x_pre) if self.n_pre else self.dummy32
        xpost = <int32_t*>cnp.PyArray_DATA(x_post) if self.n_post else self.dummy32
        wp = <int16_t*>cnp.PyArray_DATA(w) if self.w_shape0 else self.dummy16
        tha = <const int32_t*>cnp.PyArray_DATA(theta_a)
        # homeostasis work is skipped only when it cannot change anything
        for j in range(N):
            if self.k.theta_plus[j] != 0 or tha[j] != 0:
                adaptive = True
                break
        inp_p = <const uint8_t*>cnp.PyArray_DATA(inp) if self.k.n_in > 0 else NULL
        vp = <int32_t*>cnp.PyArray_DATA(v)
        ip = <int32_t*>cnp.PyArray_DATA(i_syn)
        rp = <int32_t*>cnp.PyArray_DATA(ref)
        thp = <int32_t*>cnp.PyArray_DATA(theta_a)
        sp = <uint8_t*>cnp.PyArray_DATA(spikes)
        with nogil:
            se_steps(&self.k, inp_p, T, vp, ip, rp, xpre, xpost, wp, thp, sp, NULL, NULL, 0,
                     adaptive, learn)
        return True

    def run(self, const uint8_t[:, ::1] inp, int32_t[::1] v, int32_t[:, ::1] i_syn,
            int32_t[::1] ref, int32_t[::1] x_pre, int32_t[::1] x_post, int16_t[::1] w,
            int32_t[::1] theta_a, uint8_t[:, ::1] spikes, int32_t[:, ::1] rec_v,
            int32_t[:, :, ::1] rec_i, bint record, bint adaptive, bint learn):
        """Run inp.shape[0] steps in place on the state arrays (and record v, i_syn). The
        caller (the public wrapper) has checked every shape and dtype."""
        cdef int T = inp.shape[0]
        cdef int n_in = inp.shape[1]
        cdef const uint8_t* inp_p = &inp[0, 0] if T > 0 and n_in > 0 else NULL
        if T == 0:
            return
        with nogil:
            se_steps(&self.k, inp_p, T, &v[0], &i_syn[0, 0], &ref[0], &x_pre[0], &x_post[0],
                     &w[0], &theta_a[0], &spikes[0, 0], &rec_v[0, 0], &rec_i[0, 0, 0],
                     record, adaptive, learn)


cdef class BoundState:
    """The state arrays of one stream, checked once by ``LifKernel.bind``; ``run`` then checks
    only the input and the output buffer (a few C-API calls) before the nogil step loop. It
    keeps references to the arrays, so they stay valid while it exists."""

    cdef LifKernel kern
    cdef object arrays
    cdef int32_t* v
    cdef int32_t* i_syn
    cdef int32_t* ref
    cdef int32_t* x_pre
    cdef int32_t* x_post
    cdef int16_t* w
    cdef int32_t* theta_a

    def run(self, inp, spikes, bint learn):
        """Run len(inp) steps; inp uint8 or bool [T, n_in] and spikes uint8 [T, N], both
        C-contiguous. Returns False, having done nothing, when either does not fit."""
        cdef se_kernel* k = &self.kern.k
        cdef int T, j, N = k.N
        cdef bint adaptive = False
        cdef const uint8_t* inp_p
        cdef uint8_t* sp
        if not (_ok(inp, cnp.NPY_UINT8, 2, -1, k.n_in, False)
                or _ok(inp, cnp.NPY_BOOL, 2, -1, k.n_in, False)):
            return False
        T = <int>cnp.PyArray_DIM(inp, 0)
        if not _ok(spikes, cnp.NPY_UINT8, 2, T, N, True):
            return False
        if T == 0:
            return True
        for j in range(N):
            if k.theta_plus[j] != 0 or self.theta_a[j] != 0:
                adaptive = True
                break
        inp_p = <const uint8_t*>cnp.PyArray_DATA(inp) if k.n_in > 0 else NULL
        sp = <uint8_t*>cnp.PyArray_DATA(spikes)
        with nogil:
            se_steps(k, inp_p, T, self.v, self.i_syn, self.ref, self.x_pre, self.x_post,
                     self.w, self.theta_a, sp, NULL, NULL, 0, adaptive, learn)
        return True


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
