"""The integer twin: the fixed-point contract (docs/fixed_point.md) written as integer equations
in Brian2, built from a quantized ``Program``.

Brian2 has integer variables and floor division but no shifts, so ``(x*c + 2**23) >> 24`` is
written ``(x*c + 8388608) // 16777216`` on int64 variables (``//`` floors like ``>>``; both
Brian2 targets floor on negative numbers), and ``sat32`` is ``clip(., -2**31, 2**31 - 1)``.
Every variable is int64 so that products are exact; the contract keeps every value inside
int32, so the int32 engine and the int64 twin agree value for value. Schedule of one step:

=================  ==============================================================  ==========
Brian2 slot        contract step                                                   where
=================  ==============================================================  ==========
groups             1 refractory countdown, 2 membrane, 3 current and theta_a decay run_regularly
thresholds         4 spike test ``ref == 0 and v > sat32(theta + theta_a)``        threshold
synapses, order -2 7a STDP trace decay (per-synapse copies of x_pre / x_post)      run_regularly
synapses, order -1 6a propagation: ``acc_k += w * 2**shift`` (int64, exact);       on_pre
                   7b ``x_pre += a_pre``, ``w = clip(w + dw(x_post))`` (after using w)
synapses, order 1  7c ``x_post += a_post``, ``w = clip(w + dw(x_pre))``           on_post
after_synapses     6b ``I_k = sat32(I_k + acc_k)``, ``acc_k = 0`` (one saturation)  run_regularly
resets             5 reset (zero or subtract), ``ref = ref_steps``, theta_a += theta_plus
                                                                                   reset
end                record v and I_k (the engine's ``record``: values after a step)  StateMonitor
=================  ==============================================================  ==========

The reset runs after propagation here, before it in the contract; neither touches what the
other reads (propagation reads spikes and weights, the reset reads v), so the order of the two
cannot change a value. STDP traces are kept per synapse (Brian2's usual form): every copy of
``x_pre[i]`` sees the same decays and increments as the engine's one ``x_pre[i]``, so the copies
stay equal to it, which the twin checks too. ``dw`` is the trace itself (additive rule) or
``rdiv(trace * room, R)`` with ``rdiv(a, R) = (2a + R) // (2R)`` (multiplicative rule).
"""
from __future__ import annotations

import numpy as np

from spikeedge.contract import (
    DECAY_HALF,
    DECAY_ONE,
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    TRACE_FRAC_BITS,
)
from spikeedge.program import (
    KIND_DENSE,
    PJ_CHANNEL,
    PJ_IDX_OFF,
    PJ_KIND,
    PJ_N_POST,
    PJ_N_PRE,
    PJ_PLAST,
    PJ_PTR_OFF,
    PJ_SHIFT,
    PJ_SRC_GROUP,
    PJ_TGT_START,
    PJ_W_OFF,
    PL_A_POST,
    PL_A_PRE,
    PL_ALPHA_POST,
    PL_ALPHA_PRE,
    PL_RULE,
    PL_W_MAX,
    PL_W_MIN,
    RULE_MULTIPLICATIVE,
    Program,
)

from ._brian import check_order, connect_indices, spike_generator

LO, HI, HALF, ONE = INT32_MIN, INT32_MAX, DECAY_HALF, DECAY_ONE


def _sat(expr: str) -> str:
    return f"clip({expr}, {LO}, {HI})"


def _mulq24(x: str, c: str) -> str:
    return f"({x} * {c} + {HALF}) // {ONE}"


def neuron_code(K: int) -> dict:
    """Brian2 model, update, threshold, reset and fold code for K channels (strings)."""
    chans = range(K)
    model = ["v : integer", "ref : integer", "theta_a : integer"]
    model += [f"I{k} : integer" for k in chans] + [f"acc{k} : integer" for k in chans]
    consts = ["alpha_m", "bias", "theta", "v_reset", "reset_sub", "ref_steps", "theta_plus",
              "alpha_theta"]
    consts += [f"alpha_s{k}" for k in chans] + [f"beta{k}" for k in chans]
    model += [f"{c} : integer (constant)" for c in consts]
    total = " + ".join(["v * alpha_m"] + [f"I{k} * beta{k}" for k in chans])
    update = [
        "ref = ref - int(ref > 0)",                                                 # step 1
        f"v = v + int(ref == 0) * ({_sat(f'({total} + {HALF}) // {ONE} + bias')} - v)",  # 2
    ] + [f"I{k} = {_sat(_mulq24(f'I{k}', f'alpha_s{k}'))}" for k in chans] + [     # step 3
        f"theta_a = {_sat(_mulq24('theta_a', 'alpha_theta'))}"]
    reset = [f"v = (1 - reset_sub) * v_reset + reset_sub * {_sat('v - (theta - v_reset)')}",
             "ref = ref_steps", f"theta_a = {_sat('theta_a + theta_plus')}"]
    fold = [f"I{k} = {_sat(f'I{k} + acc{k}')}" for k in chans] + [f"acc{k} = 0" for k in chans]
    return {"model": "\n".join(model), "update": "\n".join(update),
            "threshold": f"ref == 0 and v > {_sat('theta + theta_a')}",
            "reset": "\n".join(reset),
            "fold": "\n".join(fold), "consts": consts,
            "int_vars": ["v", "ref", "theta_a"] + [f"I{k}" for k in chans]
            + [f"acc{k}" for k in chans]}


def plastic_code(k: int, shift: int, lrow) -> dict:
    """Synapse model, on_pre, on_post and trace decay of a plastic (STDP) projection."""
    wmin, wmax = int(lrow[PL_W_MIN]), int(lrow[PL_W_MAX])
    lo, hi = max(wmin, INT16_MIN), min(wmax, INT16_MAX)
    a_pre, a_post = int(lrow[PL_A_PRE]), int(lrow[PL_A_POST])
    if int(lrow[PL_RULE]) == RULE_MULTIPLICATIVE:
        R = wmax - wmin
        R8 = R << TRACE_FRAC_BITS
        dw_pre = f"(2 * (xpost * (w - {wmin})) + {R8}) // {2 * R8}"
        dw_post = f"(2 * (xpre * ({wmax} - w)) + {R8}) // {2 * R8}"
    else:
        one, half = 1 << TRACE_FRAC_BITS, 1 << (TRACE_FRAC_BITS - 1)
        dw_pre, dw_post = f"(xpost + {half}) // {one}", f"(xpre + {half}) // {one}"
    return {
        "model": "w : integer\nxpre : integer\nxpost : integer",
        "on_pre": "\n".join([f"acc{k}_post += w * {1 << shift}",
                             f"xpre = {_sat(f'xpre + {a_pre}')}",
                             f"w = clip(w + {dw_pre}, {lo}, {hi})"]),
        "on_post": "\n".join([f"xpost = {_sat(f'xpost + {a_post}')}",
                              f"w = clip(w + {dw_post}, {lo}, {hi})"]),
        "decay": "\n".join([f"xpre = {_sat(_mulq24('xpre', int(lrow[PL_ALPHA_PRE])))}",
                            f"xpost = {_sat(_mulq24('xpost', int(lrow[PL_ALPHA_POST])))}"]),
    }


class IntegerTwin:
    """The Brian2 integer network of ``prog`` driven by ``inp`` (uint8 [T, n_in]).

    ``run(steps)`` advances it and returns the spikes and, for every neuron, ``v`` and ``i_syn``
    after each step, in the engine's units and shapes (int64 here); ``weights()`` and
    ``traces()`` give the learned weights and STDP traces in the engine's layout."""

    def __init__(self, b2, prog: Program, inp: np.ndarray, name: str = "int"):
        self.b2, self.prog, self.name = b2, prog, name
        dt = prog.dt
        self.dt = dt
        self.clock = b2.Clock(dt * b2.second, name=f"{name}_clock")
        N, K = prog.n_neurons, prog.n_channels
        self.N, self.K = N, K
        code = neuron_code(K)
        i64 = {v: np.int64 for v in code["int_vars"] + code["consts"]}
        G = b2.NeuronGroup(N, code["model"], threshold=code["threshold"], reset=code["reset"],
                           dtype=i64, clock=self.clock, name=f"{name}_neurons")
        G.v = prog.v_init.astype(np.int64)
        G.ref = 0
        G.theta_a = 0
        for c in ("alpha_m", "bias", "theta", "v_reset", "reset_sub", "ref_steps", "theta_plus",
                  "alpha_theta"):
            setattr(G, c, getattr(prog, c).astype(np.int64))
        for k in range(K):
            setattr(G, f"alpha_s{k}", prog.alpha_s[k].astype(np.int64))
            setattr(G, f"beta{k}", prog.beta[k].astype(np.int64))
        G.run_regularly(code["update"], when="groups", clock=self.clock, name=f"{name}_update")
        G.run_regularly(code["fold"], when="after_synapses", clock=self.clock,
                        name=f"{name}_fold")
        self.G = G
        objs = [G]
        sources = {}
        if prog.n_in and prog.proj.shape[0] and np.any(prog.proj[:, PJ_SRC_GROUP] == 0):
            sources[0] = spike_generator(b2, inp, dt, f"{name}_input", self.clock)
            objs.append(sources[0])
        for g in range(len(prog.pop_names)):
            s = int(prog.pop_start[g])
            sources[g + 1] = G[s:s + int(prog.pop_n[g])]
        self.synapses = []        # (projection index, Synapses, plastic)
        for p, row in enumerate(prog.proj):
            src = sources[int(row[PJ_SRC_GROUP])]
            n_pre, n_post = int(row[PJ_N_PRE]), int(row[PJ_N_POST])
            t0, k, shift = int(row[PJ_TGT_START]), int(row[PJ_CHANNEL]), int(row[PJ_SHIFT])
            tgt = G[t0:t0 + n_post]
            dense = int(row[PJ_KIND]) == KIND_DENSE
            off = int(row[PJ_W_OFF])
            if dense:
                i, j = connect_indices(True, n_pre, n_post)
            else:
                po, io = int(row[PJ_PTR_OFF]), int(row[PJ_IDX_OFF])
                ptr = prog.csr_ptr[po:po + n_pre + 1]
                i, j = connect_indices(False, n_pre, n_post, ptr, prog.csr_idx[io:io + ptr[-1]])
            if i.size == 0:
                continue                        # an empty sparse projection does nothing
            wq = prog.weights[off:off + i.size].astype(np.int64)
            sname = f"{name}_proj{p}"
            plast = int(row[PJ_PLAST])
            if plast >= 0:
                pc = plastic_code(k, shift, prog.plast[plast])
                S = b2.Synapses(src, tgt, pc["model"], on_pre=pc["on_pre"],
                                on_post=pc["on_post"], name=sname, clock=self.clock,
                                dtype={"w": np.int64, "xpre": np.int64, "xpost": np.int64})
                S.connect(i=i, j=j)
                S.w = wq
                S.run_regularly(pc["decay"], when="synapses", order=-2, clock=self.clock,
                                name=f"{sname}_decay")
            else:
                S = b2.Synapses(src, tgt, "w : integer (constant)", on_pre=f"acc{k}_post += w",
                                name=sname, clock=self.clock, dtype={"w": np.int64})
                S.connect(i=i, j=j)
                S.w = wq << np.int64(shift)
            check_order(S, i, j, sname)
            self.synapses.append((p, S, plast >= 0))
            objs.append(S)
        self.spike_mon = b2.SpikeMonitor(G, name=f"{name}_spikes")
        objs.append(self.spike_mon)
        self.net = b2.Network(objs)
        self.step = 0
        self._seg = 0

    def run(self, steps: int) -> dict:
        """Advance ``steps`` steps; returns {"spikes": uint8 [steps, N], "v": [steps, N],
        "i_syn": [steps, K, N]} for these steps."""
        b2 = self.b2
        vars_ = ["v"] + [f"I{k}" for k in range(self.K)]
        mon = b2.StateMonitor(self.G, vars_, record=True, when="end", order=100,
                              clock=self.clock, name=f"{self.name}_state{self._seg}")
        self._seg += 1
        self.net.add(mon)
        n_before = self.spike_mon.num_spikes
        self.net.run(steps * self.dt * b2.second)
        got = len(mon.t_)
        if got != steps:
            raise RuntimeError(f"Brian2 ran {got} steps, expected {steps}")
        rec = {"v": np.asarray(mon.v).T.copy(),
               "i_syn": np.stack([np.asarray(getattr(mon, f"I{k}")).T for k in range(self.K)],
                                 axis=1)}
        self.net.remove(mon)
        del mon
        t_all = np.asarray(self.spike_mon.t_[n_before:])
        i_all = np.asarray(self.spike_mon.i[n_before:], np.int64)
        spikes = np.zeros((steps, self.N), np.uint8)
        st = np.rint(t_all / self.dt).astype(np.int64) - self.step
        spikes[st, i_all] = 1
        rec["spikes"] = spikes
        self.step += steps
        return rec

    def theta_a(self) -> np.ndarray:
        """The homeostatic threshold increase of every neuron (engine's ``state.theta_a``)."""
        return np.asarray(self.G.theta_a[:], np.int64)

    def weights(self) -> np.ndarray:
        """The flat int16 weight array in the engine's layout (plastic ones as learned)."""
        w = self.prog.weights.copy()
        for p, S, plastic in self.synapses:
            if plastic:
                off = int(self.prog.proj[p][PJ_W_OFF])
                ws = np.asarray(S.w[:], np.int64)
                w[off:off + ws.size] = ws
        return w

    def traces(self):
        """(x_pre, x_post) in the engine's layout, read from the per-synapse copies; raises if
        the copies of one neuron's trace disagree (they cannot, by construction)."""
        n_pre, n_post = self.prog.trace_sizes()
        x_pre, x_post = np.zeros(n_pre, np.int64), np.zeros(n_post, np.int64)
        for lrow in self.prog.plast:
            p = int(lrow[0])
            S = next(s for q, s, _ in self.synapses if q == p)
            row = self.prog.proj[p]
            n_i, n_j = int(row[PJ_N_PRE]), int(row[PJ_N_POST])
            xp = np.asarray(S.xpre[:], np.int64).reshape(n_i, n_j)
            xq = np.asarray(S.xpost[:], np.int64).reshape(n_i, n_j)
            if np.any(xp != xp[:, :1]) or np.any(xq != xq[:1, :]):
                raise RuntimeError("per-synapse trace copies disagree")
            x_pre[int(lrow[1]):int(lrow[1]) + n_i] = xp[:, 0]
            x_post[int(lrow[2]):int(lrow[2]) + n_j] = xq[0, :]
        return x_pre, x_post
