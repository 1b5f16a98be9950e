"""Hypothesis strategies for random networks and inputs (shared by the bit-exact tests)."""
import numpy as np
from hypothesis import strategies as st

from spikeedge import INPUT, STDP, Network, Population, Projection
from spikeedge.network import lateral_inhibition


@st.composite
def networks(draw, max_pops=3, max_n=12, allow_stdp=True):
    dt = draw(st.sampled_from([1e-4, 5e-4, 1e-3, 2e-3]))
    n_in = draw(st.integers(0, 10))
    n_pops = draw(st.integers(1, max_pops))
    pops = []
    for g in range(n_pops):
        K = draw(st.integers(1, 3))
        tau_m = draw(st.floats(1e-3, 100e-3))
        taus = tuple(draw(st.floats(0.5e-3, 50e-3)) for _ in range(K))
        if draw(st.booleans()):
            taus = (tau_m,) + taus[1:]          # the tau_s == tau_m limit
        v_th = draw(st.floats(0.1, 2.0))
        reset = draw(st.sampled_from(["zero", "subtract"]))
        v_reset = draw(st.floats(-1.0, v_th * 0.9)) if reset == "subtract" else \
            draw(st.floats(-1.0, 1.0))
        n = draw(st.integers(1, max_n))
        bias = draw(st.one_of(st.just(0.0), st.floats(-1.0, 3.0)))
        pops.append(Population(
            f"p{g}", n, tau_m=tau_m, tau_s=taus, v_th=v_th, v_reset=v_reset,
            v_rest=draw(st.floats(-0.5, 0.5)) if draw(st.booleans()) else 0.0,
            bias=bias, t_ref=draw(st.sampled_from([0.0, dt, 2 * dt, 5 * dt, 3e-3])),
            reset=reset,
            v_init=draw(st.floats(-1.0, 1.5)) if draw(st.booleans()) else None,
            theta_plus=draw(st.sampled_from([0.0, 0.0, 0.05, 0.5])),
            tau_theta=draw(st.sampled_from([float("inf"), 5e-3, 100e-3]))))
    sources = ([INPUT] if n_in else []) + [p.name for p in pops]
    projs = []
    for i in range(draw(st.integers(0, 5))):
        src = draw(st.sampled_from(sources))
        tgt = draw(st.sampled_from(pops))
        n_pre = n_in if src == INPUT else next(p.n for p in pops if p.name == src)
        scale = draw(st.sampled_from([0.05, 0.5, 2.0, 50.0]))       # 50: saturation edges
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        w = rng.normal(scale * 0.3, scale, (n_pre, tgt.n))
        if draw(st.booleans()):
            w[rng.random(w.shape) < 0.1] = scale * draw(st.sampled_from([1.0, -1.0])) * 20
        chan = draw(st.integers(0, len(tgt.tau_s) - 1))
        kind = draw(st.sampled_from(["dense", "sparse", "stdp"] if allow_stdp
                                    else ["dense", "sparse"]))
        if kind == "sparse":
            mask = rng.random(w.shape) < 0.4
            indptr = np.concatenate([[0], np.cumsum(mask.sum(1))])
            indices = np.nonzero(mask)[1]
            projs.append(Projection(src, tgt.name, w[mask], channel=chan, indptr=indptr,
                                    indices=indices, name=f"pr{i}"))
        elif kind == "stdp":
            wmax = float(np.abs(w).max()) + 0.1
            a_pre = wmax * draw(st.floats(0.001, 0.3))
            rule = STDP(tau_pre=draw(st.floats(1e-3, 40e-3)), tau_post=draw(st.floats(1e-3, 40e-3)),
                        a_pre=a_pre, a_post=-a_pre * draw(st.floats(0.5, 1.5)),
                        w_min=draw(st.sampled_from([0.0, -wmax])), w_max=wmax,
                        rule=draw(st.sampled_from(["additive", "multiplicative"])))
            projs.append(Projection(src, tgt.name, np.clip(w, rule.w_min, wmax), channel=chan,
                                    stdp=rule, name=f"pr{i}"))
        else:
            projs.append(Projection(src, tgt.name, w, channel=chan, name=f"pr{i}"))
    if draw(st.booleans()):
        projs.append(lateral_inhibition(draw(st.sampled_from(pops)),
                                        draw(st.sampled_from([0.2, 1.0, 5.0]))))
    return Network(n_in, pops, projs, dt=dt, name="random")


@st.composite
def inputs(draw, n_in, max_T=40):
    T = draw(st.integers(1, max_T))
    rate = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return (np.random.default_rng(seed).random((T, n_in)) < rate).astype(np.uint8)
