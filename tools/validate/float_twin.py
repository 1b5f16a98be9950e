"""The float twin in Brian2: the physical-unit ``Network`` with exact integration of the linear
LIF (``method='exact'``), float64 throughout, fed the same input spikes.

    dv/dt = (bias + sum_k I_k - v) / tau_m   (unless refractory)      v relative to v_rest
    dI_k/dt = -I_k / tau_s[k]
    dtheta_a/dt = -theta_a / tau_theta                                homeostasis (if any)
    v > v_th - v_rest + theta_a  ->  v = v_reset - v_rest  (or v -= v_th - v_reset),
                                     theta_a += theta_plus;             on_pre: I_k += w

STDP projections use Brian2's usual pair-based rule with event-driven traces (exact decay
between events): on_pre ``I += w; apre += a_pre; w = clip(w + apost, w_min, w_max)``, on_post
``apost += a_post; w = clip(w + apre, w_min, w_max)``; the multiplicative rule scales the
changes by ``(w - w_min) / (w_max - w_min)`` and ``(w_max - w) / (w_max - w_min)``.

Refractoriness is Brian2's own ``refractory = ref_steps * dt``: its state updater evaluates
``timestep(t - lastspike) >= ref_steps`` before integrating, so a neuron is held ``ref_steps - 1``
steps after its spike step, the contract's rule (the period is rounded to whole steps as the
quantizer does, ``ref_steps = round(t_ref / dt)``).
"""
from __future__ import annotations

import math

import numpy as np

from spikeedge.network import INPUT, Network

from ._brian import check_order, connect_indices, spike_generator


def population_equations(pop, dt: float) -> tuple[str, dict]:
    """(equations, namespace) of one population; a tau_s equal to tau_m uses the same symbol so
    that the exact solver produces the degenerate (t/tau) exp(-t/tau) solution."""
    import brian2 as b2
    ns = {"tau_m": pop.tau_m * b2.second}
    drive = []
    lines = []
    for k, ts in enumerate(pop.tau_s):
        drive.append(f"I{k}")
        if math.isinf(ts):
            lines.append(f"dI{k}/dt = 0 * I{k} / tau_m : 1")
        elif abs(ts - pop.tau_m) <= 1e-12 * pop.tau_m:
            lines.append(f"dI{k}/dt = -I{k} / tau_m : 1")
        else:
            ns[f"tau_s{k}"] = ts * b2.second
            lines.append(f"dI{k}/dt = -I{k} / tau_s{k} : 1")
    unless = " (unless refractory)" if round(pop.t_ref / dt) > 0 and not hold_v(pop, dt) else ""
    eqs = [f"dv/dt = (bias + {' + '.join(drive)} - v) / tau_m : 1{unless}"] + lines
    if pop.theta_plus != 0:
        if math.isinf(pop.tau_theta):
            eqs.append("theta_a : 1")
        else:
            ns["tau_theta"] = pop.tau_theta * b2.second
            eqs.append("dtheta_a/dt = -theta_a / tau_theta : 1")
    eqs += ["bias : 1 (constant)"]
    if hold_v(pop, dt):
        eqs.append("v_hold : 1")
    return "\n".join(eqs), ns


def hold_v(pop, dt: float) -> bool:
    """Brian2's exact solver multiplies an ``(unless refractory)`` equation by
    ``int(not_refractory)`` before solving, which turns the tau_s == tau_m solution into 0/0
    (NaN). Such populations are integrated without the flag and a refractory neuron's v is put
    back to the value it had after its reset (``v_hold``) right after the update."""
    return round(pop.t_ref / dt) > 0 and any(
        abs(ts - pop.tau_m) <= 1e-12 * pop.tau_m for ts in pop.tau_s)


def stdp_code(rule) -> tuple[str, str]:
    """Brian2 on_pre (without the propagation line) and on_post of a pair-based STDP rule."""
    if getattr(rule, "rule", "additive") == "multiplicative":
        dpre = "apost * (w - w_min) / (w_max - w_min)"
        dpost = "apre * (w_max - w) / (w_max - w_min)"
    else:
        dpre, dpost = "apost", "apre"
    return (f"apre += a_pre\nw = clip(w + {dpre}, w_min, w_max)",
            f"apost += a_post\nw = clip(w + {dpost}, w_min, w_max)")


class FloatTwinB2:
    """Brian2 float network of ``net`` driven by ``inp`` (uint8 [T, n_in]).

    ``record`` maps population name -> local neuron indices whose ``v`` is recorded."""

    def __init__(self, b2, net: Network, inp: np.ndarray, record: dict | None = None,
                 name: str = "flt"):
        net.validate()
        self.b2, self.net, self.name = b2, net, name
        dt = net.dt
        self.dt = dt
        self.clock = b2.Clock(dt * b2.second, name=f"{name}_clock")
        record = record or {}
        objs, self.groups, self.spike_mons, self.state_mons = [], {}, {}, {}
        for g, pop in enumerate(net.populations):
            eqs, ns = population_equations(pop, dt)
            th, vr = pop.v_th - pop.v_rest, pop.v_reset - pop.v_rest
            ref_steps = int(round(pop.t_ref / dt))
            reset = f"v = {vr!r}" if pop.reset == "zero" else f"v = v - {th - vr!r}"
            if hold_v(pop, dt):
                reset += "\nv_hold = v"
            threshold = f"v > {th!r}"
            if pop.theta_plus != 0:
                threshold = f"v > {th!r} + theta_a"
                reset += f"\ntheta_a += {pop.theta_plus!r}"
            kw = {"refractory": ref_steps * dt * b2.second} if ref_steps > 0 else {}
            G = b2.NeuronGroup(pop.n, eqs, threshold=threshold, reset=reset,
                               method="exact", namespace=ns, clock=self.clock,
                               name=f"{name}_pop{g}", **kw)
            if hold_v(pop, dt):
                G.run_regularly("v = v * int(not_refractory) + v_hold * (1 - int(not_refractory))",
                                when="after_groups", clock=self.clock,
                                name=f"{name}_pop{g}_hold")
            G.v = pop.v_init_array() - pop.v_rest
            G.bias = pop.bias_array()
            self.groups[pop.name] = G
            objs.append(G)
            mon = b2.SpikeMonitor(G, name=f"{name}_pop{g}_spikes")
            self.spike_mons[pop.name] = mon
            objs.append(mon)
            idx = record.get(pop.name)
            if idx is not None and len(idx):
                sm = b2.StateMonitor(G, "v", record=np.asarray(idx, np.int64), when="end",
                                     order=100, clock=self.clock, name=f"{name}_pop{g}_v")
                self.state_mons[pop.name] = sm
                objs.append(sm)
        if net.n_inputs and any(pr.source == INPUT for pr in net.projections):
            src = spike_generator(b2, inp, dt, f"{name}_input", self.clock)
            self.groups[INPUT] = src
            objs.append(src)
        self.synapses = []
        for p, pr in enumerate(net.projections):
            n_pre, n_post = net.size_of(pr.source), net.population(pr.target).n
            if pr.sparse:
                i, j = connect_indices(False, n_pre, n_post, pr.indptr, pr.indices)
                w = np.asarray(pr.weights, np.float64)
            else:
                i, j = connect_indices(True, n_pre, n_post)
                w = np.asarray(pr.weights, np.float64).ravel()
            if i.size == 0:
                continue
            k = pr.channel
            sname = f"{name}_proj{p}"
            src, tgt = self.groups[pr.source], self.groups[pr.target]
            if pr.stdp is not None:
                st = pr.stdp
                ns = {"taupre": st.tau_pre * b2.second, "taupost": st.tau_post * b2.second,
                      "a_pre": st.a_pre, "a_post": st.a_post, "w_min": st.w_min,
                      "w_max": st.w_max}
                on_pre, on_post = stdp_code(st)
                S = b2.Synapses(
                    src, tgt,
                    "w : 1\ndapre/dt = -apre / taupre : 1 (event-driven)\n"
                    "dapost/dt = -apost / taupost : 1 (event-driven)",
                    on_pre=f"I{k}_post += w\n" + on_pre, on_post=on_post,
                    namespace=ns, clock=self.clock, name=sname)
            else:
                S = b2.Synapses(src, tgt, "w : 1 (constant)", on_pre=f"I{k}_post += w",
                                clock=self.clock, name=sname)
            S.connect(i=i, j=j)
            S.w = w
            check_order(S, i, j, sname)
            self.synapses.append((p, S))
            objs.append(S)
        self.network = b2.Network(objs)
        self.step = 0

    def run(self, steps: int) -> None:
        self.network.run(steps * self.dt * self.b2.second)
        self.step += steps

    def spikes(self) -> np.ndarray:
        """uint8 [steps run, N] over all populations (engine neuron order)."""
        parts = []
        for pop in self.net.populations:
            mon = self.spike_mons[pop.name]
            r = np.zeros((self.step, pop.n), np.uint8)
            st = np.rint(np.asarray(mon.t_[:]) / self.dt).astype(np.int64)
            r[st, np.asarray(mon.i[:], np.int64)] = 1
            parts.append(r)
        return np.concatenate(parts, axis=1)

    def v(self, pop_name: str) -> np.ndarray:
        """Recorded v [steps, n_recorded] (volts relative to rest)."""
        return np.asarray(self.state_mons[pop_name].v).T

    def plastic_weights(self) -> dict:
        """projection index -> float weights [n_pre, n_post] as learned."""
        out = {}
        for p, S in self.synapses:
            pr = self.net.projections[p]
            if pr.stdp is not None:
                n_pre, n_post = self.net.size_of(pr.source), self.net.population(pr.target).n
                out[p] = np.asarray(S.w[:]).reshape(n_pre, n_post)
        return out
