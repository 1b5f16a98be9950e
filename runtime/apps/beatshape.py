"""Label-free, causal beat-shape features of the filtered ECG around each R peak (the ``shape``
option of the ``beat`` decision policy; see docs/models/README.md).

The raw lead is filtered as the ``ecg-delta`` encoder does (0.5 Hz baseline removal, then a
0.5-40 Hz band-pass, both causal) and kept in a ring buffer. For a beat at R-peak sample ``r``,
decided once ``post_s`` of signal after it has arrived, :meth:`BeatShape.features` returns
(:data:`SHAPE_FEATURES`):

* ``morph``: the filtered signal (mV, mean of 5 samples) at fixed offsets from the R peak
  (:data:`MORPH_MS`: P wave, QRS, T wave), standardised against the patient's own previous
  ``window`` beats (median / MAD, as :class:`~.stream.RunningNorm`, floor ``floor_mv``);
* ``template``: the beat against the patient's running template, the per-sample median of the
  previous ``window`` beats (most beats of a patient are normal, so the median is a normal
  beat without any label): the best correlation over lags of +-14 ms in the QRS window
  (-100..+150 ms), the log RMS distance relative to the template's RMS, the log peak-to-peak
  amplitude ratio;
* ``pwave``: in the P-wave window (-250..-80 ms) the correlation with the template and the log
  ratio of standard deviations (P wave present and alike, as before a normal beat);
* ``width``: the QRS width, from 5 % to 95 % of the energy of the signal's slope in
  -150..+200 ms (seconds), and its log ratio to the median width of the previous beats.

Options (``decision.shape``: ``true`` for the defaults :data:`SHAPE_DEFAULTS`, or an object):
``window`` (beats of history, 1..1024), ``floor_mv`` (> 0) and ``parts`` (a non-empty list of
the groups above; the feature vector holds the chosen groups in the order above).

Everything uses only samples up to ``r + post`` and the previous beats: causal and the same in
``eval``, training and the daemon. The first beat (no history) compares with itself.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BeatShape", "MORPH_MS", "PARTS", "SHAPE_FEATURES", "SHAPE_DEFAULTS", "shape_options"]

MORPH_MS = (-250, -200, -150, -100, -60, -30, -15, 0, 15, 30, 50, 80, 120, 170, 220, 270,
            320, 380)
TEMPLATE_FEATURES = ("corr", "log dist", "log amp")
P_FEATURES = ("p corr", "log p sd")
WIDTH_FEATURES = ("qrs width", "log width ratio")
#: the feature groups, in their order in the feature vector
PARTS = {"morph": tuple(f"morph {m} ms" for m in MORPH_MS), "template": TEMPLATE_FEATURES,
         "pwave": P_FEATURES, "width": WIDTH_FEATURES}
SHAPE_FEATURES = sum(PARTS.values(), ())
SHAPE_DEFAULTS = {"window": 64, "floor_mv": 0.05,
                  "parts": ["morph", "template", "pwave", "width"]}
PRE_S = 0.26          # the signal the features need before the R peak
POST_S = 0.40         # ... and after it (at most the decision's post_s)
HISTORY_S = 8.0     # as the spike ring of the beat featurizer


def shape_options(opts, post_s: float) -> dict:
    """``SHAPE_DEFAULTS`` updated with ``opts`` (True or a dict), checked; raises ValueError
    with the reason (the caller wraps it in its own error type)."""
    if opts is True:
        opts = {}
    if not isinstance(opts, dict):
        raise ValueError(f"decision.shape must be true or an object with keys "
                         f"{sorted(SHAPE_DEFAULTS)}, got {opts!r}")
    bad = sorted(set(opts) - set(SHAPE_DEFAULTS))
    if bad:
        raise ValueError(f"decision.shape: unknown key(s) {bad}; allowed {sorted(SHAPE_DEFAULTS)}")
    o = dict(SHAPE_DEFAULTS)
    o.update(opts)
    o["parts"] = list(o["parts"]) if isinstance(o["parts"], (list, tuple)) else o["parts"]
    w, f, parts = o["window"], o["floor_mv"], o["parts"]
    if not isinstance(parts, list) or not parts or any(p not in PARTS for p in parts) \
            or len(set(parts)) != len(parts):
        raise ValueError(f"decision.shape.parts must be a non-empty list of distinct names "
                         f"from {sorted(PARTS)}, got {parts!r}")
    if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 1024:
        raise ValueError(f"decision.shape.window must be an integer in 1..1024 (beats), got {w!r}")
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not np.isfinite(f) or f <= 0:
        raise ValueError(f"decision.shape.floor_mv must be a positive number, got {f!r}")
    if not post_s >= POST_S:
        raise ValueError(f"decision.shape needs post_s >= {POST_S} s, got {post_s}")
    return o


class BeatShape:
    """Streaming filter + ring buffer (the last ``history_s`` seconds) + per-beat shape
    features (see the module notes)."""

    def __init__(self, rate: float, window: int = 64, floor_mv: float = 0.05,
                 parts=tuple(PARTS), history_s: float = HISTORY_S):
        from ..sensors.encoders import BandPass, BaselineRemoval
        self.rate = float(rate)
        self.filters = [BaselineRemoval(self.rate, 1), BandPass(0.5, min(40.0, self.rate * 0.45),
                                                                self.rate, 1, order=2)]
        self.window, self.floor = int(window), float(floor_mv)
        self.parts = tuple(parts)
        self.names = sum((PARTS[p] for p in PARTS if p in self.parts), ())
        offs = np.cumsum([0] + [len(PARTS[p]) for p in PARTS])
        self.cols = np.concatenate([np.arange(offs[i], offs[i + 1])
                                    for i, p in enumerate(PARTS) if p in self.parts])
        self.ring_len = int(history_s * self.rate)
        self.ring = np.zeros(self.ring_len)
        self.n = 0
        ms = self.rate / 1000.0
        self.morph_at = np.array([int(round(m * ms)) for m in MORPH_MS])
        self.pre = int(round(PRE_S * self.rate))
        self.post = int(round(POST_S * self.rate))
        self.q = (int(round(-0.100 * self.rate)), int(round(0.150 * self.rate)))
        self.p = (int(round(-0.250 * self.rate)), int(round(-0.080 * self.rate)))
        self.wd = (int(round(-0.150 * self.rate)), int(round(0.200 * self.rate)))
        self.lag = int(round(0.014 * self.rate))
        self.seg_len = self.pre + self.post + 1
        self.hist = np.zeros((self.window, self.seg_len))    # previous beats' segments
        self.whist = np.zeros(self.window)                   # ... and QRS widths
        self.mhist = np.zeros((self.window, len(MORPH_MS)))  # ... and morphology samples
        self.beats = 0

    @property
    def n_features(self) -> int:
        return len(self.names)

    def feed(self, x: np.ndarray) -> None:
        """Filter one block of the raw lead (mV) into the ring."""
        y = np.asarray(x, np.float64).reshape(-1, 1)
        for f in self.filters:
            y = f.process(y)
        y = y[:, 0]
        if len(y) >= self.ring_len:
            y = y[-self.ring_len:]
            self.n += len(x) - len(y)
        idx = np.arange(self.n, self.n + len(y)) % self.ring_len
        self.ring[idx] = y
        self.n += len(y)

    def available(self, r: int) -> bool:
        """Whether the ring holds the segment of the beat at sample ``r``."""
        return r - self.pre >= max(0, self.n - self.ring_len) and r + self.post < self.n

    def segment(self, r: int) -> np.ndarray:
        return self.ring[np.arange(r - self.pre, r + self.post + 1) % self.ring_len]

    def features(self, r: int) -> np.ndarray:
        """The shape features of the beat at sample ``r`` (needs :meth:`available`), then
        remember it as history for the next beats."""
        seg = self.segment(r)
        return self.features_of(seg)

    # ------------------------------------------------------------------ the features
    @staticmethod
    def _corr(a: np.ndarray, b: np.ndarray) -> float:
        a = a - a.mean()
        b = b - b.mean()
        d = np.sqrt(float(a @ a) * float(b @ b))
        return float(a @ b) / d if d > 1e-12 else 0.0

    def _width(self, seg: np.ndarray) -> float:
        c = self.pre
        s = seg[c + self.wd[0]:c + self.wd[1] + 1]
        e = np.cumsum(np.square(np.diff(s)))
        if not e[-1] > 0:
            return 0.0
        e /= e[-1]
        a = int(np.searchsorted(e, 0.05))
        b = int(np.searchsorted(e, 0.95))
        return (b - a) / self.rate

    def features_of(self, seg: np.ndarray) -> np.ndarray:
        c = self.pre
        k = min(self.beats, self.window)
        t0, t1 = c + self.p[0], c + self.q[1] + 1
        # morphology samples (5-sample means), standardised against the previous beats
        m = np.array([seg[c + o - 2:c + o + 3].mean() for o in self.morph_at])
        width = self._width(seg)
        if k:
            h = self.mhist[:k]
            med = np.median(h, 0)
            mad = 1.4826 * np.median(np.abs(h - med), 0)
            zm = (m - med) / np.sqrt(mad * mad + self.floor * self.floor)
            # the template only where it is used: P-wave window to the end of the QRS window
            tpl = np.median(self.hist[:k, t0:t1], 0)
            wmed = float(np.median(self.whist[:k]))
        else:
            zm = np.zeros_like(m)
            tpl = seg[t0:t1]
            wmed = width
        q0, q1 = c + self.q[0], c + self.q[1] + 1
        tq = tpl[q0 - t0:q1 - t0]
        corr = max(self._corr(seg[q0 + s:q1 + s], tq) for s in range(-self.lag, self.lag + 1))
        rms_t = float(np.sqrt(np.mean(np.square(tq - tq.mean())))) + 0.01
        bq = seg[q0:q1]
        dist = float(np.sqrt(np.mean(np.square((bq - bq.mean()) - (tq - tq.mean())))))
        amp = (np.ptp(bq) + 0.01) / (np.ptp(tq) + 0.01)
        p0, p1 = c + self.p[0], c + self.p[1] + 1
        pcorr = self._corr(seg[p0:p1], tpl[p0 - t0:p1 - t0])
        psd = (np.std(seg[p0:p1]) + 0.005) / (np.std(tpl[p0 - t0:p1 - t0]) + 0.005)
        out = np.concatenate([zm, [corr, np.log(dist / rms_t + 1e-3), np.log(amp), pcorr,
                                   np.log(psd), width,
                                   np.log((width + 0.005) / (wmed + 0.005))]])
        i = self.beats % self.window
        self.hist[i] = seg
        self.whist[i] = width
        self.mhist[i] = m
        self.beats += 1
        return out[self.cols]
