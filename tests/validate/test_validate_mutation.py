"""Mutation checks: break the fixed-point arithmetic on purpose and the validator must fail.

Each test perturbs the engine only (a monkeypatched reference operation, or a program with one
changed constant) while the Brian2 twins are built from the true network and program."""
import dataclasses

import numpy as np
import pytest
from test_validate_integer import case
from vhelpers import integer_mismatch

from spikeedge import Engine, quantize, reference
from spikeedge.engine import compiled_available
from spikeedge.nets import standard
from spikeedge.program import PJ_SHIFT
from spikeedge.tools.validate import validate

pytestmark = pytest.mark.brian2
FAST = "compiled" if compiled_available() else "reference"


def mutated(prog, **arrays):
    """A copy of ``prog`` with some arrays replaced."""
    return dataclasses.replace(prog, **arrays)


def test_truncating_instead_of_rounding_half_up_is_caught(monkeypatch):
    net, inp = case("dense")
    assert integer_mismatch(net, inp, "reference") is None
    monkeypatch.setattr(reference, "DECAY_HALF", 0)          # (x*c) >> 24: floor, not round
    m = integer_mismatch(net, inp, "reference")
    assert m is not None and m["variable"] in ("v", "i_syn") and m["step"] <= 5


def test_wrapping_instead_of_saturating_is_caught(monkeypatch):
    net, inp = case("saturation")
    monkeypatch.setattr(reference, "sat32",
                        lambda x: np.asarray(x, np.int64).astype(np.int32))   # wraps
    m = integer_mismatch(net, inp, "reference")
    assert m is not None


def test_membrane_constant_off_by_one_lsb_is_caught():
    net, inp = case("dense")
    prog = quantize(net)
    alpha_m = prog.alpha_m.copy()
    alpha_m[3] -= 1                                          # one part in 2**24
    m = integer_mismatch(prog, inp, FAST, engine_prog=mutated(prog, alpha_m=alpha_m))
    assert m is not None and m["variable"] in ("v", "spikes")
    assert m["index"] == 3


def test_weight_exponent_off_by_one_is_caught():
    net, inp = case("sparse")
    prog = quantize(net)
    proj = prog.proj.copy()
    proj[1, PJ_SHIFT] += 1
    m = integer_mismatch(prog, inp, FAST, engine_prog=mutated(prog, proj=proj))
    assert m is not None and m["variable"] in ("i_syn", "v", "spikes")


def test_validate_fails_and_reports_the_first_mismatch():
    net, inp, _ = standard("kws", 0.5)
    prog = quantize(net)
    theta = prog.theta.copy()
    theta[130] -= 10_000                                     # one output neuron, 1 %
    eng = Engine(mutated(prog, theta=theta), FAST)
    doc = validate(prog, inp, name="kws", engine=eng, floating=False)
    assert not doc["passed"]
    fm = doc["integer_twin"]["first_mismatch"]
    assert fm["variable"] in ("v", "spikes") and fm["index"] == 130
    doc = validate(prog, inp, name="kws", floating=False)
    assert doc["passed"] and doc["integer_twin"]["exact"]


def test_float_twin_tolerances_catch_a_quantization_bug():
    """A 3 % threshold error is invisible to nothing but the float twin when the integer twin
    is skipped: the rate and coincidence tolerances fail."""
    net, inp, _ = standard("kws", 2.0)
    prog = quantize(net)
    doc = validate(prog, inp, name="kws", integer=False)
    assert doc["passed"], doc["checks"]
    theta = np.rint(prog.theta * 0.97).astype(np.int32)
    doc = validate(prog, inp, name="kws", integer=False,
                   engine=Engine(mutated(prog, theta=theta), FAST))
    failed = {c["name"] for c in doc["checks"] if not c["passed"]}
    assert not doc["passed"]
    assert "float twin rate error (max)" in failed
    assert "float twin gamma (min over populations)" in failed


def test_stdp_tolerance_catches_a_wrong_learning_rate():
    net, inp, _ = standard("stdp", 1.0)
    prog = quantize(net)
    plast = prog.plast.copy()
    plast[0, 3] = int(plast[0, 3] * 1.2)                    # a_pre 20 % too large
    doc = validate(prog, inp, name="stdp", integer=False, floating=False, stdp_extras=False,
                   engine=Engine(mutated(prog, plast=plast), FAST))
    rms = doc["stdp"]["open_loop"]["in->out"]["checkpoints"][-1]["rms"]
    assert rms > 0.01 and not doc["passed"]
