"""Quantizer: a physical-unit Network -> a prepared fixed-point Program, with a report.

All conversion happens here, once; the kernels only read the integer arrays. The report says,
per population, the scale and the rounding error of every decay constant, and per projection the
weight exponent, the integer range used, the bits used, how many weights saturated and how many
non-zero weights rounded to zero. It refuses (QuantizationError) when a projection would go
silent or when more than ``saturation_budget`` of its weights saturate.
"""
from __future__ import annotations

import math

import numpy as np

from . import contract as C
from .errors import QuantizationError
from .network import INPUT, Network
from .program import (
    KIND_CSR,
    KIND_DENSE,
    PJ_NCOL,
    PL_NCOL,
    PL_W_MAX,
    PL_W_MIN,
    PROGRAM_ARRAYS,
    RULE_ADDITIVE,
    RULE_MULTIPLICATIVE,
    Program,
)


def population_scale(pop) -> float:
    span = max(abs(pop.v_th - pop.v_rest), abs(pop.v_reset - pop.v_rest))
    return float(2 ** C.V_FRAC_BITS) / span


def _q32(x) -> np.ndarray:
    return C.sat32(np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64))


def choose_shift(max_abs_units: float, weight_bits: int) -> int:
    """Smallest exponent such that max_abs_units / 2**shift fits in weight_bits signed bits."""
    qmax = 2 ** (weight_bits - 1) - 1
    if max_abs_units <= qmax:
        return 0
    return min(C.W_SHIFT_MAX, int(math.ceil(math.log2(max_abs_units / qmax))))


def quantize(net: Network, weight_bits: int = 16, saturation_budget: float = 0.0,
             shifts: dict | None = None) -> Program:
    """Convert ``net`` to a Program. ``shifts`` may force a projection's weight exponent
    (by projection name or index); weights that then do not fit are saturated and counted."""
    net.validate()
    if not 2 <= weight_bits <= C.W_BITS_MAX:
        raise QuantizationError(f"weight_bits must be in 2..{C.W_BITS_MAX}, got {weight_bits}")
    shifts = shifts or {}
    dt = net.dt
    pops = net.populations
    K = max(len(p.tau_s) for p in pops)
    N = sum(p.n for p in pops)
    pop_start = np.cumsum([0] + [p.n for p in pops[:-1]]).astype(np.int32)
    arr = {name: None for name in PROGRAM_ARRAYS}
    arr["alpha_m"] = np.zeros(N, np.int32)
    arr["alpha_s"] = np.zeros((K, N), np.int32)
    arr["beta"] = np.zeros((K, N), np.int32)
    for name in ("bias", "theta", "v_reset", "ref_steps", "v_init", "theta_plus",
                 "alpha_theta"):
        arr[name] = np.zeros(N, np.int32)
    arr["reset_sub"] = np.zeros(N, np.uint8)
    scales = np.zeros(len(pops))
    report = {"dt": dt, "weight_bits": weight_bits, "populations": {}, "projections": {}}
    for g, p in enumerate(pops):
        sl = slice(int(pop_start[g]), int(pop_start[g]) + p.n)
        S = population_scale(p)
        scales[g] = S
        am = math.exp(-dt / p.tau_m)
        arr["alpha_m"][sl] = C.decay_constant(dt, p.tau_m)
        for k, ts in enumerate(p.tau_s):
            arr["alpha_s"][k, sl] = C.DECAY_ONE if math.isinf(ts) else C.decay_constant(dt, ts)
            arr["beta"][k, sl] = C.coupling_constant(dt, p.tau_m, ts)
        arr["bias"][sl] = _q32(p.bias_array() * (1.0 - am) * S)
        arr["theta"][sl] = _q32((p.v_th - p.v_rest) * S)
        arr["v_reset"][sl] = _q32((p.v_reset - p.v_rest) * S)
        arr["reset_sub"][sl] = 1 if p.reset == "subtract" else 0
        ref = int(round(p.t_ref / dt))
        if ref > C.REF_MAX:
            raise QuantizationError(f"population {p.name!r}: t_ref = {p.t_ref} s is "
                                    f"{ref} steps, more than {C.REF_MAX}")
        arr["ref_steps"][sl] = ref
        arr["v_init"][sl] = _q32((p.v_init_array() - p.v_rest) * S)
        arr["theta_plus"][sl] = _q32(p.theta_plus * S)
        arr["alpha_theta"][sl] = C.DECAY_ONE if math.isinf(p.tau_theta) else \
            C.decay_constant(dt, p.tau_theta)
        report["populations"][p.name] = {
            "n": p.n, "scale": S, "theta_q": int(arr["theta"][sl][0]),
            "v_reset_q": int(arr["v_reset"][sl][0]), "ref_steps": ref,
            "constants": C.rounding_report(dt, p.tau_m, p.tau_s),
        }

    names = [p.name for p in pops]
    proj_rows, wchunks, ptrs, idxs, plast_rows, proj_names = [], [], [], [], [], []
    w_off = ptr_off = idx_off = xpre_off = xpost_off = 0
    qmax = 2 ** (weight_bits - 1) - 1
    for i, pr in enumerate(net.projections):
        pname = pr.name or f"{pr.source}->{pr.target}#{i}"
        proj_names.append(pname)
        g_t = names.index(pr.target)
        S = scales[g_t]
        n_pre = net.size_of(pr.source)
        n_post = pops[g_t].n
        w_units = np.asarray(pr.weights, dtype=np.float64) * S
        max_abs = float(np.max(np.abs(w_units))) if w_units.size else 0.0
        if pr.stdp is not None:
            max_abs = max(max_abs, abs(pr.stdp.w_max) * S, abs(pr.stdp.w_min) * S)
        forced = shifts.get(pname, shifts.get(i))
        shift = choose_shift(max_abs, weight_bits) if forced is None else int(forced)
        if not 0 <= shift <= C.W_SHIFT_MAX:
            raise QuantizationError(f"projection {pname!r}: shift {shift} not in "
                                    f"0..{C.W_SHIFT_MAX}")
        wq = np.rint(w_units / 2.0 ** shift)
        saturated = int(np.count_nonzero(np.abs(wq) > qmax))
        wq = np.clip(wq, -qmax, qmax).astype(np.int16)
        zeroed = int(np.count_nonzero((wq == 0) & (w_units != 0)))
        nonzero_float = int(np.count_nonzero(w_units))
        rep = {
            "source": pr.source, "target": pr.target, "kind": "csr" if pr.sparse else "dense",
            "n_weights": int(wq.size), "shift": shift,
            "w_q_min": int(wq.min()) if wq.size else 0, "w_q_max": int(wq.max()) if wq.size else 0,
            "bits_used": int(np.max(np.abs(wq.astype(np.int32)))).bit_length() + 1
            if wq.size else 0,
            "saturated": saturated, "zeroed": zeroed,
            "lsb": 2.0 ** shift / S,
        }
        report["projections"][pname] = rep
        if nonzero_float and np.all(wq == 0):
            raise QuantizationError(f"projection {pname!r}: every weight rounds to zero with "
                                    f"shift {shift}; the layer would go silent (largest "
                                    f"|w| = {max_abs / S:g}, one step = {2.0 ** shift / S:g})")
        if wq.size and saturated / wq.size > saturation_budget:
            raise QuantizationError(f"projection {pname!r}: {saturated} of {wq.size} weights "
                                    f"saturate at +-{qmax} (budget {saturation_budget:.1%}); "
                                    f"use a larger shift or more weight bits")
        plast_id = -1
        if pr.stdp is not None:
            st = pr.stdp
            u = S / 2.0 ** shift
            plast_id = len(plast_rows)
            row = [0] * PL_NCOL
            tu = u * 2.0 ** C.TRACE_FRAC_BITS       # trace units per unit of weight
            row[0:10] = [i, xpre_off, xpost_off, int(_q32(st.a_pre * tu)),
                         int(_q32(st.a_post * tu)),
                         C.decay_constant(dt, st.tau_pre), C.decay_constant(dt, st.tau_post),
                         int(np.clip(np.rint(st.w_min * u), -qmax, qmax)),
                         int(np.clip(np.rint(st.w_max * u), -qmax, qmax)),
                         RULE_MULTIPLICATIVE if st.rule == "multiplicative" else RULE_ADDITIVE]
            if row[PL_W_MIN] >= row[PL_W_MAX]:
                raise QuantizationError(f"projection {pname!r}: STDP bounds round to the same "
                                        f"integer; use more weight bits")
            plast_rows.append(row)
            xpre_off += n_pre
            xpost_off += n_post
            rep["stdp"] = {"a_pre_q": row[3], "a_post_q": row[4], "w_min_q": row[7],
                           "w_max_q": row[8], "rule": st.rule}
        src_group = 0 if pr.source == INPUT else names.index(pr.source) + 1
        kind = KIND_CSR if pr.sparse else KIND_DENSE
        proj_rows.append([kind, src_group, n_pre, int(pop_start[g_t]), n_post, pr.channel,
                          shift, w_off, ptr_off, plast_id, idx_off])
        wchunks.append(wq.ravel())
        w_off += wq.size
        if pr.sparse:
            ptrs.append(np.asarray(pr.indptr, dtype=np.int64))
            idxs.append(np.asarray(pr.indices, dtype=np.int64))
            ptr_off += n_pre + 1
            idx_off += wq.size
    if w_off >= 2 ** 31:
        raise QuantizationError(f"{w_off} weights: more than the int32 indexing limit")
    arr["proj"] = np.asarray(proj_rows, dtype=np.int32).reshape(-1, PJ_NCOL)
    arr["weights"] = np.concatenate(wchunks).astype(np.int16) if wchunks else np.zeros(0, np.int16)
    arr["csr_ptr"] = (np.concatenate(ptrs) if ptrs else np.zeros(0)).astype(np.int32)
    arr["csr_idx"] = (np.concatenate(idxs) if idxs else np.zeros(0)).astype(np.int32)
    arr["plast"] = np.asarray(plast_rows, dtype=np.int32).reshape(-1, PL_NCOL)
    arr["pop_start"] = pop_start
    arr["pop_n"] = np.asarray([p.n for p in pops], np.int32)
    return Program(dt=dt, n_in=net.n_inputs, pop_names=names, scales=scales,
                   v_rest=np.asarray([p.v_rest for p in pops], np.float64),
                   proj_names=proj_names, network=net, report=report, **arr)


# ---------------------------------------------------------------------------- calibration
#: default share of state updates (membrane and current values, per neuron and step) that may
#: saturate at the int32 bounds during calibration before quantize_with_report refuses
STATE_SATURATION_BUDGET = 0.01


class QuantizationReportError(QuantizationError):
    """``quantize_with_report`` refuses: on the calibration input a population goes silent in
    fixed point while it spikes in float, or its state saturates beyond the budget. The full
    report (what was measured) is in ``.report``."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def calibration_input(n_inputs: int, steps: int, rate: float = 0.05, seed: int = 0):
    """Bernoulli input spikes (``rate`` per input and step) for a calibration run."""
    if steps < 1 or not 0 <= rate <= 1:
        raise QuantizationError(f"calibration needs steps >= 1 and 0 <= rate <= 1, got "
                                f"{steps}, {rate}")
    rng = np.random.default_rng(seed)
    return (rng.random((int(steps), int(n_inputs))) < rate).astype(np.uint8)


def _calib_list(calib, n_in: int) -> list:
    items = list(calib) if isinstance(calib, (list, tuple)) else [calib]
    out = []
    for k, x in enumerate(items):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != n_in or x.shape[0] < 1:
            raise QuantizationError(f"calibration input {k}: must be spikes [steps >= 1, "
                                    f"{n_in}], got shape {x.shape}")
        if x.dtype != np.bool_ and np.issubdtype(x.dtype, np.integer) and x.size and \
                (x.min() < 0 or x.max() > 1):
            raise QuantizationError(f"calibration input {k}: spikes must be 0 or 1")
        out.append((x != 0).astype(np.uint8))
    if not out:
        raise QuantizationError("no calibration input")
    return out


def activity_report(program: Program, calib, backend: str = "auto", chunk: int = 2000) -> dict:
    """Run ``calib`` (spikes [T, n_in], or a list of such runs, each from the initial state)
    through the fixed-point Engine and the float twin of ``program.network``.

    Per population: spike rate (spikes per neuron per second) in float and fixed point, the
    relative change, the share of neurons silent in fixed point that spike in float, and the
    state saturations (membrane and current values at the int32 bounds after a step, counted
    per neuron, channel and step) with their share of all state updates."""
    from .engine import Engine
    from .float_twin import FloatTwin
    if program.network is None:
        raise QuantizationError("the program carries no physical network (needed for the "
                                "float twin); quantize a Network or load a model file that "
                                "stores it")
    runs = _calib_list(calib, program.n_in)
    eng = Engine(program, backend=backend)
    twin = FloatTwin(program.network)
    N, K = program.n_neurons, program.n_channels
    fixed_n = np.zeros(N, np.int64)
    float_n = np.zeros(N, np.int64)
    sat_v = np.zeros(N, np.int64)
    sat_i = np.zeros(N, np.int64)
    agree = 0
    steps = 0
    lo, hi = C.INT32_MIN, C.INT32_MAX
    for x in runs:
        state = eng.initial_state()
        twin.reset()
        for a in range(0, len(x), chunk):
            xc = x[a:a + chunk]
            spk, state, rec = eng.run_chunk(xc, state, record=True)
            fs, _ = twin.run(xc)
            fixed_n += spk.sum(0, dtype=np.int64)
            float_n += fs.sum(0, dtype=np.int64)
            agree += int(np.count_nonzero((spk != 0) & fs))
            sat_v += ((rec["v"] == lo) | (rec["v"] == hi)).sum(0)
            sat_i += ((rec["i_syn"] == lo) | (rec["i_syn"] == hi)).sum((0, 1))
        steps += len(x)
    seconds = steps * program.dt
    pops = {}
    for name in program.pop_names:
        sl = program.pop_slice(name)
        n = sl.stop - sl.start
        rf = float(float_n[sl].sum()) / (n * seconds)
        rq = float(fixed_n[sl].sum()) / (n * seconds)
        updates = steps * n * (1 + K)
        sats = int(sat_v[sl].sum() + sat_i[sl].sum())
        pops[name] = {
            "n": n, "rate_float_hz": rf, "rate_fixed_hz": rq,
            "rate_rel_change": (rq - rf) / rf if rf > 0 else (0.0 if rq == 0 else math.inf),
            "spikes_float": int(float_n[sl].sum()), "spikes_fixed": int(fixed_n[sl].sum()),
            "neurons_silenced": int(np.count_nonzero((fixed_n[sl] == 0) & (float_n[sl] > 0))),
            "state_saturations": sats, "membrane_saturations": int(sat_v[sl].sum()),
            "current_saturations": int(sat_i[sl].sum()), "state_updates": updates,
            "saturation_share": sats / updates,
        }
    tot_f = int(float_n.sum())
    return {"steps": steps, "runs": len(runs), "seconds": seconds, "populations": pops,
            "spike_agreement": agree / tot_f if tot_f else None,
            "backend": eng.backend}


def check_activity(report: dict, state_saturation_budget: float = STATE_SATURATION_BUDGET,
                   max_rate_change: float | None = None) -> None:
    """Raise :class:`QuantizationReportError` when the calibration in ``report`` (from
    :func:`quantize_with_report`) shows a silent or saturating population."""
    for name, p in report["activity"]["populations"].items():
        if p["rate_float_hz"] > 0 and p["spikes_fixed"] == 0:
            raise QuantizationReportError(
                f"population {name!r} goes silent in fixed point on the calibration input "
                f"(float twin: {p['rate_float_hz']:.3g} Hz, fixed point: 0 spikes); check the "
                f"projections into it (weights rounded to zero?) or use more weight bits",
                report)
        if p["saturation_share"] > state_saturation_budget:
            raise QuantizationReportError(
                f"population {name!r}: {p['state_saturations']} of {p['state_updates']} state "
                f"updates ({p['saturation_share']:.2%}) saturate at the int32 bounds on the "
                f"calibration input (budget {state_saturation_budget:.2%}); scale the weights "
                f"down or raise the threshold", report)
        if max_rate_change is not None and p["rate_float_hz"] > 0 and \
                abs(p["rate_rel_change"]) > max_rate_change:
            raise QuantizationReportError(
                f"population {name!r}: spike rate changes by {p['rate_rel_change']:+.1%} in "
                f"fixed point ({p['rate_float_hz']:.3g} -> {p['rate_fixed_hz']:.3g} Hz), more "
                f"than the allowed {max_rate_change:.1%}", report)


def quantize_with_report(net: Network, calib, weight_bits: int = 16,
                         saturation_budget: float = 0.0,
                         state_saturation_budget: float = STATE_SATURATION_BUDGET,
                         max_rate_change: float | None = None, shifts: dict | None = None,
                         backend: str = "auto", check: bool = True) -> tuple[Program, dict]:
    """:func:`quantize` plus a calibration run: returns ``(program, report)``.

    ``report["projections"]``: per projection the float weight range (``w_min``, ``w_max``),
    the integer range, ``bits_used``, ``shift``, weights ``saturated`` (clipped) and ``zeroed``.
    ``report["activity"]``: :func:`activity_report` on ``calib`` (spike rate per population,
    float vs fixed, relative change, state saturations). With ``check`` (default) it raises
    :class:`QuantizationReportError` when a population spikes in float but not at all in
    fixed point, when more than ``state_saturation_budget`` (default 1 %) of its state updates
    saturate, or (if given) when its rate changes by more than ``max_rate_change`` (relative).
    :func:`quantize` itself already refuses weights that all round to zero or saturate beyond
    ``saturation_budget``."""
    if not 0 <= state_saturation_budget <= 1:
        raise QuantizationError(f"state_saturation_budget must be in [0, 1], got "
                                f"{state_saturation_budget!r}")
    prog = quantize(net, weight_bits=weight_bits, saturation_budget=saturation_budget,
                    shifts=shifts)
    report = build_report(prog)
    report["activity"] = activity_report(prog, calib, backend=backend)
    report["state_saturation_budget"] = state_saturation_budget
    prog.report["activity"] = report["activity"]
    if check:
        check_activity(report, state_saturation_budget, max_rate_change)
    return prog, report


def build_report(prog: Program) -> dict:
    """The static part of the report (per projection) of a quantized program, with the float
    weight range used of each projection added."""
    net = prog.network
    rep = {"dt": prog.dt, "weight_bits": prog.report.get("weight_bits"),
           "populations": {}, "projections": {}}
    for name, p in prog.report.get("populations", {}).items():
        rep["populations"][name] = {k: p[k] for k in ("n", "scale", "theta_q", "v_reset_q")
                                    if k in p}
    for i, (name, p) in enumerate(prog.report.get("projections", {}).items()):
        r = {k: v for k, v in p.items()}
        if net is not None and i < len(net.projections):
            w = np.asarray(net.projections[i].weights, np.float64)
            r["w_min"] = float(w.min()) if w.size else 0.0
            r["w_max"] = float(w.max()) if w.size else 0.0
        rep["projections"][name] = r
    return rep


def format_report(report: dict) -> str:
    """A plain-text table of a :func:`quantize_with_report` report."""
    lines = [f"dt {report['dt']:g} s, weight bits {report['weight_bits']}",
             "projection              w range (float)            q range         bits shift "
             " saturated zeroed"]
    for name, p in report["projections"].items():
        lines.append(f"{name:22.22s}  [{p.get('w_min', 0):+.3e}, {p.get('w_max', 0):+.3e}]  "
                     f"[{p['w_q_min']:6d}, {p['w_q_max']:6d}]  {p['bits_used']:4d} "
                     f"{p['shift']:5d} {p['saturated']:10d} {p['zeroed']:6d}")
    act = report.get("activity")
    if act:
        lines.append(f"calibration: {act['runs']} run(s), {act['steps']} steps "
                     f"({act['seconds']:g} s), backend {act['backend']}")
        lines.append("population        rate float Hz  rate fixed Hz  change   silenced  "
                     "state saturations (share)")
        for name, p in act["populations"].items():
            ch = p["rate_rel_change"]
            chs = "   -  " if p["rate_float_hz"] == 0 and p["rate_fixed_hz"] == 0 else \
                f"{ch:+7.2%}"
            lines.append(f"{name:16.16s}  {p['rate_float_hz']:13.3f}  {p['rate_fixed_hz']:13.3f}"
                         f"  {chs}  {p['neurons_silenced']:8d}  {p['state_saturations']} "
                         f"({p['saturation_share']:.3%})")
        if act.get("spike_agreement") is not None:
            lines.append(f"spikes of the float twin also in fixed point (same neuron, same "
                         f"step): {act['spike_agreement']:.2%}")
    return "\n".join(lines)
