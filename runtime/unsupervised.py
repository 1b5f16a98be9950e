"""Unsupervised learning on the fixed-point engine: a Diehl-and-Cook-style network.

Diehl and Cook (2015) learn MNIST digits without labels: Poisson input spike trains drive an
excitatory layer whose input synapses learn by STDP, each neuron's threshold rises with every
spike it fires (homeostasis), and lateral inhibition lets one neuron win each input. After
training, every neuron is labeled with the class it answers most on the training set, and an
input is classified as the class whose neurons fire most.

Here the same network runs on the fixed-point engine, with the kernel's own plasticity:

* input: one static "image" per sample (for spoken digits, the log band energies of the
  utterance on a band x time-bin grid, see :func:`utterance_image`), presented for
  ``present_s`` as Poisson spike trains with rate ``max_rate * intensity`` (D&C: 63.75 Hz);
  when the layer fires fewer than ``min_spikes`` the sample is shown again with ``boost_rate``
  more (D&C: +32 Hz);
* excitatory LIF population ``exc`` (``n_neurons``), input projection with additive (or
  multiplicative) pair-based STDP in the kernel, adaptive thresholds (``theta_plus``,
  ``tau_theta``), and winner-take-all lateral inhibition as a recurrent negative projection
  (``spikeedge.network.lateral_inhibition``) on its own synaptic channel;
* between samples the transient state (membranes, currents, refractory counters, STDP traces)
  is reset, as D&C's 150 ms rest does; learned weights and thresholds carry over;
* after every training presentation each neuron's input weights are renormalised to a fixed
  sum (D&C's weight normalisation; integer arithmetic on the engine's int16 weights, done by
  the host between samples, not by the kernel; ``norm=0`` switches it off);
* label assignment and evaluation run with learning off (``Engine.set_learning(False)``) and
  the thresholds frozen (restored before each sample).

The baseline is the same network and procedure with STDP switched off during training, so the
weights stay random; the thresholds and the normalisation still run. The difference between
the two is what STDP learned.

Adaptation (:func:`adapt`): a trained network keeps its labels and learns on a new person's
unlabeled first recordings through ``Engine.set_learning(True, rate)``, the switch the daemon
uses. Learned state is saved in the daemon's checkpoint format (``spikeedge.checkpoint``).

Command line: ``spikeedge unsupervised train|adapt|synthetic`` (see ``--help``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import wave
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .checkpoint import Checkpointer, CheckpointError, read_checkpoint, write_checkpoint
from .engine import Engine
from .errors import SpikeEdgeError
from .network import INPUT, STDP, Network, Population, Projection, lateral_inhibition
from .program import PJ_N_POST, PJ_N_PRE, PJ_W_OFF, PL_PROJ, PL_W_MAX, PL_W_MIN
from .quantize import quantize

__all__ = ["UnsupervisedError", "DCConfig", "DCNetwork", "utterance_image", "load_fsdd",
           "assign_labels", "predict", "run_experiment", "adapt", "synthetic_task"]

FORMAT = "spikeedge-unsupervised-1"


class UnsupervisedError(SpikeEdgeError, ValueError):
    """Bad configuration, data folder or model file for the unsupervised learner."""


@dataclass
class DCConfig:
    """Parameters of the network and of the presentation schedule (physical units: seconds,
    Hz, and membrane units where the threshold is 1)."""

    n_neurons: int = 100
    present_s: float = 0.35       # presentation time of one sample
    dt: float = 1e-3
    max_rate: float = 63.75       # Hz at intensity 1
    boost_rate: float = 32.0      # Hz added when the layer stays nearly silent
    min_spikes: int = 5
    max_boosts: int = 3
    tau_m: float = 0.1
    tau_exc: float = 0.005
    tau_inh: float = 0.005
    t_ref: float = 0.005
    theta_plus: float = 0.01      # threshold increase per spike (threshold = 1)
    tau_theta: float = 1e4
    w_max: float = 1.0
    w_init: float = 0.3           # initial weights uniform in [0, w_init * w_max]
    norm: float = 0.2             # mean input weight after normalisation (0 = off)
    a_pre: float = 0.01           # potentiation per pre trace unit, fraction of w_max
    a_post: float = -0.0001       # depression per post trace unit, fraction of w_max
    tau_pre: float = 0.02
    tau_post: float = 0.02
    rule: str = "additive"
    inhibition: float = 50.0      # lateral inhibition weight (membrane units)
    seed: int = 0

    def validate(self) -> DCConfig:
        def bad(name, why):
            raise UnsupervisedError(f"config: {name} {why}, got {getattr(self, name)!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "rule":
                if v not in ("additive", "multiplicative"):
                    bad("rule", "must be 'additive' or 'multiplicative'")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(f.name, "must be a finite number")
        for name in ("n_neurons", "min_spikes", "max_boosts", "seed"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                bad(name, "must be an integer >= 0")
            setattr(self, name, int(getattr(self, name)))
        if self.n_neurons < 1:
            bad("n_neurons", "must be >= 1")
        for name in ("present_s", "dt", "max_rate", "tau_m", "tau_exc", "tau_inh", "tau_theta",
                     "w_max", "tau_pre", "tau_post", "inhibition"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        for name in ("boost_rate", "t_ref", "theta_plus", "w_init", "norm", "a_pre"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if self.a_post > 0:
            bad("a_post", "must be <= 0 (depression)")
        if self.max_rate * self.dt > 1 or (self.max_rate + self.max_boosts * self.boost_rate) \
                * self.dt > 1:
            bad("max_rate", "times dt must stay <= 1 (one spike per step at most)")
        if self.norm > self.w_max:
            bad("norm", "must not exceed w_max")
        if self.present_s / self.dt > 100_000:
            bad("present_s", "must be at most 100,000 time steps")
        return self

    @property
    def steps(self) -> int:
        return max(1, int(round(self.present_s / self.dt)))

    @classmethod
    def from_dict(cls, d: dict) -> DCConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UnsupervisedError(f"config: unknown keys {sorted(unknown)}")
        return cls(**d).validate()


def build_network(n_in: int, cfg: DCConfig) -> Network:
    """Input -> ``exc`` with STDP, plus winner-take-all inhibition inside ``exc``."""
    rng = np.random.default_rng([cfg.seed, 7])
    exc = Population("exc", cfg.n_neurons, tau_m=cfg.tau_m, tau_s=(cfg.tau_exc, cfg.tau_inh),
                     v_th=1.0, v_reset=0.0, v_rest=0.0, t_ref=cfg.t_ref,
                     theta_plus=cfg.theta_plus, tau_theta=cfg.tau_theta)
    w0 = rng.uniform(0.0, cfg.w_init * cfg.w_max, size=(n_in, cfg.n_neurons))
    stdp = STDP(tau_pre=cfg.tau_pre, tau_post=cfg.tau_post, a_pre=cfg.a_pre * cfg.w_max,
                a_post=cfg.a_post * cfg.w_max, w_min=0.0, w_max=cfg.w_max, rule=cfg.rule)
    inp = Projection(INPUT, "exc", w0, channel=0, stdp=stdp, name="input-exc")
    wta = lateral_inhibition(exc, cfg.inhibition, channel=1)
    return Network(n_in, [exc], [inp, wta], dt=cfg.dt, name="diehl-cook").validate()


class DCNetwork:
    """The network on the engine, with its learned state (``state.w``, ``state.theta_a``)."""

    def __init__(self, n_in: int, cfg: DCConfig | None = None, backend: str = "auto"):
        if not isinstance(n_in, (int, np.integer)) or n_in < 1:
            raise UnsupervisedError(f"n_in must be a positive integer, got {n_in!r}")
        self.cfg = (cfg or DCConfig()).validate()
        self.n_in = int(n_in)
        self.program = quantize(build_network(self.n_in, self.cfg))
        self.engine = Engine(self.program, backend)
        self.state = self.program.initial_state()
        row = self.program.proj[int(self.program.plast[0, PL_PROJ])]
        off, n_pre, n_post = int(row[PJ_W_OFF]), int(row[PJ_N_PRE]), int(row[PJ_N_POST])
        self._w_slice = slice(off, off + n_pre * n_post)
        self._w_lo = int(self.program.plast[0, PL_W_MIN])
        self._w_hi = int(self.program.plast[0, PL_W_MAX])
        self._norm_q = int(round(self.cfg.norm / self.cfg.w_max * self._w_hi * self.n_in))
        self.assignments: np.ndarray | None = None
        self.presented = 0          # learning presentations done (resume point)
        self.boosts = 0             # presentations repeated with a higher rate

    # ------------------------------------------------------------------ state
    @property
    def w_in(self) -> np.ndarray:
        """The learned input weights, int16 [n_in, n_neurons] (a view into the state)."""
        return self.state.w[self._w_slice].reshape(self.n_in, self.cfg.n_neurons)

    def model_id(self) -> str:
        h = hashlib.sha256(json.dumps({"n_in": self.n_in, **asdict(self.cfg)},
                                      sort_keys=True).encode()).hexdigest()
        return f"dc-{h[:16]}"

    def _reset_transients(self) -> None:
        st = self.state
        st.v[:] = self.program.v_init
        st.i_syn[:] = 0
        st.ref[:] = 0
        st.x_pre[:] = 0
        st.x_post[:] = 0

    def normalize(self) -> None:
        """D&C weight normalisation: every neuron's input weights scaled to the same sum
        (integer, rounded half up, clipped to the STDP bounds)."""
        if self._norm_q <= 0:
            return
        W = self.w_in
        w64 = W.astype(np.int64)
        s = w64.sum(axis=0)
        ok = s > 0
        num = 2 * w64[:, ok] * self._norm_q + s[ok]
        W[:, ok] = np.clip(num // (2 * s[ok]), self._w_lo, self._w_hi).astype(np.int16)

    # ------------------------------------------------------------------ presentation
    def present(self, image: np.ndarray, rng: np.random.Generator, learn: bool,
                freeze_theta: bool) -> np.ndarray:
        """Show one image; returns the spike count of every neuron (int64 [n_neurons])."""
        cfg = self.cfg
        image = np.asarray(image, dtype=np.float64)
        theta0 = self.state.theta_a.copy() if freeze_theta else None
        self.engine.set_learning(enabled=learn)
        rate = cfg.max_rate
        counts = np.zeros(cfg.n_neurons, np.int64)
        for attempt in range(cfg.max_boosts + 1):
            p = np.clip(image * rate * cfg.dt, 0.0, 1.0)
            inp = (rng.random((cfg.steps, self.n_in)) < p).view(np.uint8)
            self._reset_transients()
            if theta0 is not None:
                self.state.theta_a[:] = theta0
            spikes, _, _ = self.engine.run_chunk(inp, self.state)
            counts = spikes.sum(axis=0, dtype=np.int64)
            if counts.sum() >= cfg.min_spikes:
                break
            if attempt < cfg.max_boosts:
                self.boosts += 1
                rate += cfg.boost_rate
        if theta0 is not None:
            self.state.theta_a[:] = theta0
        return counts

    def _order(self, n: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, 11, epoch]).permutation(n)

    def train(self, images: np.ndarray, epochs: int, stdp: bool = True,
              checkpointer: Checkpointer | None = None, checkpoint_every: int = 0,
              progress: bool = False, tag: int = 1) -> None:
        """Learning presentations ``self.presented`` .. ``epochs * len(images)`` in a fixed
        shuffled order (so a run resumed from a checkpoint continues exactly). ``stdp=False``
        runs the same schedule with plasticity off (the random-weights baseline).
        ``checkpoint_every`` > 0 saves the state every that many presentations."""
        images = _check_images(images, self.n_in)
        n = images.shape[0]
        total = int(epochs) * n
        bar = _bar(total, self.presented, progress, "train" if stdp else "baseline")
        order, order_epoch = None, -1
        while self.presented < total:
            epoch, i = divmod(self.presented, n)
            if epoch != order_epoch:
                order, order_epoch = self._order(n, epoch), epoch
            idx = int(order[i])
            rng = np.random.default_rng([self.cfg.seed, tag, epoch, idx])
            self.present(images[idx], rng, learn=stdp, freeze_theta=False)
            self.normalize()
            self.presented += 1
            if bar is not None:
                bar.update(1)
            if checkpointer is not None and checkpoint_every > 0 and \
                    self.presented % checkpoint_every == 0:
                self.save_checkpoint(checkpointer)
        if bar is not None:
            bar.close()

    def responses(self, images: np.ndarray, tag: int = 2, progress: bool = False) -> np.ndarray:
        """Spike counts [n_samples, n_neurons] with learning off and thresholds frozen."""
        images = _check_images(images, self.n_in)
        out = np.zeros((images.shape[0], self.cfg.n_neurons), np.int64)
        bar = _bar(images.shape[0], 0, progress, "respond")
        for i, img in enumerate(images):
            rng = np.random.default_rng([self.cfg.seed, tag, i])
            out[i] = self.present(img, rng, learn=False, freeze_theta=True)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return out

    def clone(self) -> DCNetwork:
        """An independent copy (own program, engine and state) with the same learned state."""
        other = DCNetwork(self.n_in, self.cfg, self.engine.backend)
        other.state = self.state.copy()
        other.assignments = None if self.assignments is None else self.assignments.copy()
        other.presented, other.boosts = self.presented, self.boosts
        return other

    # ------------------------------------------------------------------ persistence
    def save_checkpoint(self, checkpointer: Checkpointer) -> bool:
        return checkpointer.save(self.state, {"presented": int(self.presented),
                                              "boosts": int(self.boosts)})

    def restore(self, checkpointer: Checkpointer) -> str | None:
        """Load the newest intact checkpoint of this model into the state; returns its path
        (None when there is none). Raises UnsupervisedError when it does not fit."""
        got = checkpointer.load()
        if got is None:
            return None
        arrays, meta, which = got
        mine = self.state.arrays()
        for k, a in arrays.items():
            if k not in mine or mine[k].shape != a.shape or mine[k].dtype != a.dtype:
                raise UnsupervisedError(f"checkpoint {which}: array {k!r} does not fit this "
                                        "network")
        for k, a in arrays.items():
            np.copyto(mine[k], a)
        self.state.step = int(meta.get("step", 0))
        self.presented = int(meta.get("presented", 0))
        self.boosts = int(meta.get("boosts", 0))
        return which

    def save(self, path, extra: dict | None = None) -> None:
        """The trained model (learned state, labels, config) in the checkpoint format."""
        arrays = {"w": self.state.w, "theta_a": self.state.theta_a}
        if self.assignments is not None:
            arrays["assignments"] = self.assignments
        write_checkpoint(os.fspath(path), arrays,
                         {"model_id": self.model_id(), "format": FORMAT, "n_in": self.n_in,
                          "config": asdict(self.cfg), "presented": int(self.presented),
                          "step": int(self.state.step), **(extra or {})})

    @classmethod
    def load(cls, path, backend: str = "auto") -> tuple[DCNetwork, dict]:
        try:
            arrays, meta = read_checkpoint(os.fspath(path))
        except CheckpointError as exc:
            raise UnsupervisedError(str(exc)) from None
        if meta.get("format") != FORMAT:
            raise UnsupervisedError(f"{path}: not an unsupervised model file "
                                    f"(format {meta.get('format')!r}, want {FORMAT!r})")
        try:
            cfg = DCConfig.from_dict(dict(meta["config"]))
            net = cls(int(meta["n_in"]), cfg, backend)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsupervisedError(f"{path}: bad model header ({exc})") from None
        for k in ("w", "theta_a"):
            mine = getattr(net.state, k)
            a = arrays.get(k)
            if a is None or a.shape != mine.shape or a.dtype != mine.dtype:
                raise UnsupervisedError(f"{path}: array {k!r} missing or of the wrong shape")
            np.copyto(mine, a)
        a = arrays.get("assignments")
        if a is not None:
            if a.shape != (cfg.n_neurons,):
                raise UnsupervisedError(f"{path}: assignments have the wrong shape")
            net.assignments = a.astype(np.int64)
        net.presented = int(meta.get("presented", 0))
        return net, meta


def _check_images(images, n_in: int) -> np.ndarray:
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_in:
        raise UnsupervisedError(f"images must have shape [n, {n_in}], got {x.shape}")
    if not np.all(np.isfinite(x)) or (x.size and (x.min() < 0 or x.max() > 1)):
        raise UnsupervisedError("image intensities must be finite and in [0, 1]")
    return x


def _bar(total: int, done: int, on: bool, desc: str):
    if not on:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, desc=desc, file=sys.stderr, leave=False)


# ---------------------------------------------------------------------- labels
def assign_labels(counts: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each neuron gets the class with its highest mean response (-1 if it never fired)."""
    counts = np.asarray(counts, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    mean = np.zeros((n_classes, counts.shape[1]))
    for c in range(n_classes):
        sel = labels == c
        if sel.any():
            mean[c] = counts[sel].mean(axis=0)
    out = np.argmax(mean, axis=0).astype(np.int64)
    out[mean.sum(axis=0) == 0] = -1
    return out


def predict(counts: np.ndarray, assignments: np.ndarray, n_classes: int) -> np.ndarray:
    """Class whose assigned neurons fire most on average (-1 when nothing fired)."""
    counts = np.asarray(counts, dtype=np.float64)
    score = np.full((counts.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        sel = assignments == c
        if sel.any():
            score[:, c] = counts[:, sel].mean(axis=1)
    pred = np.argmax(score, axis=1).astype(np.int64)
    pred[counts.sum(axis=1) == 0] = -1
    return pred


# ---------------------------------------------------------------------- FSDD
def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise UnsupervisedError(f"{path}: need mono 16-bit PCM")
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
    except (wave.Error, EOFError, RuntimeError, OSError) as exc:
        raise UnsupervisedError(f"{path}: unreadable WAV ({exc})") from None
    return x, rate


def utterance_image(x: np.ndarray, rate: int = 8000, bands: int = 20, frames: int = 12,
                    dyn_db: float = 40.0) -> np.ndarray:
    """A spectro-temporal image of one utterance, intensities in [0, 1], [bands * frames]
    (band-major): ERB filterbank power every 10 ms (``spikeedge.sensors`` FftFilterbank), in
    dB; the frames within ``dyn_db`` of the loudest frame are the utterance, cut into
    ``frames`` equal time bins (mean dB per bin); 0 is ``dyn_db`` below the loudest cell."""
    from .sensors.encoders import FftFilterbank
    if rate not in (8000, 16000):
        raise UnsupervisedError(f"sample rate {rate} Hz: need 8000 or 16000")
    fb = FftFilterbank(rate, bands=bands, hop_hz=100)
    x = np.asarray(x, dtype=np.float64)
    if x.size < fb.hop * 2:
        raise UnsupervisedError(f"utterance of {x.size} samples is too short")
    db = 10 * np.log10(fb.process(x[:, None]) + 1e-10)          # [n_frames, bands]
    energy = 10 * np.log10(np.mean(10 ** (db / 10), axis=1) + 1e-12)
    if energy.max() < -90:
        raise UnsupervisedError("the recording is silent (peak band power below -90 dB)")
    keep = np.flatnonzero(energy >= energy.max() - dyn_db / 2)
    seg = db[keep[0]:keep[-1] + 1]
    edges = np.linspace(0, seg.shape[0], frames + 1)
    img = np.empty((bands, frames))
    for k in range(frames):
        a = int(np.floor(edges[k]))
        b = max(a + 1, int(np.ceil(edges[k + 1])))
        img[:, k] = seg[a:b].mean(axis=0)
    img = (img - (img.max() - dyn_db)) / dyn_db
    return np.clip(img, 0.0, 1.0).ravel()


def load_fsdd(folder, bands: int = 20, frames: int = 12) -> dict:
    """Every FSDD recording of ``folder`` as an image: {"images", "labels", "speakers",
    "index", "names"}."""
    import re
    folder = Path(folder)
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    if not folder.is_dir():
        raise UnsupervisedError(f"{folder}: not a folder")
    pat = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
    rows = []
    for p in sorted(folder.glob("*.wav")):
        m = pat.match(p.name)
        if m:
            rows.append((p, int(m.group(1)), m.group(2), int(m.group(3))))
    if not rows:
        raise UnsupervisedError(f"{folder}: no FSDD recordings (<digit>_<speaker>_<index>.wav)")
    images = np.zeros((len(rows), bands * frames))
    for i, (p, _, _, _) in enumerate(rows):
        x, rate = _read_wav(p)
        images[i] = utterance_image(x, rate, bands, frames)
    return {"images": images, "labels": np.array([r[1] for r in rows]),
            "speakers": np.array([r[2] for r in rows]), "index": np.array([r[3] for r in rows]),
            "names": [r[0].stem for r in rows]}


# ---------------------------------------------------------------------- experiments
def fit_and_score(cfg: DCConfig, x_train, y_train, x_test, y_test, epochs: int, stdp: bool,
                  n_classes: int, backend: str = "auto", progress: bool = False,
                  checkpoint: str | None = None, checkpoint_every: int = 0):
    """Train (or not, ``stdp=False``), assign labels on the training set, score the test set.
    Returns (network, result dict)."""
    net = DCNetwork(x_train.shape[1], cfg, backend)
    ck = None
    if checkpoint:
        ck = Checkpointer(checkpoint, net.model_id() + ("" if stdp else "-baseline"))
        net.restore(ck)
    t0 = time.perf_counter()
    net.train(x_train, epochs, stdp=stdp, checkpointer=ck, checkpoint_every=checkpoint_every,
              progress=progress)
    t_train = time.perf_counter() - t0
    r_train = net.responses(x_train, tag=2, progress=progress)
    net.assignments = assign_labels(r_train, y_train, n_classes)
    r_test = net.responses(x_test, tag=3, progress=progress)
    pred = predict(r_test, net.assignments, n_classes)
    acc_train = float(np.mean(predict(r_train, net.assignments, n_classes) == y_train))
    res = {"accuracy": float(np.mean(pred == y_test)), "train_accuracy": acc_train,
           "n_train": int(len(y_train)), "n_test": int(len(y_test)),
           "classes_covered": int(len(set(net.assignments[net.assignments >= 0].tolist()))),
           "silent_neurons": int(np.sum(net.assignments < 0)),
           "boosts": int(net.boosts), "train_seconds": round(t_train, 1),
           "mean_spikes_test": float(r_test.sum(axis=1).mean())}
    return net, res


def adapt(net: DCNetwork, x_adapt, x_eval, y_eval, n_classes: int, rate: float,
          epochs: int = 1, tag: int = 5) -> dict:
    """Accuracy on ``x_eval`` before and after unlabeled STDP on ``x_adapt`` (labels kept)."""
    if net.assignments is None:
        raise UnsupervisedError("adapt needs a network with label assignments")
    before = predict(net.responses(x_eval, tag=tag), net.assignments, n_classes)
    net.engine.set_learning(rate=rate)
    x_adapt = _check_images(x_adapt, net.n_in)
    n = x_adapt.shape[0]
    w0 = net.w_in.copy()
    for epoch in range(int(epochs)):
        for i in range(n):              # in recording order, as a live stream would
            rng = np.random.default_rng([net.cfg.seed, tag + 1, epoch, int(i)])
            net.present(x_adapt[i], rng, learn=True, freeze_theta=False)
            net.normalize()
    net.engine.set_learning(enabled=False, rate=1.0)
    changed = float(np.mean(np.abs(net.w_in.astype(np.int64) - w0)) / max(1, net._w_hi))
    after = predict(net.responses(x_eval, tag=tag), net.assignments, n_classes)
    y_eval = np.asarray(y_eval)
    return {"before": float(np.mean(before == y_eval)), "after": float(np.mean(after == y_eval)),
            "n_adapt": int(n), "n_eval": int(len(y_eval)), "rate": float(rate),
            "mean_abs_weight_change": changed}


def synthetic_task(n_classes: int = 8, side: int = 8, per_class: int = 30, noise: float = 0.3,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping bar patterns on a side x side grid: class c lights two bars (one row band
    and one column band chosen per class), with per-sample jitter and background noise."""
    rng = np.random.default_rng([seed, 99])
    protos = []
    for c in range(n_classes):
        g = np.zeros((side, side))
        r, k = divmod(c, 2)
        g[(2 * c) % side:(2 * c) % side + 2, :] = 1.0
        g[:, (3 * c + r + k) % side] = 1.0
        protos.append(g.ravel())
    protos = np.array(protos)
    x, y = [], []
    for c in range(n_classes):
        for _ in range(per_class):
            img = protos[c] * rng.uniform(0.6, 1.0, protos.shape[1])
            img = img + noise * rng.random(protos.shape[1])
            x.append(np.clip(img, 0, 1))
            y.append(c)
    perm = rng.permutation(len(y))
    return np.array(x)[perm], np.array(y)[perm]


def _split(data: dict, protocol: str, speaker: str | None = None):
    idx = data["index"]
    if protocol == "split":
        test = idx < 5
    elif protocol == "speaker":
        if speaker not in set(data["speakers"].tolist()):
            raise UnsupervisedError(f"no speaker {speaker!r} in the data "
                                    f"(have {sorted(set(data['speakers'].tolist()))})")
        test = data["speakers"] == speaker
    else:
        raise UnsupervisedError(f"protocol must be 'split' or 'speaker', got {protocol!r}")
    return ~test, test


def _check_schedule(epochs, adapt_fraction: float = 0.5) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise UnsupervisedError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not 0 < adapt_fraction < 1:
        raise UnsupervisedError(f"the adaptation share must be in (0, 1), got {adapt_fraction}")


def run_experiment(data: dict, cfg: DCConfig, epochs: int, protocol: str = "split",
                   speakers=None, baseline: bool = True, backend: str = "auto",
                   progress: bool = False, adapt_rates=None,
                   adapt_fraction: float = 0.5, adapt_epochs: int = 1,
                   save: str | None = None) -> dict:
    """FSDD: train + label + score (and the random-weights baseline) under ``protocol``;
    with ``adapt_rates`` also the before/after adaptation on each held-out speaker, once per
    rate, each from the same trained network (rate 0: thresholds adapt, weights do not)."""
    _check_schedule(epochs, adapt_fraction)
    folds = [None] if protocol == "split" else \
        (speakers or sorted(set(data["speakers"].tolist())))
    out = {"protocol": protocol, "config": asdict(cfg), "epochs": epochs, "folds": []}
    for spk in folds:
        tr, te = _split(data, protocol, spk)
        fold = {"held_out": spk or "recordings 0-4"}
        x_tr, y_tr = data["images"][tr], data["labels"][tr]
        if adapt_rates and spk is not None:
            # the held-out speaker's first recordings adapt (no labels); the rest evaluate
            order = np.lexsort((data["labels"][te], data["index"][te]))
            te_idx = np.flatnonzero(te)[order]
            n_ad = int(round(adapt_fraction * te_idx.size))
            ad_idx, ev_idx = te_idx[:n_ad], te_idx[n_ad:]
        else:
            ad_idx, ev_idx = None, np.flatnonzero(te)
        net, fold["stdp"] = fit_and_score(cfg, x_tr, y_tr, data["images"][ev_idx],
                                          data["labels"][ev_idx], epochs, True, 10, backend,
                                          progress)
        if baseline:
            _, fold["baseline"] = fit_and_score(cfg, x_tr, y_tr, data["images"][ev_idx],
                                                data["labels"][ev_idx], epochs, False, 10,
                                                backend, progress)
        if ad_idx is not None:
            fold["adapt"] = [adapt(net.clone(), data["images"][ad_idx], data["images"][ev_idx],
                                   data["labels"][ev_idx], 10, float(r), adapt_epochs)
                             for r in adapt_rates]
        if save and spk is None:
            net.save(save, {"protocol": protocol})
        out["folds"].append(fold)
        print(json.dumps(fold), file=sys.stderr, flush=True)
    accs = [f["stdp"]["accuracy"] for f in out["folds"]]
    out["accuracy_mean"] = float(np.mean(accs))
    if baseline:
        out["baseline_mean"] = float(np.mean([f["baseline"]["accuracy"] for f in out["folds"]]))
    if any("adapt" in f for f in out["folds"]):
        out["adapt_mean"] = [
            {"rate": float(r),
             "before": float(np.mean([f["adapt"][k]["before"] for f in out["folds"]])),
             "after": float(np.mean([f["adapt"][k]["after"] for f in out["folds"]]))}
            for k, r in enumerate(adapt_rates)]
    return out


# ---------------------------------------------------------------------- CLI
def _cfg_from_args(args) -> DCConfig:
    d = {}
    for kv in args.set or []:
        if "=" not in kv:
            raise UnsupervisedError(f"--set wants NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            d[k] = v if k == "rule" else (int(v) if v.lstrip("-").isdigit() else float(v))
        except ValueError:
            raise UnsupervisedError(f"--set {k}: {v!r} is not a number") from None
    d.setdefault("n_neurons", args.neurons)
    d.setdefault("seed", args.seed)
    return DCConfig.from_dict(d)


def cmd_train(args) -> int:
    cfg = _cfg_from_args(args)
    _check_schedule(args.epochs)
    data = load_fsdd(args.data, args.bands, args.frames)
    res = run_experiment(data, cfg, args.epochs, args.protocol, args.speaker or None,
                         baseline=not args.no_baseline, backend=args.backend,
                         progress=args.progress, save=args.save)
    res["encoding"] = {"bands": args.bands, "frames": args.frames}
    print(json.dumps(res, indent=1) if args.json else _summary(res))
    return 0


def cmd_adapt(args) -> int:
    cfg = _cfg_from_args(args)
    _check_schedule(args.epochs, args.fraction)
    data = load_fsdd(args.data, args.bands, args.frames)
    res = run_experiment(data, cfg, args.epochs, "speaker", args.speaker or None,
                         baseline=not args.no_baseline, backend=args.backend,
                         progress=args.progress, adapt_rates=args.rate or [0.5],
                         adapt_fraction=args.fraction, adapt_epochs=args.adapt_epochs)
    res["encoding"] = {"bands": args.bands, "frames": args.frames}
    print(json.dumps(res, indent=1) if args.json else _summary(res))
    return 0


def cmd_synthetic(args) -> int:
    if not any(kv.startswith("present_s=") for kv in args.set or []):
        args.set = [*(args.set or []), "present_s=0.1"]   # the tests' setting
    cfg = _cfg_from_args(args)
    x, y = synthetic_task(seed=args.seed)
    h = len(y) // 2
    nc = int(y.max()) + 1
    _, a = fit_and_score(cfg, x[:h], y[:h], x[h:], y[h:], args.epochs, True, nc, args.backend)
    _, b = fit_and_score(cfg, x[:h], y[:h], x[h:], y[h:], args.epochs, False, nc, args.backend)
    print(json.dumps({"stdp": a, "baseline": b}, indent=1))
    return 0


def _summary_line(name: str, stdp: float, baseline: float | None, adapt: list) -> str:
    s = f"  {name}: STDP {stdp:.3f}"
    if baseline is not None:
        s += f", random weights {baseline:.3f}"
    for a in adapt:
        s += f", adapt(rate {a['rate']:g}) {a['before']:.3f} -> {a['after']:.3f}"
    return s


def _summary(res: dict) -> str:
    lines = [f"protocol {res['protocol']}, {res['config']['n_neurons']} neurons, "
             f"{res['epochs']} epochs"]
    for f in res["folds"]:
        lines.append(_summary_line(f["held_out"], f["stdp"]["accuracy"],
                                   f["baseline"]["accuracy"] if "baseline" in f else None,
                                   f.get("adapt", [])))
    lines.append(_summary_line("mean", res["accuracy_mean"], res.get("baseline_mean"),
                               res.get("adapt_mean", [])))
    return "\n".join(lines)


def _common(p) -> None:
    p.add_argument("--data", required=True, help="FSDD folder (holding recordings/)")
    p.add_argument("--neurons", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bands", type=int, default=20)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a DCConfig field (repeatable), e.g. --set theta_plus=0.1")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the random-weights baseline")
    p.add_argument("--backend", default="auto", choices=["auto", "compiled", "reference"])
    p.add_argument("--progress", action="store_true", help="progress bars (tqdm)")
    p.add_argument("--json", action="store_true")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "unsupervised", help="Diehl-and-Cook unsupervised STDP learning (FSDD) and adaptation",
        description="Unsupervised STDP on the fixed-point engine: train, label by activity, "
                    "score against a random-weights baseline; adapt to a held-out speaker.")
    _add_commands(p.add_subparsers(dest="unsup_cmd", required=True))


def _add_commands(sub) -> None:
    t = sub.add_parser("train", help="train and score (dataset split or leave one speaker out)")
    _common(t)
    t.add_argument("--protocol", choices=["split", "speaker"], default="split",
                   help="split: recordings 0-4 are the test set; speaker: leave one out")
    t.add_argument("--speaker", action="append", help="only these held-out speakers")
    t.add_argument("--save", default=None, help="write the trained model (split protocol)")
    t.set_defaults(func=cmd_train)
    a = sub.add_parser("adapt", help="leave one speaker out: accuracy before/after unlabeled "
                                     "STDP on the speaker's first recordings")
    _common(a)
    a.add_argument("--speaker", action="append", help="only these held-out speakers")
    a.add_argument("--rate", type=float, action="append",
                   help="learning rate during adaptation (repeatable; default 0.5); 0 is the "
                        "control where only the thresholds adapt")
    a.add_argument("--fraction", type=float, default=0.5,
                   help="share of the speaker's recordings (lowest indices) used to adapt")
    a.add_argument("--adapt-epochs", type=int, default=1)
    a.set_defaults(func=cmd_adapt)
    s = sub.add_parser("synthetic", help="the small synthetic task of the tests")
    s.add_argument("--neurons", type=int, default=30)
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", action="append", metavar="NAME=VALUE")
    s.add_argument("--backend", default="auto", choices=["auto", "compiled", "reference"])
    s.set_defaults(func=cmd_synthetic)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spikeedge.unsupervised")
    _add_commands(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except SpikeEdgeError as exc:
        print(f"spikeedge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
