"""Every fast path must equal the golden reference bit for bit (spikes, recorded v and i_syn,
final state including learned weights and traces); a mismatch names the first step and neuron."""
import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from netgen import inputs, networks
from spikeedge import Engine, QuantizationError, quantize
from spikeedge.kernels import AVAILABLE
from testutil import BITEXACT_EXAMPLES

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")


def first_mismatch(a: np.ndarray, b: np.ndarray) -> str:
    """'step t, neuron j: a vs b' for the first differing element (time on axis 0)."""
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    diff = np.argwhere(a != b)
    if diff.size == 0:
        return ""
    idx = tuple(diff[0])
    where = f"step {idx[0]}, " + ", ".join(f"index {i}" for i in idx[1:])
    return f"{where}: compiled {a[idx]} vs reference {b[idx]}"


def assert_same(prog, inp, chunks=None, in_hypothesis=False):
    ref, comp = Engine(prog, "reference"), Engine(prog, "compiled")
    s_ref, st_ref, r_ref = ref.run_chunk(inp, record=True)
    if in_hypothesis:
        event("spikes" if s_ref.any() else "no spikes")
        event("saturated" if np.abs(r_ref["i_syn"].astype(np.int64)).max(initial=0)
              >= 2**31 - 1 else "unsaturated")
    st_c = comp.initial_state()
    parts, vs, cur = [], [], []
    bounds = [0] + sorted(chunks or []) + [inp.shape[0]]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        s, st_c, r = comp.run_chunk(inp[a:b], st_c, record=True)
        parts.append(s)
        vs.append(r["v"])
        cur.append(r["i_syn"])
    s_c = np.concatenate(parts)
    for name, a, b in (("spikes", s_c, s_ref), ("v", np.concatenate(vs), r_ref["v"]),
                       ("i_syn", np.concatenate(cur), r_ref["i_syn"])):
        msg = first_mismatch(a, b)
        assert not msg, f"{name} differ at {msg}"
    for name, a in st_c.arrays().items():
        b = st_ref.arrays()[name]
        assert np.array_equal(a, b), f"final state {name!r} differs at " \
            f"{np.argwhere(a != b)[:1].tolist()}"
    assert st_c.step == st_ref.step == inp.shape[0]


@settings(max_examples=BITEXACT_EXAMPLES)
@given(data=st.data())
def test_compiled_equals_reference_on_random_networks(data):
    net = data.draw(networks())
    try:
        prog = quantize(net, weight_bits=data.draw(st.sampled_from([16, 8])),
                        saturation_budget=1.0)
    except QuantizationError:
        assume(False)   # a network the quantizer refuses (silent layer) has no kernel to run
    inp = data.draw(inputs(net.n_inputs))
    event("plastic" if prog.plastic else "static")
    cuts = data.draw(st.lists(st.integers(1, max(1, inp.shape[0] - 1)), max_size=3, unique=True))
    assert_same(prog, inp, [c for c in cuts if c < inp.shape[0]], in_hypothesis=True)


@pytest.mark.parametrize("name,T", [("kws", 0.5), ("shd", 0.3), ("cuba", 0.03), ("stdp", 0.3)])
def test_compiled_equals_reference_on_standard_networks(name, T):
    from spikeedge.nets import standard
    net, inp, _ = standard(name, T)
    assert_same(quantize(net), inp, [7, 100])


def saturating_net(reset="zero"):
    from spikeedge import INPUT, Network, Population, Projection
    pop = Population("p", 3, v_th=1.0, reset=reset, v_reset=-1.0 if reset == "zero" else 0.0,
                     t_ref=3e-3, bias=np.array([0.0, 50.0, -50.0]))
    w = np.array([[2000.0, -2000.0, 2000.0]])       # one spike drives currents to the int32 rails
    return Network(1, [pop], [Projection(INPUT, "p", w)], dt=1e-3)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_saturation_and_refractory_edges(reset):
    prog = quantize(saturating_net(reset))
    inp = np.zeros((60, 1), np.uint8)
    inp[[0, 1, 2, 3, 10, 11, 12]] = 1
    eng = Engine(prog, "reference")
    _, _, rec = eng.run_chunk(inp, record=True)
    # the edges really are exercised: currents hit both int32 rails ...
    assert rec["i_syn"].max() == 2**31 - 1 and rec["i_syn"].min() == -2**31
    # ... and the refractory neuron is held at its reset value between spikes
    assert_same(prog, inp, [5, 11])


def test_mismatch_report_names_step_and_neuron():
    a = np.zeros((5, 4), np.uint8)
    b = a.copy()
    b[3, 2] = 1
    assert first_mismatch(a, b) == "step 3, index 2: compiled 0 vs reference 1"
