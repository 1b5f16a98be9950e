"""The Brian2 integer twin reproduces the engine spike for spike and value for value, on small
networks of every projection type and feature, on random networks and on the standard nets."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vhelpers import integer_mismatch, poisson

from netgen import inputs, networks
from spikeedge import INPUT, STDP, Network, Population, Projection
from spikeedge.engine import compiled_available
from spikeedge.nets import standard
from spikeedge.network import lateral_inhibition

pytestmark = pytest.mark.brian2
BACKENDS = ["reference"] + (["compiled"] if compiled_available() else [])


def _csr(rng, n_pre, n_post, p, scale):
    mask = rng.random((n_pre, n_post)) < p
    indptr = np.concatenate([[0], np.cumsum(mask.sum(1))])
    return rng.normal(scale * 0.3, scale, int(mask.sum())), indptr, np.nonzero(mask)[1]


def case(kind, seed=0):
    """Small networks, one feature each (and a few together)."""
    rng = np.random.default_rng(zlib.crc32(kind.encode()) + seed)
    n_in, dt = 6, 1e-3
    inp = poisson(rng, 300, n_in, 0.15)
    hid = dict(tau_m=20e-3, tau_s=(5e-3,), v_th=1.0)
    if kind == "dense":
        net = Network(n_in, [Population("h", 8, **hid), Population("o", 3, **hid)],
                      [Projection(INPUT, "h", rng.normal(0.4, 0.5, (n_in, 8))),
                       Projection("h", "o", rng.normal(0.5, 0.5, (8, 3)))], dt=dt)
    elif kind == "sparse":
        w, ptr, idx = _csr(rng, n_in, 10, 0.4, 1.0)
        w2, ptr2, idx2 = _csr(rng, 10, 4, 0.5, 1.0)
        net = Network(n_in, [Population("h", 10, **hid), Population("o", 4, **hid)],
                      [Projection(INPUT, "h", w, indptr=ptr, indices=idx),
                       Projection("h", "o", w2, indptr=ptr2, indices=idx2)], dt=dt)
    elif kind == "recurrent":
        w_rec = rng.normal(0.0, 0.6, (12, 12))
        w_sp, ptr, idx = _csr(rng, 12, 12, 0.3, 0.5)
        net = Network(n_in, [Population("h", 12, **hid)],
                      [Projection(INPUT, "h", rng.normal(0.5, 0.4, (n_in, 12))),
                       Projection("h", "h", w_rec),
                       Projection("h", "h", -np.abs(w_sp), indptr=ptr, indices=idx)], dt=dt)
    elif kind == "multichannel":
        pop = Population("h", 9, tau_m=15e-3, tau_s=(2e-3, 15e-3, 40e-3), v_th=1.0)
        net = Network(n_in, [pop], [
            Projection(INPUT, "h", rng.normal(0.6, 0.3, (n_in, 9)), channel=0),
            Projection(INPUT, "h", rng.normal(0.1, 0.3, (n_in, 9)), channel=1),
            Projection("h", "h", -np.abs(rng.normal(0.2, 0.2, (9, 9))), channel=2)], dt=dt)
    elif kind == "subtract_refractory_bias":
        pop = Population("h", 10, tau_m=20e-3, tau_s=(5e-3,), v_th=0.8, v_reset=-0.2,
                         v_rest=-0.1, reset="subtract", t_ref=4e-3,
                         bias=rng.uniform(0.0, 1.5, 10), v_init=rng.uniform(-0.2, 0.8, 10))
        net = Network(n_in, [pop], [Projection(INPUT, "h", rng.normal(0.5, 0.5, (n_in, 10)))],
                      dt=dt)
    elif kind == "saturation":
        pop = Population("h", 6, tau_m=30e-3, tau_s=(30e-3,), v_th=0.5, v_reset=0.0)
        w = rng.normal(0.0, 1.0, (n_in, 6)) * 400.0          # currents beyond int32
        net = Network(n_in, [pop], [Projection(INPUT, "h", w),
                                    Projection("h", "h", np.full((6, 6), -900.0))], dt=dt)
        inp = poisson(rng, 300, n_in, 0.5)
    elif kind == "stdp":
        rule = STDP(tau_pre=15e-3, tau_post=25e-3, a_pre=0.05, a_post=-0.055, w_min=0.0,
                    w_max=1.0)
        rule2 = STDP(tau_pre=10e-3, tau_post=10e-3, a_pre=0.02, a_post=-0.02, w_min=-0.5,
                     w_max=0.5)
        net = Network(n_in, [Population("h", 8, **hid), Population("o", 4, **hid)],
                      [Projection(INPUT, "h", rng.uniform(0.2, 0.9, (n_in, 8)), stdp=rule),
                       Projection("h", "o", rng.uniform(-0.3, 0.5, (8, 4)), stdp=rule2),
                       Projection("o", "o", rng.uniform(-0.5, 0.0, (4, 4)))], dt=dt)
        inp = poisson(rng, 400, n_in, 0.2)
    elif kind == "homeostasis_wta":
        pop = Population("h", 8, tau_m=20e-3, tau_s=(5e-3,), v_th=1.0, theta_plus=0.2,
                         tau_theta=50e-3)
        pop2 = Population("o", 4, tau_m=20e-3, tau_s=(5e-3,), v_th=1.0, theta_plus=0.05)
        net = Network(n_in, [pop, pop2], [
            Projection(INPUT, "h", rng.normal(0.8, 0.4, (n_in, 8))),
            lateral_inhibition(pop, 0.5),
            Projection("h", "o", rng.normal(0.8, 0.4, (8, 4)))], dt=dt)
    elif kind == "stdp_multiplicative":
        rule = STDP(tau_pre=20e-3, tau_post=20e-3, a_pre=0.05, a_post=-0.06, w_min=-0.2,
                    w_max=1.0, rule="multiplicative")
        net = Network(n_in, [Population("h", 8, **hid)],
                      [Projection(INPUT, "h", rng.uniform(0.0, 0.9, (n_in, 8)), stdp=rule)],
                      dt=dt)
        inp = poisson(rng, 400, n_in, 0.2)
    elif kind == "tau_equal_dt_small":
        pop = Population("h", 7, tau_m=10e-3, tau_s=(10e-3, 3e-3), v_th=1.0, t_ref=1e-3)
        net = Network(n_in, [pop], [Projection(INPUT, "h", rng.normal(1.0, 0.5, (n_in, 7))),
                                    Projection(INPUT, "h", rng.normal(1.0, 0.5, (n_in, 7)),
                                               channel=1)], dt=1e-4)
        inp = poisson(rng, 600, n_in, 0.03)
    else:
        raise KeyError(kind)
    return net, inp


KINDS = ["dense", "sparse", "recurrent", "multichannel", "subtract_refractory_bias",
         "saturation", "stdp", "homeostasis_wta", "stdp_multiplicative", "tau_equal_dt_small"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_integer_twin_is_exact_on_each_feature(kind, backend):
    net, inp = case(kind)
    assert integer_mismatch(net, inp, backend, seg=128) is None


def test_the_feature_cases_are_not_trivial():
    """Each case spikes (and the saturation case saturates), so exactness means something."""
    from spikeedge import Engine, quantize
    from spikeedge.contract import INT32_MAX, INT32_MIN
    for kind in KINDS:
        net, inp = case(kind)
        prog = quantize(net)
        s, _, rec = Engine(prog).run_chunk(inp, record=True)
        assert s.sum() > 10, kind
        if kind == "saturation":
            assert np.any(rec["i_syn"] == INT32_MAX) and np.any(rec["i_syn"] == INT32_MIN)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_integer_twin_is_exact_on_random_networks(data):
    net = data.draw(networks(max_pops=2, max_n=8))
    inp = data.draw(inputs(net.n_inputs, max_T=40))
    assert integer_mismatch(net, inp) is None


@pytest.mark.parametrize("name,T", [("kws", 0.5), ("shd", 0.3), ("cuba", 0.03), ("stdp", 0.3)])
def test_integer_twin_is_exact_on_the_standard_nets(name, T):
    net, inp, _ = standard(name, T)
    assert integer_mismatch(net, inp, seg=1000) is None
