"""Analytic cases (impulse and step responses) and the float twin: the fixed-point engine is the
exactly integrated float model with rounded constants, so it stays within stated bounds."""
import math

import numpy as np
import pytest

from spikeedge import INPUT, Engine, Network, Population, Projection, quantize
from spikeedge.float_twin import FloatTwin
from spikeedge.nets import standard

TAU_M, TAU_S, DT = 20e-3, 5e-3, 1e-3


def one_neuron(w=0.5, bias=0.0, v_th=1.0):
    return Network(1, [Population("n", 1, tau_m=TAU_M, tau_s=(TAU_S,), v_th=v_th, bias=bias)],
                   [Projection(INPUT, "n", np.array([[w]]))], dt=DT)


def impulse_analytic(w, n):
    """v and I after step n (n >= 1) for one input spike at step 0 (current jumps at its end)."""
    t = n * DT
    i = w * math.exp(-t / TAU_S)
    v = w * TAU_S / (TAU_S - TAU_M) * (math.exp(-t / TAU_S) - math.exp(-t / TAU_M))
    return v, i


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_impulse_response_matches_the_analytic_solution(backend):
    net = one_neuron(w=0.5)
    prog = quantize(net)
    S = prog.scales[0]
    inp = np.zeros((150, 1), np.uint8)
    inp[0] = 1
    try:
        eng = Engine(prog, backend)
    except Exception as exc:          # compiled backend missing
        pytest.skip(str(exc))
    spikes, _, rec = eng.run_chunk(inp, record=True)
    assert spikes.sum() == 0
    lsb = 1.0 / S
    for n in range(1, 150):
        v, i = impulse_analytic(0.5, n)
        # each step adds at most half an LSB of product rounding plus the constants' rounding
        # (|error| <= 0.5 / 2**24 relative per step), both accumulated over n steps
        tol = n * (lsb + 2 * 0.5 / 2**24)
        assert abs(rec["v"][n, 0] / S - v) <= tol, n
        assert abs(rec["i_syn"][n, 0, 0] / S - i) <= tol, n
    # and the float twin integrates the same solution exactly
    _, frec = FloatTwin(net).run(inp, record=True)
    for n in (1, 10, 100):
        v, i = impulse_analytic(0.5, n)
        assert frec["v"][n, 0] == pytest.approx(v, abs=1e-12)
        assert frec["i_syn"][n, 0, 0] == pytest.approx(i, abs=1e-12)


def test_step_response_and_first_spike_time():
    # constant drive b: v(t) = b (1 - exp(-t/tau_m)); crosses v_th = 1 at t* = -tau_m ln(1 - 1/b)
    b = 1.5
    net = one_neuron(w=0.0, bias=b)
    net.projections = []
    prog = quantize(net)
    inp = np.zeros((100, 1), np.uint8)
    spikes, _, rec = Engine(prog, "reference").run_chunk(inp, record=True)
    S = prog.scales[0]
    for n in range(1, 10):
        assert rec["v"][n - 1, 0] / S == pytest.approx(b * (1 - math.exp(-n * DT / TAU_M)),
                                                       abs=n * 2 / S)
    t_star = -TAU_M * math.log(1 - 1 / b)
    first = int(np.flatnonzero(spikes[:, 0])[0]) + 1        # steps are numbered from 1
    assert first == math.ceil(t_star / DT)
    # regular firing: every interval equals the first
    isi = np.diff(np.flatnonzero(spikes[:, 0]))
    assert set(isi.tolist()) == {first}


def test_fixed_point_stays_close_to_the_float_twin_on_kws():
    net, inp, _ = standard("kws", 2.0)
    prog = quantize(net)
    spikes, _, rec = Engine(prog).run_chunk(inp, record=True)
    fspikes, frec = FloatTwin(net).run(inp, record=True)
    for name in prog.pop_names:
        sl = prog.pop_slice(name)
        n_fix, n_float = int(spikes[:, sl].sum()), int(fspikes[:, sl].sum())
        assert n_float > 50
        assert abs(n_fix - n_float) <= 0.02 * n_float, (name, n_fix, n_float)
    # spike-time coincidence within +-1 step, hidden layer
    sl = prog.pop_slice("hid")
    a, b = spikes[:, sl].astype(bool), fspikes[:, sl]
    near = b | np.roll(b, 1, 0) | np.roll(b, -1, 0)
    assert (a & near).sum() >= 0.95 * a.sum()
    # membrane error relative to threshold, before the first spike-time divergence
    diverge = np.flatnonzero((spikes.astype(bool) != fspikes).any(1))
    upto = int(diverge[0]) if diverge.size else inp.shape[0]
    assert upto > 20
    S = prog.scales[0]
    rmse = np.sqrt(np.mean((rec["v"][:upto, sl] / S - frec["v"][:upto, sl]) ** 2))
    assert rmse < 1e-4
