"""STDP checks: learned weights against Brian2's pair-based STDP with traces.

* ``open_loop``: Brian2's usual event-driven rule (float64) is driven by exactly the pre- and
  postsynaptic spike trains our engine produced, so the weight difference is the error of the
  fixed-point STDP arithmetic alone (closed-loop runs, where each simulator makes its own post
  spikes, mix that error with spike-timing divergence; ``validate`` reports those too).
* ``window``: the explicit sign test. One relay neuron is forced to spike at a known step while
  each plastic synapse sees one presynaptic spike at a known lag, so each weight change is one
  point of the STDP window: potentiation when pre precedes post, depression when it follows.
* ``dt_convergence``: the same rule on spike trains given in continuous time, discretised at
  several dt; the error against the exact event-driven result must shrink as dt shrinks.
"""
from __future__ import annotations

import math

import numpy as np

from spikeedge import INPUT, STDP, Engine, Network, Population, Projection, quantize
from spikeedge.program import PJ_PLAST, PJ_SHIFT, PJ_SRC_GROUP, PJ_TGT_START, PJ_W_OFF, Program

from ._brian import connect_indices, spike_generator
from .float_twin import stdp_code

STDP_EQS = ("w : 1\ndapre/dt = -apre / taupre : 1 (event-driven)\n"
            "dapost/dt = -apost / taupost : 1 (event-driven)")


def plastic_projections(prog: Program) -> list:
    return [p for p in range(prog.proj.shape[0]) if int(prog.proj[p][PJ_PLAST]) >= 0]


def weight_lsb(prog: Program, p: int) -> float:
    """Physical value of one weight unit of projection p."""
    row = prog.proj[p]
    g = int(np.searchsorted(prog.pop_start, int(row[PJ_TGT_START]), side="right")) - 1
    return 2.0 ** int(row[PJ_SHIFT]) / float(prog.scales[g])


def engine_weights(prog: Program, w_flat: np.ndarray, p: int) -> np.ndarray:
    """Physical [n_pre, n_post] weights of plastic projection p from a flat int16 array."""
    pr = prog.network.projections[p]
    n_pre = prog.network.size_of(pr.source)
    n_post = prog.network.population(pr.target).n
    off = int(prog.proj[p][PJ_W_OFF])
    return w_flat[off:off + n_pre * n_post].reshape(n_pre, n_post) * weight_lsb(prog, p)


def _rule_ns(b2, rule: STDP) -> dict:
    return {"taupre": rule.tau_pre * b2.second, "taupost": rule.tau_post * b2.second,
            "a_pre": rule.a_pre, "a_post": rule.a_post, "w_min": rule.w_min,
            "w_max": rule.w_max}


def open_loop(b2, prog: Program, inp: np.ndarray, spikes: np.ndarray, checkpoints: list,
              w_snapshots: list) -> dict:
    """Brian2 STDP on the engine's own spike trains; ``w_snapshots[c]`` is the engine's flat
    weight array after ``checkpoints[c]`` steps. Returns per plastic projection the RMS and max
    |w_engine - w_brian2| / (w_max - w_min) at every checkpoint."""
    net = prog.network
    dt = prog.dt
    out = {}
    for p in plastic_projections(prog):
        pr = net.projections[p]
        rule = pr.stdp
        row = prog.proj[p]
        g_src = int(row[PJ_SRC_GROUP])
        pre = inp if g_src == 0 else spikes[:, prog.pop_slice(prog.pop_names[g_src - 1])]
        post = spikes[:, prog.pop_slice(pr.target)]
        clock = b2.Clock(dt * b2.second, name=f"stdp{p}_clock")
        src = spike_generator(b2, pre, dt, f"stdp{p}_pre", clock)
        tgt = spike_generator(b2, post, dt, f"stdp{p}_post", clock)
        on_pre, on_post = stdp_code(rule)
        S = b2.Synapses(src, tgt, STDP_EQS, on_pre=on_pre, on_post=on_post,
                        namespace=_rule_ns(b2, rule), clock=clock, name=f"stdp{p}_syn")
        i, j = connect_indices(True, pre.shape[1], post.shape[1])
        S.connect(i=i, j=j)
        S.w = np.asarray(pr.weights, np.float64).ravel()
        bnet = b2.Network(src, tgt, S)
        span = rule.w_max - rule.w_min
        rows, done = [], 0
        for c, step in enumerate(checkpoints):
            bnet.run((step - done) * dt * b2.second)
            done = step
            wb = np.asarray(S.w[:]).reshape(pre.shape[1], post.shape[1])
            we = engine_weights(prog, w_snapshots[c], p)
            d = we - wb
            rows.append({"t_s": step * dt, "rms": float(np.sqrt(np.mean(d * d)) / span),
                         "max": float(np.abs(d).max() / span),
                         "mean": float(d.mean() / span),
                         "mean_w_engine": float(we.mean() / span),
                         "mean_w_brian2": float(wb.mean() / span)})
        out[prog.proj_names[p]] = {"checkpoints": rows, "w_range": span}
    return out


# ---- the probe network: one relay neuron that spikes where we say --------------------------

def probe_network(dt: float, rule: STDP, n_pre: int, w0: float) -> Network:
    """Inputs 0..n_pre-1 reach one neuron through plastic weights w0; input n_pre forces it to
    spike one step later (a fast relay: tau_m = dt/20, tau_s = dt/2, so it spikes exactly one
    step after the forcing spike and is back near rest the step after)."""
    n_in = n_pre + 1
    w_plastic = np.full((n_in, 1), w0)
    w_force = np.zeros((n_in, 1))
    w_force[n_pre, 0] = 10.0
    pop = Population("post", 1, tau_m=dt / 20, tau_s=(dt / 2,), v_th=1.0)
    return Network(n_in, [pop], [
        Projection(INPUT, "post", w_plastic, stdp=rule, name="plastic"),
        Projection(INPUT, "post", w_force, name="force")], dt=dt, name="stdp-probe")


def _probe_input(T: int, n_pre: int, pre_steps: list, post_steps) -> np.ndarray:
    inp = np.zeros((T, n_pre + 1), np.uint8)
    for i, steps in enumerate(pre_steps):
        inp[np.asarray(steps, np.int64), i] = 1
    inp[np.asarray(post_steps, np.int64) - 1, n_pre] = 1
    return inp


def _run_probe(net: Network, inp: np.ndarray, b2=None, initial=False):
    """(engine learned weights [n_pre], engine post spike steps, Brian2 weights or None), and
    with ``initial`` also the engine's quantized initial weights and one weight step."""
    from .float_twin import FloatTwinB2
    prog = quantize(net)
    spikes, state, _ = Engine(prog).run_chunk(inp)
    n_pre = inp.shape[1] - 1
    w_e = engine_weights(prog, state.w, 0)[:n_pre, 0]
    w_e0 = engine_weights(prog, prog.weights, 0)[:n_pre, 0]
    w_b = None
    if b2 is not None:
        ft = FloatTwinB2(b2, net, inp, name="probe")
        ft.run(inp.shape[0])
        w_b = ft.plastic_weights()[0][:n_pre, 0]
    if initial:
        return w_e, np.flatnonzero(spikes[:, 0]), w_b, w_e0, weight_lsb(prog, 0)
    return w_e, np.flatnonzero(spikes[:, 0]), w_b


def _mult(rule: STDP) -> bool:
    return getattr(rule, "rule", "additive") == "multiplicative"


def stdp_window_analytic(rule: STDP, lag_s: np.ndarray, w0: float) -> np.ndarray:
    """Weight change of one pair from w0, lag = t_post - t_pre (a tie counts as pre first)."""
    lag_s = np.asarray(lag_s, np.float64)
    span = rule.w_max - rule.w_min
    up = (rule.w_max - w0) / span if _mult(rule) else 1.0
    down = (w0 - rule.w_min) / span if _mult(rule) else 1.0
    return np.where(lag_s >= 0, rule.a_pre * np.exp(-lag_s / rule.tau_pre) * up,
                    rule.a_post * np.exp(lag_s / rule.tau_post) * down)


def window(b2, rule: STDP, dt: float = 1e-3, lags_ms=None, rel_tol: float = 0.05) -> dict:
    """Sign test: one pair per synapse at each lag (t_post - t_pre); the engine's weight change
    must have the sign of the rule (pre before post potentiates, post before pre depresses) and
    lie within ``rel_tol`` of Brian2's for |lag| <= 2 tau."""
    if lags_ms is None:
        lags_ms = [-200, -100, -60, -40, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 40, 60, 100, 200]
    lags = np.rint(np.asarray(lags_ms, np.float64) * 1e-3 / dt).astype(np.int64)
    P = int(lags.max()) + 2 + 2
    T = P + int(-lags.min()) + 2
    w0 = 0.5 * (rule.w_min + rule.w_max)
    net = probe_network(dt, rule, lags.size, w0)
    inp = _probe_input(T, lags.size, [[P - int(lag)] for lag in lags], [P])
    w_e, post, w_b, w_e0, lsb = _run_probe(net, inp, b2, initial=True)
    # the engine's change is measured from its own quantized start (w0 itself is off by up to
    # half a weight step); a change the rule makes smaller than half a step rounds to 0
    de, db = w_e - w_e0, (w_b - w0) if w_b is not None else None
    da = stdp_window_analytic(rule, lags * dt, w0)
    below_step = np.abs(da) < 0.5 * lsb
    sign_ok = bool(np.all((np.sign(de) == np.sign(da)) | (below_step & (de == 0))))
    near = np.abs(lags * dt) <= 2 * max(rule.tau_pre, rule.tau_post)
    ref = db if db is not None else da
    rel = np.abs(de - ref) / np.maximum(np.abs(ref), 1e-300)
    return {"lags_s": (lags * dt).tolist(), "dw_engine": de.tolist(),
            "dw_brian2": None if db is None else db.tolist(), "dw_analytic": da.tolist(),
            "below_half_step": below_step.tolist(), "weight_step": lsb,
            "post_spike_steps": post.tolist(), "relay_ok": post.tolist() == [P],
            "sign_ok": sign_ok, "max_rel_error_near": float(rel[near].max()),
            "rel_tol": rel_tol,
            "passed": bool(sign_ok and post.tolist() == [P] and rel[near].max() <= rel_tol)}


def _poisson_times(rng, rate: float, T: float, dead: float) -> np.ndarray:
    t, out = 0.0, []
    while True:
        t += dead + rng.exponential(1.0 / rate)
        if t >= T:
            return np.asarray(out)
        out.append(t)


def exact_event_driven(rule: STDP, w0: np.ndarray, pre_times: list, post_times) -> np.ndarray:
    """Pair-based STDP with exact exponential traces in continuous time (pre before post on
    ties), one post neuron: final weights [n_pre]."""
    ev = [(t, 0, i) for i, ts in enumerate(pre_times) for t in ts]
    ev += [(t, 1, -1) for t in post_times]
    ev.sort()
    w = np.asarray(w0, np.float64).copy()
    span = rule.w_max - rule.w_min
    mult = _mult(rule)
    xpre = np.zeros(w.size)
    xpost, t_last = 0.0, 0.0
    last_pre = np.zeros(w.size)
    for t, kind, i in ev:
        xpost *= math.exp(-(t - t_last) / rule.tau_post)
        t_last = t
        if kind == 0:
            xpre[i] = xpre[i] * math.exp(-(t - last_pre[i]) / rule.tau_pre) + rule.a_pre
            last_pre[i] = t
            dw = xpost * ((w[i] - rule.w_min) / span if mult else 1.0)
            w[i] = min(max(w[i] + dw, rule.w_min), rule.w_max)
        else:
            cur = xpre * np.exp(-(t - last_pre) / rule.tau_pre)
            xpost += rule.a_post
            w = np.clip(w + cur * ((rule.w_max - w) / span if mult else 1.0), rule.w_min,
                        rule.w_max)
    return w


def dt_convergence(rule: STDP, dts=(2e-3, 1e-3, 0.5e-3, 0.25e-3), n_pre: int = 20,
                   rate: float = 20.0, T: float = 5.0, seed: int = 7) -> dict:
    """Engine weights on continuous-time trains discretised at each dt, against the exact
    event-driven result; passes when the error does not grow as dt shrinks and the finest dt
    is at least twice as accurate as the coarsest."""
    rng = np.random.default_rng(seed)
    dead = 2.5 * max(dts)
    pre_times = [_poisson_times(rng, rate, T - 0.01, dead) for _ in range(n_pre)]
    post_times = _poisson_times(rng, rate, T - 0.01, dead)
    w0 = rng.uniform(0.3, 0.7, n_pre) * (rule.w_max - rule.w_min) + rule.w_min
    span = rule.w_max - rule.w_min
    rows = []
    for dt in dts:
        steps = int(round(T / dt)) + 2
        pre_steps = [np.rint(ts / dt).astype(np.int64) for ts in pre_times]
        post_steps = np.maximum(np.rint(post_times / dt).astype(np.int64), 1)
        net = probe_network(dt, rule, n_pre, 0.5 * (rule.w_min + rule.w_max))
        net.projections[0].weights[:n_pre, 0] = w0
        inp = _probe_input(steps, n_pre, pre_steps, post_steps)
        w_e, post, _ = _run_probe(net, inp)
        # the same trains with the discretised times, event-driven float: the dt-only error
        w_dt = exact_event_driven(rule, w0, [s * dt for s in pre_steps], post_steps * dt)
        w_x = exact_event_driven(rule, w0, pre_times, post_times)
        rows.append({"dt": dt, "relay_ok": bool(np.array_equal(post, post_steps)),
                     "rms_engine": float(np.sqrt(np.mean((w_e - w_x) ** 2)) / span),
                     "rms_float_dt": float(np.sqrt(np.mean((w_dt - w_x) ** 2)) / span),
                     "rms_fixed_point": float(np.sqrt(np.mean((w_e - w_dt) ** 2)) / span)})
    err = [r["rms_engine"] for r in rows]
    monotone = all(b <= a * 1.05 for a, b in zip(err, err[1:], strict=False))
    return {"rows": rows, "monotone": monotone,
            "passed": bool(monotone and err[-1] <= 0.5 * err[0]
                           and all(r["relay_ok"] for r in rows))}
