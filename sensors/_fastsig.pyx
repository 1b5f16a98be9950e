# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled inner loops of the streaming encoders and the QRS detector (private).

Each function reproduces, operation for operation, the NumPy/SciPy code it replaces in
``spikeedge.sensors.encoders`` (second-order sections as ``scipy.signal.sosfilt``, the
send-on-delta recursion, the step binner and LIF encoder, the FFT band pooling), so results
are bit-identical; the build turns off floating-point contraction (``-ffp-contract=off``) so
that no compiler fuses a multiply and an add. The Python code stays the fallback when this
module is not built. The QRS front end (band-pass, derivative, squaring, moving-window
integration) defines its own summation order (see ``QrsFront``).
"""
from libc.math cimport ceil, fabs, floor, isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t

import numpy as np


cdef extern from "fastsig_loops.h" nogil:
    int se_filterbank_f64(const double* x, Py_ssize_t n, const double* coef, double* zi,
                          int S, int B, double* out)
    void se_bin_add_f64(const double* x, Py_ssize_t rows, int C, int64_t* acc,
                        double qscale, double qlimit)
    int se_scale_pos_f64(const double* x, Py_ssize_t n, double ref, double* out)
    void se_fft_filterbank(const double* buf, Py_ssize_t m, Py_ssize_t hop, int M,
                           const float* win, const int32_t* rev, const float* twr,
                           const float* twi, const float* pcr, const float* pci, int lo,
                           int nbins, const int64_t* starts, int nseg, const int64_t* w_up,
                           int bands, double norm, float qscale, float qlimit,
                           float* scratch, double* out)
    int SE_FFT_LANES

cdef double QSCALE = 1048576.0          # 2**20, sensors.encoders._QSCALE
cdef double QLIMIT = 1125899906842624.0  # 2**50, sensors.encoders._QLIMIT
cdef int64_t KEXACT = 4503599627370496    # 2**52: integers up to here and +-1 are exact doubles


cdef inline void _sos_sample(double* xc, const double* sos, double* zi, int S, int C,
                             int c) noexcept nogil:
    # scipy.signal._sosfilt, one sample of one channel through every section
    cdef int s
    cdef double x_cur = xc[0], x_new
    cdef double* z0
    cdef double* z1
    for s in range(S):
        z0 = zi + (2 * s) * C + c
        z1 = zi + (2 * s + 1) * C + c
        x_new = sos[6 * s] * x_cur + z0[0]
        z0[0] = sos[6 * s + 1] * x_cur - sos[6 * s + 4] * x_new + z1[0]
        z1[0] = sos[6 * s + 2] * x_cur - sos[6 * s + 5] * x_new
        x_cur = x_new
    xc[0] = x_cur


def sosfilt_inplace(double[:, ::1] x, const double[:, ::1] sos, double[:, :, ::1] zi):
    """Filter ``x`` [n, C] in place along axis 0 with sections ``sos`` [S, 6] and state
    ``zi`` [S, 2, C] (updated), as ``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)``. Returns
    False when an output is not finite (the caller raises)."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef int C = <int>x.shape[1], S = <int>sos.shape[0], c
    cdef bint ok = True
    if n == 0:
        return True
    with nogil:
        for i in range(n):
            for c in range(C):
                _sos_sample(&x[i, 0] + c, &sos[0, 0], &zi[0, 0, 0], S, C, c)
                ok = ok & isfinite(x[i, c])
    return ok


def filterbank(const double[::1] x, const double[:, :, ::1] coef, double[:, :, ::1] zi,
               double[:, ::1] out):
    """A bank of B filters, each its own second-order sections, on one input: ``out[:, b]``
    is ``scipy.signal.sosfilt(sos_b, x, zi=zi[:, :, b])`` (``CochleaFilterbank``), bit for
    bit, with the coefficients band-minor, ``coef`` [S, 6, B], and the states ``zi``
    [S, 2, B] (updated); SIMD across bands (``fastsig_loops.h``). Returns False when an
    output is not finite."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int S = <int>coef.shape[0], B = <int>coef.shape[2], ok
    if coef.shape[1] != 6 or zi.shape[0] != S or zi.shape[1] != 2 or zi.shape[2] != B \
            or out.shape[0] != n or out.shape[1] != B:
        raise ValueError("filterbank: shapes do not match")
    if n == 0:
        return True
    with nogil:
        ok = se_filterbank_f64(&x[0], n, &coef[0, 0, 0], &zi[0, 0, 0], S, B, &out[0, 0])
    return ok != 0


def scale_pos(const double[:, ::1] x, double ref, double[:, ::1] out):
    """``out = np.maximum(x, 0) / ref`` for finite ``x`` (``Compress`` before its log1p or
    sqrt), in one pass. Returns False when a quotient overflowed to inf."""
    cdef Py_ssize_t n = x.shape[0] * x.shape[1]
    cdef int ok
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1]:
        raise ValueError("scale_pos: shapes do not match")
    if n == 0:
        return True
    with nogil:
        ok = se_scale_pos_f64(&x[0, 0], n, ref, &out[0, 0])
    return ok != 0


def all_finite(const double[:, ::1] x):
    cdef Py_ssize_t i, j
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if not isfinite(x[i, j]):
                return False
    return True


cdef inline int64_t _delta_level(double u, int64_t k) noexcept nogil:
    """``clip(k, floor(u), ceil(u))``, the send-on-delta level after ``u``. For an integer k,
    floor(u) <= k exactly when u < k + 1 and ceil(u) >= k exactly when u > k - 1, so the usual
    case (no level crossed) needs two comparisons and no floor / ceil (library calls without
    SSE4.1); k +- 1 is exact in a double for |k| < 2**52."""
    cdef double kd
    cdef int64_t f, c
    if -KEXACT < k < KEXACT:
        kd = <double>k
        if u < kd + 1.0 and u > kd - 1.0:
            return k
    f = <int64_t>floor(u)
    c = <int64_t>ceil(u)
    if k < f:
        k = f
    if k > c:
        k = c
    return k


def delta_events(const double[:, ::1] x, const double[::1] x0, double threshold,
                 int64_t[::1] k, int64_t samples, int64_t steps, int64_t num, int64_t den,
                 uint8_t[:, ::1] out):
    """Send-on-delta (``DeltaEncoder._events`` with ``_hysteresis_levels``, solved
    sequentially: ``k = clip(k, floor(u), ceil(u))``, ``u = (x - x0) / threshold``), each
    event written into ``out`` [new + 1, 2C] at its step ``(i * num) // den - steps``
    (``SpikeEncoder._advance``). ``k`` [C] is updated."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef int C = <int>x.shape[1], c
    cdef int64_t kk, row
    cdef double u
    with nogil:
        for i in range(n):
            row = ((samples + i) * num) // den - steps
            for c in range(C):
                u = (x[i, c] - x0[c]) / threshold
                kk = _delta_level(u, k[c])
                if kk > k[c]:
                    out[row, c] = 1
                elif kk < k[c]:
                    out[row, C + c] = 1
                k[c] = kk


def lif_encode(const double[:, ::1] x, int64_t[::1] acc, int64_t cnt, double[::1] last,
               double[::1] v, int64_t[::1] refr, int64_t samples, int64_t steps,
               int64_t num, int64_t den, double gain, double decay, double threshold,
               bint subtract, int64_t refractory, uint8_t[:, ::1] out):
    """``LIFEncoder.process`` after its check: the exact step binner (``_StepBinner``) then
    the per-step LIF loop, writing ``out`` [new, C]. Updates acc, last, v, refr; returns the
    new sample count of the open step (``cnt``)."""
    cdef Py_ssize_t n = x.shape[0], i, i_end
    cdef int C = <int>x.shape[1], c
    cdef int64_t new = ((samples + n) * num) // den - steps, j
    cdef double val
    with nogil:
        i = 0
        for j in range(new + 1):
            # samples of step j: all i with (samples + i) * num // den - steps == j, that is
            # i < ceil((steps + j + 1) * den / num) - samples (one division per step)
            i_end = ((steps + j + 1) * den + num - 1) // num - samples
            if i_end > n:
                i_end = n
            if i_end > i:
                se_bin_add_f64(&x[i, 0], i_end - i, C, &acc[0], QSCALE, QLIMIT)
                cnt += i_end - i
                i = i_end
            if j == new:
                break
            for c in range(C):
                if cnt > 0:
                    last[c] = (<double>acc[c] / <double>cnt) / QSCALE
                val = last[c] * gain
                v[c] = v[c] * decay
                v[c] = v[c] + val
                if refractory:
                    if refr[c] > 0:
                        v[c] = 0.0
                        refr[c] -= 1
                if v[c] >= threshold:
                    out[j, c] = 1
                    if subtract:
                        v[c] = v[c] - threshold
                    else:
                        v[c] = 0.0
                    if refractory:
                        refr[c] = refractory
                acc[c] = 0
            cnt = 0
    return cnt


def fft_filterbank(const double[::1] buf, Py_ssize_t m, Py_ssize_t hop,
                   const float[::1] win, const int32_t[::1] rev, const float[::1] twr,
                   const float[::1] twi, const float[::1] pcr, const float[::1] pci,
                   int lo, const int64_t[::1] starts, const int64_t[::1] w_up, double norm,
                   float[::1] scratch, double[:, ::1] out):
    """``FftFilterbank`` for ``m`` frames of ``buf`` (one every ``hop`` samples): Hann window,
    real FFT in single precision, power of bins lo..lo+nbins as int64 (truncated), pooled
    exactly into the triangular bands, times norm, into ``out[:m]`` (``se_fft_filterbank``
    in ``fastsig_loops.h``, the same operations as ``FftFilterbank.process``)."""
    cdef Py_ssize_t N = win.shape[0]
    cdef int M = <int>(N // 2), nbins = <int>pcr.shape[0], nseg = <int>starts.shape[0]
    cdef int bands = <int>out.shape[1]
    cdef Py_ssize_t i
    if N < 4 or N & (N - 1) or rev.shape[0] != M or twr.shape[0] != M // 2 \
            or twi.shape[0] != M // 2 or pci.shape[0] != nbins or w_up.shape[0] != nbins \
            or nseg != bands + 1 or lo < 0 or lo + nbins > M + 1 or hop < 1 or m < 0 \
            or out.shape[0] < m or (m > 0 and (m - 1) * hop + N > buf.shape[0]) \
            or scratch.shape[0] < (2 * M + nbins) * SE_FFT_LANES:
        raise ValueError("fft_filterbank: shapes do not match")
    for i in range(M):
        if not 0 <= rev[i] < M:
            raise ValueError("fft_filterbank: rev out of range")
    for i in range(nseg):
        if not 0 <= starts[i] < nbins or (i and starts[i] <= starts[i - 1]):
            raise ValueError("fft_filterbank: starts out of range")
    if m == 0:
        return None
    with nogil:
        se_fft_filterbank(&buf[0], m, hop, M, &win[0], &rev[0], &twr[0], &twi[0], &pcr[0],
                          &pci[0], lo, nbins, &starts[0], nseg, &w_up[0], bands, norm,
                          <float>QSCALE, <float>QLIMIT, &scratch[0], &out[0, 0])
    return None


cdef class QrsFront:
    """Pan-Tompkins front end of ``QrsDetector``, one sample at a time: the 5-15 Hz band-pass
    (second-order sections, exactly as ``scipy.signal.sosfilt``), the five-point derivative
    ``d[n] = sum_k b[k] bp[n-k]`` (k = 0..4, summed in that order), squaring and the
    moving-window integral ``mwi[n] = sum_k c * d[n-k]**2`` (k = w-1 .. 0, oldest first).
    Every output depends only on the samples, never on how they were split into calls."""

    cdef double sos[12]
    cdef double zi[4]
    cdef double b[5]
    cdef double bph[5]       # bp[n-4 .. n]
    cdef double[::1] sq      # ring of the last w squared derivatives
    cdef int w, pos, S
    cdef double c
    cdef double m1, m2       # MWI at n-2, n-1
    cdef object _sq

    def __init__(self, sos, zi, deriv, int w):
        sos = np.ascontiguousarray(sos, np.float64)
        if sos.shape[0] != 2 or sos.shape[1] != 6:
            raise ValueError("QrsFront: two second-order sections expected")
        self.S = 2
        cdef int i
        for i in range(12):
            self.sos[i] = sos.flat[i]
        for i in range(4):
            self.zi[i] = zi.flat[i]
        for i in range(5):
            self.b[i] = deriv[i]
            self.bph[i] = 0.0
        self.w = w
        self._sq = np.zeros(w, np.float64)
        self.sq = self._sq
        self.pos = 0
        self.c = 1.0 / w
        self.m1 = -np.inf
        self.m2 = -np.inf

    def run(self, const double[::1] x, double[::1] bp, double[::1] dabs, double[::1] mwi,
            int64_t start, int64_t[::1] pk_idx, double[::1] pk_val):
        """Process x[n]: writes bp, |d|, mwi [n]; local maxima m[i-1] < m[i] >= m[i+1] of the
        integrator (absolute index i, value) into pk_idx / pk_val; returns their count."""
        cdef Py_ssize_t n = x.shape[0], i
        cdef int j, k, np_ = 0
        cdef double xc, d, m, acc
        with nogil:
            for i in range(n):
                xc = x[i]
                _sos_sample(&xc, self.sos, self.zi, 2, 1, 0)
                bp[i] = xc
                for j in range(4):
                    self.bph[j] = self.bph[j + 1]
                self.bph[4] = xc
                d = self.b[0] * self.bph[4]
                for k in range(1, 5):
                    d = d + self.b[k] * self.bph[4 - k]
                dabs[i] = d if d >= 0 else -d
                self.sq[self.pos] = d * d
                self.pos += 1
                if self.pos == self.w:
                    self.pos = 0
                acc = 0.0
                for k in range(self.w):       # oldest first
                    acc = acc + self.c * self.sq[(self.pos + k) % self.w]
                m = acc
                mwi[i] = m
                if self.m1 > self.m2 and self.m1 >= m and start + i - 1 >= 0:
                    pk_idx[np_] = start + i - 1
                    pk_val[np_] = self.m1
                    np_ += 1
                self.m2 = self.m1
                self.m1 = m
        return np_


# ---------------------------------------------------------------------------- fused chains
cdef enum:
    MAX_OPS = 8
    OP_SOS = 0
    OP_ABS = 1
    OP_RELU = 2


cdef class FilterDeltaPlan:
    """A whole ``Chain`` of filters / rectifiers ending in a ``DeltaEncoder``, in one call per
    block: each sample goes through every stage before the next sample (the same operations
    as the stage-by-stage path, so the same spikes), with no intermediate arrays. Made for
    small blocks (an ECG block of 10 ms is 4 samples), where per-stage Python overhead would
    cost more than the arithmetic.

    The state stays in the stage objects (``Filter._zi``, ``DeltaEncoder._x0``, ``_k``,
    ``_pending``, ``_samples``, ``_steps``), so both paths can take turns; the plan keeps
    pointers to those arrays and takes them again whenever a stage has replaced one.
    ``ops`` is a list of ``("sos", filter_stage)``, ``("abs", None)``, ``("relu", None)``."""

    cdef int nops, C
    cdef int kind[MAX_OPS]
    cdef int nsec[MAX_OPS]
    cdef const double* sos[MAX_OPS]
    cdef double* zi[MAX_OPS]
    cdef list stage, zi_obj, sos_arr
    cdef object enc, x0_obj, k_obj, pend_obj
    cdef const double* x0
    cdef int64_t* k
    cdef uint8_t* pend
    cdef double threshold
    cdef int64_t num, den

    def __init__(self, ops, enc):
        cdef double[:, ::1] s
        if len(ops) > MAX_OPS:
            raise ValueError("FilterDeltaPlan: too many stages")
        self.nops = len(ops)
        self.C = enc.channels
        self.stage = [st for _, st in ops]
        self.zi_obj = [None] * self.nops
        self.sos_arr = [None] * self.nops
        for j, (kind, st) in enumerate(ops):
            if kind == "sos":
                self.kind[j] = OP_SOS
                self.sos_arr[j] = np.ascontiguousarray(st._sos_c, dtype=np.float64)
                s = self.sos_arr[j]
                self.sos[j] = &s[0, 0]
                self.nsec[j] = <int>s.shape[0]
            elif kind == "abs":
                self.kind[j] = OP_ABS
            elif kind == "relu":
                self.kind[j] = OP_RELU
            else:
                raise ValueError(f"FilterDeltaPlan: unknown stage kind {kind!r}")
        self.enc = enc
        self.x0_obj = self.k_obj = self.pend_obj = None
        self.threshold = enc.threshold
        self.num, self.den = enc._num, enc._den

    cdef bint _bind(self) except -1:
        """Point at the stages' current state arrays; False when a state is not set up yet
        (the first block after a reset: the stage-by-stage path initialises it)."""
        cdef int j
        cdef double[:, :, ::1] z
        cdef const double[::1] x0
        cdef int64_t[::1] k
        cdef uint8_t[::1] p
        for j in range(self.nops):
            if self.kind[j] != OP_SOS:
                continue
            o = self.stage[j]._zi
            if o is None:
                return False
            if o is not self.zi_obj[j]:
                if not o.flags.c_contiguous:     # SciPy may hand back a strided state
                    o = self.stage[j]._zi = np.ascontiguousarray(o)
                z = o        # raises on a wrong dtype
                if z.shape[0] != self.nsec[j] or z.shape[1] != 2 or z.shape[2] != self.C:
                    raise ValueError("FilterDeltaPlan: filter state has the wrong shape")
                self.zi[j] = &z[0, 0, 0]
                self.zi_obj[j] = o
        e = self.enc
        o = e._x0
        if o is None:
            return False
        if o is not self.x0_obj:
            x0 = o
            if x0.shape[0] != self.C:
                raise ValueError("FilterDeltaPlan: delta reference has the wrong shape")
            self.x0 = &x0[0]
            self.x0_obj = o
        o = e._k
        if o is not self.k_obj:
            if not o.flags.c_contiguous:
                o = e._k = np.ascontiguousarray(o)
            k = o
            if k.shape[0] != self.C:
                raise ValueError("FilterDeltaPlan: delta levels have the wrong shape")
            self.k = &k[0]
            self.k_obj = o
        o = e._pending
        if o is not self.pend_obj:
            p = o
            if p.shape[0] != 2 * self.C:
                raise ValueError("FilterDeltaPlan: pending spikes have the wrong shape")
            self.pend = &p[0]
            self.pend_obj = o
        return True

    def run64(self, const double[:, ::1] x):
        """Spikes for block ``x`` (float64 [n, C], finite), None when the plan cannot run
        this block (state not set up yet), or False when a stage's output overflowed to inf
        (the caller reports it as the stage-by-stage path does)."""
        if not self._bind():
            return None
        return self._run(&x[0, 0] if x.shape[0] else NULL, NULL, x.shape[0])

    def run32(self, const float[:, ::1] x):
        """As :meth:`run64` for float32 samples (converted exactly, one at a time); also
        returns False when the block holds NaN or inf (nothing is changed then)."""
        cdef Py_ssize_t i, n = x.shape[0] * x.shape[1]
        cdef const float* p = &x[0, 0] if x.shape[0] else NULL
        cdef bint ok = True
        with nogil:
            for i in range(n):
                ok = ok & isfinite(p[i])
        if not ok:
            return False
        if not self._bind():
            return None
        return self._run(NULL, p, x.shape[0])

    cdef object _run(self, const double* x64, const float* x32, Py_ssize_t n):
        cdef int C = self.C, c, j, s, S
        cdef Py_ssize_t i
        cdef object e = self.enc
        cdef int64_t samples = e._samples, steps = e._steps
        cdef int64_t total = samples + n
        cdef int64_t done = (total * self.num) // self.den
        cdef int64_t new = done - steps, row
        cdef int64_t kk
        cdef double v, u, xn
        cdef bint ok = True
        cdef const double* sp
        cdef double* z
        out = np.zeros((new, 2 * C), dtype=np.uint8)
        cdef uint8_t[:, ::1] o = out
        cdef uint8_t* pend = self.pend
        cdef double thr = self.threshold
        with nogil:
            if new > 0:
                for c in range(2 * C):
                    o[0, c] = pend[c]
                    pend[c] = 0
            for i in range(n):
                row = ((samples + i) * self.num) // self.den - steps
                for c in range(C):
                    v = x64[i * C + c] if x64 != NULL else <double>x32[i * C + c]
                    for j in range(self.nops):
                        if self.kind[j] == OP_SOS:
                            # _sos_sample: scipy.signal._sosfilt's operations and order
                            sp = self.sos[j]
                            z = self.zi[j]
                            S = self.nsec[j]
                            for s in range(S):
                                xn = sp[6 * s] * v + z[(2 * s) * C + c]
                                z[(2 * s) * C + c] = sp[6 * s + 1] * v - sp[6 * s + 4] * xn \
                                    + z[(2 * s + 1) * C + c]
                                z[(2 * s + 1) * C + c] = sp[6 * s + 2] * v - sp[6 * s + 5] * xn
                                v = xn
                        elif self.kind[j] == OP_ABS:
                            v = fabs(v)                      # np.abs
                        else:
                            v = v if v >= 0.0 else 0.0       # np.maximum(v, 0.0)
                    if not isfinite(v):
                        ok = False
                        continue
                    # delta_events
                    u = (v - self.x0[c]) / thr
                    kk = _delta_level(u, self.k[c])
                    if kk != self.k[c]:
                        if row < new:
                            if kk > self.k[c]:
                                o[row, c] = 1
                            else:
                                o[row, C + c] = 1
                        else:
                            if kk > self.k[c]:
                                pend[c] = 1
                            else:
                                pend[C + c] = 1
                    self.k[c] = kk
        e._samples = total
        e._steps = done
        return out if ok else False
