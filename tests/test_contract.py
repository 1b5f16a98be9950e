import math

import numpy as np
import pytest

from spikeedge import contract as C
from spikeedge.tools import gendocs
from testutil import REPO


def test_table_covers_every_program_and_state_array():
    from spikeedge.program import PROGRAM_ARRAYS
    names = set(C.FIELDS)
    # arrays of the Program either are contract fields or are structural descriptors
    structural = {"proj", "plast", "csr_ptr", "csr_idx", "pop_start", "pop_n", "v_init"}
    for name in PROGRAM_ARRAYS:
        assert name in names or name in structural, name
    for name, dtype in PROGRAM_ARRAYS.items():
        if name in names:
            assert np.dtype(dtype) == C.FIELDS[name].dtype, name
    for f in C.TABLE:
        assert f.kind in ("parameter", "state", "simulation")
        assert f.overflow and f.rounding and f.fmt


def test_docs_embed_the_table_exactly():
    path = REPO / "docs" / "fixed_point.md"
    assert gendocs.main(["--check", "--path", str(path)]) == 0
    assert C.table_markdown() in path.read_text()


def test_decay_constants_are_the_rounded_exact_exponential():
    assert C.decay_constant(1e-3, 20e-3) == round(math.exp(-1 / 20) * 2**24)
    assert C.decay_constant(1e-4, 5e-3) == round(math.exp(-0.02) * 2**24)
    # tau_s == tau_m takes the limit dt/tau * exp(-dt/tau)
    assert C.coupling_exact(1e-3, 20e-3, 20e-3) == pytest.approx(0.05 * math.exp(-0.05))
    assert C.coupling_exact(1e-3, 20e-3, 20e-3 * (1 + 1e-9)) == pytest.approx(
        C.coupling_exact(1e-3, 20e-3, 20e-3), rel=1e-6)
    with pytest.raises(ValueError):
        C.decay_constant(1e-3, 0.0)


def test_rounding_report_states_error_and_implied_tau():
    rep = C.rounding_report(1e-4, 20e-3, (5e-3, 10e-3))
    am = rep["alpha_m"]
    assert abs(am["abs_error"]) <= 0.5 / 2**24 + 1e-18
    assert abs(am["tau_rel_error"]) < 1e-3
    assert set(rep) == {"alpha_m", "alpha_s[0]", "beta[0]", "alpha_s[1]", "beta[1]"}


def test_sat32():
    assert C.sat32(2**40) == 2**31 - 1 and C.sat32(-2**40) == -2**31
    a = C.sat32(np.array([2**33, -2**33, 5], np.int64))
    assert a.dtype == np.int32 and a.tolist() == [2**31 - 1, -2**31, 5]
