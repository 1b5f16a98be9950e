"""The four standard benchmark networks of DESIGN §8, as physical-unit Networks.

Sizes, rates, weight distributions and seeds follow the peer harness's definitions, so that
spike counts can be compared with Brian2 and the other peers. The neuron model is the contract's
exact integration (peers integrate kws/shd/stdp with forward Euler), so counts agree closely, not
exactly.
"""
from __future__ import annotations

import numpy as np

from .network import INPUT, STDP, Network, Population, Projection

SEED = 20240501
SIM_TIME = {"kws": 60.0, "shd": 10.0, "cuba": 1.0, "stdp": 10.0}
DT = {"kws": 1e-3, "shd": 1e-3, "cuba": 1e-4, "stdp": 1e-3}
NAMES = tuple(SIM_TIME)
_SEED_OFFSET = {"kws": 1, "shd": 2, "cuba": 3, "stdp": 4}


def poisson_input(rng, rates_hz, T, dt) -> np.ndarray:
    """Bernoulli(rate*dt) per step: uint8 [steps, n], at most one spike per input and step."""
    steps = int(round(T / dt))
    rates = np.atleast_1d(np.asarray(rates_hz, dtype=np.float64))
    return (rng.random((steps, rates.size)) < (rates * dt)[None, :]).astype(np.uint8)


def standard(name: str, T: float | None = None):
    """Return (Network, input uint8 [steps, n_in], simulated seconds) for a standard net."""
    if name not in SIM_TIME:
        raise KeyError(f"unknown standard network {name!r}; choose from {', '.join(NAMES)}")
    rng = np.random.default_rng(SEED + _SEED_OFFSET[name])
    T = SIM_TIME[name] if T is None else float(T)
    dt = DT[name]
    if name == "kws":
        inp = poisson_input(rng, np.full(40, 50.0), T, dt)
        w_in = rng.normal(0.10, 0.12, (40, 128))
        w_out = rng.normal(0.10, 0.12, (128, 10))
        net = Network(40, [Population("hid", 128), Population("out", 10)],
                      [Projection(INPUT, "hid", w_in, name="in->hid"),
                       Projection("hid", "out", w_out, name="hid->out")], dt=dt, name=name)
    elif name == "shd":
        inp = poisson_input(rng, np.full(700, 10.0), T, dt)
        w_in = rng.normal(0.035, 0.05, (700, 256))
        w_rec = rng.normal(-0.01, 0.06, (256, 256))
        np.fill_diagonal(w_rec, 0.0)
        w_out = rng.normal(0.06, 0.08, (256, 20))
        net = Network(700, [Population("hid", 256), Population("out", 20)],
                      [Projection(INPUT, "hid", w_in, name="in->hid"),
                       Projection("hid", "hid", w_rec, name="hid->hid"),
                       Projection("hid", "out", w_out, name="hid->out")], dt=dt, name=name)
    elif name == "cuba":
        N, NE, p = 4000, 3200, 0.02
        mask = rng.random((N, N)) < p
        v0 = -60e-3 + rng.random(N) * 10e-3
        we, wi = 60 * 0.27 / 10 * 1e-3, -20 * 4.5 / 10 * 1e-3
        projs = []
        for chan, (lo, hi, w, label) in enumerate(((0, NE, we, "exc"), (NE, N, wi, "inh"))):
            sub = np.zeros_like(mask)
            sub[lo:hi] = mask[lo:hi]
            indptr = np.concatenate([[0], np.cumsum(sub.sum(1))]).astype(np.int64)
            indices = np.nonzero(sub)[1].astype(np.int64)
            projs.append(Projection("all", "all", np.full(indices.size, w), channel=chan,
                                    indptr=indptr, indices=indices, name=label))
        pop = Population("all", N, tau_m=20e-3, tau_s=(5e-3, 10e-3), v_th=-50e-3,
                         v_reset=-60e-3, v_rest=-49e-3, t_ref=5e-3, v_init=v0)
        net = Network(0, [pop], projs, dt=dt, name=name)
        inp = np.zeros((int(round(T / dt)), 0), np.uint8)
    else:  # stdp
        wmax = 0.02
        rates = rng.uniform(0.0, 60.0, 784)
        inp = poisson_input(rng, rates, T, dt)
        w0 = rng.uniform(0.0, wmax, (784, 100))
        a_pre = 0.01 * wmax
        rule = STDP(tau_pre=20e-3, tau_post=20e-3, a_pre=a_pre, a_post=-a_pre * 1.05,
                    w_min=0.0, w_max=wmax)
        net = Network(784, [Population("out", 100)],
                      [Projection(INPUT, "out", w0, stdp=rule, name="in->out")], dt=dt,
                      name=name)
    return net.validate(), inp, T


def synaptic_events(program, input_counts: np.ndarray, neuron_counts: np.ndarray) -> int:
    """Sum over projections of presynaptic spikes x fan-out (row length), from per-input and
    per-neuron spike counts of a run."""
    from .program import KIND_DENSE, PJ_KIND, PJ_N_POST, PJ_PTR_OFF, PJ_SRC_GROUP
    counts = [np.asarray(input_counts, np.int64)]
    for name in program.pop_names:
        counts.append(np.asarray(neuron_counts, np.int64)[program.pop_slice(name)])
    total = 0
    for row in program.proj:
        c = counts[int(row[PJ_SRC_GROUP])]
        if row[PJ_KIND] == KIND_DENSE:
            total += int(c.sum()) * int(row[PJ_N_POST])
        else:
            po = int(row[PJ_PTR_OFF])
            fan = np.diff(program.csr_ptr[po:po + c.size + 1]).astype(np.int64)
            total += int(np.dot(c, fan))
    return total


def clamp_case(K: int, reset: str, t_ref: float, bias: float, n: int = 37, seed: int = 0,
               steps: int = 100):
    """A test case for the kernels' clamped membrane update (not a benchmark): one population
    of ``n`` neurons fed by 6 inputs and itself, with a bias of ``bias`` x the threshold and
    input gains B_k = 1/2 (so A_m + sum B_k > 2^24, as in cuba), and a state with about half
    the membranes and currents at the int32 extremes, so that the clamp acts on the first
    steps. Returns (program, input [steps, 6] uint8, state). Used by the SIMD tests and the
    aarch64 harness's cases."""
    from .quantize import quantize
    rng = np.random.default_rng(seed)
    pop = Population("p", n, tau_m=20e-3, tau_s=(8e-3, 3e-3)[:K], v_th=1.0, v_reset=0.1,
                     t_ref=t_ref, reset=reset, v_init=rng.uniform(-0.5, 1.2, n))
    projs = [Projection(INPUT, "p", rng.normal(0.5, 0.6, (6, n)), channel=0),
             Projection("p", "p", rng.normal(0.0, 0.5, (n, n)), channel=K - 1)]
    prog = quantize(Network(6, [pop], projs, dt=1e-3))
    prog.bias[:] = int(bias * int(prog.theta[0]))
    prog.beta[:] = 2**23
    state = prog.initial_state()
    pick = rng.random(n) < 0.5
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    state.v[pick] = rng.choice([lo, hi, lo + 5, hi - 5], int(pick.sum()))
    state.i_syn[:, pick] = rng.choice([lo, hi], (K, int(pick.sum())))
    inp = (rng.random((steps, 6)) < 0.35).astype(np.uint8)
    return prog, inp, state
