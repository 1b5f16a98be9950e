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
