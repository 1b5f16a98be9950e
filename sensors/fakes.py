"""Fake sensors that ship in the library: ``fake:ecg``, ``fake:tone`` and ``fake:emg``.

All fakes are deterministic for a given ``seed`` and give the same samples whatever the block
size (every random stream is drawn sample by sample in order, filters carry their state). They
generate ahead in chunks of :attr:`_FakeBase.CHUNK` samples and serve blocks from that buffer,
so small blocks (a 10 ms ECG block is 4 samples) cost a slice, not a generator call; the
ground truth of each block is computed for exactly its samples.

``fake:ecg`` follows the dynamical model of McSharry, Clifford, Tarassenko and Smith,
"A dynamical model for generating synthetic electrocardiogram signals", IEEE Trans Biomed Eng
50(3):289-294, 2003: the ECG is the ``z`` coordinate of a trajectory whose phase turns once per
beat, pushed by five Gaussian events (P, Q, R, S, T) at fixed phases::

    dz/dt = -sum_i a_i * dtheta_i * exp(-dtheta_i**2 / (2 b_i**2)) * omega - (z - z0(t))

Here the phase is driven piecewise linearly between scheduled R peaks (so that ground-truth R
times are exact), the forcing is evaluated per sample and ``z`` is integrated with the exact
discretisation of the linear relaxation term. Beats are normal (N), supraventricular premature
(S: early, abnormal P, normal QRS, non-compensatory pause) or ventricular premature (V: early,
no P, wide QRS, inverted T, compensatory pause). Heart-rate variability (respiratory sinus
arrhythmia and Mayer waves), respiratory baseline wander, mains interference and white noise are
options. Ground truth rides along in ``Block.info``: ``beat_samples`` (absolute sample index of
every R peak in the block) and ``beat_classes`` (``"N"``, ``"S"`` or ``"V"``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any

import numpy as np
from scipy.signal import lfilter, lfiltic

from .base import Source, parse_bool
from .errors import SourceConfigError

__all__ = ["FakeSource", "FakeTone", "FakeEcg", "FakeEmg", "ECG_WAVES"]


def _optional_duration(value: Any) -> float | None:
    text = str(value).strip().lower()
    if text in ("", "none", "inf", "0"):
        return None
    return float(value)


class _FakeBase(Source):
    OPTIONS = {
        **Source.OPTIONS,
        "rate": float,
        "duration": _optional_duration,
        "seed": int,
        "noise": float,
    }

    def __init__(self, *, rate: float, duration: float | None, seed: int = 0, **kw: Any):
        super().__init__(**kw)
        if rate <= 0:
            raise SourceConfigError(f"{self.name}: rate must be > 0 Hz, got {rate}")
        if duration is not None and duration <= 0:
            raise SourceConfigError(f"{self.name}: duration must be > 0 s or None, got {duration}")
        self._rate = float(rate)
        self.duration = duration
        self.seed = int(seed)
        self._total = None if duration is None else int(round(duration * rate))
        self._pos = 0

    #: samples generated per generator call (blocks are served from the buffer)
    CHUNK = 4096

    def _open(self) -> None:
        self._pos = 0
        self._buf = np.zeros((0, self._channels or 1), dtype=np.float32)
        self._buf0 = 0  # absolute index of _buf[0]
        self._restart()

    def _restart(self) -> None:
        """Reset generator state (called by open)."""

    def _read_block(self, n: int) -> np.ndarray | None:
        if self._total is not None:
            n = min(n, self._total - self._pos)
            if n <= 0:
                return None
        a = self._pos - self._buf0
        if a + n > self._buf.shape[0]:
            end = self._buf0 + self._buf.shape[0]  # first sample not generated yet
            want = max(self.CHUNK, self._pos + n - end)
            if self._total is not None:
                want = max(min(want, self._total - end), self._pos + n - end)
            # float32 once per chunk: blocks are float32 (the same values as converting each)
            self._buf = np.concatenate([self._buf[a:],
                                        self._generate(end, want).astype(np.float32)])
            self._buf0, a = self._pos, 0
        out = self._buf[a:a + n]
        self._block_info(self._pos, n)
        self._pos += n
        return out

    def _generate(self, start: int, n: int) -> np.ndarray:  # pragma: no cover - abstract
        """Samples ``start .. start + n - 1`` (called in order, each sample once)."""
        raise NotImplementedError

    def _block_info(self, start: int, n: int) -> None:
        """Attach the ground truth of the block ``start .. start + n - 1`` (if any)."""


class FakeTone(_FakeBase):
    """A sine tone (``freq`` Hz, ``amplitude`` full scale) plus optional white noise.

    Defaults: 440 Hz at 8000 Hz, amplitude 0.5, 1 s (``duration=inf`` for endless).
    """

    scheme = "fake"
    OPTIONS = {**_FakeBase.OPTIONS, "freq": float, "amplitude": float}

    def __init__(
        self,
        *,
        freq: float = 440.0,
        amplitude: float = 0.5,
        rate: float = 8000.0,
        duration: float | None = 1.0,
        noise: float = 0.0,
        seed: int = 0,
        **kw: Any,
    ):
        kw.setdefault("name", "fake:tone")
        super().__init__(rate=rate, duration=duration, seed=seed, **kw)
        if not 0 < freq < rate / 2:
            raise SourceConfigError(
                f"fake:tone: freq must be in (0, rate/2) = (0, {rate / 2:g}) Hz, got {freq}"
            )
        self._channels = 1
        self.freq = float(freq)
        self.amplitude = float(amplitude)
        self.noise = float(noise)

    def _restart(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _generate(self, start: int, n: int) -> np.ndarray:
        idx = np.arange(start, start + n, dtype=np.float64)
        x = self.amplitude * np.sin(2 * np.pi * self.freq * idx / self._rate)
        if self.noise:
            x = x + self.noise * self._rng.standard_normal(n)
        return x[:, None]


# Wave parameters per beat class: (theta_i [rad], a_i, b_i [rad]) for P, Q, R, S, T.
# Normal values are those of McSharry et al. 2003, Table 1.
ECG_WAVES: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "N": (
        (-math.pi / 3, -math.pi / 12, 0.0, math.pi / 12, math.pi / 2),
        (1.2, -5.0, 30.0, -7.5, 0.75),
        (0.25, 0.1, 0.1, 0.1, 0.4),
    ),
    # Supraventricular premature beat: early, abnormal (inverted, closer) P, normal QRS.
    "S": (
        (-math.pi / 4, -math.pi / 12, 0.0, math.pi / 12, math.pi / 2),
        (-0.8, -5.0, 30.0, -7.5, 0.75),
        (0.2, 0.1, 0.1, 0.1, 0.4),
    ),
    # Ventricular premature beat: no P, wide bizarre QRS, large discordant T.
    "V": (
        (-math.pi / 3, -math.pi / 8, 0.0, math.pi / 7, math.pi / 2),
        (0.0, -4.0, 14.0, -8.0, -1.2),
        (0.25, 0.22, 0.22, 0.25, 0.45),
    ),
}


class FakeEcg(_FakeBase):
    """Synthetic single-lead ECG in mV after McSharry et al. 2003 (see module docstring).

    Options: ``rate`` (360 Hz), ``duration`` (60 s; ``inf`` for endless), ``seed``, ``hr``
    (mean heart rate, 70 bpm), ``hrv`` (relative RR variability, 0.05), ``pvc`` and ``apc``
    (probability that a beat is V or S, 0.05 each), ``noise`` (white noise SD, 0.02 mV),
    ``wander`` (respiratory baseline wander amplitude, 0.1 mV), ``mains`` (amplitude of 50 Hz
    interference, 0 mV) and ``mains_hz``.
    """

    scheme = "fake"
    OPTIONS = {
        **_FakeBase.OPTIONS,
        "hr": float,
        "hrv": float,
        "pvc": float,
        "apc": float,
        "wander": float,
        "mains": float,
        "mains_hz": float,
    }
    R_AMPLITUDE_MV = 1.2  # height of a normal R wave above the isoelectric line
    OWNER_SPLIT = 1.2 * math.pi  # phase after R_k where samples start to belong to R_k+1

    def __init__(
        self,
        *,
        rate: float = 360.0,
        duration: float | None = 60.0,
        seed: int = 0,
        hr: float = 70.0,
        hrv: float = 0.05,
        pvc: float = 0.05,
        apc: float = 0.05,
        noise: float = 0.02,
        wander: float = 0.1,
        mains: float = 0.0,
        mains_hz: float = 50.0,
        **kw: Any,
    ):
        kw.setdefault("name", "fake:ecg")
        super().__init__(rate=rate, duration=duration, seed=seed, **kw)
        if not 20 <= hr <= 220:
            raise SourceConfigError(f"fake:ecg: hr must be in [20, 220] bpm, got {hr}")
        if pvc < 0 or apc < 0 or pvc + apc > 0.5:
            raise SourceConfigError(
                f"fake:ecg: need pvc >= 0, apc >= 0 and pvc + apc <= 0.5 (got {pvc}, {apc})"
            )
        if rate < 100:
            raise SourceConfigError(f"fake:ecg: rate must be >= 100 Hz, got {rate}")
        self._channels = 1
        self.hr, self.hrv, self.pvc, self.apc = float(hr), float(hrv), float(pvc), float(apc)
        self.noise, self.wander = float(noise), float(wander)
        self.mains, self.mains_hz = float(mains), float(mains_hz)
        rr = 60.0 / self.hr
        wn = ECG_WAVES["N"]
        # Steady-state R height of the integrated Gaussian forcing is a*b^2*omega/omega^2 ...
        # compute the gain numerically once so that a normal R wave is R_AMPLITUDE_MV high.
        self._gain = 1.0
        self._gain = self.R_AMPLITUDE_MV / self._normal_r_height(rr, wn)

    def _normal_r_height(self, rr: float, waves: tuple) -> float:
        t = np.arange(-rr, rr, 1.0 / self._rate)
        th, a, b = (np.asarray(v) for v in waves)
        omega = 2 * np.pi / rr
        dth = (2 * np.pi * t / rr)[:, None] - th[None, :]
        force = -(a * dth * np.exp(-(dth**2) / (2 * b**2))).sum(axis=1) * omega
        dt = 1.0 / self._rate
        z = lfilter([dt], [1.0, -math.exp(-dt)], force)
        iso = z[np.searchsorted(t, -rr * 0.45)]  # TP segment before the P wave
        return float(z[len(t) // 2 - 1 : len(t) // 2 + 2].max() - iso)

    def _restart(self) -> None:
        ss = np.random.SeedSequence(self.seed)
        beat_seed, noise_seed = ss.spawn(2)
        self._beat_rng = np.random.default_rng(beat_seed)
        self._noise_rng = np.random.default_rng(noise_seed)
        self._r_times: list[float] = [0.3]  # seconds; first R at 0.3 s
        self._classes: list[str] = ["N"]
        self._prev_kind = "N"
        self._zi = None
        self._filter_a = [1.0, -math.exp(-1.0 / self._rate)]

    def _schedule_until(self, t_end: float) -> None:
        rr0 = 60.0 / self.hr
        while self._r_times[-1] < t_end + 3 * rr0:
            t = self._r_times[-1]
            # Respiratory sinus arrhythmia (0.25 Hz) and Mayer waves (0.1 Hz) plus jitter.
            mod = 1 + self.hrv * (
                0.6 * math.sin(2 * math.pi * 0.25 * t)
                + 0.4 * math.sin(2 * math.pi * 0.1 * t)
                + 0.3 * self._beat_rng.standard_normal()
            )
            rr = rr0 * max(mod, 0.5)
            u = self._beat_rng.random()
            if self._prev_kind == "V":
                kind, rr = "N", rr * 1.35  # compensatory pause after a PVC
            elif self._prev_kind == "S":
                kind, rr = "N", rr * 1.05
            elif u < self.pvc:
                kind, rr = "V", rr * 0.65
            elif u < self.pvc + self.apc:
                kind, rr = "S", rr * 0.72
            else:
                kind = "N"
            self._r_times.append(t + rr)
            self._classes.append(kind)
            self._prev_kind = kind

    def _generate(self, start: int, n: int) -> np.ndarray:
        fs = self._rate
        t = np.arange(start, start + n, dtype=np.float64) / fs
        self._schedule_until(float(t[-1]))
        r = np.asarray(self._r_times)
        # Between R peaks k and k+1 the phase runs linearly from 0 to 2*pi. A sample belongs to
        # beat k (phase phi) up to OWNER_SPLIT, and to beat k+1 (phase phi - 2*pi) after it, so
        # every wave is integrated whole (the Gaussians are ~5 widths away from the split).
        k = np.searchsorted(r, t, side="right") - 1
        k = np.clip(k, 0, len(r) - 2)
        rr = r[k + 1] - r[k]
        phi = 2 * np.pi * (t - r[k]) / rr
        late = phi >= self.OWNER_SPLIT
        owner = np.where(late, k + 1, k)
        dphase = np.where(late, phi - 2 * np.pi, phi)
        omega = 2 * np.pi / rr
        classes = np.asarray(self._classes)[owner]
        force = np.zeros(n)
        for kind, (th, a, b) in ECG_WAVES.items():
            sel = classes == kind
            if not sel.any():
                continue
            ph, om = dphase[sel], omega[sel]
            acc = np.zeros(ph.shape)
            for th_i, a_i, b_i in zip(th, a, b, strict=True):
                d = ph - th_i
                acc -= a_i * d * np.exp(-(d * d) / (2 * b_i * b_i))
            force[sel] = acc * om
        dt = 1.0 / fs
        if self._zi is None:
            self._zi = lfiltic([dt], self._filter_a, [], [])
        z, self._zi = lfilter([dt], self._filter_a, force, zi=self._zi)
        x = self._gain * z
        if self.wander:
            x += self.wander * np.sin(2 * np.pi * 0.25 * t + 0.3)
        if self.mains:
            x += self.mains * np.sin(2 * np.pi * self.mains_hz * t)
        if self.noise:
            x += self.noise * self._noise_rng.standard_normal(n)
        return x[:, None]

    def _block_info(self, start: int, n: int) -> None:
        # the R peaks with start / fs <= r < (start + n) / fs (the schedule is sorted and
        # already covers the block, which was generated)
        fs, r = self._rate, self._r_times
        lo, hi = bisect_left(r, start / fs), bisect_left(r, (start + n) / fs)
        self._attach_info(
            beat_samples=np.rint(np.asarray(r[lo:hi], dtype=np.float64) * fs).astype(np.int64),
            beat_classes=self._classes[lo:hi],
        )


class FakeEmg(_FakeBase):
    """Synthetic 8-channel surface EMG like the Myo armband (signed 8-bit at 200 Hz).

    Rest and gestures alternate every ``segment`` seconds (5 s); each gesture 1..7 activates the
    channels with its own fixed pattern. The signal is band-limited Gaussian noise scaled by the
    activation, rounded and clipped to [-128, 127] like the Myo's output. Per-sample gesture
    labels ride along in ``Block.info["labels"]``.
    """

    scheme = "fake"
    OPTIONS = {
        **_FakeBase.OPTIONS,
        "channels": int,
        "segment": float,
        "gestures": int,
        "quantize": parse_bool,
    }

    def __init__(
        self,
        *,
        rate: float = 200.0,
        duration: float | None = 60.0,
        seed: int = 0,
        channels: int = 8,
        segment: float = 5.0,
        gestures: int = 7,
        noise: float = 2.0,
        quantize: bool = True,
        **kw: Any,
    ):
        kw.setdefault("name", "fake:emg")
        super().__init__(rate=rate, duration=duration, seed=seed, **kw)
        if channels < 1 or gestures < 1 or segment <= 0:
            raise SourceConfigError("fake:emg: need channels >= 1, gestures >= 1, segment > 0")
        self._channels = int(channels)
        self.segment, self.gestures = float(segment), int(gestures)
        self.noise, self.quantize = float(noise), bool(quantize)
        pattern_rng = np.random.default_rng([self.seed, 1])
        rows = [np.zeros(self._channels)]
        for _ in range(self.gestures):
            gain = pattern_rng.uniform(5, 40, self._channels)
            rows.append(gain * (pattern_rng.random(self._channels) > 0.3))
        self.patterns = np.vstack(rows)
        # Band-limit the noise (about 20-90 Hz at 200 Hz): a 2nd-order resonator.
        from scipy.signal import butter

        hi = min(90.0, 0.45 * self._rate)
        self._b, self._a = butter(2, [20.0 / (self._rate / 2), hi / (self._rate / 2)], "bandpass")

    def _restart(self) -> None:
        ss = np.random.SeedSequence(self.seed)
        g_seed, n_seed, m_seed = ss.spawn(3)
        self._g_rng = np.random.default_rng(g_seed)
        self._n_rng = np.random.default_rng(n_seed)
        self._m_rng = np.random.default_rng(m_seed)
        self._labels: list[int] = []
        self._zi = np.zeros((max(len(self._a), len(self._b)) - 1, self._channels))

    def _label_at(self, seg: int) -> int:
        while len(self._labels) <= seg:
            s = len(self._labels)
            rest = s % 2 == 0
            self._labels.append(0 if rest else int(self._g_rng.integers(1, self.gestures + 1)))
        return self._labels[seg]

    def _generate(self, start: int, n: int) -> np.ndarray:
        idx = np.arange(start, start + n)
        seg = (idx / (self.segment * self._rate)).astype(np.int64)
        labels = np.array([self._label_at(int(s)) for s in seg], dtype=np.int64)
        motor = self._m_rng.standard_normal((n, self._channels))
        band, self._zi = lfilter(self._b, self._a, motor, axis=0, zi=self._zi)
        x = band * self.patterns[labels] + self.noise * self._n_rng.standard_normal(
            (n, self._channels)
        )
        if self.quantize:
            x = np.clip(np.rint(x), -128, 127)
        return x

    def _block_info(self, start: int, n: int) -> None:
        seg = (np.arange(start, start + n) / (self.segment * self._rate)).astype(np.int64)
        self._attach_info(labels=np.array([self._label_at(int(s)) for s in seg],
                                          dtype=np.int64))


class FakeSource:
    """Dispatch ``fake:KIND`` URLs to :class:`FakeEcg`, :class:`FakeTone` or :class:`FakeEmg`."""

    KINDS: dict[str, type[_FakeBase]] = {"ecg": FakeEcg, "tone": FakeTone, "emg": FakeEmg}

    @classmethod
    def from_url(cls, target: str, options: dict[str, Any], url: str = "") -> Source:
        kind = target.strip().lower()
        if kind not in cls.KINDS:
            raise SourceConfigError(
                f"{url or 'fake:' + target}: unknown fake {target!r}; allowed: "
                + ", ".join(f"fake:{k}" for k in cls.KINDS)
            )
        sub = cls.KINDS[kind]
        kwargs = sub.convert_options(options, url or f"fake:{target}")
        try:
            return sub(**kwargs)
        except TypeError as exc:  # pragma: no cover - convert_options guards names
            raise SourceConfigError(f"{url}: {exc}") from None
