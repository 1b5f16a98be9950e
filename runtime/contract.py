"""The fixed-point contract, written once.

Every state variable and parameter of the fixed-point LIF engine is listed in ``TABLE`` with its
storage type, the bits it uses, its fixed-point format, its rounding rule and its overflow rule.
The quantizer, the model-file reader/writer, the golden reference, the compiled kernels and the
documentation (``docs/fixed_point.md``, checked against this table by a test) all read it.

Units. Each population p has one scale ``S_p`` (integer units per physical unit of membrane
voltage): ``u = (v - v_rest) * S_p``. The synaptic currents of p, the weights of projections that
target p, its threshold, reset and bias are all expressed in those same units, because the model

    tau_m dv/dt = (v_rest - v) + bias + sum_k I_k        tau_s[k] dI_k/dt = -I_k

measures currents in volts. ``S_p = 2**V_FRAC_BITS / max(|v_th - v_rest|, |v_reset - v_rest|)`` so
the larger of threshold and reset sits at 2**20 and int32 leaves 2**11 of headroom.

One step (the order is part of the contract; it is Brian2's schedule: update, threshold,
propagate, reset):

1. refractory counter: ``if ref > 0: ref -= 1``; the neuron integrates only when ``ref == 0``;
2. membrane (exact integration of the linear system, from the currents before this step's decay):
   ``u = sat32(((u*A_m + sum_k I_k*B_k + 2**23) >> 24) + bias_q)`` when integrating;
3. currents: ``I_k = sat32((I_k*A_k + 2**23) >> 24)`` (always, refractory or not); the
   homeostatic threshold increase decays too: ``theta_a = sat32((theta_a*A_theta + 2**23) >> 24)``;
4. spike test: ``spike = (ref == 0) and (u > sat32(theta_q + theta_a))`` (strict ``>``);
5. reset: to zero mode ``u = reset_q``; subtract mode ``u = sat32(u - (theta_q - reset_q))``;
   then ``ref = ref_steps`` and ``theta_a = sat32(theta_a + theta_plus_q)``;
6. propagation: every input spike of this step and every spike of step 5 adds its weight row,
   ``w_q * 2**shift``, to an int64 accumulator; after all rows, ``I_k = sat32(I_k + acc_k)``. So a
   spike at step t changes currents at the end of step t and membranes from step t+1 on: a
   one-step delay per layer. Summing exactly before saturating makes the result independent of
   the order spikes are processed in;
7. plasticity (pair-based STDP with traces, dense projections): traces are held with 8
   fractional bits below a weight unit and decay ``x = (x*A_x + 2**23) >> 24``; for every
   presynaptic spike ``x_pre += a_pre_q`` and its row ``w = clip(w + ((x_post + 2**7) >> 8),
   wmin_q, wmax_q)``; then for every postsynaptic spike ``x_post += a_post_q`` and its column
   ``w = clip(w + ((x_pre + 2**7) >> 8), wmin_q, wmax_q)``. Propagation in step 6 used the
   weights from before this step's updates (Brian2's on_pre order). The multiplicative rule
   adds ``rdiv(x_post * (w - wmin_q), R * 2**8)`` and ``rdiv(x_pre * (wmax_q - w), R * 2**8)``
   instead, with ``R = wmax_q - wmin_q`` and ``rdiv(a, r) = floor((2a + r) / (2r))`` (a / r
   rounded half up). Learning can be switched off (step 7 skipped) or its rate scaled
   (``a_pre_q``, ``a_post_q`` re-rounded from their base values) between chunks.

``>>`` is an arithmetic shift (floor division by a power of two): with the added ``2**23`` the
products are rounded half up (towards +inf). Decay constants come from the exact exponential,
``A = round(exp(-dt/tau) * 2**24)``, and ``B_k = round(tau_k/(tau_k - tau_m) * (exp(-dt/tau_k) -
exp(-dt/tau_m)) * 2**24)`` (``dt/tau_m * exp(-dt/tau_m)`` when tau_k == tau_m): the fixed-point
step is the exactly integrated float step with constants rounded to 24 fractional bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONTRACT_VERSION = 1  # pre-release: the format is not frozen yet

#: fractional bits of decay and coupling constants (Q0.24 held in int32)
DECAY_FRAC_BITS = 24
DECAY_ONE = 1 << DECAY_FRAC_BITS
DECAY_HALF = 1 << (DECAY_FRAC_BITS - 1)
#: the larger of |threshold| and |reset| (relative to rest) is placed at 2**V_FRAC_BITS
V_FRAC_BITS = 20
#: weights are stored in int16; a projection may use fewer bits (weight_bits <= 16)
W_BITS_MAX = 16
#: a weight's contribution is w_q * 2**shift; shift is at most this (keeps products < 2**47)
W_SHIFT_MAX = 31
#: STDP traces carry this many fractional bits below the weight's integer unit, so that a
#: decaying trace does not get stuck at a few weight units (rounding dead zone)
TRACE_FRAC_BITS = 8
TRACE_HALF = 1 << (TRACE_FRAC_BITS - 1)
#: at most this many synapse channels (time constants) per population
MAX_CHANNELS = 4
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1
#: largest refractory counter
REF_MAX = (1 << 15) - 1

SPIKE_TEST = ">"          # u > theta_q
RESET_MODES = ("zero", "subtract")
LAYER_DELAY_STEPS = 1


@dataclass(frozen=True)
class Field:
    """One row of the contract table."""

    name: str
    kind: str            # "parameter", "state" or "simulation"
    storage: str         # numpy dtype name
    bits: int            # bits used of the storage
    fmt: str             # fixed-point format / units
    rounding: str
    overflow: str        # "saturate", "wrap", "clip" or "none (cannot overflow)"
    shape: str
    doc: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.storage)


_RH = "round half up: (x*c + 2**23) >> 24"
_RQ = "round to nearest (numpy.rint, ties to even) at quantization"

TABLE: tuple[Field, ...] = (
    # ---- parameters (model file) -----------------------------------------------------------
    Field("alpha_m", "parameter", "int32", 25, "Q0.24, 0..2**24", _RQ, "none (checked at load)",
          "[N]", "membrane decay exp(-dt/tau_m)"),
    Field("alpha_s", "parameter", "int32", 25, "Q0.24, 0..2**24", _RQ, "none (checked at load)",
          "[K, N]", "synaptic current decay exp(-dt/tau_s[k]) per channel"),
    Field("beta", "parameter", "int32", 25, "Q0.24, 0..2**24", _RQ, "none (checked at load)",
          "[K, N]", "coupling of current k into the membrane over one exactly integrated step"),
    Field("bias", "parameter", "int32", 32, "state units per step", _RQ, "saturate at load",
          "[N]", "bias * (1 - exp(-dt/tau_m)) * S: constant drive added each integrating step"),
    Field("theta", "parameter", "int32", 32, "state units (u = (v - v_rest) * S)", _RQ,
          "saturate at load", "[N]", "spike threshold; spike when u > theta"),
    Field("v_reset", "parameter", "int32", 32, "state units", _RQ, "saturate at load", "[N]",
          "reset potential (zero mode) or theta - v_reset is subtracted (subtract mode)"),
    Field("reset_sub", "parameter", "uint8", 1, "flag", "none", "none", "[N]",
          "0: reset to v_reset; 1: reset by subtraction of theta - v_reset"),
    Field("ref_steps", "parameter", "int32", 15, "steps", "round(t_ref / dt)",
          "refused above 32767", "[N]",
          "refractory counter value set at a spike; the neuron is held for ref_steps-1 steps"),
    Field("theta_plus", "parameter", "int32", 32, "state units", _RQ, "saturate at load", "[N]",
          "homeostasis: adaptive-threshold increase per spike (0: no homeostasis)"),
    Field("alpha_theta", "parameter", "int32", 25, "Q0.24", _RQ, "none (checked at load)",
          "[N]", "homeostasis: decay exp(-dt/tau_theta) of the threshold increase"),
    Field("weights", "parameter", "int16", 16, "signed int, contribution w * 2**shift",
          _RQ, "saturate at quantization (counted)", "[flat]",
          "all projection weights, dense row-major [pre, post] or CSR values, concatenated"),
    Field("shift", "parameter", "int32", 5, "exponent 0..31", "none", "refused outside range",
          "[P]", "per projection: weight scale exponent"),
    Field("a_pre", "parameter", "int32", 32, "weight units * 2**8", _RQ, "saturate at load",
          "[L]", "STDP: presynaptic trace increment"),
    Field("a_post", "parameter", "int32", 32, "weight units * 2**8", _RQ, "saturate at load",
          "[L]", "STDP: postsynaptic trace increment (negative for depression)"),
    Field("alpha_pre", "parameter", "int32", 25, "Q0.24", _RQ, "none", "[L]",
          "STDP: presynaptic trace decay exp(-dt/tau_pre)"),
    Field("alpha_post", "parameter", "int32", 25, "Q0.24", _RQ, "none", "[L]",
          "STDP: postsynaptic trace decay exp(-dt/tau_post)"),
    Field("w_min", "parameter", "int32", 16, "weight units", _RQ, "none", "[L]",
          "STDP: lower weight bound"),
    Field("w_max", "parameter", "int32", 16, "weight units", _RQ, "none", "[L]",
          "STDP: upper weight bound"),
    Field("rule", "parameter", "int32", 1, "0 additive, 1 multiplicative", "none", "none",
          "[L]", "STDP: multiplicative scales a change by the room left, rounded half up"),
    # ---- state (reset or snapshotted separately) ------------------------------------------
    Field("v", "state", "int32", 32, "state units", _RH, "saturate", "[N]",
          "membrane potential relative to rest"),
    Field("i_syn", "state", "int32", 32, "state units", _RH, "saturate", "[K, N]",
          "synaptic currents, one row per channel"),
    Field("ref", "state", "int32", 15, "steps", "none", "none (counts down to 0)", "[N]",
          "refractory counter"),
    Field("theta_a", "state", "int32", 32, "state units", _RH, "saturate", "[N]",
          "homeostasis: current threshold increase; the spike test uses theta + theta_a"),
    Field("acc", "state", "int64", 64, "state units", "none (exact sum)",
          "none (|w*2**shift| < 2**47, fewer than 2**16 rows per step)", "[K, N]",
          "scratch: one step's summed synaptic input, folded into i_syn with saturation"),
    Field("x_pre", "state", "int32", 32, "weight units * 2**8", _RH, "saturate",
          "[sum n_pre]", "STDP presynaptic traces (8 fractional bits below a weight unit)"),
    Field("x_post", "state", "int32", 32, "weight units * 2**8", _RH, "saturate",
          "[sum n_post]", "STDP postsynaptic traces (8 fractional bits below a weight unit)"),
    Field("w_plastic", "state", "int16", 16, "weight units", "none", "clip to [w_min, w_max]",
          "[flat]", "learned weights (a copy of `weights` that STDP updates)"),
    # ---- simulation parameters -------------------------------------------------------------
    Field("dt", "simulation", "float64", 64, "seconds", "none", "none", "scalar",
          "time step; all decay constants depend on it"),
)

FIELDS = {f.name: f for f in TABLE}


def decay_constant(dt: float, tau: float) -> int:
    """Q0.24 value of exp(-dt/tau); tau = inf gives exactly 1.0 (no decay)."""
    if tau <= 0 or dt <= 0 or math.isnan(tau):
        raise ValueError(f"time constants and dt must be positive (dt={dt}, tau={tau})")
    return int(np.rint(math.exp(-dt / tau) * DECAY_ONE))


def coupling_exact(dt: float, tau_m: float, tau_s: float) -> float:
    """Float coupling of a current with time constant tau_s into the membrane over one step."""
    am = math.exp(-dt / tau_m)
    if math.isinf(tau_s):
        return 1.0 - am
    a_s = math.exp(-dt / tau_s)
    if abs(tau_s - tau_m) <= 1e-12 * tau_m:
        return dt / tau_m * am
    return tau_s / (tau_s - tau_m) * (a_s - am)


def coupling_constant(dt: float, tau_m: float, tau_s: float) -> int:
    return int(np.rint(coupling_exact(dt, tau_m, tau_s) * DECAY_ONE))


def rounding_report(dt: float, tau_m: float, taus: tuple[float, ...]) -> dict:
    """Rounding error of each decay/coupling constant, and the time constant it implies."""
    rows = {}

    def row(name, exact, q, tau=None):
        r = {"exact": exact, "quantized": q / DECAY_ONE, "abs_error": q / DECAY_ONE - exact}
        if tau is not None and 0 < q < DECAY_ONE:
            implied = -dt / math.log(q / DECAY_ONE)
            r["tau"] = tau
            r["tau_implied"] = implied
            r["tau_rel_error"] = implied / tau - 1.0
        rows[name] = r

    row("alpha_m", math.exp(-dt / tau_m), decay_constant(dt, tau_m), tau_m)
    for k, ts in enumerate(taus):
        row(f"alpha_s[{k}]", math.exp(-dt / ts), decay_constant(dt, ts), ts)
        row(f"beta[{k}]", coupling_exact(dt, tau_m, ts), coupling_constant(dt, tau_m, ts))
    return rows


def rdiv(a, r):
    """a / r rounded half up, for r > 0: floor((2a + r) / (2r)) (int64, exact)."""
    return (2 * np.asarray(a, dtype=np.int64) + r) // (2 * np.int64(r))


def sat32(x):
    """Saturate an int64 array (or int) to int32."""
    if isinstance(x, (int, np.integer)):
        return int(min(max(int(x), INT32_MIN), INT32_MAX))
    return np.clip(x, INT32_MIN, INT32_MAX).astype(np.int32)


def table_markdown() -> str:
    """The contract table as Markdown (docs/fixed_point.md embeds exactly this)."""
    head = "| name | kind | storage | bits | format | rounding | overflow | shape | meaning |"
    lines = [head, "|" + "---|" * 9]
    for f in TABLE:
        lines.append(f"| `{f.name}` | {f.kind} | {f.storage} | {f.bits} | {f.fmt} | {f.rounding}"
                     f" | {f.overflow} | {f.shape} | {f.doc} |")
    return "\n".join(lines)
