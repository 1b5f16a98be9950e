"""The prepared fixed-point program (flat integer parameter arrays, what the kernels read) and
the explicit engine state. Field meanings are in ``spikeedge.contract.TABLE``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# columns of the projection descriptor table (int32 [P, PJ_NCOL])
PJ_KIND, PJ_SRC_GROUP, PJ_N_PRE, PJ_TGT_START, PJ_N_POST, PJ_CHANNEL, PJ_SHIFT, PJ_W_OFF, \
    PJ_PTR_OFF, PJ_PLAST, PJ_IDX_OFF = range(11)
PJ_NCOL = 11
KIND_DENSE, KIND_CSR = 0, 1
# columns of the plasticity descriptor table (int32 [L, PL_NCOL])
PL_PROJ, PL_XPRE_OFF, PL_XPOST_OFF, PL_A_PRE, PL_A_POST, PL_ALPHA_PRE, PL_ALPHA_POST, \
    PL_W_MIN, PL_W_MAX, PL_RULE = range(10)
PL_NCOL = 10
RULE_ADDITIVE, RULE_MULTIPLICATIVE = 0, 1

#: integer arrays of a Program, with their dtypes (model files store exactly these)
PROGRAM_ARRAYS = {
    "alpha_m": np.int32, "alpha_s": np.int32, "beta": np.int32, "bias": np.int32,
    "theta": np.int32, "v_reset": np.int32, "reset_sub": np.uint8, "ref_steps": np.int32,
    "v_init": np.int32, "theta_plus": np.int32, "alpha_theta": np.int32,
    "proj": np.int32, "weights": np.int16, "csr_ptr": np.int32,
    "csr_idx": np.int32, "plast": np.int32, "pop_start": np.int32, "pop_n": np.int32,
}


@dataclass
class Program:
    """Everything the kernels need, converted once. Source groups: group 0 is the input,
    group g >= 1 is population g-1 (neurons pop_start[g-1] .. + pop_n[g-1])."""

    dt: float
    n_in: int
    pop_names: list
    scales: np.ndarray          # float64 [n_pops]: integer units per volt (per unit of v)
    v_rest: np.ndarray          # float64 [n_pops]
    alpha_m: np.ndarray
    alpha_s: np.ndarray
    beta: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    v_reset: np.ndarray
    reset_sub: np.ndarray
    ref_steps: np.ndarray
    v_init: np.ndarray
    theta_plus: np.ndarray
    alpha_theta: np.ndarray
    proj: np.ndarray
    weights: np.ndarray
    csr_ptr: np.ndarray
    csr_idx: np.ndarray
    plast: np.ndarray
    pop_start: np.ndarray
    pop_n: np.ndarray
    proj_names: list = field(default_factory=list)
    network: object = None      # the physical Network it came from (for twins and reports)
    report: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)   # named numeric arrays saved with the model

    @property
    def n_neurons(self) -> int:
        return int(self.alpha_m.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.alpha_s.shape[0])

    @property
    def plastic(self) -> bool:
        return self.plast.shape[0] > 0

    @property
    def adaptive(self) -> bool:
        """True when some neuron has homeostasis (an adaptive threshold)."""
        return bool(np.any(self.theta_plus != 0))

    def pop_slice(self, name: str) -> slice:
        g = self.pop_names.index(name)
        s = int(self.pop_start[g])
        return slice(s, s + int(self.pop_n[g]))

    def trace_sizes(self) -> tuple[int, int]:
        if not self.plastic:
            return 0, 0
        n_pre = n_post = 0
        for row in self.plast:
            p = self.proj[row[PL_PROJ]]
            n_pre += int(p[PJ_N_PRE])
            n_post += int(p[PJ_N_POST])
        return n_pre, n_post

    def initial_state(self) -> State:
        n_pre, n_post = self.trace_sizes()
        return State(
            v=self.v_init.copy(),
            i_syn=np.zeros((self.n_channels, self.n_neurons), np.int32),
            ref=np.zeros(self.n_neurons, np.int32),
            x_pre=np.zeros(n_pre, np.int32),
            x_post=np.zeros(n_post, np.int32),
            w=self.weights.copy() if self.plastic else None,
            theta_a=np.zeros(self.n_neurons, np.int32),
        )


@dataclass
class State:
    """Explicit engine state. ``run_chunk`` updates it in place and returns it; ``copy()`` makes
    an independent snapshot. ``w`` holds the learned weights when the program is plastic."""

    v: np.ndarray
    i_syn: np.ndarray
    ref: np.ndarray
    x_pre: np.ndarray
    x_post: np.ndarray
    w: np.ndarray | None = None
    theta_a: np.ndarray | None = None
    step: int = 0

    def copy(self) -> State:
        return State(self.v.copy(), self.i_syn.copy(), self.ref.copy(), self.x_pre.copy(),
                     self.x_post.copy(), None if self.w is None else self.w.copy(),
                     None if self.theta_a is None else self.theta_a.copy(), self.step)

    def arrays(self) -> dict:
        out = {"v": self.v, "i_syn": self.i_syn, "ref": self.ref, "x_pre": self.x_pre,
               "x_post": self.x_post, "theta_a": self.theta_a}
        if self.w is not None:
            out["w"] = self.w
        return out

    def equals(self, other: State) -> bool:
        a, b = self.arrays(), other.arrays()
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
