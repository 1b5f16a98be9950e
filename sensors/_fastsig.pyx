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
from libc.math cimport ceil, floor, isfinite, rint
from libc.stdint cimport int64_t, uint8_t, uint64_t

import numpy as np

cdef double QSCALE = 1048576.0          # 2**20, sensors.encoders._QSCALE
cdef double QLIMIT = 1125899906842624.0  # 2**50, sensors.encoders._QLIMIT


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


def all_finite(const double[:, ::1] x):
    cdef Py_ssize_t i, j
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if not isfinite(x[i, j]):
                return False
    return True


def delta_events(const double[:, ::1] x, const double[::1] x0, double threshold,
                 int64_t[::1] k, int64_t samples, int64_t steps, int64_t num, int64_t den,
                 uint8_t[:, ::1] out):
    """Send-on-delta (``DeltaEncoder._events`` with ``_hysteresis_levels``, solved
    sequentially: ``k = clip(k, floor(u), ceil(u))``, ``u = (x - x0) / threshold``), each
    event written into ``out`` [new + 1, 2C] at its step ``(i * num) // den - steps``
    (``SpikeEncoder._advance``). ``k`` [C] is updated."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef int C = <int>x.shape[1], c
    cdef int64_t kk, f, cc, row
    cdef double u
    with nogil:
        for i in range(n):
            row = ((samples + i) * num) // den - steps
            for c in range(C):
                u = (x[i, c] - x0[c]) / threshold
                f = <int64_t>floor(u)
                cc = <int64_t>ceil(u)
                kk = k[c]
                if kk < f:
                    kk = f
                if kk > cc:
                    kk = cc
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
    cdef Py_ssize_t n = x.shape[0], i
    cdef int C = <int>x.shape[1], c
    cdef int64_t new = ((samples + n) * num) // den - steps, j
    cdef double q, val
    with nogil:
        i = 0
        for j in range(new + 1):
            # samples of step j: all i with (samples + i) * num // den - steps == j
            while i < n and ((samples + i) * num) // den - steps == j:
                for c in range(C):
                    q = x[i, c] * QSCALE
                    if q < -QLIMIT:
                        q = -QLIMIT
                    if q > QLIMIT:
                        q = QLIMIT
                    acc[c] += <int64_t>rint(q)
                cnt += 1
                i += 1
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


def frames_windowed(const double[::1] full, const double[::1] win, int hop,
                    double[:, ::1] out):
    """out[f, j] = full[f * hop + j] * win[j] (FftFilterbank framing and Hann window)."""
    cdef Py_ssize_t m = out.shape[0], w = out.shape[1], f, j
    with nogil:
        for f in range(m):
            for j in range(w):
                out[f, j] = full[f * hop + j] * win[j]


def fft_band_pool(const double complex[:, ::1] spec, int lo, int nbins,
                  const int64_t[::1] starts, const int64_t[::1] w_up, int bands,
                  double norm, double[:, ::1] out):
    """``FftFilterbank`` after the FFT: power of bins lo..lo+nbins as int64 (truncated),
    pooled exactly into triangular bands (64-bit wrap-around sums, as NumPy), times norm."""
    cdef Py_ssize_t m = spec.shape[0], f
    cdef int s, j, a, b, nseg = <int>starts.shape[0]
    cdef double re, im, p
    cdef int64_t pi
    cdef uint64_t up_s, whole_s
    cdef uint64_t up[4096]
    cdef uint64_t whole[4096]
    if nseg > 4096:
        raise ValueError("too many bands")
    with nogil:
        for f in range(m):
            for s in range(nseg):
                a = <int>starts[s]
                b = <int>starts[s + 1] if s + 1 < nseg else nbins
                up_s = 0
                whole_s = 0
                for j in range(a, b):
                    re = spec[f, lo + j].real
                    im = spec[f, lo + j].imag
                    p = re * re
                    p = p + im * im
                    p = p * QSCALE
                    if p > QLIMIT:
                        p = QLIMIT
                    pi = <int64_t>p
                    up_s += <uint64_t>pi * <uint64_t>w_up[j]
                    whole_s += <uint64_t>pi
                up[s] = up_s
                whole[s] = whole_s * 256u
            for s in range(bands):
                out[f, s] = <double>(<int64_t>(up[s] + (whole[s + 1] - up[s + 1]))) * norm
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
