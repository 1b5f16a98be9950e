"""Streaming spike encoders and the signal transforms that feed them.

Two kinds of stage share one small interface (``reset()``, ``process(samples)``):

* a :class:`Transform` maps ``float [n, channels]`` to ``float64 [n, channels_out]`` at the same
  sampling rate (filters, rectification, envelopes, compression, the cochlea filterbank);
* a :class:`SpikeEncoder` maps ``float [n, channels]`` at ``in_rate`` to ``uint8 [steps, n_out]``
  (0/1 spikes) at ``step_hz`` (for example 1000 Hz, the engine's 1 ms time step).

:class:`Chain` composes transforms ending in a spike encoder.

**Time grid.** Input sample ``i`` is at time ``i / in_rate``; output step ``k`` covers
``[k / step_hz, (k + 1) / step_hz)``. A step is emitted as soon as all its samples have arrived,
so after ``N`` samples in total exactly ``floor(N * step_hz / in_rate)`` steps have been emitted
(rates are handled as exact fractions; a partial step is carried to the next call). Several
events in one step give one spike.

**Streaming exactness.** Every stage gives bit-identical output whether a signal is fed whole or
split into blocks of any sizes. Filters carry their state (and are sequential); per-step sums are
accumulated in 64-bit integers (exact, so independent of summation order); encoders with a
feedback loop are either solved in closed form on integers or loop over output steps.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from . import _designs
from .errors import EncoderConfigError

try:  # compiled inner loops (bit-identical); the NumPy code below is the fallback
    from . import _fastsig as _fast
except ImportError:  # pragma: no cover - a build without a C compiler
    _fast = None

__all__ = [
    "Stage",
    "Transform",
    "SpikeEncoder",
    "Chain",
    "Filter",
    "BandPass",
    "HighPass",
    "LowPass",
    "Notch",
    "BaselineRemoval",
    "Rectify",
    "Envelope",
    "Compress",
    "PeakNormalize",
    "Gain",
    "CochleaFilterbank",
    "FftFilterbank",
    "DeltaEncoder",
    "LevelCrossingEncoder",
    "SigmaDeltaEncoder",
    "ThresholdEncoder",
    "Parallel",
    "LIFEncoder",
    "RateEncoder",
    "LatencyEncoder",
    "erb_space",
]

_QSCALE = float(2**20)  # fixed-point scale of the integer step accumulators
_QLIMIT = float(2**50)


def _as_fraction(rate: float | int | Fraction, what: str) -> Fraction:
    try:
        f = Fraction(rate).limit_denominator(1_000_000)
    except (TypeError, ValueError):
        raise EncoderConfigError(f"{what} must be a number, got {rate!r}") from None
    if f <= 0:
        raise EncoderConfigError(f"{what} must be > 0 Hz, got {rate}")
    return f


class Stage:
    """Common part of transforms and encoders: input rate, channel count, input checking."""

    def __init__(self, in_rate: float, channels: int = 1):
        self.in_rate_exact = _as_fraction(in_rate, "in_rate")
        self.in_rate = float(self.in_rate_exact)
        if int(channels) < 1:
            raise EncoderConfigError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)

    def _check(self, samples: Any) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise EncoderConfigError(
                f"{type(self).__name__} expects samples shaped [n, {self.channels}], "
                f"got {x.shape}"
            )
        x = np.ascontiguousarray(x)
        if not (_fast.all_finite(x) if _fast is not None else np.all(np.isfinite(x))):
            raise EncoderConfigError(f"{type(self).__name__}: input holds NaN or inf")
        return x

    def reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def process(self, samples: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    #: stages with a compiled path set this: ``_fast_apply(x)`` takes an input that already
    #: passed ``_check`` (float64, C-contiguous, finite) and returns ``(output, finite)``,
    #: the same output as ``process``; :class:`Chain` uses it to skip repeated checks. A
    #: transform's output may be its own scratch buffer (:meth:`_scratch`), valid until its
    #: next call: the next stage reads it and keeps no reference; stages never write to
    #: their input.
    _fast_apply = None

    _scratch_buf: np.ndarray | None = None

    def _scratch(self, n: int, cols: int) -> np.ndarray:
        """A reusable float64 ``[n, cols]`` output buffer (no allocation, so no page faults,
        per block)."""
        b = self._scratch_buf
        if b is None or b.shape[0] < n or b.shape[1] != cols:
            b = self._scratch_buf = np.empty((max(n, 64), cols))
        return b[:n]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_rate={self.in_rate:g}, channels={self.channels})"


class Transform(Stage):
    """A signal transform: ``float [n, channels] -> float64 [m, channels_out]``.

    Most transforms keep the rate (``out_rate == in_rate``, ``m == n``); a framing transform
    such as :class:`FftFilterbank` emits one row per frame at ``out_rate``.
    """

    @property
    def channels_out(self) -> int:
        return self.channels

    @property
    def out_rate_exact(self) -> Fraction:
        return self.in_rate_exact

    def reset(self) -> None:
        """Stateless by default."""


class SpikeEncoder(Stage):
    """Base of spike encoders: ``float [n, channels] -> uint8 [steps, n_out]`` at ``step_hz``."""

    n_out: int

    def __init__(self, in_rate: float, step_hz: float = 1000.0, channels: int = 1):
        super().__init__(in_rate, channels)
        self.step_hz_exact = _as_fraction(step_hz, "step_hz")
        self.step_hz = float(self.step_hz_exact)
        ratio = self.step_hz_exact / self.in_rate_exact  # steps per sample
        self._num, self._den = ratio.numerator, ratio.denominator
        self._samples = 0
        self._steps = 0

    def _reset_grid(self) -> None:
        self._samples = 0
        self._steps = 0

    def _advance(self, n: int) -> tuple[np.ndarray, int]:
        """Step of each new sample relative to the first unemitted step, and steps completed."""
        i = np.arange(self._samples, self._samples + n, dtype=np.int64)
        rel = (i * self._num) // self._den - self._steps
        total = self._samples + n
        done = (total * self._num) // self._den
        new = int(done - self._steps)
        self._samples, self._steps = total, done
        return rel, new

    def steps_for(self, n_samples: int) -> int:
        """Steps the next call with ``n_samples`` samples will return."""
        total = self._samples + n_samples
        return int((total * self._num) // self._den - self._steps)


class _EventEncoder(SpikeEncoder):
    """Encoders whose spikes are events at input samples, mapped onto the step grid."""

    def __init__(self, in_rate: float, step_hz: float, channels: int, n_out: int):
        super().__init__(in_rate, step_hz, channels)
        self.n_out = int(n_out)
        self._pending = np.zeros(self.n_out, dtype=np.uint8)

    def reset(self) -> None:
        self._reset_grid()
        self._pending = np.zeros(self.n_out, dtype=np.uint8)
        self._reset_state()

    def _reset_state(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _events(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        """Per-sample event flags ``bool [n, n_out]`` (and update state)."""
        raise NotImplementedError

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        n = x.shape[0]
        rel, new = self._advance(n)
        out = np.zeros((new + 1, self.n_out), dtype=np.uint8)
        out[0] = self._pending
        if n:
            ev = self._events(x)
            rows, cols = np.nonzero(ev)
            out[rel[rows], cols] = 1
        self._pending = out[new].copy()
        return out[:new]


def _hysteresis_levels(f: np.ndarray, c: np.ndarray, k_prev: np.ndarray) -> np.ndarray:
    """Solve ``k[j] = clip(k[j-1], f[j], c[j])`` for integer arrays ``[n, ch]`` in closed form.

    ``c - f`` is 0 or 1. ``k[j]`` depends on ``k[j-1]`` only when ``c[j-1] = f[j-1] + 1``,
    ``f[j] = f[j-1]`` and ``c[j] = f[j] + 1`` (then ``k[j] = k[j-1]``); everywhere else it is
    ``clip(f[j-1], f[j], c[j])``. Forward-filling the decisive values gives the recursion.
    """
    n = f.shape[0]
    cand = np.empty_like(f)
    cand[0] = np.clip(k_prev, f[0], c[0])
    if n > 1:
        cand[1:] = np.clip(f[:-1], f[1:], c[1:])
        hold = (c[:-1] - f[:-1] == 1) & (f[1:] == f[:-1]) & (c[1:] - f[1:] == 1)
        idx = np.arange(n, dtype=np.int64)[:, None].repeat(f.shape[1], axis=1)
        idx[1:][hold] = 0
        idx = np.maximum.accumulate(idx, axis=0)
        cand = np.take_along_axis(cand, idx, axis=0)
    return cand


class DeltaEncoder(_EventEncoder):
    """Send-on-delta (asynchronous delta modulation), one ON and one OFF output per channel.

    A reference starts at the first sample and moves by ``threshold`` per spike: ON while
    ``x >= ref + threshold`` (ref += threshold), OFF while ``x <= ref - threshold``
    (ref -= threshold). Outputs: columns ``0..C-1`` ON, ``C..2C-1`` OFF.
    """

    def __init__(self, threshold: float, in_rate: float, step_hz: float = 1000.0,
                 channels: int = 1):
        super().__init__(in_rate, step_hz, channels, 2 * int(channels))
        if not threshold > 0:
            raise EncoderConfigError(f"DeltaEncoder: threshold must be > 0, got {threshold}")
        self.threshold = float(threshold)
        self._reset_state()

    def _reset_state(self) -> None:
        self._x0: np.ndarray | None = None
        self._k = np.zeros(self.channels, dtype=np.int64)

    def _events(self, x: np.ndarray) -> np.ndarray:
        if self._x0 is None:
            self._x0 = x[0].copy()
        u = (x - self._x0) / self.threshold
        f = np.floor(u).astype(np.int64)
        c = np.ceil(u).astype(np.int64)
        k = _hysteresis_levels(f, c, self._k)
        dk = np.diff(k, axis=0, prepend=self._k[None, :])
        self._k = k[-1].copy()
        return np.concatenate([dk > 0, dk < 0], axis=1)

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        if _fast is None:
            return self.process(x), True
        n = x.shape[0]
        samples, steps = self._samples, self._steps
        total = samples + n
        done = (total * self._num) // self._den
        new = int(done - steps)
        out = np.zeros((new + 1, self.n_out), dtype=np.uint8)
        out[0] = self._pending
        if n:
            if self._x0 is None:
                self._x0 = x[0].copy()
            if not self._k.flags.c_contiguous:
                self._k = np.ascontiguousarray(self._k)
            _fast.delta_events(x, self._x0, self.threshold, self._k, samples, steps,
                               self._num, self._den, out)
        self._samples, self._steps = total, done
        self._pending = out[new].copy()
        return out[:new], True


class LevelCrossingEncoder(_EventEncoder):
    """Level-crossing sampling on a fixed grid of levels ``offset + m * delta``.

    An ON (OFF) spike when the signal crosses a level upwards (downwards); ``hysteresis``
    levels of dead band suppress chatter (0: pure level crossing, 1: the same as a delta
    modulator anchored on the absolute grid). Columns ``0..C-1`` ON, ``C..2C-1`` OFF.
    """

    def __init__(self, delta: float, in_rate: float, step_hz: float = 1000.0,
                 channels: int = 1, offset: float = 0.0, hysteresis: int = 0):
        super().__init__(in_rate, step_hz, channels, 2 * int(channels))
        if not delta > 0:
            raise EncoderConfigError(f"LevelCrossingEncoder: delta must be > 0, got {delta}")
        if hysteresis not in (0, 1):
            raise EncoderConfigError("LevelCrossingEncoder: hysteresis must be 0 or 1")
        self.delta, self.offset, self.hysteresis = float(delta), float(offset), int(hysteresis)
        self._reset_state()

    def _reset_state(self) -> None:
        self._q: np.ndarray | None = None

    def _events(self, x: np.ndarray) -> np.ndarray:
        u = (x - self.offset) / self.delta
        f = np.floor(u).astype(np.int64)
        if self._q is None:
            self._q = f[0].copy()
        if self.hysteresis:
            q = _hysteresis_levels(f, np.ceil(u).astype(np.int64), self._q)
        else:
            q = f
        dq = np.diff(q, axis=0, prepend=self._q[None, :])
        self._q = q[-1].copy()
        return np.concatenate([dq > 0, dq < 0], axis=1)


class SigmaDeltaEncoder(_EventEncoder):
    """Sigma-delta modulation: a bipolar integrate-and-fire with reset by subtraction.

    The input is integrated (``v += x / rate``); an ON spike when ``v >= threshold`` (then
    ``v -= threshold``), an OFF spike when ``v <= -threshold`` (``v += threshold``), so the spike
    count tracks the integral of the signal. ``threshold`` is in input units x seconds. The
    integral is kept in 64-bit fixed point (2**-20 of the threshold), so it never drifts and
    blocks split anywhere give identical spikes. Columns ``0..C-1`` ON, ``C..2C-1`` OFF.
    """

    def __init__(self, threshold: float, in_rate: float, step_hz: float = 1000.0,
                 channels: int = 1):
        super().__init__(in_rate, step_hz, channels, 2 * int(channels))
        if not threshold > 0:
            raise EncoderConfigError(f"SigmaDeltaEncoder: threshold must be > 0, got {threshold}")
        self.threshold = float(threshold)
        self._q = 2**20
        self._scale = self._q / (self.threshold * self.in_rate)
        self._reset_state()

    def _reset_state(self) -> None:
        self._acc = np.zeros(self.channels, dtype=np.int64)
        self._k = np.zeros(self.channels, dtype=np.int64)

    def _events(self, x: np.ndarray) -> np.ndarray:
        inc = np.rint(np.clip(x * self._scale, -_QLIMIT, _QLIMIT)).astype(np.int64)
        s = np.cumsum(inc, axis=0) + self._acc
        # Keep the integral small: move whole thresholds from acc into the level counter.
        f = s // self._q
        c = -((-s) // self._q)
        k = _hysteresis_levels(f, c, self._k)
        dk = np.diff(k, axis=0, prepend=self._k[None, :])
        shift = k[-1]
        self._acc = s[-1] - shift * self._q
        self._k = np.zeros_like(shift)
        return np.concatenate([dk > 0, dk < 0], axis=1)


class ThresholdEncoder(_EventEncoder):
    """Bipolar level detector: an ON spike at every sample above ``+threshold``, an OFF spike
    at every sample below ``-threshold``; a spike's presence says which side of zero a signal
    is on at that moment, so two channels' spikes in the same step carry their correlation
    (the EMG preset ``emg-lif-sign`` feeds them to coincidence neurons). Columns ``0..C-1``
    ON, ``C..2C-1`` OFF; several samples in one step give one spike.

    ``adapt_s`` (seconds) makes the threshold relative: ``threshold`` times each channel's
    running RMS, ``sqrt(m)`` with ``m += (x^2 - m) * (1 - exp(-1 / (adapt_s * in_rate)))`` per
    sample (this sample included, ``m`` starting at 0), so how often a channel crosses no
    longer depends on its amplitude (electrode contact, gain), only on the signal's shape.
    Without it the encoder is stateless and ``threshold`` is in input units.
    """

    def __init__(self, threshold: float, in_rate: float, step_hz: float = 1000.0,
                 channels: int = 1, adapt_s: float | None = None):
        super().__init__(in_rate, step_hz, channels, 2 * int(channels))
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0 < threshold < math.inf:
            raise EncoderConfigError(f"ThresholdEncoder: threshold must be a finite number "
                                     f"> 0, got {threshold!r}")
        if adapt_s is not None and (isinstance(adapt_s, bool) or
                                    not isinstance(adapt_s, (int, float)) or
                                    not 0 < adapt_s < math.inf):
            raise EncoderConfigError(f"ThresholdEncoder: adapt_s must be None or a finite "
                                     f"number of seconds > 0, got {adapt_s!r}")
        self.threshold = float(threshold)
        self.adapt_s = None if adapt_s is None else float(adapt_s)
        self._a = 0.0 if adapt_s is None else -math.expm1(-1.0 / (self.adapt_s * self.in_rate))
        self._reset_state()

    def _reset_state(self) -> None:
        self._zi = np.zeros((1, self.channels))      # the running mean square

    def _events(self, x: np.ndarray) -> np.ndarray:
        if self.adapt_s is None:
            return np.concatenate([x > self.threshold, x < -self.threshold], axis=1)
        from scipy.signal import lfilter
        ms, self._zi = lfilter([self._a], [1.0, self._a - 1.0], x * x, axis=0, zi=self._zi)
        th = self.threshold * np.sqrt(ms)
        return np.concatenate([x > th, x < -th], axis=1)


class Parallel(SpikeEncoder):
    """Several spike encoders fed the same samples, their spikes side by side: the columns of
    the first branch, then of the second, and so on. The branches must agree on the input
    rate, the channel count and the step rate, so every call gives each of them the same
    number of steps.

    >>> enc = Parallel(Chain(Envelope(200, 8), LIFEncoder(200, 200, 8)),
    ...                Chain(BandPass(20, 90, 200, 8), ThresholdEncoder(5.0, 200, 200, 8)))
    """

    def __init__(self, *branches: SpikeEncoder):
        if len(branches) < 2 or not all(isinstance(b, SpikeEncoder) for b in branches):
            raise EncoderConfigError("Parallel: needs two or more SpikeEncoders")
        first = branches[0]
        for b in branches[1:]:
            if (b.in_rate_exact, b.channels, b.step_hz_exact) != \
                    (first.in_rate_exact, first.channels, first.step_hz_exact):
                raise EncoderConfigError(
                    f"Parallel: branches differ ({first.in_rate:g} Hz x {first.channels} "
                    f"channels -> {first.step_hz:g} steps/s against {b.in_rate:g} Hz x "
                    f"{b.channels} -> {b.step_hz:g})")
        Stage.__init__(self, first.in_rate_exact, first.channels)
        self.branches = list(branches)
        self.step_hz, self.step_hz_exact = first.step_hz, first.step_hz_exact
        self.n_out = sum(b.n_out for b in branches)

    def reset(self) -> None:
        for b in self.branches:
            b.reset()

    def steps_for(self, n_samples: int) -> int:
        return self.branches[0].steps_for(n_samples)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        return np.concatenate([b.process(x) for b in self.branches], axis=1)

    def __repr__(self) -> str:
        return "Parallel(" + ", ".join(repr(b) for b in self.branches) + ")"


class _StepBinner:
    """Mean of the input samples in each output step (64-bit fixed point, exact).

    Steps that hold no sample (when ``step_hz > in_rate``) repeat the previous value.
    """

    def __init__(self, enc: SpikeEncoder):
        self.enc = enc
        self.reset()

    def reset(self) -> None:
        c = self.enc.channels
        self.acc = np.zeros(c, dtype=np.int64)
        self.cnt = 0
        self.last = np.zeros(c, dtype=np.float64)

    def process(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        rel, new = self.enc._advance(n)
        c = self.enc.channels
        sums = np.zeros((new + 1, c), dtype=np.int64)
        counts = np.zeros(new + 1, dtype=np.int64)
        sums[0] = self.acc
        counts[0] = self.cnt
        if n:
            q = np.rint(np.clip(x * _QSCALE, -_QLIMIT, _QLIMIT)).astype(np.int64)
            starts = np.flatnonzero(np.diff(rel, prepend=-1))
            steps = rel[starts]
            sums[steps] += np.add.reduceat(q, starts, axis=0)
            counts[steps] += np.diff(np.append(starts, n))
        self.acc, self.cnt = sums[new].copy(), int(counts[new])
        if new == 0:
            return np.zeros((0, c))
        cnt = counts[:new]
        has = cnt > 0
        vals = np.zeros((new, c))
        vals[has] = sums[:new][has] / cnt[has, None] / _QSCALE
        if not has.all():
            idx = np.where(has, np.arange(new), -1)
            idx = np.maximum.accumulate(idx)
            prev = np.vstack([self.last[None, :], vals])
            vals = prev[idx + 1]
        self.last = vals[-1].copy()
        return vals


class LIFEncoder(SpikeEncoder):
    """Leaky integrate-and-fire neurons, one per channel, driven by the per-step input mean.

    ``tau dv/dt = -v + gain * x`` integrated exactly per step (``v = a v + (1 - a) gain x``,
    ``a = exp(-dt / tau)``); a spike when ``v >= threshold``; reset by subtraction
    (``reset="subtract"``) or to zero (``"zero"``); ``refractory`` steps of silence after a spike.
    """

    def __init__(self, in_rate: float, step_hz: float = 1000.0, channels: int = 1, *,
                 tau: float = 0.005, threshold: float = 1.0, gain: float = 1.0,
                 reset: str = "subtract", refractory: int = 0):
        super().__init__(in_rate, step_hz, channels)
        if not tau > 0 or not threshold > 0:
            raise EncoderConfigError("LIFEncoder: tau and threshold must be > 0")
        if reset not in ("subtract", "zero"):
            raise EncoderConfigError("LIFEncoder: reset must be 'subtract' or 'zero'")
        self.n_out = self.channels
        self.tau, self.threshold, self.gain = float(tau), float(threshold), float(gain)
        self.reset_mode, self.refractory = reset, int(refractory)
        self.decay = math.exp(-1.0 / (self.step_hz * self.tau))
        self._binner = _StepBinner(self)
        self.reset()

    def reset(self) -> None:
        self._reset_grid()
        self._binner.reset()
        self.v = np.zeros(self.channels)
        self._refr = np.zeros(self.channels, dtype=np.int64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        drive = self._binner.process(x) * ((1.0 - self.decay) * self.gain)
        out = np.zeros(drive.shape, dtype=np.uint8)
        v, a, th, refr = self.v, self.decay, self.threshold, self._refr
        subtract = self.reset_mode == "subtract"
        for k in range(drive.shape[0]):
            v *= a
            v += drive[k]
            if self.refractory:
                blocked = refr > 0
                v[blocked] = 0.0
                refr[blocked] -= 1
            s = v >= th
            if s.any():
                out[k] = s
                if subtract:
                    v[s] -= th
                else:
                    v[s] = 0.0
                if self.refractory:
                    refr[s] = self.refractory
        return out

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        if _fast is None:
            return self.process(x), True
        n = x.shape[0]
        samples, steps = self._samples, self._steps
        total = samples + n
        done = (total * self._num) // self._den
        out = np.zeros((int(done - steps), self.channels), dtype=np.uint8)
        b = self._binner
        b.cnt = _fast.lif_encode(x, b.acc, b.cnt, b.last, self.v, self._refr, samples, steps,
                                 self._num, self._den, (1.0 - self.decay) * self.gain,
                                 self.decay, self.threshold, self.reset_mode == "subtract",
                                 self.refractory, out)
        self._samples, self._steps = total, done
        return out, True


class RateEncoder(SpikeEncoder):
    """Rate coding of inputs in [0, 1] (clipped): ``x = 1`` fires at ``max_rate`` Hz.

    ``mode="poisson"``: a Bernoulli draw per step with probability ``x * max_rate / step_hz``
    from a seeded generator (deterministic for a seed). ``mode="deterministic"``: an integrate
    and fire accumulator in 64-bit fixed point gives evenly spaced spikes.
    """

    def __init__(self, in_rate: float, step_hz: float = 1000.0, channels: int = 1, *,
                 max_rate: float = 100.0, mode: str = "poisson", seed: int = 0):
        super().__init__(in_rate, step_hz, channels)
        if not 0 < max_rate <= self.step_hz:
            raise EncoderConfigError(
                f"RateEncoder: max_rate must be in (0, step_hz={self.step_hz:g}], got {max_rate}"
            )
        if mode not in ("poisson", "deterministic"):
            raise EncoderConfigError("RateEncoder: mode must be 'poisson' or 'deterministic'")
        self.n_out = self.channels
        self.max_rate, self.mode, self.seed = float(max_rate), mode, int(seed)
        self._binner = _StepBinner(self)
        self.reset()

    def reset(self) -> None:
        self._reset_grid()
        self._binner.reset()
        self._rng = np.random.default_rng(self.seed)
        self._acc = np.zeros(self.channels, dtype=np.int64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        p = np.clip(self._binner.process(x), 0.0, 1.0) * (self.max_rate / self.step_hz)
        if p.shape[0] == 0:
            return np.zeros((0, self.n_out), dtype=np.uint8)
        if self.mode == "poisson":
            return (self._rng.random(p.shape) < p).astype(np.uint8)
        one = np.int64(2**40)
        inc = np.rint(p * float(one)).astype(np.int64)
        s = np.cumsum(inc, axis=0) + self._acc
        count = s // one
        prev = np.vstack([np.zeros((1, self.channels), dtype=np.int64), count[:-1]])
        self._acc = s[-1] - count[-1] * one
        return (count > prev).astype(np.uint8)


class LatencyEncoder(SpikeEncoder):
    """Latency (time-to-first-spike) coding: one spike per window at time ``t = 1 - x``.

    The output is cut into windows of ``window`` steps. The value of a window is the per-step
    input mean at its first step, clipped to [0, 1]; it spikes once, at step
    ``round((1 - x) * (window - 1))`` of the window (``x = 1`` at the first step, small ``x``
    near the last), and not at all for ``x <= 0``.
    """

    def __init__(self, in_rate: float, step_hz: float = 1000.0, channels: int = 1, *,
                 window: int = 20):
        super().__init__(in_rate, step_hz, channels)
        if int(window) < 1:
            raise EncoderConfigError(f"LatencyEncoder: window must be >= 1 step, got {window}")
        self.n_out = self.channels
        self.window = int(window)
        self._binner = _StepBinner(self)
        self.reset()

    def reset(self) -> None:
        self._reset_grid()
        self._binner.reset()
        self._step = 0  # absolute index of the next output step
        self._target = np.full(self.channels, -1, dtype=np.int64)  # spike step in window

    @staticmethod
    def spike_step(x: np.ndarray, window: int) -> np.ndarray:
        """Step within the window for values ``x`` (-1: no spike)."""
        x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
        step = np.floor((1.0 - x) * (window - 1) + 0.5).astype(np.int64)
        return np.where(x > 0, step, -1)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        vals = self._binner.process(x)
        m = vals.shape[0]
        k = np.arange(self._step, self._step + m, dtype=np.int64)
        pos = k % self.window
        targets = np.empty((m, self.channels), dtype=np.int64)
        starts = pos == 0
        targets[starts] = self.spike_step(vals[starts], self.window)
        idx = np.where(starts, np.arange(m), -1)
        idx = np.maximum.accumulate(idx) if m else idx
        carried = idx < 0
        targets[~carried] = targets[idx[~carried]]
        targets[carried] = self._target
        out = (targets == pos[:, None]).astype(np.uint8)
        if m:
            self._target = targets[-1].copy()
        self._step += m
        return out


# ---------------------------------------------------------------------------- transforms


class Filter(Transform):
    """A causal IIR filter given as second-order sections, applied per channel.

    The state starts at the steady state for the first sample (no start-up transient from a DC
    offset) and is carried between calls.
    """

    def __init__(self, sos: np.ndarray, in_rate: float, channels: int = 1):
        super().__init__(in_rate, channels)
        self.sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
        if self.sos.ndim != 2 or self.sos.shape[1] != 6:
            raise EncoderConfigError("Filter: sos must be shaped [sections, 6]")
        self._zi_unit = _designs.sosfilt_zi(self.sos)  # [sections, 2]
        self._sos_c = np.ascontiguousarray(self.sos)
        self.reset()

    def reset(self) -> None:
        self._zi: np.ndarray | None = None

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        if x.shape[0] == 0:
            return x
        if self._zi is None:
            self._zi = self._zi_unit[:, :, None] * x[0][None, None, :]
        y, self._zi = _designs.signal().sosfilt(self.sos, x, axis=0, zi=self._zi)
        return y

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        if _fast is None or x.shape[0] == 0:
            y = self.process(x)
            return y, True
        if self._zi is None:
            self._zi = np.ascontiguousarray(self._zi_unit[:, :, None] * x[0][None, None, :])
        elif not self._zi.flags.c_contiguous:
            self._zi = np.ascontiguousarray(self._zi)
        y = self._scratch(x.shape[0], x.shape[1])
        y[...] = x
        ok = _fast.sosfilt_inplace(y, self._sos_c, self._zi)
        return y, ok


def _band_edges(low: float | None, high: float | None, fs: float, what: str) -> None:
    nyq = fs / 2
    for f in (low, high):
        if f is not None and not 0 < f < nyq:
            raise EncoderConfigError(f"{what}: cut-off {f} Hz must be in (0, {nyq:g}) Hz")
    if low is not None and high is not None and not low < high:
        raise EncoderConfigError(f"{what}: need low < high, got {low} and {high}")


class BandPass(Filter):
    """Butterworth band-pass (``order`` per edge, so 2*order poles)."""

    def __init__(self, low: float, high: float, in_rate: float, channels: int = 1,
                 order: int = 2):
        _band_edges(low, high, float(in_rate), "BandPass")
        self.low, self.high = float(low), float(high)
        sos = _designs.butter_sos(order, [low, high], "bandpass", float(in_rate))
        super().__init__(sos, in_rate, channels)


class HighPass(Filter):
    """Butterworth high-pass."""

    def __init__(self, cutoff: float, in_rate: float, channels: int = 1, order: int = 2):
        _band_edges(cutoff, None, float(in_rate), "HighPass")
        super().__init__(_designs.butter_sos(order, cutoff, "highpass", float(in_rate)),
                         in_rate, channels)


class LowPass(Filter):
    """Butterworth low-pass."""

    def __init__(self, cutoff: float, in_rate: float, channels: int = 1, order: int = 2):
        _band_edges(None, cutoff, float(in_rate), "LowPass")
        super().__init__(_designs.butter_sos(order, cutoff, "lowpass", float(in_rate)),
                         in_rate, channels)


class Notch(Filter):
    """Second-order notch (e.g. 50 or 60 Hz mains) with quality factor ``q``."""

    def __init__(self, freq: float, in_rate: float, channels: int = 1, q: float = 30.0):
        _band_edges(freq, None, float(in_rate), "Notch")
        b, a = _designs.signal().iirnotch(freq, q, fs=float(in_rate))
        super().__init__(_designs.signal().tf2sos(b, a), in_rate, channels)


class BaselineRemoval(HighPass):
    """Baseline-wander removal: a 2nd-order Butterworth high-pass at ``cutoff`` (0.5 Hz)."""

    def __init__(self, in_rate: float, channels: int = 1, cutoff: float = 0.5):
        super().__init__(cutoff, in_rate, channels, order=2)


class Rectify(Transform):
    """Full-wave (``abs``) or half-wave (``max(x, 0)``) rectification."""

    def __init__(self, in_rate: float, channels: int = 1, mode: str = "full"):
        super().__init__(in_rate, channels)
        if mode not in ("full", "half"):
            raise EncoderConfigError("Rectify: mode must be 'full' or 'half'")
        self.mode = mode

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        return np.abs(x) if self.mode == "full" else np.maximum(x, 0.0)

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        y = self._scratch(x.shape[0], x.shape[1])
        if self.mode == "full":
            np.abs(x, out=y)
        else:
            np.maximum(x, 0.0, out=y)
        return y, True


class Envelope(Transform):
    """Amplitude envelope: full-wave rectification then a Butterworth low-pass at ``cutoff``."""

    def __init__(self, in_rate: float, channels: int = 1, cutoff: float = 5.0, order: int = 2):
        super().__init__(in_rate, channels)
        self._lp = LowPass(cutoff, in_rate, channels, order)
        self._lp._zi_unit = np.zeros_like(self._lp._zi_unit)  # start from rest, not |x0|

    def reset(self) -> None:
        self._lp.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        return self._lp.process(np.abs(self._check(samples)))


class Compress(Transform):
    """Amplitude compression like the cochlea's: ``log1p(x / ref)`` or ``sqrt(x / ref)``.

    Negative inputs are treated as 0 (compress after rectification).
    """

    def __init__(self, in_rate: float, channels: int = 1, mode: str = "log", ref: float = 1e-3):
        super().__init__(in_rate, channels)
        if mode not in ("log", "sqrt"):
            raise EncoderConfigError("Compress: mode must be 'log' or 'sqrt'")
        if not ref > 0:
            raise EncoderConfigError("Compress: ref must be > 0")
        self.mode, self.ref = mode, float(ref)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.maximum(self._check(samples), 0.0) / self.ref
        return np.log1p(x) if self.mode == "log" else np.sqrt(x)

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        y = self._scratch(x.shape[0], x.shape[1])
        # The input is finite, so y >= 0 and never NaN; only an overflow of x / ref gives
        # inf, which log1p and sqrt keep.
        if _fast is not None and x.flags.c_contiguous and x.dtype == np.float64:
            finite = _fast.scale_pos(x, self.ref, y)
        else:
            np.maximum(x, 0.0, out=y)
            np.divide(y, self.ref, out=y)
            finite = not y.size or bool(y.max() < np.inf)
        (np.log1p if self.mode == "log" else np.sqrt)(y, out=y)
        return y, finite


class PeakNormalize(Transform):
    """Automatic gain: every value divided by the largest value of any channel over about the
    last ``window_s`` seconds of rows (this row included), so the recent peak maps to 1
    whatever the recording level; nothing is divided by less than ``floor``.

    The window is kept in ``chunks`` pieces: the peak is the maximum over the current
    (partial) piece and the ``chunks - 1`` complete ones before it, so it covers between
    ``(chunks - 1) / chunks`` of ``window_s`` and all of it. Maxima are exact, so any split of
    the input into blocks gives identical output, and the cost per row does not grow with the
    window. The peak rises at once with a louder sound and falls back about ``window_s``
    after it. Followed by :class:`Compress` with a small ``ref``, it also sets a floor
    relative to the peak: ``log1p(x / 1e-5)`` ignores what lies more than about 50 dB under
    it, where a fixed ``ref`` lets a loud recording's noise through (the ``audio-delta-agc``
    preset).
    """

    def __init__(self, in_rate: float, channels: int = 1, window_s: float = 2.0,
                 floor: float = 1e-12, chunks: int = 20):
        super().__init__(in_rate, channels)
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or \
                not 0 < window_s < math.inf:
            raise EncoderConfigError(f"PeakNormalize: window_s must be a finite number > 0, "
                                     f"got {window_s!r}")
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or \
                not 0 < floor < math.inf:
            raise EncoderConfigError(f"PeakNormalize: floor must be a finite number > 0, "
                                     f"got {floor!r}")
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise EncoderConfigError(f"PeakNormalize: chunks must be an integer >= 1, got "
                                     f"{chunks!r}")
        self.chunks = chunks
        self.chunk_rows = max(1, int(round(window_s * self.in_rate / chunks)))
        self.floor = float(floor)
        self.reset()

    def reset(self) -> None:
        self._done = np.full(self.chunks - 1, -np.inf)   # maxima of the complete pieces
        self._before = -np.inf                           # their maximum
        self._cur, self._pos = -np.inf, 0                # the current piece so far

    def process(self, samples: np.ndarray) -> np.ndarray:
        return self._apply(self._check(samples))

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        out = self._apply(x)
        # |out| <= 1 where x >= 0 (the peak is at least x); only a large negative value
        # divided by the floor could overflow
        return out, not out.size or bool(x.min() >= -1e300 * self.floor)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if not n:
            return np.zeros((0, self.channels))
        m = x.max(axis=1)
        i = 0
        while i < n:
            k = min(n, i + self.chunk_rows - self._pos)
            seg = m[i:k]
            np.maximum.accumulate(seg, out=seg)
            base = max(self._cur, self._before, self.floor)
            self._cur = max(self._cur, float(seg[-1]))
            np.maximum(seg, base, out=seg)          # m[i:k] becomes the divisor
            self._pos += k - i
            if self._pos == self.chunk_rows:
                if self._done.size:
                    self._done[:-1] = self._done[1:]
                    self._done[-1] = self._cur
                    self._before = float(self._done.max())
                self._cur, self._pos = -np.inf, 0
            i = k
        return x / m[:, None]


class Gain(Transform):
    """``y = scale * (x - offset)``: put a signal into an encoder's working range."""

    def __init__(self, in_rate: float, channels: int = 1, scale: float = 1.0,
                 offset: float = 0.0):
        super().__init__(in_rate, channels)
        self.scale, self.offset = float(scale), float(offset)

    def process(self, samples: np.ndarray) -> np.ndarray:
        return (self._check(samples) - self.offset) * self.scale


def erb_space(fmin: float, fmax: float, n: int) -> np.ndarray:
    """``n`` centre frequencies equally spaced on the ERB-number scale (Glasberg & Moore 1990)."""
    if not 0 < fmin < fmax or n < 1:
        raise EncoderConfigError(f"erb_space: need 0 < fmin < fmax and n >= 1 ({fmin}, {fmax})")

    def to_erb(f: np.ndarray | float) -> np.ndarray:
        return 21.4 * np.log10(1 + 0.00437 * np.asarray(f, dtype=np.float64))

    e = np.linspace(to_erb(fmin), to_erb(fmax), n)
    return (10 ** (e / 21.4) - 1) / 0.00437


class CochleaFilterbank(Transform):
    """Cochlea-like band-pass filterbank: ``bands`` Butterworth band-pass filters with centre
    frequencies equally spaced on the ERB scale, each ``bandwidth`` ERBs wide (ERB(f) =
    24.7 * (4.37 f / 1000 + 1) Hz, Glasberg & Moore 1990).

    Mono input ``[n, 1]`` gives ``[n, bands]`` band signals (lowest band first). ``order`` is the
    Butterworth order per edge (1: one biquad per band, cheapest; 2: steeper skirts).
    """

    def __init__(self, in_rate: float, bands: int = 32, fmin: float = 100.0,
                 fmax: float | None = None, bandwidth: float = 1.0, order: int = 1):
        super().__init__(in_rate, 1)
        nyq = self.in_rate / 2
        fmax = 0.875 * nyq if fmax is None else float(fmax)
        if not 0 < fmin < fmax < nyq:
            raise EncoderConfigError(
                f"CochleaFilterbank: need 0 < fmin < fmax < {nyq:g} Hz, got {fmin}, {fmax}")
        if bands < 1 or bandwidth <= 0 or order not in (1, 2, 3, 4):
            raise EncoderConfigError("CochleaFilterbank: need bands >= 1, bandwidth > 0, "
                                     "order in 1..4")
        self.bands = int(bands)
        self.centres = erb_space(fmin, fmax, self.bands)
        erb = 24.7 * (4.37 * self.centres / 1000 + 1) * bandwidth
        lo = np.maximum(self.centres - erb / 2, 1.0)
        hi = np.minimum(self.centres + erb / 2, nyq * 0.999)
        self.edges = np.stack([lo, hi], axis=1)
        self.sos = [_designs.butter_sos(order, [a, b], "bandpass", self.in_rate)
                    for a, b in self.edges]
        # Coefficients band-minor ([sections, 6, bands]) for the compiled path, which runs
        # all bands of one sample side by side (SIMD across bands).
        self._coef = np.ascontiguousarray(np.stack(self.sos, axis=2))
        self.reset()

    @property
    def channels_out(self) -> int:
        return self.bands

    def reset(self) -> None:
        self._zi = np.zeros((self.sos[0].shape[0], 2, self.bands))  # [sections, 2, bands]

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)[:, 0]
        out = np.empty((x.shape[0], self.bands))
        if x.shape[0] == 0:
            return out
        for b, sos in enumerate(self.sos):
            out[:, b], self._zi[:, :, b] = _designs.signal().sosfilt(sos, x,
                                                                     zi=self._zi[:, :, b])
        return out

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        if _fast is None:
            return self.process(x), True
        out = self._scratch(x.shape[0], self.bands)
        ok = _fast.filterbank(x[:, 0], self._coef, self._zi, out)
        return out, ok


class FftFilterbank(Transform):
    """Fast cochlea-like filterbank: short-time power spectrum pooled into ``bands`` triangular
    bands equally spaced on the ERB scale, one row per output step (``out_rate = hop_hz``).

    Each frame is the ``window`` samples (Hann window) that end at the end of its step, so the
    front end is causal and frames never depend on how the input was split. The band pooling is
    done in 64-bit integers (exact). Output is band power (mean square, full scale 1).
    ``window`` (a power of two) defaults to 32 ms rounded to a power of two (512 samples at 16
    kHz), doubled when the bins are too coarse for the narrow low-frequency ERB bands (512 at
    8 kHz with 32 bands from 100 Hz).

    The FFT is the package's own radix-2 real FFT (:meth:`power`), written out operation by
    operation in NumPy here and in C for the compiled path, so both give the same bits on every
    platform and the spikes never depend on the NumPy version's FFT library.
    """

    WEIGHT_ONE = 256

    def __init__(self, in_rate: float, bands: int = 32, hop_hz: float = 1000.0,
                 window: int | None = None, fmin: float = 100.0, fmax: float | None = None):
        super().__init__(in_rate, 1)
        hop = self.in_rate_exact / _as_fraction(hop_hz, "hop_hz")
        if hop.denominator != 1:
            raise EncoderConfigError(
                f"FftFilterbank: in_rate {self.in_rate:g} Hz must be a multiple of hop_hz "
                f"{hop_hz} Hz")
        self.hop = int(hop)
        self.hop_hz_exact = _as_fraction(hop_hz, "hop_hz")
        nyq = self.in_rate / 2
        fmax = 0.875 * nyq if fmax is None else float(fmax)
        if not 0 < fmin < fmax < nyq or bands < 1:
            raise EncoderConfigError(
                f"FftFilterbank: need 0 < fmin < fmax < {nyq:g} Hz and bands >= 1")
        self.bands = int(bands)
        points = erb_space(fmin, fmax, self.bands + 2)
        self.centres = points[1:-1]
        # Default window: 32 ms rounded to a power of two, doubled (up to 4x) until every band
        # holds an FFT bin.
        if window is not None and (int(window) < 4 or int(window) & (int(window) - 1)):
            raise EncoderConfigError(f"FftFilterbank: window must be a power of two >= 4, "
                                     f"got {window}")
        base = 1 << max(2, round(np.log2(0.032 * self.in_rate)))
        tries = [int(window)] if window else [base * k for k in (1, 2, 4)]
        for self.window in tries:
            freqs = np.arange(self.window // 2 + 1) * self.in_rate / self.window
            seg = np.searchsorted(points, freqs, side="right") - 1  # interval of each bin
            use = (seg >= 0) & (seg <= self.bands)
            counts = np.bincount(seg[use], minlength=self.bands + 1)
            if np.all(counts[: self.bands + 1] > 0):
                break
        else:
            raise EncoderConfigError(
                f"FftFilterbank: {self.bands} bands from {fmin:g} Hz are narrower than the "
                f"{self.in_rate / self.window:.3g} Hz FFT bins; use a longer window, fewer "
                "bands or a higher fmin")
        if self.window < self.hop:
            raise EncoderConfigError("FftFilterbank: window must be >= hop")
        self._bins = np.flatnonzero(use)  # contiguous: fmin..fmax
        self._lo, self._hi = int(self._bins[0]), int(self._bins[-1]) + 1
        seg = seg[use]
        f = freqs[self._bins]
        up = (f - points[seg]) / (points[seg + 1] - points[seg])
        self._w_up = np.rint(up * self.WEIGHT_ONE).astype(np.int64)
        self._starts = np.flatnonzero(np.diff(seg, prepend=-1))
        self._win = np.hanning(self.window + 2)[1:-1]
        # Power of full-scale white noise per bin is sum(win**2); normalise to mean square.
        self._norm = 1.0 / (float(np.sum(self._win**2)) * self.WEIGHT_ONE * _QSCALE)
        self._starts64 = self._starts.astype(np.int64)
        self._w_up = np.ascontiguousarray(self._w_up, dtype=np.int64)
        self._fft_tables()
        self.reset()

    def _fft_tables(self) -> None:
        """Tables of the radix-2 FFT shared by both paths (same float32 values, same bits)."""
        M = self.window // 2
        bits = M.bit_length() - 1
        n = np.arange(M)
        rev = np.zeros(M, dtype=np.int64)
        for i in range(bits):
            rev |= ((n >> i) & 1) << (bits - 1 - i)
        self._rev = rev.astype(np.int32)
        t = np.arange(M // 2)
        twr, twi = np.cos(2 * np.pi * t / M), -np.sin(2 * np.pi * t / M)
        if M >= 4:  # exactly -i at a quarter turn (cos gives 6e-17): the compiled path's
            twr[M // 4], twi[M // 4] = 0.0, -1.0  # second stage skips its products
        self._twr, self._twi = twr.astype(np.float32), twi.astype(np.float32)
        self._win32 = self._win.astype(np.float32)
        k = np.arange(self._lo, self._hi)
        self._pcr = np.cos(2 * np.pi * k / self.window).astype(np.float32)
        self._pci = (-np.sin(2 * np.pi * k / self.window)).astype(np.float32)
        self._ka = k % M
        self._kb = (M - self._ka) % M
        # butterflies of each stage: positions a and b = a + half, twiddle index j * step
        self._stages = []
        half = 1
        while half < M:
            a = (np.arange(0, M, 2 * half)[:, None] + np.arange(half)[None, :]).ravel()
            j = (a % (2 * half)) * (M // (2 * half))
            self._stages.append((a, a + half, self._twr[j][:, None], self._twi[j][:, None]))
            half *= 2
        self._fft_scratch = np.empty((2 * M + (self._hi - self._lo)) * 16, dtype=np.float32)

    def power(self, frames: np.ndarray) -> np.ndarray:
        """``|rfft(frames * window)|**2`` of bins lo..hi in single precision, ``frames``
        [m, window]: the real FFT as an M = window / 2 point complex FFT of the even and odd
        samples (radix 2, decimation in time), then the split into bins. The compiled path
        (``fastsig_loops.h``, ``se_fft_filterbank``) does exactly these float32 operations.
        Single precision keeps about 1e-6 of the power, far below what the log compression
        and the spike thresholds resolve, and lets a vector register hold twice the frames."""
        w = frames.astype(np.float32) * self._win32
        zr = np.ascontiguousarray(w[:, 0::2][:, self._rev].T)  # [M, m]; position rev[n]
        zi = np.ascontiguousarray(w[:, 1::2][:, self._rev].T)  # holds z[n] (rev is its inverse)
        for a, b, wr, wi in self._stages:
            br, bi = zr[b], zi[b]
            tr = wr * br - wi * bi
            ti = wr * bi + wi * br
            xr, xi = zr[a], zi[a]
            zr[b], zi[b] = xr - tr, xi - ti
            zr[a], zi[a] = xr + tr, xi + ti
        ar, ai, br, bi = zr[self._ka], zi[self._ka], zr[self._kb], zi[self._kb]
        half = np.float32(0.5)
        er, ei = (ar + br) * half, (ai - bi) * half
        o_r, oi = (ai + bi) * half, (br - ar) * half
        cr, ci = self._pcr[:, None], self._pci[:, None]
        xr = er + (cr * o_r - ci * oi)
        xi = ei + (cr * oi + ci * o_r)
        return (xr * xr + xi * xi).T

    @property
    def channels_out(self) -> int:
        return self.bands

    @property
    def out_rate_exact(self) -> Fraction:
        return self.hop_hz_exact

    def reset(self) -> None:
        # The carried samples (the last window - hop and the partial hop) sit at the start of
        # a buffer that the compiled path appends the next block to, so no block is copied
        # twice; ``_keep`` is a view of them.
        self._buf = np.zeros(max(4 * self.window, 2 * self.window + 8192))
        self._klen = self.window - self.hop

    @property
    def _keep(self) -> np.ndarray:
        return self._buf[: self._klen]

    @_keep.setter
    def _keep(self, value: np.ndarray) -> None:
        k = value.shape[0]
        if k > self._buf.shape[0]:
            self._buf = np.zeros(2 * k)
        self._buf[:k] = value
        self._klen = k

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)[:, 0]
        full = np.concatenate([self._keep, x])
        m = (full.shape[0] - (self.window - self.hop)) // self.hop
        self._keep = full[m * self.hop :].copy()
        if m == 0:
            return np.zeros((0, self.bands))
        frames = np.lib.stride_tricks.sliding_window_view(full, self.window)[:: self.hop][:m]
        q = self.power(frames) * np.float32(_QSCALE)
        lim = np.float32(_QLIMIT)
        with np.errstate(invalid="ignore"):  # NaN (an overflowing input) counts as the cap
            p = np.where(q <= lim, q, lim).astype(np.int64)  # truncation: exact, cheap
        up = np.add.reduceat(p * self._w_up, self._starts, axis=1)  # [m, bands + 1]
        whole = np.add.reduceat(p, self._starts, axis=1) * self.WEIGHT_ONE
        e = up[:, : self.bands] + (whole - up)[:, 1:]
        return e * self._norm

    def _fast_apply(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        if _fast is None:
            return self.process(x), True
        n, k, hop = x.shape[0], self._klen, self.hop
        total = k + n
        if total > self._buf.shape[0]:
            grown = np.zeros(2 * total)
            grown[:k] = self._buf[:k]
            self._buf = grown
        buf = self._buf
        buf[k:total] = x[:, 0]
        m = (total - (self.window - hop)) // hop
        out = self._scratch(m, self.bands)
        if m:
            _fast.fft_filterbank(buf, m, hop, self._win32, self._rev, self._twr, self._twi,
                                 self._pcr, self._pci, self._lo, self._starts64, self._w_up,
                                 self._norm, self._fft_scratch, out)
            rest = total - m * hop
            buf[:rest] = buf[m * hop:total].copy()
            self._klen = rest
        else:
            self._klen = total
        return out, True


class Chain(SpikeEncoder):
    """Transforms followed by a spike encoder, used as one encoder.

    >>> enc = Chain(BandPass(5, 15, 360), DeltaEncoder(0.05, 360))
    """

    def __init__(self, *stages: Stage):
        if not stages or not isinstance(stages[-1], SpikeEncoder):
            raise EncoderConfigError("Chain: the last stage must be a SpikeEncoder")
        for s in stages[:-1]:
            if not isinstance(s, Transform):
                raise EncoderConfigError(
                    f"Chain: {type(s).__name__} is not a Transform; only the last stage encodes"
                )
        for a, b in zip(stages[:-1], stages[1:], strict=False):
            if a.out_rate_exact != b.in_rate_exact:  # type: ignore[attr-defined]
                raise EncoderConfigError(
                    f"Chain: {type(a).__name__} outputs {float(a.out_rate_exact):g} Hz but "  # type: ignore[attr-defined]
                    f"{type(b).__name__} expects {b.in_rate:g} Hz")
            if a.channels_out != b.channels:  # type: ignore[attr-defined]
                raise EncoderConfigError(
                    f"Chain: {type(a).__name__} gives {a.channels_out} channels but "  # type: ignore[attr-defined]
                    f"{type(b).__name__} expects {b.channels}")
        last = stages[-1]
        Stage.__init__(self, stages[0].in_rate_exact, stages[0].channels)
        self.stages = list(stages)
        self.encoder: SpikeEncoder = last  # type: ignore[assignment]
        self.step_hz, self.step_hz_exact = last.step_hz, last.step_hz_exact
        self.n_out = last.n_out
        # Values per input row at each stage: a stage that lowers the rate (the FFT
        # filterbank: 16 samples per row out) holds fewer rows than the input has.
        r0 = stages[0].in_rate_exact
        widest = max([s.channels * s.in_rate_exact / r0 for s in stages] +
                     [s.channels_out * s.out_rate_exact / r0  # type: ignore[attr-defined]
                      for s in stages[:-1]])
        self._chunk = max(64, int(self.CHUNK_VALUES / widest))
        # The compiled path skips a half-wave Rectify right before a Compress, which takes
        # max(x, 0) itself (the same values; -0.0 and 0.0 compress alike).
        self._fast_stages = [s for i, s in enumerate(stages[:-1])
                             if not (isinstance(s, Rectify) and s.mode == "half"
                                     and isinstance(stages[i + 1], Compress))]
        self._fast_stages.append(last)
        self._plan = self._make_plan()

    #: the compiled path cuts long inputs into pieces of about this many values (rows times
    #: the widest stage's channels, scaled by its rate), so every stage's scratch buffer
    #: stays small and in the cache; by streaming exactness the spikes are the same as for
    #: the whole input
    CHUNK_VALUES = 32768

    def reset(self) -> None:
        for s in self.stages:
            s.reset()

    def steps_for(self, n_samples: int) -> int:
        return self.encoder.steps_for(n_samples)

    def _make_plan(self):
        """The fused compiled path (``_fastsig.FilterDeltaPlan``) for chains of filters,
        envelopes and rectifiers ending in a :class:`DeltaEncoder` (the ECG and EMG delta
        presets); None for other chains."""
        if _fast is None or type(self.encoder) is not DeltaEncoder:
            return None
        ops: list[tuple[str, Any]] = []
        for s in self.stages[:-1]:
            if isinstance(s, Filter):
                ops.append(("sos", s))
            elif type(s) is Envelope:
                ops += [("abs", None), ("sos", s._lp)]
            elif type(s) is Rectify:
                ops.append(("abs" if s.mode == "full" else "relu", None))
            else:
                return None
        if any(s.channels != self.channels for s in self.stages) or len(ops) > 8:
            return None
        return _fast.FilterDeltaPlan(ops, self.encoder)

    def _run_plan(self, samples: Any) -> np.ndarray | None:
        """Spikes from the fused path, or None when it does not take this block (other
        dtypes or shapes, or the first block after a reset, which sets up the state)."""
        x = samples
        if type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] != self.channels or \
                not x.flags.c_contiguous:
            if type(x) is np.ndarray and x.ndim == 1 and self.channels == 1 and \
                    x.flags.c_contiguous:
                x = x[:, None]
            else:
                return None
        if x.dtype == np.float32:
            out = self._plan.run32(x)
        elif x.dtype == np.float64:
            if not _fast.all_finite(x):
                raise EncoderConfigError(f"{type(self).__name__}: input holds NaN or inf")
            out = self._plan.run64(x)
        else:
            return None
        if out is False:
            if x.dtype == np.float32 and not np.all(np.isfinite(x)):
                raise EncoderConfigError(f"{type(self).__name__}: input holds NaN or inf")
            raise EncoderConfigError(f"{type(self).__name__}: a stage's output holds NaN or "
                                     "inf (the input is too large)")
        return out

    def process(self, samples: np.ndarray) -> np.ndarray:
        if self._plan is not None and _fast is not None:
            out = self._run_plan(samples)
            if out is not None:
                return out
        x = self._check(samples)
        if _fast is None:
            for s in self.stages[:-1]:
                x = s.process(x) if x.shape[0] else np.zeros((0, s.channels_out))
            return self.encoder.process(x)
        n, c = x.shape[0], self._chunk
        if n > c:
            return np.concatenate([self._run_fast(x[a:a + c]) for a in range(0, n, c)])
        return self._run_fast(x)

    def _run_fast(self, x: np.ndarray) -> np.ndarray:
        # Compiled stages take the checked array as it is; a stage's non-finite output is
        # reported by the next stage's own check, as in the plain path.
        checked = True
        stages = self._fast_stages
        for i in range(len(stages) - 1):
            s = stages[i]
            if not x.shape[0]:
                x, checked = np.zeros((0, s.channels_out)), True
            elif s._fast_apply is not None:
                if not checked:
                    x = s._check(x)
                x, checked = s._fast_apply(x)
                if not checked:
                    x = stages[i + 1]._check(x)
                    checked = True
            else:
                x, checked = s.process(x), False
        enc = self.encoder
        if enc._fast_apply is None:
            return enc.process(x)
        return enc._fast_apply(x if checked else enc._check(x))[0]

    def __repr__(self) -> str:
        return "Chain(" + ", ".join(repr(s) for s in self.stages) + ")"
