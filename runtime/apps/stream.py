"""The streaming readout of the shipped applications: features from the network's spikes, one
decision per utterance, per heartbeat or per window.

The model file says how (``metadata``; see docs/models/README.md)::

    "readout":  {"population": "hid", "feature": "counts", "transform": "sqrt"}
    "decision": {"policy": "window", "window_s": 0.25, "hop_s": 0.25}
             |  {"policy": "utterance", "segments": 4}
             |  {"policy": "beat", "pre_s": 0.25, "post_s": 0.45, "bin_s": 0.05, "rr": true}

and ``extras["readout_w"]`` float32 ``[n_classes, n_features]``, ``extras["readout_b"]``
``[n_classes]``: ``scores = readout_w @ features + readout_b``, class = argmax.

Features (``feature: "counts"``, then ``transform`` none | sqrt | log1p applied elementwise):

* window: spike counts of each readout neuron over the window; with ``hop_s`` (a divisor of
  ``window_s``; default ``window_s``) windows overlap and one decision comes every ``hop_s``.
  With ``baseline_s`` (label-free, causal adaptation to the wearer and the electrode contact)
  each decision has twice the features: the transformed counts ``x`` and ``x - m``, where
  ``m`` is each feature's ``baseline_q`` quantile (default 0: the minimum; at most 0.5; the
  lower of two neighbours) over the last ``round(baseline_s / hop_s)`` decisions (this one
  included): activity relative to the recent resting level;
* utterance: the utterance (from the first to the last readout spike) cut into ``segments``
  equal parts, spike counts per neuron and part divided by the part's length in steps
  (``segments`` a list, e.g. ``[1, 2, 4]``: a temporal pyramid, the parts of each level
  one after the other, level by level: :func:`utterance_segments`). In
  ``eval`` a file is one utterance; live (the daemon), :class:`LiveUtteranceFeaturizer` cuts
  the stream into utterances with a label-free, causal energy rule (options
  :data:`UTTERANCE_LIVE_DEFAULTS`: ``gap_s``, ``min_s``, ``max_s``, ``frame_s``,
  ``threshold_db``, ``min_dbfs``) and decides each at its end;
* beat: spike counts per neuron in ``bin_s`` bins from ``pre_s`` before to ``post_s`` after
  each R peak found by the streaming QRS detector on the raw signal (bin-major, the layout of
  :func:`spikeedge.decision.beat_features`), then, with ``rr``, eight RR-interval features in
  seconds (:data:`RR_FEATURES`). A beat is decided once the next R peak is found (its post-RR
  interval is a feature) and ``post_s`` of spikes after it have run. With ``template_alpha``
  (label-free adaptation to the patient), the binned counts are replaced by their difference
  from a running template, an exponential average (weight ``template_alpha`` per beat) of the
  previous beats' binned counts; as most beats are normal, that highlights abnormal shapes.
  Options of the second version (all label-free and causal):

  - ``pool: "population"`` sums the counts of each readout population per bin (bins x
    populations features instead of bins x neurons);
  - ``rr_set: "log-ratio"`` replaces the eight RR features by :data:`RR_LOG_FEATURES`: logs
    of RR ratios to the patient's own local (10 beats) and long (exponential) mean RR, plus
    pre-RR and post-RR in seconds;
  - ``norm: {"window": K, "floor": f}`` standardises every count feature against the
    patient's own recent beats: ``(x - median) / sqrt(mad^2 + f^2)`` over the previous K
    beats (mad: 1.4826 x the median absolute deviation). Medians follow the dominant beat
    shape even when ectopic beats are frequent (up to half of them). The current beat is not
    in its own reference; the first beat gives zeros.

  Options of the third version (also label-free and causal):

  - ``rr_irregularity: true`` (with ``rr_set: "log-ratio"``) appends :data:`RR_IRR_FEATURES`
    after the RR features: the rhythm's irregularity (median absolute change of log RR over
    the previous 10 beats) and the six log RR ratios times ``exp(-irregularity / 0.1)``, so
    that a linear readout can trust prematurity in regular rhythm only;
  - ``shape: {"window": K, "floor_mv": f, "parts": [...]}`` appends the beat-shape features of
    the filtered lead itself (QRS width, correlation and distance to the patient's running
    median beat, P wave, standardised morphology samples), last:
    :mod:`spikeedge.apps.beatshape`. Needs ``post_s`` >= 0.4.

Every featurizer has ``feed(samples, spikes) -> [decision dicts]`` (raw samples of the block,
the engine's spikes for the steps the block produced) and ``flush()``; :func:`run_stream` is
the pipeline source -> encoder -> engine -> featurizer -> readout that ``spikeedge eval`` and
training share.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import SpikeEdgeError
from ..nets import synaptic_events  # per projection, source spikes x fan-out (the bench's)
from .beatshape import PARTS as SHAPE_PARTS
from .beatshape import BeatShape, shape_options

__all__ = ["AppModelError", "AppReadout", "LiveUtteranceFeaturizer", "RR_FEATURES",
           "RR_IRR_FEATURES", "RR_LOG_FEATURES", "RunningNorm",
           "UTTERANCE_LIVE_DEFAULTS", "make_featurizer", "run_stream", "FloatRunner",
           "synaptic_events", "utterance_features", "utterance_live_options",
           "utterance_segments"]

POLICIES = ("window", "utterance", "beat")
TRANSFORMS = ("none", "sqrt", "log1p")
RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "long_rr", "pre/local", "post/local",
               "pre/long", "post/pre")
RR_LOG_FEATURES = ("log pre/local", "log post/local", "log pre/long", "log post/long",
                   "log post/pre", "log local/long", "pre_rr", "post_rr")
RR_IRR_FEATURES = ("rr irregularity",) + tuple(f"{f} x regular" for f in RR_LOG_FEATURES[:6])
#: the time constant of the regularity weight exp(-irregularity / IRR_SCALE)
IRR_SCALE = 0.1
RR_SETS = ("seconds", "log-ratio")
POOLS = ("neuron", "population")


class AppModelError(SpikeEdgeError, ValueError):
    """A model file's readout description is missing or inconsistent."""


@dataclass
class AppReadout:
    task: str
    labels: list
    population: str | list
    neurons: slice
    transform: str
    decision: dict
    encoder: str
    pop_sizes: tuple = ()
    w: np.ndarray | None = None     # [C, F]
    b: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_program(cls, program, need_weights: bool = True) -> AppReadout:
        meta = program.report.get("metadata", {}) or {}
        where = "model metadata"
        ro = meta.get("readout")
        dec = meta.get("decision")
        enc = meta.get("encoder")
        if not isinstance(ro, dict) or not isinstance(dec, dict) or not isinstance(enc, dict):
            raise AppModelError(f"{where} needs 'readout', 'decision' and 'encoder' objects "
                                "(this is not an application model; see docs/models)")
        pop = ro.get("population")
        pops = pop if isinstance(pop, list) else [pop]
        bad = [p for p in pops if p not in program.pop_names]
        if bad or not pops:
            raise AppModelError(f"{where}: readout.population {pop!r} is not one of "
                                f"{program.pop_names} (or a list of consecutive ones)")
        sls = [program.pop_slice(p) for p in pops]
        if any(a.stop != b.start for a, b in zip(sls, sls[1:], strict=False)):
            raise AppModelError(f"{where}: readout.population {pop!r}: populations must be "
                                "consecutive")
        neurons = slice(sls[0].start, sls[-1].stop)
        if enc.get("params"):
            # presets are built from their name alone (make_encoder): a parameter here would
            # be silently ignored, so the model's encoder would not be the one it claims
            raise AppModelError(f"{where}: encoder.params {enc['params']!r} is not supported: "
                                "an application model names a preset, which takes no "
                                "parameters (register a new preset instead)")
        if ro.get("feature", "counts") != "counts":
            raise AppModelError(f"{where}: readout.feature {ro.get('feature')!r} unsupported")
        tr = ro.get("transform", "none")
        if tr not in TRANSFORMS:
            raise AppModelError(f"{where}: readout.transform must be one of {TRANSFORMS}")
        if dec.get("policy") not in POLICIES:
            raise AppModelError(f"{where}: decision.policy must be one of {POLICIES}, got "
                                f"{dec.get('policy')!r}")
        labels = [str(x) for x in meta.get("labels") or []]
        if not labels:
            raise AppModelError(f"{where}: 'labels' is missing")
        if dec.get("policy") == "beat":
            _check_beat(dec, where)
        if dec.get("policy") == "window" and "hop_s" in dec:
            win, hop = float(dec.get("window_s", 0)), float(dec["hop_s"])
            if not 0 < hop <= win or abs(win / hop - round(win / hop)) > 1e-6:
                raise AppModelError(f"{where}: decision.hop_s must divide window_s")
        if dec.get("policy") == "window":
            _check_window_baseline(dec, where)
        if dec.get("policy") == "utterance":
            utterance_segments(dec, where)
        r = cls(task=str(meta.get("task", "?")), labels=labels, population=pop,
                neurons=neurons, transform=tr, decision=dict(dec),
                encoder=str(enc.get("preset")), meta=meta,
                pop_sizes=tuple(x.stop - x.start for x in sls))
        w, b = program.extras.get("readout_w"), program.extras.get("readout_b")
        if w is None or b is None:
            if need_weights:
                raise AppModelError("model has no trained readout (extras readout_w, "
                                    "readout_b)")
            return r
        w = np.asarray(w, np.float64)
        b = np.asarray(b, np.float64)
        nf = r.n_features(1.0 / program.dt)
        if w.shape != (len(labels), nf) or b.shape != (len(labels),):
            raise AppModelError(f"model readout_w {w.shape} / readout_b {b.shape} do not fit "
                                f"{len(labels)} classes x {nf} features")
        r.w, r.b = w, b
        return r

    @property
    def n_neurons(self) -> int:
        return self.neurons.stop - self.neurons.start

    def steps(self, key: str, step_hz: float) -> int:
        return max(1, int(round(float(self.decision[key]) * step_hz)))

    def n_features(self, step_hz: float) -> int:
        p = self.decision["policy"]
        if p == "window":
            return self.n_neurons * (2 if self.decision.get("baseline_s") is not None else 1)
        if p == "utterance":
            return self.n_neurons * sum(utterance_segments(self.decision))
        bins = (self.steps("pre_s", step_hz) + self.steps("post_s", step_hz)) \
            // self.steps("bin_s", step_hz)
        per_bin = len(self.pop_sizes) if self.decision.get("pool") == "population" \
            else self.n_neurons
        sh = self.decision.get("shape")
        shape = 0 if sh is None or sh is False else sum(
            len(SHAPE_PARTS[p]) for p in shape_options(sh, float(self.decision["post_s"]))["parts"])
        rr = len(RR_FEATURES) if self.decision.get("rr") else 0
        if self.decision.get("rr") and self.decision.get("rr_irregularity"):
            rr += len(RR_IRR_FEATURES)
        return bins * per_bin + rr + shape

    def finish(self, counts: np.ndarray) -> np.ndarray:
        x = np.asarray(counts, np.float64)
        if self.transform == "sqrt":
            return np.sqrt(x)
        if self.transform == "log1p":
            return np.log1p(x)
        return x

    def classify(self, features: np.ndarray) -> tuple[int, np.ndarray]:
        scores = self.w @ features + self.b
        return int(np.argmax(scores)), scores


def _check_window_baseline(dec: dict, where: str) -> None:
    b = dec.get("baseline_s")
    if b is None:
        return
    win = dec.get("window_s")
    hop = dec.get("hop_s", win)
    if isinstance(b, bool) or not isinstance(b, (int, float)) or not np.isfinite(b) \
            or not 0 < b <= 600:
        raise AppModelError(f"{where}: decision.baseline_s must be a number of seconds in "
                            f"(0, 600], got {b!r}")
    if isinstance(hop, bool) or not isinstance(hop, (int, float)) or not hop > 0:
        raise AppModelError(f"{where}: decision.baseline_s needs a positive window_s / hop_s")
    if round(b / hop) < 1:
        raise AppModelError(f"{where}: decision.baseline_s ({b}) must be at least half of "
                            f"hop_s ({hop})")
    q = dec.get("baseline_q", 0.0)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 0.5:
        raise AppModelError(f"{where}: decision.baseline_q must be a number in [0, 0.5], "
                            f"got {q!r}")


def _check_beat(dec: dict, where: str) -> None:
    if dec.get("pool", "neuron") not in POOLS:
        raise AppModelError(f"{where}: decision.pool must be one of {POOLS}")
    if dec.get("rr_set", "seconds") not in RR_SETS:
        raise AppModelError(f"{where}: decision.rr_set must be one of {RR_SETS}")
    norm = dec.get("norm")
    if norm is not None:
        w = norm.get("window") if isinstance(norm, dict) else None
        f = norm.get("floor", 0.5) if isinstance(norm, dict) else None
        if not isinstance(w, int) or not 1 <= w <= 4096 or not isinstance(f, (int, float)) \
                or not f > 0:
            raise AppModelError(f"{where}: decision.norm needs an integer 'window' in "
                                "1..4096 (beats) and a positive 'floor'")
    irr = dec.get("rr_irregularity", False)
    if not isinstance(irr, bool) or (irr and (not dec.get("rr")
                                              or dec.get("rr_set") != "log-ratio")):
        raise AppModelError(f"{where}: decision.rr_irregularity must be true or false, and "
                            "true needs rr: true and rr_set: 'log-ratio'")
    shape = dec.get("shape")
    if shape is not None and shape is not False:
        try:
            shape_options(shape, float(dec.get("post_s", 0)))
        except (TypeError, ValueError) as e:
            raise AppModelError(f"{where}: {e}") from None


class RunningNorm:
    """Causal, label-free, robust per-feature standardisation over the last ``window`` beats
    (see the module notes, ``norm``): :meth:`__call__` returns ``(x - median) / spread`` of the
    previous beats, then remembers ``x``."""

    def __init__(self, window: int = 64, floor: float = 0.5):
        self.window, self.floor = int(window), float(floor)
        self.hist: np.ndarray | None = None
        self.n = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.hist is None:
            self.hist = np.zeros((self.window, x.size))
        if self.n == 0:
            z = np.zeros_like(x)
        else:
            h = self.hist[:min(self.n, self.window)]
            med = np.median(h, 0)
            mad = 1.4826 * np.median(np.abs(h - med), 0)
            z = (x - med) / np.sqrt(mad * mad + self.floor * self.floor)
        self.hist[self.n % self.window] = x
        self.n += 1
        return z


# ---------------------------------------------------------------------------- featurizers
class WindowFeaturizer:
    def __init__(self, r: AppReadout, rate: float, step_hz: float):
        self.r, self.rate, self.step_hz = r, rate, step_hz
        self.win = r.steps("window_s", step_hz)
        self.hop = r.steps("hop_s", step_hz) if "hop_s" in r.decision else self.win
        self.k = max(1, int(round(self.win / self.hop)))
        self.hops: list[np.ndarray] = []         # counts of the last k hops
        self.counts = np.zeros(r.n_neurons, np.int64)
        self.steps = 0
        self.start = 0
        b = r.decision.get("baseline_s")
        # running minimum of the features over the last ``nb`` decisions (baseline_s)
        self.nb = 0 if b is None else max(1, int(round(float(b) / float(
            r.decision.get("hop_s", r.decision["window_s"])))))
        self.q = float(r.decision.get("baseline_q", 0.0))
        self.recent = np.zeros((self.nb, r.n_neurons))     # ring of the last nb features
        self.n_recent = 0

    def feed(self, samples, spikes) -> list[dict]:
        out, a, t = [], 0, spikes.shape[0]
        while a < t:
            n = min(self.start + self.hop - self.steps, t - a)
            self.counts += spikes[a:a + n, self.r.neurons].sum(0, dtype=np.int64)
            a += n
            self.steps += n
            if self.steps == self.start + self.hop:
                self.hops.append(self.counts.copy())
                self.hops = self.hops[-self.k:]
                self.counts[:] = 0
                self.start = self.steps
                if len(self.hops) == self.k:
                    x = self.r.finish(np.sum(self.hops, 0))
                    if self.nb:
                        self.recent[self.n_recent % self.nb] = x
                        self.n_recent += 1
                        h = self.recent[:min(self.n_recent, self.nb)]
                        j = int(np.floor(self.q * (len(h) - 1)))    # the lower quantile
                        m = h.min(0) if j == 0 else np.partition(h, j, axis=0)[j]
                        x = np.concatenate([x, x - m])
                    out.append({"t0": (self.steps - self.k * self.hop) / self.step_hz,
                                "t1": self.steps / self.step_hz, "features": x})
        return out

    def flush(self) -> list[dict]:
        return []


UTTERANCE_LIVE_DEFAULTS = {"gap_s": 0.3, "min_s": 0.05, "max_s": 2.0, "frame_s": 0.01,
                           "threshold_db": 12.0, "end_threshold_db": 6.0, "min_dbfs": -60.0,
                           "pre_s": 0.0, "post_s": 0.0}


def utterance_live_options(opts, where: str = "utterance live options") -> dict:
    """``UTTERANCE_LIVE_DEFAULTS`` updated with ``opts`` (a dict), checked; raises
    :class:`AppModelError` naming the bad key."""
    if opts is None:
        opts = {}
    if not isinstance(opts, dict):
        raise AppModelError(f"{where}: must be an object with keys "
                            f"{sorted(UTTERANCE_LIVE_DEFAULTS)}, got {opts!r}")
    bad = sorted(set(opts) - set(UTTERANCE_LIVE_DEFAULTS) - {"enabled"})
    if bad:
        raise AppModelError(f"{where}: unknown key(s) {bad}; allowed: "
                            f"{sorted(UTTERANCE_LIVE_DEFAULTS)} and 'enabled'")
    o = dict(UTTERANCE_LIVE_DEFAULTS)
    for k in UTTERANCE_LIVE_DEFAULTS:
        if k not in opts:
            continue
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise AppModelError(f"{where}: {k} must be a finite number, got {v!r}")
        o[k] = float(v)
    if not 0 < o["frame_s"] <= 0.1:
        raise AppModelError(f"{where}: frame_s must be in (0, 0.1] s, got {o['frame_s']}")
    if not o["gap_s"] >= o["frame_s"]:
        raise AppModelError(f"{where}: gap_s must be >= frame_s ({o['frame_s']} s), got "
                            f"{o['gap_s']}")
    if not 0 <= o["min_s"] < o["max_s"]:
        raise AppModelError(f"{where}: need 0 <= min_s < max_s, got min_s={o['min_s']}, "
                            f"max_s={o['max_s']}")
    if not 0 <= o["pre_s"] <= 1:
        raise AppModelError(f"{where}: pre_s must be in [0, 1] s, got {o['pre_s']}")
    if not 0 <= o["post_s"] <= o["gap_s"]:
        raise AppModelError(f"{where}: post_s must be in [0, gap_s] ({o['gap_s']} s), got "
                            f"{o['post_s']}")
    if not o["max_s"] <= 60:
        raise AppModelError(f"{where}: max_s must be <= 60 s, got {o['max_s']}")
    if not o["threshold_db"] > 0:
        raise AppModelError(f"{where}: threshold_db must be > 0, got {o['threshold_db']}")
    if not o["end_threshold_db"] > 0:
        raise AppModelError(f"{where}: end_threshold_db must be > 0, got "
                            f"{o['end_threshold_db']}")
    if not o["min_dbfs"] < 0:
        raise AppModelError(f"{where}: min_dbfs must be < 0 (dB full scale), got "
                            f"{o['min_dbfs']}")
    return o


#: limits of decision.segments (parts per level, levels of a pyramid)
MAX_SEGMENTS, MAX_LEVELS = 64, 8


def utterance_segments(dec: dict, where: str = "model metadata") -> tuple[int, ...]:
    """``decision.segments`` of the utterance policy as a tuple of part counts: an integer
    ``k`` gives ``(k,)``, a list ``[1, 2, 4]`` a temporal pyramid (default 1). Raises
    :class:`AppModelError` unless each is an integer in 1..64 (at most 8 levels)."""
    v = dec.get("segments", 1)
    vals = v if isinstance(v, (list, tuple)) else [v]
    if not vals or len(vals) > MAX_LEVELS or any(
            isinstance(k, bool) or not isinstance(k, (int, np.integer))
            or not 1 <= k <= MAX_SEGMENTS for k in vals):
        raise AppModelError(f"{where}: decision.segments must be an integer in 1..{MAX_SEGMENTS} "
                            f"or a list of 1..{MAX_LEVELS} of them (a pyramid), got {v!r}")
    return tuple(int(k) for k in vals)


def utterance_features(r: AppReadout, s: np.ndarray, k) -> np.ndarray:
    """The utterance features of readout spikes ``s`` [steps, neurons]: from the first to the
    last spike, ``k`` equal parts, counts per neuron and part / part length; then the
    readout's transform. ``k`` a sequence of part counts (a pyramid): the features of each
    count, concatenated in that order."""
    if isinstance(k, (list, tuple)):
        return np.concatenate([utterance_features(r, s, int(j)) for j in k])
    active = np.flatnonzero(s.any(1))
    feats = np.zeros((k, s.shape[1]))
    if active.size:
        s = s[active[0]:active[-1] + 1]
        edges = np.linspace(0, len(s), k + 1).round().astype(int)
        for i in range(k):
            seg = s[edges[i]:edges[i + 1]]
            if len(seg):
                feats[i] = seg.sum(0) / len(seg)
    return r.finish(feats.ravel())


def _segments_arg(dec: dict):
    """The ``k`` of :func:`utterance_features`: an int as before, a tuple for a pyramid."""
    k = utterance_segments(dec)
    return k[0] if not isinstance(dec.get("segments", 1), (list, tuple)) else k


class UtteranceFeaturizer:
    """Collects the readout spikes of one utterance; :meth:`flush` (end of the utterance: end of
    file in ``eval``) returns its one feature vector. Live, use
    :class:`LiveUtteranceFeaturizer`, which finds the utterances itself."""

    def __init__(self, r: AppReadout, rate: float, step_hz: float):
        self.r, self.rate, self.step_hz = r, rate, step_hz
        self.k = _segments_arg(r.decision)
        self.parts: list[np.ndarray] = []

    def feed(self, samples, spikes) -> list[dict]:
        self.parts.append(spikes[:, self.r.neurons].copy())
        return []

    def flush(self) -> list[dict]:
        s = np.concatenate(self.parts) if self.parts else np.zeros((0, self.r.n_neurons),
                                                                   np.uint8)
        self.parts = []
        return [{"t1": None, "features": utterance_features(self.r, s, self.k)}]


class LiveUtteranceFeaturizer:
    """Live end-of-utterance detection (label-free, causal) in front of the utterance features.

    The raw signal is cut into ``frame_s`` frames; a frame is *voiced* when its RMS is at
    least ``threshold_db`` above the noise floor and at least ``min_dbfs`` (dB full scale).
    The noise floor is the running minimum of the frame RMS, allowed to creep up by a factor
    ``RISE_PER_S`` a second, so it follows a louder room but not a word; while an utterance
    lasts it only creeps up, never down. Once an utterance has started, both levels are
    lowered by ``threshold_db - end_threshold_db`` (hysteresis; ``end_threshold_db`` above
    the floor, never more than ``threshold_db``), so that a quiet ending (a fricative, a
    fading vowel) still counts as voiced: the readout was fitted on whole recordings, and an
    utterance cut before its end is misread far more often. An utterance starts
    at the first voiced frame and ends once no frame has been voiced for ``gap_s``; it is
    decided then, over ``pre_s`` before its first to ``post_s`` after its last voiced frame,
    with :func:`utterance_features` (the features ``eval`` computes for a file), if it
    lasted at least ``min_s``, else dropped (a click; ``dropped`` counts them). An utterance
    reaching ``max_s`` is decided there and the next one starts at the next voiced frame.
    Between utterances only ``pre_s`` and the current block's spikes are held, so memory is
    bounded by about ``max_s + gap_s`` of readout spikes (``buffered_steps``). Decisions carry
    ``t0``/``t1`` (seconds of signal since the featurizer was made).

    Why input energy and not a gap in the readout spikes: the readout neurons of the shipped
    ``fsdd-digits`` model keep firing in background noise (about 4 spikes per 10 ms at
    -61 dBFS white noise, against 20-100 in speech), so on a real microphone a silent gap in
    the readout spikes never comes; the frame energy relative to its own floor does not
    depend on the model and has a level (``threshold_db``) that transfers between rooms.
    """

    RISE_PER_S = 1.35

    def __init__(self, r: AppReadout, rate: float, step_hz: float, options: dict | None = None):
        self.r, self.rate, self.step_hz = r, float(rate), float(step_hz)
        self.k = _segments_arg(r.decision)
        self.o = utterance_live_options(options)
        self.frame = max(1, int(round(self.o["frame_s"] * self.rate)))
        self.gap = self.o["gap_s"] * self.rate          # in samples
        self.min_len = self.o["min_s"] * self.rate
        self.max_len = self.o["max_s"] * self.rate
        self.pre = int(round(self.o["pre_s"] * self.rate))
        self.post = int(round(self.o["post_s"] * self.rate))
        self.ratio = 10.0 ** (self.o["threshold_db"] / 20.0)
        self.min_rms = 10.0 ** (self.o["min_dbfs"] / 20.0)
        # inside an utterance: both levels lowered by the hysteresis
        low = min(self.o["end_threshold_db"], self.o["threshold_db"])
        self.ratio_in = 10.0 ** (low / 20.0)
        self.min_rms_in = self.min_rms * self.ratio_in / self.ratio
        self.floor_min = self.min_rms / self.ratio   # the floor's lowest (digital silence)
        self.rise = self.RISE_PER_S ** (self.frame / self.rate)
        self.floor: float | None = None
        self.pend = np.zeros(0, np.float64)     # samples of an unfinished frame
        self.n_samples = 0                      # samples framed so far (whole frames)
        self.steps = 0                          # engine steps seen so far
        self.buf: list[np.ndarray] = []         # readout spikes from step buf0 on
        self.buf0 = 0
        self.start: int | None = None           # first sample of the utterance
        self.last: int = 0                      # end sample of its last voiced frame
        self.dropped = 0
        self.decided = 0

    def _step(self, sample: int) -> int:
        return int(sample * self.step_hz // self.rate)

    @property
    def buffered_steps(self) -> int:
        return sum(len(b) for b in self.buf)

    def _keep_from(self, step: int) -> None:
        """Forget the buffered spikes before ``step``."""
        s = np.concatenate(self.buf) if len(self.buf) > 1 else \
            (self.buf[0] if self.buf else np.zeros((0, self.r.n_neurons), np.uint8))
        cut = min(max(0, step - self.buf0), len(s))
        self.buf = [s[cut:]] if cut < len(s) else []
        self.buf0 += cut

    def _decide(self, end: int) -> list[dict]:
        a, b = self._step(max(0, self.start - self.pre)), self._step(end)
        s = np.concatenate(self.buf) if self.buf else np.zeros((0, self.r.n_neurons), np.uint8)
        seg = s[max(0, a - self.buf0):max(0, b - self.buf0)]
        t0, t1 = self.start / self.rate, end / self.rate
        self.start = None
        if end - (t0 * self.rate) < self.min_len:
            self.dropped += 1
            return []
        self.decided += 1
        return [{"t0": t0, "t1": t1, "features": utterance_features(self.r, seg, self.k)}]

    def feed(self, samples, spikes) -> list[dict]:
        out: list[dict] = []
        if len(spikes):
            self.buf.append(np.array(spikes[:, self.r.neurons], np.uint8))
            self.steps += len(spikes)
        x = np.asarray(samples, np.float64).ravel()
        if self.pend.size:
            x = np.concatenate([self.pend, x])
        n = len(x) // self.frame
        self.pend = x[n * self.frame:].copy()
        if n:
            # np.mean's own sum and division (the same bits) without its Python wrapper:
            # 3.3 instead of 6.7 us per 10 ms block here
            sq = np.square(x[:n * self.frame].reshape(n, self.frame))
            rms = np.sqrt(np.add.reduce(sq, axis=1) / self.frame)
            for v in rms:
                out.extend(self._frame(float(v)))
        if self.start is None:          # idle: keep only the pre-roll and the unframed samples
            self._keep_from(self._step(max(0, self.n_samples - self.pre)))
        return out

    def _frame(self, rms: float) -> list[dict]:
        a = self.n_samples
        self.n_samples += self.frame
        b = self.n_samples
        out: list[dict] = []
        if self.start is None:
            self.floor = max(self.floor_min, rms if self.floor is None
                             else min(rms, self.floor * self.rise))
            if rms >= self.min_rms and rms >= self.floor * self.ratio:
                self.start, self.last = a, b
                self._keep_from(self._step(max(0, a - self.pre)))
            return out
        # within an utterance the floor may creep up (a room getting louder: the utterance
        # still ends) but not down: a pause quieter than the room (or a recording's own lower
        # noise) would make the room itself sound voiced after the utterance
        self.floor = max(self.floor, min(rms, self.floor * self.rise))
        if rms >= self.min_rms_in and rms >= self.floor * self.ratio_in:
            self.last = b
        if b - self.start >= self.max_len:
            out = self._decide(b)
        elif b - self.last >= self.gap:
            out = self._decide(self.last + self.post)
        return out

    def flush(self) -> list[dict]:
        out = self._decide(min(self.last + self.post, self.n_samples + len(self.pend))) \
            if self.start is not None else []
        self.buf, self.buf0 = [], self.steps
        return out


class BeatFeaturizer:
    HISTORY_S = 8.0
    LOCAL_BEATS = 10
    LONG_ALPHA = 0.01

    def __init__(self, r: AppReadout, rate: float, step_hz: float, channel: int = 0):
        from ..sensors.qrs import QrsDetector
        self.r, self.rate, self.step_hz = r, float(rate), float(step_hz)
        self.channel = channel
        self.qrs = QrsDetector(rate)
        self.pre, self.post = r.steps("pre_s", step_hz), r.steps("post_s", step_hz)
        self.bin = r.steps("bin_s", step_hz)
        if (self.pre + self.post) % self.bin:
            raise AppModelError("decision: pre_s + post_s must be a multiple of bin_s")
        self.rr = bool(r.decision.get("rr"))
        self.ring_len = int(self.HISTORY_S * step_hz)
        self.ring = np.zeros((self.ring_len, r.n_neurons), np.uint8)
        self.steps = 0
        self.beats: list[int] = []       # detected R peaks (samples), undecided ones last
        self.rr_hist: list[float] = []
        self.long_rr: float | None = None
        self.last_decided: int | None = None
        self.skipped = 0
        self.alpha = float(r.decision.get("template_alpha", 0.0))
        self.template: np.ndarray | None = None
        self.pool = r.decision.get("pool", "neuron") == "population"
        self.log_rr = r.decision.get("rr_set", "seconds") == "log-ratio"
        self.irr = bool(r.decision.get("rr_irregularity", False))
        norm = r.decision.get("norm")
        self.norm = RunningNorm(norm["window"], norm.get("floor", 0.5)) if norm else None
        shape = r.decision.get("shape")
        self.shape = BeatShape(rate, **shape_options(shape, float(r.decision["post_s"]))) \
            if shape is not None and shape is not False else None

    def _step_of(self, sample: int) -> int:
        return int(sample * self.step_hz // self.rate)

    def _rr_feats(self, prev: int | None, cur: int, nxt: int | None) -> np.ndarray:
        pre = (cur - prev) / self.rate if prev is not None else None
        local = float(np.mean(self.rr_hist[-self.LOCAL_BEATS:])) if self.rr_hist else None
        long = self.long_rr
        dflt = local or long or pre or 0.8
        pre = pre if pre is not None else dflt
        local = local if local is not None else pre
        long = long if long is not None else local
        post = (nxt - cur) / self.rate if nxt is not None else local
        if self.log_rr:
            pre, post = max(pre, 1e-3), max(post, 1e-3)
            local, long = max(local, 1e-3), max(long, 1e-3)
            f = np.array([np.log(pre / local), np.log(post / local), np.log(pre / long),
                          np.log(post / long), np.log(post / pre), np.log(local / long),
                          pre, post])
            if self.irr:
                # rhythm irregularity: median |change of log RR| over the previous beats (high
                # in atrial fibrillation, where RR ratios say little about the beat's origin);
                # the six RR ratios weighted by the regularity let a linear readout trust them
                # in regular rhythm only
                h = np.log(np.maximum(self.rr_hist[-self.LOCAL_BEATS:], 1e-3))
                irr = float(np.median(np.abs(np.diff(h)))) if len(h) > 2 else 0.0
                f = np.concatenate([f, [irr], f[:6] * np.exp(-irr / IRR_SCALE)])
            return f
        return np.array([pre, post, local, long, pre / local, post / local, pre / long,
                         post / pre])

    def _decide(self, i: int, nxt: int | None) -> dict | None:
        cur = self.beats[i]
        prev = self.beats[i - 1] if i > 0 else None
        st = self._step_of(cur)
        lo = st - self.pre
        feats = None
        if lo >= 0 and self.steps - lo <= self.ring_len and \
                (self.shape is None or self.shape.available(cur)):
            win = self.ring[np.arange(lo, st + self.post) % self.ring_len]
            h = self.r.n_neurons
            counts = win.reshape(-1, self.bin, h).sum(1, dtype=np.int64)
            if self.pool:
                edges = np.cumsum((0,) + self.r.pop_sizes)[:-1]
                counts = np.add.reduceat(counts, edges, axis=1)
            feats = self.r.finish(counts.ravel())
            if self.norm is not None:
                feats = self.norm(feats)
            if self.alpha > 0:
                if self.template is None:
                    self.template = feats.copy()
                diff = feats - self.template
                self.template += self.alpha * (feats - self.template)
                feats = diff
        if self.rr:
            rr = self._rr_feats(prev, cur, nxt)
            if prev is not None:
                pre = (cur - prev) / self.rate          # seconds, whatever the feature set
                self.rr_hist.append(pre)
                self.long_rr = pre if self.long_rr is None else \
                    (1 - self.LONG_ALPHA) * self.long_rr + self.LONG_ALPHA * pre
            feats = None if feats is None else np.concatenate([feats, rr])
        if feats is not None and self.shape is not None:
            feats = np.concatenate([feats, self.shape.features(cur)])
        if feats is None:
            self.skipped += 1
            return None
        return {"beat_sample": cur, "t1": self.steps / self.step_hz, "features": feats}

    def _ready(self, final: bool) -> list[dict]:
        out = []
        start = 0 if self.last_decided is None else self.last_decided + 1
        for i in range(start, len(self.beats)):
            st = self._step_of(self.beats[i])
            nxt = self.beats[i + 1] if i + 1 < len(self.beats) else None
            if not final and (self.steps < st + self.post or (self.rr and nxt is None)):
                break
            d = self._decide(i, nxt)
            self.last_decided = i
            if d is not None:
                out.append(d)
        if self.last_decided is not None and self.last_decided > 2:
            k = self.last_decided - 1
            self.beats = self.beats[k:]
            self.last_decided -= k
        return out

    def feed(self, samples, spikes) -> list[dict]:
        t = spikes.shape[0]
        if t:
            idx = np.arange(self.steps, self.steps + t) % self.ring_len
            self.ring[idx] = spikes[:, self.r.neurons]
            self.steps += t
        x = np.asarray(samples, np.float64)
        x = x[:, self.channel] if x.ndim == 2 else x
        if self.shape is not None:
            self.shape.feed(x)
        self.beats.extend(int(b) for b in self.qrs.process(x))
        return self._ready(False)

    def flush(self) -> list[dict]:
        self.beats.extend(int(b) for b in self.qrs.flush())
        return self._ready(True)


def make_featurizer(r: AppReadout, rate: float, step_hz: float, live_utterance=None):
    """The featurizer of ``r``'s policy. ``live_utterance`` (utterance policy only): None or
    False decides once at :meth:`flush` (``eval``: one file, one utterance); True or a dict of
    options (:data:`UTTERANCE_LIVE_DEFAULTS`) finds the utterances in the stream
    (:class:`LiveUtteranceFeaturizer`)."""
    p = r.decision["policy"]
    if p == "window":
        return WindowFeaturizer(r, rate, step_hz)
    if p == "utterance":
        if live_utterance is None or live_utterance is False:
            return UtteranceFeaturizer(r, rate, step_hz)
        return LiveUtteranceFeaturizer(r, rate, step_hz,
                                       None if live_utterance is True else live_utterance)
    return BeatFeaturizer(r, rate, step_hz)


# ---------------------------------------------------------------------------- engines
class FloatRunner:
    """The float twin behind the engine's ``run_chunk`` interface (for float accuracy)."""

    backend = "float-twin"

    def __init__(self, program):
        from ..float_twin import FloatTwin
        if program.network is None:
            raise AppModelError("the model carries no network description for the float twin")
        self.twin = FloatTwin(program.network)

    def initial_state(self):
        self.twin.reset()
        return None

    def run_chunk(self, inp, state=None, out=None):
        spikes, _ = self.twin.run(inp)
        return spikes.view(np.uint8), state, None


def _emitted(out: list[dict], readout: AppReadout, classify: bool, stream_s: float,
             t_start: float) -> list[dict]:
    """Classify the decisions one block produced and stamp them: ``emitted_s``, the stream
    position (seconds of signal read) when they became available, and ``compute_s``, the wall
    time from the block's arrival (``t_start``) to the decision (encoder, engine,
    featurizer, readout)."""
    if not out:         # most blocks decide nothing
        return out
    for d in out:
        if classify:
            d["class_index"], d["scores"] = readout.classify(d["features"])
    now = time.perf_counter()
    for d in out:
        d["emitted_s"], d["compute_s"] = stream_s, now - t_start
    return out


def run_stream(program, url: str, readout: AppReadout, engine=None, block_s: float = 0.1,
               encoder=None, collect=None, max_seconds: float = 0.0) -> dict:
    """Run one recording through source -> encoder -> engine -> featurizer (-> readout when
    the model has weights). Returns ``{"decisions": [...], "labels": per-sample labels or None,
    "annotations": ..., "rate", "steps", "events", "wall_s"}``; each decision has its
    ``features``, ``emitted_s`` and ``compute_s`` (see :func:`_emitted`; the latency that
    ``spikeedge eval`` reports) and, with weights, ``class_index`` and ``scores``.
    ``max_seconds`` stops after that much signal (``n_samples`` says how much was read)."""
    from .. import Engine
    from ..sensors import app_encoders, open_source
    from ..sensors.presets import make_encoder
    del app_encoders  # imported to register the application encoder presets
    step_hz = 1.0 / program.dt
    src = open_source(url)
    src.open()
    try:
        src.block_size = max(1, int(round(block_s * src.rate)))
        enc = encoder or make_encoder(readout.encoder, src.rate, src.channels, step_hz)
        enc.reset()
        if enc.n_out != program.n_in:
            raise AppModelError(f"encoder {readout.encoder!r} gives {enc.n_out} inputs on "
                                f"{url} ({src.channels} channel(s) at {src.rate:g} Hz) but "
                                f"the model takes {program.n_in}")
        eng = engine if engine is not None else Engine(program)
        state = eng.initial_state()
        feat = make_featurizer(readout, src.rate, step_hz)
        decisions, labels = [], []
        n_in_spk = np.zeros(program.n_in, np.int64)
        n_spk = np.zeros(program.n_neurons, np.int64)
        steps = n_samples = 0
        limit = int(max_seconds * src.rate) if max_seconds else None
        classify = readout.w is not None
        t0 = time.perf_counter()
        for block in src:
            tb = time.perf_counter()
            x = block.samples
            if limit is not None:
                if n_samples >= limit:
                    break
                x = x[:limit - n_samples]
            n_samples += len(x)
            spk_in = enc.process(x)
            t = spk_in.shape[0]
            if t:
                spikes, state, _ = eng.run_chunk(spk_in, state)
                n_in_spk += spk_in.sum(0, dtype=np.int64)
                n_spk += spikes.sum(0, dtype=np.int64)
            else:
                spikes = np.zeros((0, program.n_neurons), np.uint8)
            steps += t
            if "labels" in block.info:
                labels.append(block.info["labels"][:len(x)])
            decisions.extend(_emitted(feat.feed(x, spikes), readout, classify,
                                      n_samples / src.rate, tb))
            if collect is not None:
                collect(block, spk_in, spikes)
        decisions.extend(_emitted(feat.flush(), readout, classify, n_samples / src.rate,
                                  time.perf_counter()))
        wall = time.perf_counter() - t0
        return {"decisions": decisions, "rate": src.rate,
                "labels": np.concatenate(labels) if labels else None,
                "annotations": getattr(src, "annotations", None), "steps": steps,
                "n_samples": n_samples,
                "events": synaptic_events(program, n_in_spk, n_spk), "wall_s": wall,
                "skipped_beats": getattr(feat, "skipped", 0)}
    finally:
        src.close()
