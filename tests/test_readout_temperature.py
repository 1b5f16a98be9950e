"""``metadata.readout_temperature`` (the softmax temperature of a decision's confidence) is
read the same way for both readout conventions, and a malformed one is refused."""
import dataclasses

import numpy as np
import pytest

from spikeedge.apps.stream import AppReadout
from spikeedge.daemon import load_program
from spikeedge.decision import (
    AppDecider,
    DecisionError,
    _softmax_conf,
    readout_temperature,
)


def test_default_and_valid_values():
    assert readout_temperature({}) == 1.0
    assert readout_temperature({"readout_temperature": 2}) == 2.0
    assert readout_temperature({"readout_temperature": 0.25}) == 0.25


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2", None, True, [1]])
def test_malformed_temperature_is_refused(bad):
    with pytest.raises(DecisionError, match="readout_temperature"):
        readout_temperature({"readout_temperature": bad})


@pytest.fixture(scope="module")
def myo():
    prog, _, _ = load_program("builtin:myo-gestures")
    return AppReadout.from_program(prog)


def with_meta(r, **kw):
    return dataclasses.replace(r, meta={**r.meta, **kw})


def test_app_decider_takes_the_models_temperature(myo):
    assert AppDecider(myo, None, None).temperature == 1.0
    assert AppDecider(with_meta(myo, readout_temperature=3.0), None, None).temperature == 3.0
    # an explicit argument wins over the model's
    assert AppDecider(with_meta(myo, readout_temperature=3.0), None, None,
                      temperature=0.5).temperature == 0.5
    with pytest.raises(DecisionError, match="readout_temperature"):
        AppDecider(with_meta(myo, readout_temperature=-2), None, None)


def test_temperature_flattens_the_confidence():
    s = np.array([2.0, 1.0, 0.0])
    assert _softmax_conf(s, 1.0) > _softmax_conf(s, 4.0) > 1 / 3
    assert _softmax_conf(s, 1.0) == pytest.approx(np.exp(2) / np.exp([2, 1, 0]).sum())
