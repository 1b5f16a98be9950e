"""Network description in physical units: populations of current-based LIF neurons with
exponential current synapses, projections (dense, sparse CSR, recurrent) and one input group.

    tau_m dv/dt = (v_rest - v) + bias + sum_k I_k       tau_s[k] dI_k/dt = -I_k
    v > v_th  ->  spike; v = v_reset (reset="zero") or v -= v_th - v_reset (reset="subtract")
    a spike of a source adds w to I_channel of each target (one step later it moves v)

Nothing here is fixed point: ``spikeedge.quantize`` turns a Network into a Program.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .contract import MAX_CHANNELS, RESET_MODES
from .errors import NetworkError

INPUT = "input"
STDP_RULES = ("additive", "multiplicative")


def _positive(name, value, where, allow_inf=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise NetworkError(f"{where}: {name} must be a number, got {value!r}") from None
    if math.isnan(value) or value <= 0 or (math.isinf(value) and not allow_inf):
        raise NetworkError(f"{where}: {name} must be a positive finite number, got {value!r}")
    return value


def _finite(name, value, where):
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise NetworkError(f"{where}: {name} must be finite, got {value!r}")
    return arr


@dataclass
class Population:
    """A group of identical-parameter LIF neurons (bias and initial v may vary per neuron)."""

    name: str
    n: int
    tau_m: float = 20e-3
    tau_s: tuple = (5e-3,)
    v_th: float = 1.0
    v_reset: float = 0.0
    v_rest: float = 0.0
    bias: float | np.ndarray = 0.0
    t_ref: float = 0.0
    reset: str = "zero"
    v_init: float | np.ndarray | None = None
    theta_plus: float = 0.0      # homeostasis: threshold increase per spike (0 = off)
    tau_theta: float = math.inf  # homeostasis: decay time constant of the increase

    @property
    def adaptive(self) -> bool:
        return self.theta_plus != 0.0

    def validate(self, dt: float) -> None:
        where = f"population {self.name!r}"
        if not isinstance(self.name, str) or not self.name or self.name == INPUT:
            raise NetworkError(f"{where}: name must be a non-empty string other than {INPUT!r}")
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise NetworkError(f"{where}: n must be a positive integer, got {self.n!r}")
        self.n = int(self.n)
        self.tau_m = _positive("tau_m", self.tau_m, where)
        taus = self.tau_s if isinstance(self.tau_s, (tuple, list)) else (self.tau_s,)
        if not 1 <= len(taus) <= MAX_CHANNELS:
            raise NetworkError(f"{where}: tau_s needs 1 to {MAX_CHANNELS} time constants")
        self.tau_s = tuple(_positive("tau_s", t, where, allow_inf=True) for t in taus)
        for attr in ("v_th", "v_reset", "v_rest"):
            setattr(self, attr, float(_finite(attr, getattr(self, attr), where)))
        if self.v_th == self.v_rest and self.v_reset == self.v_rest:
            raise NetworkError(f"{where}: v_th and v_reset cannot both equal v_rest")
        if self.reset not in RESET_MODES:
            raise NetworkError(f"{where}: reset must be one of {RESET_MODES}, got {self.reset!r}")
        if self.reset == "subtract" and self.v_th <= self.v_reset:
            raise NetworkError(f"{where}: subtractive reset needs v_th > v_reset")
        t_ref = float(_finite("t_ref", self.t_ref, where))
        if t_ref < 0:
            raise NetworkError(f"{where}: t_ref must be >= 0, got {t_ref}")
        self.t_ref = t_ref
        self.theta_plus = float(_finite("theta_plus", self.theta_plus, where))
        if self.theta_plus < 0:
            raise NetworkError(f"{where}: theta_plus must be >= 0, got {self.theta_plus}")
        self.tau_theta = _positive("tau_theta", self.tau_theta, where, allow_inf=True)
        bias = _finite("bias", self.bias, where)
        if bias.ndim not in (0, 1) or (bias.ndim == 1 and bias.shape[0] != self.n):
            raise NetworkError(f"{where}: bias must be a scalar or have shape ({self.n},)")
        if self.v_init is not None:
            vi = _finite("v_init", self.v_init, where)
            if vi.ndim not in (0, 1) or (vi.ndim == 1 and vi.shape[0] != self.n):
                raise NetworkError(f"{where}: v_init must be a scalar or have shape ({self.n},)")

    def bias_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.bias, dtype=np.float64), (self.n,)).copy()

    def v_init_array(self) -> np.ndarray:
        v = self.v_rest if self.v_init is None else self.v_init
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (self.n,)).copy()


@dataclass
class STDP:
    """Pair-based STDP with exponential traces (all-to-all pairing), additive, weights clipped.

    On a presynaptic spike: x_pre += a_pre; w += x_post. On a postsynaptic spike:
    x_post += a_post; w += x_pre. a_pre > 0 potentiates pre-before-post; a_post < 0 depresses
    post-before-pre. Weights are kept in [w_min, w_max].

    ``rule="multiplicative"`` (soft bounds) scales each change by the room left:
    w += x_pre * (w_max - w) / (w_max - w_min) on a post spike and
    w += x_post * (w - w_min) / (w_max - w_min) on a pre spike."""

    tau_pre: float = 20e-3
    tau_post: float = 20e-3
    a_pre: float = 0.01
    a_post: float = -0.0105
    w_min: float = 0.0
    w_max: float = 1.0
    rule: str = "additive"

    def validate(self, where: str) -> None:
        if self.rule not in STDP_RULES:
            raise NetworkError(f"{where}: STDP rule must be one of {STDP_RULES}, "
                               f"got {self.rule!r}")
        self.tau_pre = _positive("tau_pre", self.tau_pre, where)
        self.tau_post = _positive("tau_post", self.tau_post, where)
        for attr in ("a_pre", "a_post", "w_min", "w_max"):
            setattr(self, attr, float(_finite(attr, getattr(self, attr), where)))
        if not self.w_min < self.w_max:
            raise NetworkError(f"{where}: STDP needs w_min < w_max ({self.w_min}, {self.w_max})")


@dataclass
class Projection:
    """Synapses from ``source`` (INPUT or a population) to ``target`` (a population).

    Dense: ``weights`` is [n_pre, n_post]. Sparse: ``weights`` holds the CSR values, with
    ``indptr`` [n_pre + 1] and ``indices`` (target neuron of each value). ``channel`` picks the
    target's synaptic time constant tau_s[channel]."""

    source: str
    target: str
    weights: np.ndarray
    channel: int = 0
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    stdp: STDP | None = None
    name: str = ""

    @property
    def sparse(self) -> bool:
        return self.indptr is not None

    def dense_weights(self, n_pre: int, n_post: int) -> np.ndarray:
        if not self.sparse:
            return np.asarray(self.weights, dtype=np.float64)
        w = np.zeros((n_pre, n_post))
        rows = np.repeat(np.arange(n_pre), np.diff(self.indptr))
        np.add.at(w, (rows, self.indices), self.weights)
        return w

    def validate(self, n_pre: int, n_post: int, n_channels: int) -> None:
        where = f"projection {self.name or self.source + '->' + self.target}"
        if not isinstance(self.channel, (int, np.integer)) or not 0 <= self.channel < n_channels:
            raise NetworkError(f"{where}: channel {self.channel!r} not in 0..{n_channels - 1} "
                               f"(target {self.target!r} has {n_channels} tau_s)")
        self.channel = int(self.channel)
        w = _finite("weights", self.weights, where)
        if self.sparse:
            ptr = np.asarray(self.indptr)
            idx = np.asarray(self.indices)
            if ptr.ndim != 1 or ptr.shape[0] != n_pre + 1 or \
                    not np.issubdtype(ptr.dtype, np.integer):
                raise NetworkError(f"{where}: indptr must be integers of shape ({n_pre + 1},)")
            if ptr[0] != 0 or np.any(np.diff(ptr) < 0):
                raise NetworkError(f"{where}: indptr must start at 0 and never decrease")
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or idx.shape[0] != ptr[-1]:
                raise NetworkError(f"{where}: indices must be {int(ptr[-1])} integers")
            if idx.size and (idx.min() < 0 or idx.max() >= n_post):
                raise NetworkError(f"{where}: indices must lie in 0..{n_post - 1}")
            if w.shape != idx.shape:
                raise NetworkError(f"{where}: sparse weights need shape {idx.shape}, got {w.shape}")
            if self.stdp is not None:
                raise NetworkError(f"{where}: STDP is supported on dense projections only")
            self.indptr = ptr.astype(np.int64)
            self.indices = idx.astype(np.int64)
        elif w.shape != (n_pre, n_post):
            raise NetworkError(f"{where}: dense weights need shape ({n_pre}, {n_post}), "
                               f"got {w.shape}")
        self.weights = w
        if self.stdp is not None:
            self.stdp.validate(where)


def lateral_inhibition(pop: Population, strength: float, channel: int = 0,
                       name: str = "") -> Projection:
    """Winner-take-all by lateral inhibition: every neuron of ``pop`` inhibits every other one
    by ``strength`` (in volts, > 0) one step after it spikes (a recurrent dense projection)."""
    if not strength > 0:
        raise NetworkError(f"lateral inhibition strength must be > 0, got {strength!r}")
    w = np.full((pop.n, pop.n), -float(strength))
    np.fill_diagonal(w, 0.0)
    return Projection(pop.name, pop.name, w, channel=channel,
                      name=name or f"{pop.name}-wta")


@dataclass
class Network:
    """Inputs, populations and projections, with the simulation time step ``dt`` (seconds)."""

    n_inputs: int
    populations: list = field(default_factory=list)
    projections: list = field(default_factory=list)
    dt: float = 1e-3
    name: str = "network"

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise NetworkError(f"no population named {name!r} "
                           f"(have: {', '.join(p.name for p in self.populations) or 'none'})")

    def size_of(self, name: str) -> int:
        return self.n_inputs if name == INPUT else self.population(name).n

    def validate(self) -> Network:
        self.dt = _positive("dt", self.dt, f"network {self.name!r}")
        if not isinstance(self.n_inputs, (int, np.integer)) or self.n_inputs < 0:
            raise NetworkError(f"network {self.name!r}: n_inputs must be an integer >= 0")
        self.n_inputs = int(self.n_inputs)
        if not self.populations:
            raise NetworkError(f"network {self.name!r}: needs at least one population")
        names = [p.name for p in self.populations]
        if len(set(names)) != len(names):
            raise NetworkError(f"network {self.name!r}: population names must be unique: {names}")
        for p in self.populations:
            p.validate(self.dt)
        for pr in self.projections:
            if pr.source != INPUT and pr.source not in names:
                raise NetworkError(f"projection source {pr.source!r} is neither {INPUT!r} nor a "
                                   f"population ({', '.join(names)})")
            if pr.target not in names:
                raise NetworkError(f"projection target {pr.target!r} is not a population "
                                   f"({', '.join(names)})")
            tgt = self.population(pr.target)
            pr.validate(self.size_of(pr.source), tgt.n, len(tgt.tau_s))
        return self
