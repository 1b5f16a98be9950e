"""The golden reference: a slow, readable NumPy integer model of the fixed-point contract.

It *is* the specification (see ``spikeedge.contract``): every fast path (the Cython kernels, the
firmware's C kernel) must reproduce it bit for bit. One function per operation; integer
arithmetic only (int64 intermediates, explicit saturation).
"""
from __future__ import annotations

import numpy as np

from .contract import (
    DECAY_FRAC_BITS,
    DECAY_HALF,
    INT16_MAX,
    INT16_MIN,
    TRACE_FRAC_BITS,
    TRACE_HALF,
    rdiv,
    sat32,
)
from .program import (
    KIND_DENSE,
    PJ_CHANNEL,
    PJ_IDX_OFF,
    PJ_KIND,
    PJ_N_POST,
    PJ_N_PRE,
    PJ_PTR_OFF,
    PJ_SHIFT,
    PJ_SRC_GROUP,
    PJ_TGT_START,
    PJ_W_OFF,
    PL_A_POST,
    PL_A_PRE,
    PL_ALPHA_POST,
    PL_ALPHA_PRE,
    PL_PROJ,
    PL_RULE,
    PL_W_MAX,
    PL_W_MIN,
    PL_XPOST_OFF,
    PL_XPRE_OFF,
    RULE_MULTIPLICATIVE,
    Program,
    State,
)


def mul_q24(x: np.ndarray, c) -> np.ndarray:
    """x * c / 2**24 rounded half up, exact in int64 (not yet saturated)."""
    return (x.astype(np.int64) * np.asarray(c, dtype=np.int64) + DECAY_HALF) >> DECAY_FRAC_BITS


def refractory_countdown(ref: np.ndarray) -> np.ndarray:
    """Step 1: decrement the non-zero counters; returns the mask of integrating neurons."""
    ref[ref > 0] -= 1
    return ref == 0


def membrane_update(prog: Program, st: State, active: np.ndarray) -> None:
    """Step 2: exact-integration membrane update from the currents before their decay."""
    total = st.v.astype(np.int64) * prog.alpha_m.astype(np.int64)
    for k in range(prog.n_channels):
        total += st.i_syn[k].astype(np.int64) * prog.beta[k].astype(np.int64)
    new_v = sat32(((total + DECAY_HALF) >> DECAY_FRAC_BITS) + prog.bias.astype(np.int64))
    st.v[active] = new_v[active]


def current_decay(prog: Program, st: State) -> None:
    """Step 3: every synaptic current decays, refractory or not; so does the homeostatic
    threshold increase."""
    for k in range(prog.n_channels):
        st.i_syn[k] = sat32(mul_q24(st.i_syn[k], prog.alpha_s[k]))
    st.theta_a[:] = sat32(mul_q24(st.theta_a, prog.alpha_theta))


def spike_test(prog: Program, st: State, active: np.ndarray) -> np.ndarray:
    """Step 4: strict threshold (static plus homeostatic part) on integrating neurons."""
    threshold = sat32(prog.theta.astype(np.int64) + st.theta_a)
    return active & (st.v > threshold)


def reset(prog: Program, st: State, spiked: np.ndarray) -> None:
    """Step 5: reset to v_reset or subtract (theta - v_reset); start the refractory count."""
    sub = spiked & (prog.reset_sub == 1)
    zero = spiked & (prog.reset_sub == 0)
    st.v[zero] = prog.v_reset[zero]
    st.v[sub] = sat32(st.v[sub].astype(np.int64) - (prog.theta[sub].astype(np.int64)
                                                    - prog.v_reset[sub].astype(np.int64)))
    st.ref[spiked] = prog.ref_steps[spiked]
    st.theta_a[spiked] = sat32(st.theta_a[spiked].astype(np.int64)
                               + prog.theta_plus[spiked].astype(np.int64))


def weight_rows(prog: Program, w: np.ndarray, p: int, pre: int):
    """(target neuron indices, int16 weights) of row ``pre`` of projection ``p``."""
    row = prog.proj[p]
    n_post, off = int(row[PJ_N_POST]), int(row[PJ_W_OFF])
    tgt0 = int(row[PJ_TGT_START])
    if row[PJ_KIND] == KIND_DENSE:
        start = off + pre * n_post
        return tgt0 + np.arange(n_post), w[start:start + n_post]
    ptr = prog.csr_ptr[int(row[PJ_PTR_OFF]):]
    a, b = int(ptr[pre]), int(ptr[pre + 1])
    io = int(row[PJ_IDX_OFF])
    return tgt0 + prog.csr_idx[io + a:io + b].astype(np.int64), w[off + a:off + b]


def syn_accumulate(prog: Program, w: np.ndarray, spikes_by_group: list, acc: np.ndarray) -> None:
    """Step 6a: add w * 2**shift of every spiking source's rows to the int64 accumulator."""
    for p in range(prog.proj.shape[0]):
        row = prog.proj[p]
        k, mul = int(row[PJ_CHANNEL]), np.int64(1) << np.int64(row[PJ_SHIFT])
        for pre in spikes_by_group[int(row[PJ_SRC_GROUP])]:
            tgt, wr = weight_rows(prog, w, p, int(pre))
            np.add.at(acc[k], tgt, wr.astype(np.int64) * mul)


def syn_fold(st: State, acc: np.ndarray) -> None:
    """Step 6b: fold the exact step sum into the currents, saturating once."""
    st.i_syn[:] = sat32(st.i_syn.astype(np.int64) + acc)
    acc[:] = 0


def stdp_update(prog: Program, st: State, w: np.ndarray, spikes_by_group: list) -> None:
    """Step 7: trace decay, then presynaptic updates, then postsynaptic updates."""
    for lrow in prog.plast:
        prow = prog.proj[int(lrow[PL_PROJ])]
        n_pre, n_post = int(prow[PJ_N_PRE]), int(prow[PJ_N_POST])
        xs = slice(int(lrow[PL_XPRE_OFF]), int(lrow[PL_XPRE_OFF]) + n_pre)
        ys = slice(int(lrow[PL_XPOST_OFF]), int(lrow[PL_XPOST_OFF]) + n_post)
        st.x_pre[xs] = sat32(mul_q24(st.x_pre[xs], lrow[PL_ALPHA_PRE]))
        st.x_post[ys] = sat32(mul_q24(st.x_post[ys], lrow[PL_ALPHA_POST]))
        off = int(prow[PJ_W_OFF])
        W = w[off:off + n_pre * n_post].reshape(n_pre, n_post)   # a view: updates land in w
        lo, hi = int(lrow[PL_W_MIN]), int(lrow[PL_W_MAX])
        tgt0 = int(prow[PJ_TGT_START])
        pre_spk = np.asarray(spikes_by_group[int(prow[PJ_SRC_GROUP])], dtype=np.int64)
        post_spk = np.asarray(spikes_by_group_target(prog, spikes_by_group, tgt0, n_post),
                              dtype=np.int64)
        x_pre, x_post = st.x_pre[xs], st.x_post[ys]
        mult = int(lrow[PL_RULE]) == RULE_MULTIPLICATIVE
        for i in pre_spk:
            x_pre[i] = sat32(np.int64(x_pre[i]) + np.int64(lrow[PL_A_PRE]))
            W[i] = clip16(W[i].astype(np.int64) + stdp_change(x_post, W[i], lo, hi, mult,
                                                              potentiate=False), lo, hi)
        for j in post_spk:
            x_post[j] = sat32(np.int64(x_post[j]) + np.int64(lrow[PL_A_POST]))
            W[:, j] = clip16(W[:, j].astype(np.int64) + stdp_change(x_pre, W[:, j], lo, hi, mult,
                                                                    potentiate=True), lo, hi)
        st.x_pre[xs], st.x_post[ys] = x_pre, x_post


def stdp_change(trace: np.ndarray, w: np.ndarray, lo: int, hi: int, multiplicative: bool,
                potentiate: bool) -> np.ndarray:
    """The weight change a trace causes, in weight units: the trace rounded to a weight unit
    (additive), or the trace scaled by the room left, (hi - w) / (hi - lo) on a post spike and
    (w - lo) / (hi - lo) on a pre spike, rounded half up (multiplicative)."""
    t = trace.astype(np.int64)
    if not multiplicative:
        return (t + TRACE_HALF) >> TRACE_FRAC_BITS
    room = (hi - w.astype(np.int64)) if potentiate else (w.astype(np.int64) - lo)
    return rdiv(t * room, (hi - lo) << TRACE_FRAC_BITS)


def clip16(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(x, max(lo, INT16_MIN), min(hi, INT16_MAX)).astype(np.int16)


def spikes_by_group_target(prog: Program, spikes_by_group: list, tgt0: int, n_post: int):
    """Local indices of the target population's spikes in this step."""
    g = int(np.searchsorted(prog.pop_start, tgt0)) + 1
    return spikes_by_group[g]


def step(prog: Program, st: State, inp_row: np.ndarray, w: np.ndarray, acc: np.ndarray,
         learn: bool = True):
    """One time step; returns the boolean spike vector of all neurons."""
    active = refractory_countdown(st.ref)
    membrane_update(prog, st, active)
    current_decay(prog, st)
    spiked = spike_test(prog, st, active)
    reset(prog, st, spiked)
    groups = [np.flatnonzero(inp_row)]
    for g in range(len(prog.pop_names)):
        s = int(prog.pop_start[g])
        groups.append(np.flatnonzero(spiked[s:s + int(prog.pop_n[g])]))
    syn_accumulate(prog, w, groups, acc)
    syn_fold(st, acc)
    if prog.plastic and learn:
        stdp_update(prog, st, w, groups)
    return spiked


def run_chunk(prog: Program, state: State, inp: np.ndarray, record: bool = False,
              learn: bool = True):
    """Run T = len(inp) steps. Returns (spikes uint8 [T, N], state, record) where record is
    None or {"v": int32 [T, N], "i_syn": int32 [T, K, N]} (values after each step)."""
    T = inp.shape[0]
    N, K = prog.n_neurons, prog.n_channels
    spikes = np.zeros((T, N), np.uint8)
    rec = {"v": np.zeros((T, N), np.int32), "i_syn": np.zeros((T, K, N), np.int32)} \
        if record else None
    w = state.w if prog.plastic else prog.weights
    acc = np.zeros((K, N), np.int64)
    for t in range(T):
        spikes[t] = step(prog, state, inp[t], w, acc, learn)
        if record:
            rec["v"][t] = state.v
            rec["i_syn"][t] = state.i_syn
    state.step += T
    return spikes, state, rec
