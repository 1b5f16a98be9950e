"""Float twin: the same Network integrated exactly in float64, in the same step order as the
fixed-point contract (update, threshold, propagate, reset, plasticity). Used to bound the
quantization error; slow and readable like the reference."""
from __future__ import annotations

import math

import numpy as np

from .contract import coupling_exact
from .network import INPUT, Network


class FloatTwin:
    """Float64 model of ``net``. State in physical units (v in volts, currents in volts)."""

    def __init__(self, net: Network):
        net.validate()
        self.net = net
        dt = net.dt
        self.names = [p.name for p in net.populations]
        self.pops = net.populations
        self.K = max(len(p.tau_s) for p in self.pops)
        self.p = []
        for p in self.pops:
            am = math.exp(-dt / p.tau_m)
            a_s = np.zeros(self.K)
            b = np.zeros(self.K)
            for k, ts in enumerate(p.tau_s):
                a_s[k] = 1.0 if math.isinf(ts) else math.exp(-dt / ts)
                b[k] = coupling_exact(dt, p.tau_m, ts)
            self.p.append({"am": am, "as": a_s, "b": b, "bias": p.bias_array() * (1 - am),
                           "ref": int(round(p.t_ref / dt)),
                           "ath": 1.0 if math.isinf(p.tau_theta) else
                           math.exp(-dt / p.tau_theta)})
        self.W = [pr.dense_weights(net.size_of(pr.source), net.population(pr.target).n).copy()
                  for pr in net.projections]
        self.reset()

    def reset(self):
        self.v = [p.v_init_array() - p.v_rest for p in self.pops]     # relative to rest
        self.I = [np.zeros((self.K, p.n)) for p in self.pops]
        self.ref = [np.zeros(p.n, np.int64) for p in self.pops]
        self.theta_a = [np.zeros(p.n) for p in self.pops]
        self.x_pre = [np.zeros(w.shape[0]) for w in self.W]
        self.x_post = [np.zeros(w.shape[1]) for w in self.W]

    def step(self, inp_row: np.ndarray) -> list:
        spiked = []
        for g, (pop, pp) in enumerate(zip(self.pops, self.p, strict=True)):
            ref = self.ref[g]
            ref[ref > 0] -= 1
            active = ref == 0
            v_new = self.v[g] * pp["am"] + (self.I[g] * pp["b"][:, None]).sum(0) + pp["bias"]
            self.v[g] = np.where(active, v_new, self.v[g])
            self.I[g] *= pp["as"][:, None]
            self.theta_a[g] *= pp["ath"]
            th = pop.v_th - pop.v_rest
            rs = pop.v_reset - pop.v_rest
            s = active & (self.v[g] > th + self.theta_a[g])
            if pop.reset == "zero":
                self.v[g][s] = rs
            else:
                self.v[g][s] -= th - rs
            ref[s] = pp["ref"]
            self.theta_a[g][s] += pop.theta_plus
            spiked.append(s)
        groups = {INPUT: np.flatnonzero(inp_row)}
        for name, s in zip(self.names, spiked, strict=True):
            groups[name] = np.flatnonzero(s)
        for i, pr in enumerate(self.net.projections):
            idx = groups[pr.source]
            if idx.size:
                g = self.names.index(pr.target)
                self.I[g][pr.channel] += self.W[i][idx].sum(0)
        for i, pr in enumerate(self.net.projections):
            if pr.stdp is None:
                continue
            st, W = pr.stdp, self.W[i]
            self.x_pre[i] *= math.exp(-self.net.dt / st.tau_pre)
            self.x_post[i] *= math.exp(-self.net.dt / st.tau_post)
            pre, post = groups[pr.source], groups[pr.target]
            mult = st.rule == "multiplicative"
            span = st.w_max - st.w_min
            for j in pre:
                self.x_pre[i][j] += st.a_pre
                dw = self.x_post[i] * ((W[j] - st.w_min) / span if mult else 1.0)
                W[j] = np.clip(W[j] + dw, st.w_min, st.w_max)
            for j in post:
                self.x_post[i][j] += st.a_post
                dw = self.x_pre[i] * ((st.w_max - W[:, j]) / span if mult else 1.0)
                W[:, j] = np.clip(W[:, j] + dw, st.w_min, st.w_max)
        return spiked

    def run(self, inp: np.ndarray, record: bool = False):
        """Returns (spikes bool [T, N] over all populations, record with v [T, N] in volts
        relative to rest and i_syn [T, K, N])."""
        T = inp.shape[0]
        N = sum(p.n for p in self.pops)
        spikes = np.zeros((T, N), bool)
        rec = {"v": np.zeros((T, N)), "i_syn": np.zeros((T, self.K, N))} if record else None
        for t in range(T):
            spikes[t] = np.concatenate(self.step(inp[t]))
            if record:
                rec["v"][t] = np.concatenate(self.v)
                rec["i_syn"][t] = np.concatenate(self.I, axis=1)
        return spikes, rec
