"""Fixed golden vectors (tests/golden, written by python -m spikeedge.tools.golden): every backend
reproduces them bit for bit, and regenerating them from the code changes nothing."""
import numpy as np
import pytest

from spikeedge import Engine, load_model, quantize
from spikeedge.kernels import AVAILABLE
from spikeedge.tools import golden
from testutil import REPO

GOLDEN = REPO / "tests" / "golden"
CASES = ["ff", "rec", "sat", "stdp", "wta"]
BACKENDS = ["reference"] + (["compiled"] if AVAILABLE else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_backend_reproduces_golden_vectors(case, backend):
    prog = load_model(GOLDEN / f"{case}.model.npz")
    with np.load(GOLDEN / f"{case}.expected.npz") as z:
        exp = {k: z[k] for k in z.files}
    spikes, state, rec = Engine(prog, backend).run_chunk(exp["inp"], record=True)
    for name, got in (("spikes", spikes), ("v", rec["v"]), ("i_syn", rec["i_syn"])):
        bad = np.argwhere(got != exp[name])
        assert bad.size == 0, f"{case}/{backend}: {name} first differs at step {bad[0][0]}, " \
            f"index {bad[0][1:].tolist()}: {got[tuple(bad[0])]} vs {exp[name][tuple(bad[0])]}"
    for k, v in state.arrays().items():
        assert np.array_equal(v, exp[f"final_{k}"]), k


def test_golden_cases_exercise_what_they_claim():
    with np.load(GOLDEN / "sat.expected.npz") as z:
        assert z["i_syn"].max() == 2**31 - 1 and z["i_syn"].min() == -2**31
    with np.load(GOLDEN / "wta.expected.npz") as z:
        assert z["final_theta_a"].max() > 0                           # homeostasis acted
    for case in ("ff", "rec", "stdp", "wta"):
        with np.load(GOLDEN / f"{case}.expected.npz") as z:
            assert z["spikes"].sum() > 10, case
    with np.load(GOLDEN / "stdp.expected.npz") as z, \
            np.load(GOLDEN / "stdp.model.npz") as m:
        assert not np.array_equal(z["final_w"], m["prog/weights"])    # it learned


@pytest.mark.parametrize("case", CASES)
def test_regenerating_golden_vectors_changes_nothing(case):
    net, inp = golden.cases()[case]
    prog = quantize(net)
    stored = load_model(GOLDEN / f"{case}.model.npz")
    assert np.array_equal(prog.weights, stored.weights)
    exp = golden.expected(prog, inp)
    with np.load(GOLDEN / f"{case}.expected.npz") as z:
        for k, v in exp.items():
            assert np.array_equal(v, z[k]), f"{case}: {k} changed; the contract moved"
