"""Readouts and decision policies: from the network's spikes to a class per beat or per window.

A model file says how it is read out, in its metadata and extras (see docs/daemon.md):

``metadata["labels"]``
    class names, e.g. ``["N", "S", "V"]`` (default: the indices of the output neurons)
``metadata["readout_pops"]``
    populations whose spike counts are the features (default: the last population)
``metadata["decision"]``
    ``{"policy": "beat", "pre_s": 0.6, "post_s": 0.3, "bin_s": 0.05}`` (features are the spike
    counts of each readout neuron in consecutive bins of a window around each detected R peak)
    or ``{"policy": "window", "window_s": 0.5}`` (counts over fixed windows)
``extras["readout_w"]`` [n_features, n_classes], ``extras["readout_b"]`` [n_classes]
    a linear readout (scores = features @ w + b); without them the class is the readout neuron
    that fired most (a network whose last population is its output layer).
``metadata["readout_temperature"]``
    confidence is ``softmax(scores / temperature)`` of the winning class (default 1).

The same :func:`beat_features` is used to train a readout offline (``tools/make_demo_model.py``)
and by the daemon, so a model behaves live exactly as it was evaluated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import SpikeEdgeError

__all__ = ["DecisionError", "Readout", "BeatDecider", "WindowDecider", "beat_features",
           "beat_step", "make_decider"]

POLICIES = ("beat", "window")


class DecisionError(SpikeEdgeError, ValueError):
    """A model's readout description is inconsistent or does not fit the configured policy."""


def beat_step(sample: int, rate: float, step_hz: float) -> int:
    """The engine step that holds sample index ``sample`` (sample i is at time i / rate)."""
    return int((int(sample) * int(round(step_hz * 1000))) // int(round(rate * 1000)))


def beat_features(window: np.ndarray, bin_steps: int) -> np.ndarray:
    """Spike counts per readout neuron in consecutive bins of ``bin_steps`` steps.

    ``window`` is uint8 ``[pre + post, H]`` (the readout neurons' spikes around one beat);
    returns float64 ``[n_bins * H]``, bin-major."""
    steps, h = window.shape
    if steps % bin_steps:
        raise DecisionError(f"beat window of {steps} steps is not a multiple of the bin "
                            f"({bin_steps} steps)")
    return window.reshape(steps // bin_steps, bin_steps, h).sum(1, dtype=np.int64) \
        .ravel().astype(np.float64)


def _columns(neurons: np.ndarray):
    """A slice when the readout neurons are one contiguous range (a view, no copy), else the
    index array."""
    n = np.asarray(neurons, np.intp)
    if n.size and np.array_equal(n, np.arange(n[0], n[0] + n.size)):
        return slice(int(n[0]), int(n[0]) + int(n.size))
    return n


def readout_temperature(meta: dict) -> float:
    """The model metadata's ``readout_temperature`` (default 1): a finite number > 0, else
    ``DecisionError``."""
    v = meta.get("readout_temperature", 1.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or v <= 0:
        raise DecisionError(f"model metadata readout_temperature must be a finite number > 0, "
                            f"got {v!r}")
    return float(v)


def _softmax_conf(scores: np.ndarray, temperature: float) -> float:
    z = scores / temperature
    z = z - z.max()
    e = np.exp(z)
    return float(e.max() / e.sum())


@dataclass
class Readout:
    """What the model file says about reading it out; built with :meth:`from_program`."""

    labels: list
    neurons: np.ndarray            # indices of readout neurons in the engine's spike vector
    policy: str
    w: np.ndarray | None           # [n_features, n_classes] or None (argmax of counts)
    b: np.ndarray | None
    temperature: float
    pre_steps: int = 0
    post_steps: int = 0
    bin_steps: int = 1
    window_steps: int = 0

    @classmethod
    def from_program(cls, program, policy: str | None = None,
                     window_s: float | None = None) -> Readout:
        meta = program.report.get("metadata", {}) or {}
        dec = dict(meta.get("decision") or {})
        policy = policy or dec.get("policy") or "window"
        if policy not in POLICIES:
            raise DecisionError(f"decision policy {policy!r} is not one of {', '.join(POLICIES)}")
        pops = meta.get("readout_pops") or [program.pop_names[-1]]
        neurons = []
        for p in pops:
            if p not in program.pop_names:
                raise DecisionError(f"model metadata readout_pops names {p!r}, which is not a "
                                    f"population of the model ({', '.join(program.pop_names)})")
            sl = program.pop_slice(p)
            neurons.extend(range(sl.start, sl.stop))
        neurons = np.asarray(neurons, np.intp)
        step_hz = 1.0 / program.dt

        def steps(key, default):
            v = dec.get(key, default)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise DecisionError(f"model metadata decision.{key} must be a number, got "
                                    f"{v!r}") from None
            if not v > 0:
                raise DecisionError(f"model metadata decision.{key} must be > 0, got {v}")
            return max(1, int(round(v * step_hz)))

        w = program.extras.get("readout_w")
        b = program.extras.get("readout_b")
        if (w is None) != (b is None):
            raise DecisionError("model has only one of the extras readout_w / readout_b")
        r = cls(labels=[], neurons=neurons, policy=policy, w=None, b=None,
                temperature=readout_temperature(meta))
        if policy == "beat":
            r.pre_steps, r.post_steps = steps("pre_s", 0.6), steps("post_s", 0.3)
            r.bin_steps = steps("bin_s", 0.05)
            if (r.pre_steps + r.post_steps) % r.bin_steps:
                raise DecisionError("model metadata decision: pre_s + post_s must be a "
                                    "multiple of bin_s")
            n_feat = (r.pre_steps + r.post_steps) // r.bin_steps * len(neurons)
        else:
            r.window_steps = steps("window_s", window_s or dec.get("window_s") or 0.5)
            if window_s:
                r.window_steps = max(1, int(round(window_s * step_hz)))
            n_feat = len(neurons)
        if w is not None:
            w = np.asarray(w, np.float64)
            b = np.asarray(b, np.float64)
            if w.ndim != 2 or w.shape[0] != n_feat or b.shape != (w.shape[1],):
                raise DecisionError(
                    f"model readout_w {w.shape} / readout_b {b.shape} do not fit {n_feat} "
                    f"features of the {policy!r} policy (readout_pops {pops})")
            r.w, r.b = w, b
            n_cls = w.shape[1]
        else:
            n_cls = len(neurons)
        labels = meta.get("labels") or [str(i) for i in range(n_cls)]
        if len(labels) != n_cls:
            raise DecisionError(f"model metadata labels has {len(labels)} names for {n_cls} "
                                "classes")
        r.labels = [str(x) for x in labels]
        return r

    def classify(self, features: np.ndarray) -> tuple[int, np.ndarray, float]:
        """(class index, scores, confidence) for one feature vector."""
        scores = features @ self.w + self.b if self.w is not None else \
            np.asarray(features, np.float64)
        k = int(np.argmax(scores))
        if self.w is None:
            total = float(scores.sum())
            conf = float(scores[k] / total) if total > 0 else 0.0
        else:
            conf = _softmax_conf(scores, self.temperature)
        return k, scores, conf


class BeatDecider:
    """One decision per heartbeat: a streaming QRS detector finds R peaks in the raw signal;
    once ``post`` steps after a peak have run through the network, the readout neurons' spikes
    in the window around it are binned and classified.

    ``feed(samples, spikes)`` takes each block's raw samples (channel 0) and the engine's spikes
    for the steps the block produced; it returns decisions as dicts. The spike history is a ring
    buffer of ``history_s`` seconds (beats the detector reports later than that are counted in
    ``late_beats`` and skipped)."""

    def __init__(self, readout: Readout, rate: float, step_hz: float, history_s: float = 5.0):
        from .sensors.qrs import QrsDetector
        self.r = readout
        self.rate, self.step_hz = float(rate), float(step_hz)
        self.qrs = QrsDetector(rate)
        h = len(readout.neurons)
        self.ring_len = max(int(history_s * step_hz), readout.pre_steps + readout.post_steps + 1)
        self.ring = np.zeros((self.ring_len, h), np.uint8)
        self._cols = _columns(readout.neurons)
        self.late_beats = 0
        self.reset(0, 0)

    def reset(self, sample0: int, step0: int) -> None:
        """Restart after a gap: the next sample fed is absolute sample ``sample0`` and the next
        step is absolute step ``step0``."""
        self.qrs.reset()
        self.sample0, self.step0 = int(sample0), int(step0)
        self.steps = int(step0)           # absolute steps seen
        self.pending: list[tuple[int, int]] = []   # (abs sample, abs step)

    def feed(self, samples: np.ndarray, spikes: np.ndarray) -> list[dict]:
        t = spikes.shape[0]
        if t:
            a = self.steps % self.ring_len
            if a + t <= self.ring_len:
                self.ring[a:a + t] = spikes[:, self._cols]
            else:
                idx = (np.arange(self.steps, self.steps + t) % self.ring_len)
                self.ring[idx] = spikes[:, self._cols]
            self.steps += t
        beats = self.qrs.process(samples)
        if beats.size:
            for r in beats.tolist():
                a = self.sample0 + r
                self.pending.append((a, self.step0 + beat_step(r, self.rate, self.step_hz)))
        if not self.pending:
            return []       # no beat waiting for its window (most blocks)
        out = []
        keep = []
        for a, st in self.pending:
            if self.steps < st + self.r.post_steps:
                keep.append((a, st))
                continue
            lo = st - self.r.pre_steps
            if lo < self.step0 or self.steps - lo > self.ring_len:
                self.late_beats += lo >= self.step0
                continue
            win = self.ring[np.arange(lo, st + self.r.post_steps) % self.ring_len]
            k, scores, conf = self.r.classify(beat_features(win, self.r.bin_steps))
            out.append({"beat_sample": a, "beat_time": a / self.rate, "class_index": k,
                        "scores": scores, "confidence": conf})
        self.pending = keep
        return out


class WindowDecider:
    """One decision per window of ``window_steps`` steps: spike counts of the readout neurons,
    through the linear readout when the model has one, optionally smoothed (exponential moving
    average of the scores with weight ``smoothing`` on the past, 0 = none)."""

    def __init__(self, readout: Readout, step_hz: float, smoothing: float = 0.0):
        self.r = readout
        self.step_hz = float(step_hz)
        self.smoothing = float(smoothing)
        self.counts = np.zeros(len(readout.neurons), np.int64)
        self._cols = _columns(readout.neurons)
        self.reset(0, 0)

    def reset(self, sample0: int, step0: int) -> None:
        self.counts[:] = 0
        self.steps = int(step0)
        self.window_start = int(step0)
        self.avg: np.ndarray | None = None

    def feed(self, samples: np.ndarray, spikes: np.ndarray) -> list[dict]:
        out = []
        t, a = spikes.shape[0], 0
        while a < t:
            room = self.window_start + self.r.window_steps - self.steps
            n = min(room, t - a)
            self.counts += spikes[a:a + n, self._cols].sum(0, dtype=np.int64)
            a += n
            self.steps += n
            if self.steps == self.window_start + self.r.window_steps:
                k, scores, conf = self.r.classify(self.counts.astype(np.float64))
                if self.smoothing > 0:
                    self.avg = scores if self.avg is None else \
                        self.smoothing * self.avg + (1 - self.smoothing) * scores
                    k, scores = int(np.argmax(self.avg)), self.avg
                    if self.r.w is not None:
                        conf = _softmax_conf(scores, self.r.temperature)
                out.append({"window_start": self.window_start / self.step_hz,
                            "window_end": self.steps / self.step_hz, "class_index": k,
                            "scores": np.asarray(scores, np.float64), "confidence": conf})
                self.counts[:] = 0
                self.window_start = self.steps
        return out


def make_decider(readout: Readout, rate: float, step_hz: float, smoothing: float = 0.0):
    if readout.policy == "beat":
        return BeatDecider(readout, rate, step_hz)
    return WindowDecider(readout, step_hz, smoothing)


class AppDecider:
    """Decisions for models written in the applications' readout convention
    (``metadata.readout``, ``extras.readout_w`` [classes, features]; see docs/models): the
    features come from ``spikeedge.apps.stream`` (the same code ``spikeedge eval`` runs), and
    the records have the fields of BeatDecider / WindowDecider.

    The ``utterance`` policy finds the utterances in the stream live
    (``spikeedge.apps.stream.LiveUtteranceFeaturizer``: an energy rule, label-free and
    causal) and decides each at its end, with ``window_start``/``window_end`` its first and
    last voiced instants. ``live_utterance``: None (default) takes the model's
    ``decision.live`` (absent or ``true``: on with the defaults
    ``UTTERANCE_LIVE_DEFAULTS``; an object: those options; ``false``: off), True / False /
    a dict of options override it. Off, an utterance model decides only at :meth:`flush`
    (the end of the stream: one stream, one utterance, as ``eval`` does per file)."""

    def __init__(self, app_readout, rate: float | None, step_hz: float | None,
                 temperature: float | None = None, live_utterance=None):
        """``rate=None`` makes a description only (policy, labels), with no featurizer;
        the live-utterance options are checked all the same (``AppModelError``)."""
        from .apps.stream import AppModelError, utterance_live_options
        self.app = app_readout
        if temperature is None:     # the model's own (as Readout.from_program reads it)
            temperature = readout_temperature(app_readout.meta)
        self.rate, self.step_hz, self.temperature = rate, step_hz, temperature
        dec = app_readout.decision
        self.policy = {"beat": "beat", "utterance": "utterance"}.get(dec["policy"], "window")
        self.labels = list(app_readout.labels)
        self.late_beats = 0
        self.live = None
        if dec["policy"] == "utterance":
            live = dec.get("live", True) if live_utterance is None else live_utterance
            if live is True:
                live = {}
            if live is not False:
                if not isinstance(live, dict):
                    raise AppModelError(f"decision.live: must be true, false or an object "
                                        f"of options, got {live!r}")
                live = {k: v for k, v in live.items() if k != "enabled"} \
                    if live.get("enabled", True) is not False else None
            self.live = utterance_live_options(live, "decision.live") \
                if isinstance(live, dict) else None
        if rate is not None:
            self.reset(0, 0)

    def reset(self, sample0: int, step0: int) -> None:
        from .apps.stream import make_featurizer
        self.f = make_featurizer(self.app, self.rate, self.step_hz, self.live)
        self.sample0, self.t0 = sample0, step0 / self.step_hz

    @property
    def buffered_steps(self) -> int:
        """Steps of readout spikes the featurizer holds (the utterance policy's memory)."""
        f = getattr(self, "f", None)
        if f is None:
            return 0
        if hasattr(f, "buffered_steps"):
            return int(f.buffered_steps)
        return int(sum(len(p) for p in getattr(f, "parts", ())))

    def flush(self) -> list[dict]:
        """Decisions still pending at the end of the stream (an unfinished utterance)."""
        return self._records(self.f.flush())

    def feed(self, samples: np.ndarray, spikes: np.ndarray) -> list[dict]:
        return self._records(self.f.feed(samples, spikes))

    def _records(self, ds) -> list[dict]:
        out = []
        for d in ds:
            k, scores = self.app.classify(d["features"])
            rec = {"class_index": k, "scores": np.asarray(scores, np.float64),
                   "confidence": _softmax_conf(np.asarray(scores, np.float64),
                                               self.temperature)}
            if "beat_sample" in d:
                rec["beat_sample"] = self.sample0 + int(d["beat_sample"])
                rec["beat_time"] = rec["beat_sample"] / self.rate
            else:
                t1 = d["t1"]
                if t1 is None:      # a whole-stream utterance: its time is unknown here
                    t1 = d.get("t0", 0.0)
                rec["window_start"] = self.t0 + d.get("t0", 0.0)
                rec["window_end"] = self.t0 + t1
            out.append(rec)
        return out


def is_app_model(program) -> bool:
    meta = program.report.get("metadata", {}) or {}
    return isinstance(meta.get("readout"), dict)
