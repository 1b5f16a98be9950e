"""Streaming QRS detection (Pan and Tompkins 1985) and EC57 scoring against WFDB annotations.

:class:`QrsDetector` follows J. Pan and W. J. Tompkins, "A real-time QRS detection algorithm",
IEEE Trans Biomed Eng 32(3):230-236, 1985: band-pass 5-15 Hz, five-point derivative, squaring,
150 ms moving-window integration, peak detection with adaptive signal/noise levels, a 200 ms
refractory period, T-wave discrimination by slope within 360 ms, and search-back with a lower
threshold when no beat was found within 150 % of the average RR interval (the value of
Hamilton and Tompkins 1986). Two additions: a beat followed within a PR interval (300 ms) by a
complex 1.5 times steeper was a P wave and is withdrawn; the R peak is the first extremum of
the raw signal that is at least 60 % of the largest one near the strongest 5-15 Hz deflection
(so a wide ventricular beat is marked at its first peak).

:class:`MultiLeadQrsDetector` runs one detector per lead and lets the other leads fill only the
gaps of the primary lead (lead 0).

Both are streaming-exact: ``process()`` on any split of a signal returns the same beats as on
the whole signal. Beats are absolute sample indices of the R peak. A beat is held back for
about 0.4-0.6 s, in case a stronger peak replaces it (a P wave, the lesser peak of a notched
complex), and search-back beats come up to about 1.5 RR intervals late;
:meth:`QrsDetector.settled` tells how far the output is final; call ``flush()`` at the end.

:func:`score_beats` matches detections to reference beats by the ANSI/AAMI EC57 rules (150 ms
window, VF episodes not scored, see ``docs/sensors.md``) and :func:`evaluate_records` runs the
detector over every WFDB record in a folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _designs
from .errors import EncoderConfigError, SourceFormatError

try:  # compiled front end (same arithmetic as the NumPy path below)
    from . import _fastsig as _fast
except ImportError:  # pragma: no cover - a build without a C compiler
    _fast = None

__all__ = ["QrsDetector", "MultiLeadQrsDetector", "detect_qrs", "score_beats", "vf_episodes",
           "reference_annotations", "evaluate_record", "evaluate_records", "EC57_BEAT_CODES"]


class QrsDetector:
    """Streaming Pan-Tompkins QRS detector for one ECG lead (mV) at ``rate`` Hz."""

    LEARN_S = 2.0
    REFRACTORY_S = 0.2
    T_WAVE_S = 0.36
    MWI_S = 0.15
    SEARCH_R_S = 0.25  # R peak is searched this far back from the integrator peak
    PR_S = 0.30  # a much steeper complex this soon after a beat shows that beat was a P wave
    PR_SLOPE = 1.5
    R_FRAC = 0.6
    SEARCH_RR = 1.5  # search back when no beat came within 150 % of the RR average

    def __init__(self, rate: float):
        if not rate >= 100:
            raise EncoderConfigError(f"QrsDetector: rate must be >= 100 Hz, got {rate}")
        self.rate = float(rate)
        fs = self.rate
        self._sos = _designs.butter_sos(2, [5.0, 15.0], "bandpass", fs)
        self._deriv = np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * (fs / 8.0)
        self.w = max(1, int(round(self.MWI_S * fs)))
        self._mwi_b = np.full(self.w, 1.0 / self.w)
        self.refractory = int(round(self.REFRACTORY_S * fs))
        self.t_wave = int(round(self.T_WAVE_S * fs))
        self.pr = int(round(self.PR_S * fs))
        self.learn = int(round(self.LEARN_S * fs))
        self.search_r = int(round(self.SEARCH_R_S * fs))
        self.refine_back = int(round(0.08 * fs))  # the band-pass delays the QRS by ~20-40 ms
        self.refine_fwd = int(round(0.02 * fs))
        self.hist_len = int(3 * fs)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._n = 0  # samples seen
        self._zi_bp: np.ndarray | None = None
        self._front = None  # compiled front end (holds the filter states when used)
        self._bph = np.zeros(len(self._deriv) - 1)  # band-passed samples n-4 .. n-1
        self._sqh = np.zeros(self.w - 1)  # squared derivative n-w+1 .. n-1
        self._m_prev2 = np.array([-np.inf, -np.inf])  # MWI at n-2, n-1
        # History for R localisation and slopes: rows raw, |derivative|, band-passed, in
        # a buffer that is appended to and trimmed in place (see _trim)
        self._hbuf = np.zeros((3, 2 * self.hist_len + 4096))
        self._hlen = 0
        self._hist0 = 0  # absolute index of _raw[0]
        self._learn_max = 0.0
        self._learned = False
        self._pending: list[tuple[int, float]] = []  # candidates during learning
        self.spki = 0.0
        self.npki = 0.0
        self._rr: list[int] = []
        self._rr_ok: list[int] = []
        self._last_qrs: int | None = None  # integrator peak of the last beat
        self._last_slope = 0.0
        self._last_r: int | None = None  # R index of the last beat
        self._held: int | None = None  # last beat, not yet emitted (may still be replaced)
        self._held_h = 0.0
        self._snap: tuple = ()
        self._since: list[tuple[int, float]] = []  # noise candidates since the last beat
        self._searched = False

    @property
    def rr_avg(self) -> float:
        src = self._rr_ok if len(self._rr_ok) >= 2 else self._rr
        if not src:
            return self.rate
        last = src[-8:]
        return sum(last) / len(last)  # integers: exact sum, one rounding, as np.mean

    @property
    def threshold1(self) -> float:
        return self.npki + 0.25 * (self.spki - self.npki)

    @property
    def threshold2(self) -> float:
        return 0.5 * self.threshold1

    @property
    def _raw(self) -> np.ndarray:
        return self._hbuf[0, : self._hlen]

    @property
    def _dabs(self) -> np.ndarray:  # |derivative| history
        return self._hbuf[1, : self._hlen]

    @property
    def _bp(self) -> np.ndarray:  # band-passed history
        return self._hbuf[2, : self._hlen]

    def _hist_room(self, n: int) -> int:
        """Make room for n more history samples; returns where they go."""
        a = self._hlen
        if a + n > self._hbuf.shape[1]:
            grown = np.zeros((3, 2 * (a + n) + 4096))
            grown[:, :a] = self._hbuf[:, :a]
            self._hbuf = grown
        self._hlen = a + n
        return a

    def _front_numpy(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Band-pass, derivative, squaring and moving-window integration, with the summation
        order of the compiled front end (``_fastsig.QrsFront``): the derivative sums its five
        terms newest first, the integrator its w terms oldest first, so every value depends
        only on the samples (never on the block split)."""
        n = x.shape[0]
        if self._zi_bp is None:
            self._zi_bp = _designs.sosfilt_zi(self._sos) * x[0]
        bp, self._zi_bp = _designs.signal().sosfilt(self._sos, x, zi=self._zi_bp)
        h = np.concatenate([self._bph, bp])  # bp[n-4 ..]
        b = self._deriv
        m = len(b) - 1
        d = b[0] * h[m:]
        for k in range(1, len(b)):
            d = d + b[k] * h[m - k : m - k + n]
        self._bph = h[n:].copy()
        sq = np.concatenate([self._sqh, d * d])
        w = self.w
        win = np.lib.stride_tricks.sliding_window_view(sq, w)  # [n, w], oldest first
        mwi = np.cumsum(win * (1.0 / w), axis=1)[:, -1]
        self._sqh = sq[n:].copy()
        return bp, np.abs(d), mwi

    # ------------------------------------------------------------------ processing
    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed samples (``[n]`` or ``[n, 1]``, mV); return R indices of beats decided now."""
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise EncoderConfigError(f"QrsDetector expects one lead [n] or [n, 1], got {x.shape}")
        n = x.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        start = self._n
        self._n += n
        a = self._hist_room(n)
        hb = self._hbuf
        hb[0, a : a + n] = x
        if _fast is not None:
            if self._front is None:
                self._front = _fast.QrsFront(self._sos, _designs.sosfilt_zi(self._sos) * x[0],
                                             self._deriv, self.w)
            x = np.ascontiguousarray(x)
            mwi = np.empty(n)
            pk_idx = np.empty(n, dtype=np.int64)
            pk_val = np.empty(n)
            c = self._front.run(x, hb[2, a : a + n], hb[1, a : a + n], mwi, start, pk_idx,
                                pk_val)
            idx, vals = pk_idx[:c], pk_val[:c]
        else:
            bp, dabs, mwi = self._front_numpy(x)
            hb[1, a : a + n] = dabs
            hb[2, a : a + n] = bp
            # Candidates: local maxima m[i-1] < m[i] >= m[i+1]; i = start-1 .. start+n-2.
            ext = np.concatenate([self._m_prev2, mwi])
            mid = ext[1:-1]
            is_peak = (mid > ext[:-2]) & (mid >= ext[2:])
            idx = np.flatnonzero(is_peak) + start - 1
            vals = mid[is_peak]
            self._m_prev2 = ext[-2:].copy()
        # Learning phase statistic (max is exact under any split).
        if start < self.learn:
            self._learn_max = max(self._learn_max, float(mwi[: self.learn - start].max()))
        beats: list[int] = []
        for p, h in zip(idx.tolist(), vals.tolist(), strict=True):
            if p < 0:
                continue
            if not self._learned:
                if p < self.learn:
                    self._pending.append((p, h))
                    continue
                self._finish_learning(beats)
            self._search_back_until(p, beats)
            self._candidate(p, h, beats)
        if not self._learned and self._n > self.learn:
            self._finish_learning(beats)
        if self._learned:
            self._search_back_until(self._n - 1, beats)
            self._release(beats, now=self._n - 1)
        self._trim()
        return np.asarray(beats, dtype=np.int64)

    def _finish_learning(self, beats: list[int]) -> None:
        self._learned = True
        self.spki = 0.25 * self._learn_max
        self.npki = 0.05 * self._learn_max
        pending, self._pending = self._pending, []
        for p, h in pending:
            self._search_back_until(p, beats)
            self._candidate(p, h, beats)

    def _slope(self, p: int) -> float:
        lo = max(p - self.w - self._hist0, 0)
        hi = p + 1 - self._hist0
        seg = self._dabs[lo:hi]
        return float(seg.max()) if seg.size else 0.0

    def _candidate(self, p: int, h: float, beats: list[int]) -> None:
        last = self._last_qrs
        if last is not None and p - last < self.refractory:
            return
        if h > self.threshold1:
            slope = self._slope(p)
            if last is not None and p - last < self.t_wave and slope < 0.5 * self._last_slope:
                self.npki = 0.125 * h + 0.875 * self.npki  # a T wave
                return
            if (self._held is not None and last is not None and p - last < self.pr
                    and slope >= self.PR_SLOPE * self._last_slope):
                # The held beat was a P wave (or a noise spike): a complex this close and
                # this much steeper is the QRS it preceded. Undo the held beat, count it as
                # noise and take this one.
                held_h = self._held_h
                self._restore()
                self.npki = 0.125 * held_h + 0.875 * self.npki
                self.spki = 0.125 * h + 0.875 * self.spki
                self._accept(p, slope, beats, self._locate_r(p), h)
                return
            r = self._locate_r(p)
            if self._last_r is not None and r - self._last_r < self.refractory:
                if self._held is not None and h > self._held_h:
                    # The held beat was a P wave or the lesser peak of this complex: the
                    # stronger peak replaces it (beats are held for a refractory period).
                    self._restore()
                    self.spki = 0.125 * h + 0.875 * self.spki
                    self._accept(p, slope, beats, r, h)
                else:
                    # A second integrator peak of the same complex (wide or notched QRS).
                    self.npki = 0.125 * h + 0.875 * self.npki
                return
            self.spki = 0.125 * h + 0.875 * self.spki
            self._accept(p, slope, beats, r, h)
        else:
            self.npki = 0.125 * h + 0.875 * self.npki
            self._since.append((p, h))

    def _search_back_until(self, now: int, beats: list[int]) -> None:
        """Search back if no beat was found within 166 % of the average RR before ``now``."""
        while self._last_qrs is not None and not self._searched:
            limit = self._last_qrs + int(math.ceil(self.SEARCH_RR * self.rr_avg))
            if now <= limit:
                return
            best = None
            for p, h in self._since:
                if p < limit and p - self._last_qrs >= self.refractory and h > self.threshold2:
                    if best is None or h > best[1]:
                        best = (p, h)
            if best is None:
                self._searched = True
                return
            self._since = [c for c in self._since if c[0] > best[0]]
            r = self._locate_r(best[0])
            if self._last_r is not None and r - self._last_r < self.refractory:
                continue
            self.spki = 0.25 * best[1] + 0.75 * self.spki
            self._accept(best[0], self._slope(best[0]), beats, r, best[1])

    def _snapshot(self) -> tuple:
        return (list(self._rr), list(self._rr_ok), self._last_qrs, self._last_slope,
                self._last_r, self.spki, list(self._since), self._searched)

    def _restore(self) -> None:
        (self._rr, self._rr_ok, self._last_qrs, self._last_slope, self._last_r, self.spki,
         self._since, self._searched) = self._snap
        self._held = None

    def _release(self, beats: list[int], now: int | None = None) -> None:
        """Emit the held beat (when ``now`` is given: only once no candidate can replace it)."""
        if self._held is None:
            return
        if now is not None and (now < self._held + self.refractory + self.search_r
                                + self.refine_back or now <= self._last_qrs + self.pr):
            return
        beats.append(self._held)
        self._held = None

    def settled(self) -> int:
        """Sample index before which every beat has been returned: no later call to
        :meth:`process` or :meth:`flush` returns a beat with an R index below it. Depends only
        on the samples seen, not on how they were split."""
        if not self._learned:
            return 0
        back = self.search_r + self.refine_back + 1
        out = self._n - 1 - back  # R of a candidate not yet seen
        if self._held is not None:
            out = min(out, self._held)
        if self._last_qrs is not None and not self._searched:
            out = min(out, self._last_qrs + self.refractory - back)  # a search-back beat
        return max(out, 0)

    def flush(self) -> np.ndarray:
        """At the end of a stream: return the beat still held for its refractory period."""
        beats: list[int] = []
        self._release(beats)
        return np.asarray(beats, dtype=np.int64)

    def _accept(self, p: int, slope: float, beats: list[int], r: int, h: float) -> None:
        self._release(beats)
        self._snap = self._snapshot()
        self._held, self._held_h = r, h
        if self._last_qrs is not None:
            rr = p - self._last_qrs
            avg = self.rr_avg
            self._rr.append(rr)
            if not self._rr_ok or 0.92 * avg <= rr <= 1.16 * avg:
                self._rr_ok.append(rr)
            del self._rr[:-8], self._rr_ok[:-8]
        self._last_qrs = p
        self._last_slope = slope
        self._since = [c for c in self._since if c[0] > p]
        self._searched = False
        self._last_r = r

    def _locate_r(self, p: int) -> int:
        """R index: the strongest 5-15 Hz deflection before the integrator peak, refined to
        the largest deviation of the raw signal from its local median around it."""
        h0 = self._hist0
        lo = max(p - self.search_r, h0)
        seg = self._bp[lo - h0 : p + 1 - h0]
        if seg.size == 0:
            return p
        k = lo + int(np.argmax(np.abs(seg)))
        a = max(k - self.refine_back, h0)
        # Sample p + 1 is the newest one every caller is sure to have seen (the integrator
        # peak at p is known from it on), so the window never depends on the block split.
        b = min(k + self.refine_fwd, p + 1, h0 + self._raw.shape[0] - 1)
        raw = self._raw[a - h0 : b + 1 - h0]
        ctx = self._raw[max(a - self.w, h0) - h0 : b + 1 - h0]
        dev = np.abs(raw - np.median(ctx))
        # The first extremum that is at least R_FRAC of the largest: for a narrow QRS that is
        # the R (or S) peak; for a wide ventricular complex whose peak and trough are nearly
        # equal it is the first of them, not the trough 150+ ms later.
        ok = dev >= self.R_FRAC * dev.max()
        ok[:-1] &= dev[:-1] >= dev[1:]
        return a + int(np.argmax(ok))  # the first True (the maximum itself always qualifies)

    def _trim(self) -> None:
        """Drop history nobody can look at again: keep ``hist_len`` samples, and while a
        search-back is still possible everything from just before the last beat on (the
        search-back locates an R up to ``search_r + refine_back`` before its candidate)."""
        keep_from = self._hist0 + self._hlen - self.hist_len
        if self._last_qrs is not None and not self._searched:
            keep_from = min(keep_from, self._last_qrs - self.search_r - self.refine_back
                            - 2 * self.w)
        cut = keep_from - self._hist0
        if cut > self.hist_len:  # trim in chunks (amortised copies)
            n = self._hlen - cut
            self._hbuf[:, :n] = self._hbuf[:, cut : self._hlen]
            self._hlen = n
            self._hist0 += cut


def detect_qrs(x: np.ndarray, rate: float, block: int | None = None) -> np.ndarray:
    """Run the detector over a whole signal (optionally in blocks); return R indices.

    ``x`` ``[n]`` (one lead: :class:`QrsDetector`) or ``[n, k]`` (k leads, the first is the
    primary: :class:`MultiLeadQrsDetector`).
    """
    x = np.asarray(x, dtype=np.float64)
    det = MultiLeadQrsDetector(rate, x.shape[1]) if x.ndim == 2 and x.shape[1] > 1 \
        else QrsDetector(rate)
    if block is None:
        return np.concatenate([det.process(x), det.flush()])
    parts = [det.process(x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate(parts + [det.flush()])


class MultiLeadQrsDetector:
    """Streaming QRS detection on several leads: lead 0 is primary, the others fill its gaps.

    One :class:`QrsDetector` runs per lead. Every beat of the primary lead is kept. A beat
    found on another lead is added only where the primary lead found nothing: inside a gap
    between primary beats longer than ``GAP_RR`` times the recent RR interval (the median of
    the last 8 output intervals) and at least ``CLEAR_S`` away from any primary beat. That
    catches beats the primary lead loses to a disconnected or saturated electrode, to noise
    on that lead, or to a complex that is small in that lead only, without importing the
    secondary lead's own false positives where the primary lead works.

    Output is in time order and streaming-exact (any split of the samples gives the same
    beats): a secondary beat is decided only once both detectors have :meth:`QrsDetector.settled`
    past it (plus ``CLEAR_S``), and the gap rule is monotone in what is known. Latency is the
    primary detector's plus ``CLEAR_S``, and up to ``GAP_RR`` RR intervals inside a gap.
    """

    GAP_RR = 1.5
    CLEAR_S = 0.3
    RR_BEATS = 8

    def __init__(self, rate: float, leads: int = 2):
        if leads < 1:
            raise EncoderConfigError(f"MultiLeadQrsDetector: leads must be >= 1, got {leads}")
        self.rate = float(rate)
        self.leads = int(leads)
        self.dets = [QrsDetector(rate) for _ in range(self.leads)]
        self.clear = int(round(self.CLEAR_S * self.rate))
        self.reset()

    def reset(self) -> None:
        for d in self.dets:
            d.reset()
        self._n = 0
        self._prim: list[int] = []  # primary beats not yet output
        self._sec: list[int] = []  # secondary beats not yet decided (sorted)
        self._prim_last: int | None = None  # last primary beat output (for the gap rule)
        self._out: list[int] = []  # last output beats (for the RR interval)

    def _rr(self) -> float:
        o = self._out
        if len(o) < 3:
            return self.rate
        return float(np.median(np.diff(o[-(self.RR_BEATS + 1):])))

    def _emit(self, r: int, beats: list[int]) -> None:
        beats.append(r)
        self._out.append(r)
        del self._out[: -(self.RR_BEATS + 1)]

    def _decide(self, settled_p: int, settled_s: int, beats: list[int]) -> None:
        """Output every beat below the point where both leads are final."""
        while True:
            p = self._prim[0] if self._prim else None
            s = self._sec[0] if self._sec else None
            if s is not None and (p is None or s < p):
                # A secondary beat: needs the primary lead final up to s + clear.
                if s + self.clear >= settled_p or s >= settled_s:
                    return
                self._sec.pop(0)
                prev = self._prim_last
                if prev is not None and s - prev <= self.clear:
                    continue
                if self._out and s - self._out[-1] < self.dets[0].refractory:
                    continue  # the same beat from another secondary lead
                nxt = p if p is not None else settled_p  # the next primary beat is >= this
                if p is not None and p - s <= self.clear:
                    continue
                if prev is None or nxt - prev > self.GAP_RR * self._rr():
                    self._emit(s, beats)
                elif p is None:
                    # The gap may still grow: wait until it is known.
                    self._sec.insert(0, s)
                    return
                continue
            if p is None or p >= settled_p or p >= settled_s:
                return  # (a secondary beat before p may still come)
            self._prim.pop(0)
            self._prim_last = p
            self._emit(p, beats)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed ``[n, leads]`` samples (mV); return R indices of beats decided now."""
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.leads:
            raise EncoderConfigError(f"MultiLeadQrsDetector expects [n, {self.leads}] samples, "
                                     f"got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        self._n += x.shape[0]
        for k, d in enumerate(self.dets):
            found = d.process(x[:, k]).tolist()
            (self._prim if k == 0 else self._sec).extend(found)
        if self.leads > 2:
            self._sec.sort()
        beats: list[int] = []
        settled_s = min((d.settled() for d in self.dets[1:]), default=self._n)
        self._decide(self.dets[0].settled(), settled_s, beats)
        return np.asarray(beats, dtype=np.int64)

    def flush(self) -> np.ndarray:
        """At the end of a stream: decide and return every beat still pending."""
        for k, d in enumerate(self.dets):
            (self._prim if k == 0 else self._sec).extend(d.flush().tolist())
        self._sec.sort()
        beats: list[int] = []
        end = self._n + self.clear + 1
        self._decide(end, end, beats)
        return np.asarray(beats, dtype=np.int64)


#: Annotation codes that mark a beat (the WFDB ``isqrs`` set as it appears in MIT-BIH style
#: ``.atr`` files): N L R B a J A S V r F e j n E / f Q ?. Everything else (rhythm ``+``,
#: noise ``~``, artefact ``|``, non-conducted P ``x``, flutter wave ``!``, VF on/off ``[``
#: ``]``, comments) is not a beat and is never scored.
EC57_BEAT_CODES = frozenset("NLRBaJASVrFejnE/fQ?")

#: Rhythm labels (``+`` annotations, aux text) that open a ventricular flutter/fibrillation
#: episode; the episode ends at the next rhythm change.
VF_RHYTHMS = ("(VF", "(VFL", "(VFIB")


def vf_episodes(samples: np.ndarray, symbols: np.ndarray,
                aux: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Ventricular flutter/fibrillation episodes ``[(start, end)]`` (inclusive, samples).

    An episode runs from a ``[`` (VF onset) annotation to the next ``]`` (VF end), as in the
    reference comparator of ANSI/AAMI EC57 (``bxb``); an onset without an end runs to the end
    of the record. Only for annotation files without any ``[`` mark, rhythm annotations ``+``
    whose aux text is ``(VF``, ``(VFL`` or ``(VFIB`` open an episode that ends at the next
    rhythm change.
    """
    end_of_record = np.iinfo(np.int64).max
    marks: list[tuple[int, int]] = []
    rhythms: list[tuple[int, int]] = []
    on = rhythm_on = None
    for k, (t, sym) in enumerate(zip(samples.tolist(), symbols.tolist(), strict=True)):
        if sym == "[" and on is None:
            on = t
        elif sym == "]" and on is not None:
            marks.append((on, t))
            on = None
        elif sym == "+" and aux is not None:
            label = str(aux[k]).strip("\x00 \t\r\n")
            if rhythm_on is not None:
                rhythms.append((rhythm_on, t))
                rhythm_on = None
            if label in VF_RHYTHMS:
                rhythm_on = t
    if on is not None:
        marks.append((on, end_of_record))
    if rhythm_on is not None:
        rhythms.append((rhythm_on, end_of_record))
    return marks if marks or "[" in symbols.tolist() else rhythms


def _outside(x: np.ndarray, episodes: list[tuple[int, int]]) -> np.ndarray:
    keep = np.ones(len(x), dtype=bool)
    for a, b in episodes:
        keep &= ~((x >= a) & (x <= b))
    return x[keep]


def score_beats(detected: np.ndarray, reference: np.ndarray, rate: float,
                tolerance_s: float = 0.150, exclude: list[tuple[int, int]] | None = None,
                start: int = 0) -> dict[str, Any]:
    """Match detections to reference beats one-to-one, the ANSI/AAMI EC57 way.

    Both lists are walked in time order (the ``bxb`` rule): the earlier of the current
    detection ``t`` and reference beat ``T`` is paired with the other when they are at most
    ``tolerance_s`` apart and no closer partner follows (strictly closer than the next
    reference beat, resp. the next detection); otherwise it is a false positive (an unpaired
    detection) or a false negative (an unpaired reference beat). Detections and reference
    beats inside ``exclude`` episodes (inclusive sample ranges, e.g. :func:`vf_episodes`) are
    dropped first. Reference beats before sample ``start`` (EC57's learning period) are not
    scored, nor are unpaired detections before it.

    Returns ``{"tp", "fn", "fp", "n", "se", "ppv"}`` (``n`` = scored reference beats).
    """
    det = np.sort(np.asarray(detected, dtype=np.int64))
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    if exclude:
        det, ref = _outside(det, exclude), _outside(ref, exclude)
    tol = tolerance_s * rate
    ref = ref[ref >= start]
    det = det[det >= start - tol]
    big = np.iinfo(np.int64).max // 4
    refs, dets = ref.tolist() + [big, big], det.tolist() + [big, big]
    nr, nd = len(ref), len(det)
    i = j = tp = fp = 0
    while i < nr or j < nd:
        T, t = refs[i], dets[j]
        if t < T:
            if T - t <= tol and T - t < abs(T - dets[j + 1]):
                tp, i, j = tp + 1, i + 1, j + 1
            else:
                fp += t >= start
                j += 1
        else:
            if t - T <= tol and t - T < abs(t - refs[i + 1]):
                tp, i, j = tp + 1, i + 1, j + 1
            else:
                i += 1
    fn = nr - tp
    return {
        "tp": tp, "fn": fn, "fp": fp, "n": nr,
        "se": tp / (tp + fn) if tp + fn else 1.0,
        "ppv": tp / (tp + fp) if tp + fp else 1.0,
    }


def reference_annotations(record: str | os.PathLike,
                          extension: str = "atr") -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Reference beats (samples of EC57 beat codes) and VF episodes of a WFDB record."""
    import wfdb

    record = str(record)
    try:
        ann = wfdb.rdann(record, extension)
    except FileNotFoundError:
        raise SourceFormatError(f"no .{extension} beat annotations to score against",
                                path=record) from None
    except Exception as exc:
        raise SourceFormatError(f"unreadable annotations ({type(exc).__name__}: {exc})",
                                path=f"{record}.{extension}") from None
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol, dtype=object)
    aux = np.asarray(ann.aux_note if ann.aux_note is not None else [""] * len(samples),
                     dtype=object)
    beats = samples[np.array([s in EC57_BEAT_CODES for s in symbols], dtype=bool)]
    return beats, vf_episodes(samples, symbols, aux)


def evaluate_record(record: str | os.PathLike, tolerance_s: float = 0.150,
                    block: int = 4096, start_s: float = 0.0, leads: int = 2) -> dict[str, Any]:
    """Detect beats in one WFDB record and score them against its ``.atr`` beats with
    :func:`score_beats` (EC57 rules: VF episodes excluded, beats before ``start_s`` not scored).

    The MLII lead (lead 0 when no lead is named MLII) is primary; with ``leads=2`` the next
    lead fills its gaps (:class:`MultiLeadQrsDetector`). The result also carries ``"vf_s"``,
    the seconds excluded as ventricular flutter/fibrillation. Bad files raise
    :class:`~.errors.SourceFormatError`.
    """
    from .readers import WfdbSource

    if leads < 1:
        raise EncoderConfigError(f"evaluate_record: leads must be >= 1, got {leads}")
    record = str(record)
    src = WfdbSource(record, ann="none", block_size=block)  # checks the header
    ref, vf = reference_annotations(record)
    names = src.sig_names
    primary = names.index("MLII") if "MLII" in names else 0
    order = [primary] + [k for k in range(src.channels) if k != primary][: leads - 1]
    det = MultiLeadQrsDetector(src.rate, len(order)) if len(order) > 1 else QrsDetector(src.rate)
    found = [det.process(b.samples[:, order] if len(order) > 1 else b.samples[:, primary])
             for b in src] + [det.flush()]
    beats = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    out = score_beats(beats, ref, src.rate, tolerance_s, exclude=vf,
                      start=int(round(start_s * src.rate)))
    n_total = int(src.header.sig_len or src.status().get("samples", 0) or 0)
    out["vf_s"] = round(sum(min(b, n_total) - a + 1 for a, b in vf) / src.rate, 3)
    return out


def evaluate_records(folder: str | os.PathLike, tolerance_s: float = 0.150,
                     start_s: float = 0.0, leads: int = 2) -> dict[str, Any]:
    """Score every record (``*.hea`` with an ``.atr``) in ``folder`` (see :func:`evaluate_record`).

    Returns ``{"records": {REC: {"se", "ppv", "n", ...}}, "aggregate": {"se", "ppv", "n"}}``
    (the aggregate is gross: totals over all scored beats).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceFormatError("not a folder of WFDB records", path=str(folder))
    records = sorted(p.stem for p in folder.glob("*.hea") if p.with_suffix(".atr").exists())
    if not records:
        raise SourceFormatError("no WFDB records with .atr annotations here", path=str(folder))
    out: dict[str, Any] = {"records": {}}
    tp = fn = fp = n = 0
    for rec in records:
        r = evaluate_record(folder / rec, tolerance_s, start_s=start_s, leads=leads)
        out["records"][rec] = r
        tp, fn, fp, n = tp + r["tp"], fn + r["fn"], fp + r["fp"], n + r["n"]
    out["aggregate"] = {
        "se": tp / (tp + fn) if tp + fn else 1.0,
        "ppv": tp / (tp + fp) if tp + fp else 1.0,
        "n": n, "tp": tp, "fn": fn, "fp": fp,
    }
    return out


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin CLI helper
    """``python -m spikeedge.sensors.qrs RECORDS_DIR [options]``: same as ``spikeedge qrs``."""
    import sys

    from ..cli import main as cli_main

    return cli_main(["qrs", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
