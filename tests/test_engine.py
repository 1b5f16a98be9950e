import logging

import numpy as np
import pytest

from spikeedge import (
    INPUT,
    BackendError,
    Engine,
    InputError,
    Network,
    Population,
    Projection,
    quantize,
)
from spikeedge import engine as engine_mod
from spikeedge.kernels import AVAILABLE


def prog():
    net = Network(3, [Population("a", 4), Population("b", 2)],
                  [Projection(INPUT, "a", np.full((3, 4), 0.9)),
                   Projection("a", "b", np.full((4, 2), 0.8))])
    return quantize(net)


def test_input_checks():
    eng = Engine(prog(), "reference")
    with pytest.raises(InputError, match=r"\[T, 3\]"):
        eng.run_chunk(np.zeros((5, 2), np.uint8))
    with pytest.raises(InputError, match=r"\[T, 3\]"):
        eng.run_chunk(np.zeros(5, np.uint8))
    with pytest.raises(InputError, match="0 or 1"):
        eng.run_chunk(np.full((5, 3), 2, np.int64))
    with pytest.raises(InputError, match="bool or integer"):
        eng.run_chunk(np.zeros((5, 3), np.float32))
    with pytest.raises(InputError, match="State"):
        eng.run_chunk(np.zeros((5, 3), np.uint8), state={"v": 1})
    with pytest.raises(InputError, match="Program"):
        Engine("model.npz")
    with pytest.raises(BackendError, match="backend"):
        Engine(prog(), "gpu")


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_compiled_wrapper_checks_state_arrays():
    eng = Engine(prog(), "compiled")
    st = eng.initial_state()
    st.v = st.v.astype(np.int64)
    with pytest.raises(InputError, match="'v'"):
        eng.run_chunk(np.zeros((5, 3), np.uint8), st)
    st = eng.initial_state()
    st.i_syn = np.zeros((2, 6), np.int32)
    with pytest.raises(InputError, match="i_syn"):
        eng.run_chunk(np.zeros((5, 3), np.uint8), st)


@pytest.mark.parametrize("backend", ["reference"] + (["compiled"] if AVAILABLE else []))
def test_chunking_and_bool_input_give_the_same_result(backend):
    rng = np.random.default_rng(1)
    inp = rng.random((300, 3)) < 0.3
    eng = Engine(prog(), backend)
    whole, st_w, _ = eng.run_chunk(inp)
    assert whole.sum() > 0
    st = eng.initial_state()
    parts = []
    for a, b in ((0, 1), (1, 77), (77, 77), (77, 300)):
        s, st, _ = eng.run_chunk(inp[a:b].astype(np.uint8), st)
        parts.append(s)
    assert np.array_equal(np.concatenate(parts), whole) and st.equals(st_w)
    assert st.step == 300
    s2, _, _ = eng.run(inp, chunk=13)
    assert np.array_equal(s2, whole)
    out = np.empty((300, eng.n_neurons), np.uint8)
    s3, _, _ = eng.run_chunk(inp, out=out)
    assert s3 is out and np.array_equal(out, whole)


def test_snapshot_and_restore_state():
    eng = Engine(prog(), "reference")
    inp = (np.random.default_rng(2).random((100, 3)) < 0.3).astype(np.uint8)
    _, st, _ = eng.run_chunk(inp[:50])
    snap = st.copy()
    a, _, _ = eng.run_chunk(inp[50:], st)
    b, _, _ = eng.run_chunk(inp[50:], snap)
    assert np.array_equal(a, b)


def test_missing_build_falls_back_with_one_log_line(monkeypatch, caplog):
    import spikeedge.kernels as k
    monkeypatch.setattr(k, "AVAILABLE", False)
    monkeypatch.setattr(k, "IMPORT_ERROR", "no module named _kernels")
    monkeypatch.setattr(engine_mod, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="spikeedge"):
        e1 = Engine(prog())
        e2 = Engine(prog())
    assert e1.backend == e2.backend == "reference"
    lines = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(lines) == 1 and "no module named _kernels" in lines[0].getMessage()
    with pytest.raises(BackendError, match="not available"):
        Engine(prog(), "compiled")


@pytest.mark.parametrize("backend", ["reference"] + (["compiled"] if AVAILABLE else []))
def test_learning_switch_and_rate_at_runtime(backend):
    from spikeedge import STDP
    from spikeedge.program import PL_A_POST, PL_A_PRE
    rule = STDP(a_pre=0.02, a_post=-0.021, w_max=1.0)
    net = Network(5, [Population("o", 3)],
                  [Projection(INPUT, "o", np.full((5, 3), 0.6), stdp=rule)])
    inp = (np.random.default_rng(3).random((200, 5)) < 0.3).astype(np.uint8)
    eng = Engine(quantize(net), backend)
    base = eng.program.plast[0, [PL_A_PRE, PL_A_POST]].copy()
    eng.set_learning(enabled=False)
    s0, st0, _ = eng.run_chunk(inp)
    assert s0.sum() > 0 and np.array_equal(st0.w, eng.program.weights)   # nothing learned
    eng.set_learning(enabled=True)
    _, st1, _ = eng.run_chunk(inp)
    assert not np.array_equal(st1.w, eng.program.weights)
    eng.set_learning(rate=0.5)
    assert np.array_equal(eng.program.plast[0, [PL_A_PRE, PL_A_POST]], np.rint(base * 0.5))
    _, st2, _ = eng.run_chunk(inp)
    assert not np.array_equal(st2.w, st1.w)
    eng.set_learning(rate=1.0)
    assert np.array_equal(eng.program.plast[0, [PL_A_PRE, PL_A_POST]], base)
    with pytest.raises(InputError, match="learning rate"):
        eng.set_learning(rate=-1)


# ---- the compiled kernel's specialised path (lif_kernel.h: se_prepare) and Engine.stream ----

def _cuba_like(reset="zero", t_ref=2e-3, bias=0.0, scale=1.0, dup=True):
    """Two channels, refractoriness, a recurrent CSR projection (with repeated targets in a
    row when dup) and a dense input projection."""
    rng = np.random.default_rng(7)
    n = 40
    pop = Population("p", n, tau_m=10e-3, tau_s=(3e-3, 8e-3), v_th=1.0, v_reset=0.1,
                     t_ref=t_ref, reset=reset, bias=bias,
                     v_init=rng.uniform(0.0, 0.9, n))
    ptr = np.arange(0, 5 * (n + 1), 5)
    idx = rng.integers(0, n, 5 * n)
    if dup:
        idx[1::5] = idx[0::5]                    # each row hits one target twice
    projs = [Projection(INPUT, "p", rng.normal(0.4, 0.3, (6, n)) * scale, channel=0),
             Projection("p", "p", rng.normal(0.0, 0.4, 5 * n) * scale, channel=1,
                        indptr=ptr, indices=idx)]
    return quantize(Network(6, [pop], projs, dt=1e-3))


def _same_as_reference(program, inp, state=None):
    ref_eng, fast_eng = Engine(program, "reference"), Engine(program, "compiled")
    st_r = program.initial_state() if state is None else state.copy()
    st_c = program.initial_state() if state is None else state.copy()
    s_r, st_r, rec_r = ref_eng.run_chunk(inp, st_r, record=True)
    s_c, st_c, rec_c = fast_eng.run_chunk(inp, st_c, record=True)
    assert np.array_equal(s_r, s_c) and st_r.equals(st_c)
    assert np.array_equal(rec_r["i_syn"], rec_c["i_syn"])
    # the unrecorded call (run_state) too
    st_u = program.initial_state() if state is None else state.copy()
    s_u, st_u, _ = fast_eng.run_chunk(inp, st_u)
    assert np.array_equal(s_u, s_r) and st_u.equals(st_r)
    return fast_eng, s_r, rec_r


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
def test_specialised_path_matches_reference(reset, t_ref):
    p = _cuba_like(reset=reset, t_ref=t_ref)
    inp = (np.random.default_rng(8).random((400, 6)) < 0.3).astype(np.uint8)
    eng, spikes, _ = _same_as_reference(p, inp)
    assert eng._kernel.specialised and spikes.sum() > 20


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_specialised_path_falls_back_per_step_near_saturation():
    """Weights large enough that step sums saturate the currents: those steps must take the
    int64 accumulator, the others the direct int32 adds, with the reference's result."""
    p = _cuba_like(scale=400.0)
    inp = (np.random.default_rng(9).random((300, 6)) < 0.9).astype(np.uint8)
    eng, _, rec = _same_as_reference(p, inp)
    assert eng._kernel.specialised
    i = rec["i_syn"]
    assert (i == 2**31 - 1).any() or (i == -2**31).any()      # saturation did happen
    assert (np.abs(i.astype(np.int64)) < 2**30).any()


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_general_path_for_per_neuron_parameters_and_odd_resets():
    inp = (np.random.default_rng(10).random((300, 6)) < 0.3).astype(np.uint8)
    p = _cuba_like(bias=np.linspace(-0.2, 0.6, 40))        # bias varies per neuron
    eng, _, _ = _same_as_reference(p, inp)
    assert not eng._kernel.specialised
    p = _cuba_like(reset="subtract")
    p.v_reset[:] = p.theta + 5                            # theta - v_reset < 0
    eng, _, _ = _same_as_reference(p, inp)
    assert not eng._kernel.specialised


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_running_refractory_counters_are_honoured_without_a_refractory_period():
    p = _cuba_like(t_ref=0.0)
    st = p.initial_state()
    st.ref[::3] = 4                     # counters running although ref_steps == 0
    inp = (np.random.default_rng(11).random((50, 6)) < 0.3).astype(np.uint8)
    _same_as_reference(p, inp, st)


@pytest.mark.parametrize("backend", ["reference"] + (["compiled"] if AVAILABLE else []))
def test_stream_equals_run_chunk(backend):
    from spikeedge import STDP
    rule = STDP(a_pre=0.02, a_post=-0.021, w_max=1.0)
    net = Network(5, [Population("o", 3, t_ref=2e-3)],
                  [Projection(INPUT, "o", np.full((5, 3), 0.6), stdp=rule)])
    eng = Engine(quantize(net), backend)
    inp = (np.random.default_rng(12).random((200, 5)) < 0.3).astype(np.uint8)
    whole, st_w, _ = eng.run_chunk(inp)
    st = eng.initial_state()
    stream = eng.stream(st, max_steps=10)
    parts = [stream.run(inp[a:a + 10]).copy() for a in range(0, 150, 10)]
    parts.append(stream.run(inp[150:157].astype(bool)).copy())          # bool, short block
    parts.append(stream.run(inp[157:160].astype(np.int64)).copy())      # converted, checked
    parts += [stream.run(inp[a:a + 10]).copy() for a in range(160, 200, 10)]
    assert np.array_equal(np.concatenate(parts), whole)
    assert st.equals(st_w) and st.step == 200
    assert stream.run(np.zeros((0, 5), np.uint8)).shape == (0, 3)
    with pytest.raises(InputError, match="at most 10"):
        stream.run(inp[:11])
    with pytest.raises(InputError, match=r"\[T, 5\]"):
        stream.run(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="0 or 1"):
        stream.run(np.full((2, 5), 3, np.int64))
    with pytest.raises(InputError, match="max_steps"):
        eng.stream(st, max_steps=0)
    with pytest.raises(InputError, match="State"):
        eng.stream({"v": 1})


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_stream_checks_state_arrays_once():
    eng = Engine(prog(), "compiled")
    st = eng.initial_state()
    st.v = st.v.astype(np.int64)
    with pytest.raises(InputError, match="'v'"):
        eng.stream(st)
    st = eng.initial_state()
    st.ref = st.ref[::-1]                       # not C-contiguous
    with pytest.raises(InputError, match="'ref'"):
        eng.stream(st)
