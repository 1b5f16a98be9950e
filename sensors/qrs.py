"""Streaming QRS detection (Pan and Tompkins 1985) and scoring against WFDB beat annotations.

:class:`QrsDetector` follows J. Pan and W. J. Tompkins, "A real-time QRS detection algorithm",
IEEE Trans Biomed Eng 32(3):230-236, 1985: band-pass 5-15 Hz, five-point derivative, squaring,
150 ms moving-window integration, peak detection with adaptive signal/noise levels, a 200 ms
refractory period, T-wave discrimination by slope within 360 ms, and search-back with a lower
threshold when no beat was found within 166 % of the average RR interval.

It is streaming-exact: ``process()`` on any split of a signal returns the same beats as on the
whole signal. Beats are reported as absolute sample indices of the R peak (the largest deflection
from the local median near the strongest 5-15 Hz deflection before the integrator peak). A beat
is held back for about 0.5 s, in case a stronger peak within the refractory period replaces it
(a P wave or the lesser peak of a notched complex), and search-back beats come up to about
1.7 RR intervals late; call :meth:`QrsDetector.flush` at the end of a stream.

:func:`score_beats` matches detections to reference beats (150 ms window) and
:func:`evaluate_records` runs the detector over every WFDB record in a folder.
"""

from __future__ import annotations

import json
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

__all__ = ["QrsDetector", "detect_qrs", "score_beats", "evaluate_record", "evaluate_records"]


class QrsDetector:
    """Streaming Pan-Tompkins QRS detector for one ECG lead (mV) at ``rate`` Hz."""

    LEARN_S = 2.0
    REFRACTORY_S = 0.2
    T_WAVE_S = 0.36
    MWI_S = 0.15
    SEARCH_R_S = 0.25  # R peak is searched this far back from the integrator peak

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
            limit = self._last_qrs + int(math.ceil(1.66 * self.rr_avg))
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
        if now is not None and now < self._held + self.refractory + self.search_r + \
                self.refine_back:
            return
        beats.append(self._held)
        self._held = None

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
        b = min(k + self.refine_fwd, h0 + self._raw.shape[0] - 1)
        raw = self._raw[a - h0 : b + 1 - h0]
        ctx = self._raw[max(a - self.w, h0) - h0 : b + 1 - h0]
        return a + int(np.argmax(np.abs(raw - np.median(ctx))))

    def _trim(self) -> None:
        keep = self.hist_len
        if self._hlen > 2 * keep:
            cut = self._hlen - keep
            self._hbuf[:, :keep] = self._hbuf[:, cut : self._hlen]
            self._hlen = keep
            self._hist0 += cut


def detect_qrs(x: np.ndarray, rate: float, block: int | None = None) -> np.ndarray:
    """Run :class:`QrsDetector` over a whole signal (optionally in blocks); return R indices."""
    det = QrsDetector(rate)
    x = np.asarray(x, dtype=np.float64)
    if block is None:
        return np.concatenate([det.process(x), det.flush()])
    parts = [det.process(x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate(parts + [det.flush()])


def score_beats(detected: np.ndarray, reference: np.ndarray, rate: float,
                tolerance_s: float = 0.150) -> dict[str, Any]:
    """Match detections to reference beats one-to-one within ``tolerance_s``.

    Returns ``{"tp", "fn", "fp", "n", "se", "ppv"}`` (``n`` = reference beats).
    """
    det = np.sort(np.asarray(detected, dtype=np.int64))
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    tol = tolerance_s * rate
    i = j = tp = 0
    while i < len(ref) and j < len(det):
        diff = det[j] - ref[i]
        if abs(diff) <= tol:
            # Prefer the closer of two detections near the same beat.
            if j + 1 < len(det) and abs(det[j + 1] - ref[i]) < abs(diff):
                j += 1
                continue
            tp += 1
            i += 1
            j += 1
        elif diff < 0:
            j += 1
        else:
            i += 1
    fn, fp = len(ref) - tp, len(det) - tp
    return {
        "tp": tp, "fn": fn, "fp": fp, "n": int(len(ref)),
        "se": tp / (tp + fn) if tp + fn else 1.0,
        "ppv": tp / (tp + fp) if tp + fp else 1.0,
    }


def _lead_for(record: str) -> int:
    """Index of the MLII lead when the header names it, else 0."""
    import wfdb

    names = wfdb.rdheader(record).sig_name or []
    return names.index("MLII") if "MLII" in names else 0


def evaluate_record(record: str | os.PathLike, tolerance_s: float = 0.150,
                    block: int = 4096) -> dict[str, Any]:
    """Detect beats in one WFDB record (MLII lead if present) and score against ``.atr``."""
    from .readers import BEAT_SYMBOLS, WfdbSource

    record = str(record)
    src = WfdbSource(record, channel=_lead_for(record), ann="atr", block_size=block)
    det = QrsDetector(src.rate)
    found = [det.process(b.samples) for b in src] + [det.flush()]
    if src.annotations is None:
        raise SourceFormatError("no .atr beat annotations to score against", path=record)
    ann = src.annotations
    mask = np.array([s in BEAT_SYMBOLS for s in ann["symbol"]], dtype=bool)
    beats = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return score_beats(beats, ann["sample"][mask], src.rate, tolerance_s)


def evaluate_records(folder: str | os.PathLike, tolerance_s: float = 0.150) -> dict[str, Any]:
    """Score every record (``*.hea`` with an ``.atr``) in ``folder``.

    Returns ``{"records": {REC: {"se", "ppv", "n", ...}}, "aggregate": {"se", "ppv", "n"}}``
    (the aggregate is gross: totals over all beats).
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
        r = evaluate_record(folder / rec, tolerance_s)
        out["records"][rec] = r
        tp, fn, fp, n = tp + r["tp"], fn + r["fn"], fp + r["fp"], n + r["n"]
    out["aggregate"] = {
        "se": tp / (tp + fn) if tp + fn else 1.0,
        "ppv": tp / (tp + fp) if tp + fp else 1.0,
        "n": n, "tp": tp, "fn": fn, "fp": fp,
    }
    return out


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin CLI helper
    """``python -m spikeedge.sensors.qrs RECORDS_DIR [--json]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Score the streaming QRS detector on WFDB records")
    ap.add_argument("folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = evaluate_records(args.folder)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{'record':>8} {'n':>6} {'Se %':>7} {'PPV %':>7} {'FN':>5} {'FP':>5}")
    for rec, r in res["records"].items():
        print(f"{rec:>8} {r['n']:>6} {100 * r['se']:7.2f} {100 * r['ppv']:7.2f} "
              f"{r['fn']:>5} {r['fp']:>5}")
    a = res["aggregate"]
    print(f"{'total':>8} {a['n']:>6} {100 * a['se']:7.2f} {100 * a['ppv']:7.2f} "
          f"{a['fn']:>5} {a['fp']:>5}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
