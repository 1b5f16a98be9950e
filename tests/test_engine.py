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
