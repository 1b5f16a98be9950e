"""The Brian2 float twin (method='exact') is the model spikeedge.float_twin integrates: on
small runs both give the same spikes, including refractoriness, subtractive reset,
homeostasis and both STDP rules."""
import numpy as np
import pytest
from test_validate_integer import case
from vhelpers import b2

from spikeedge.float_twin import FloatTwin
from spikeedge.nets import standard
from spikeedge.tools.validate.float_twin import FloatTwinB2

pytestmark = pytest.mark.brian2


@pytest.mark.parametrize("kind", ["dense", "recurrent", "multichannel",
                                  "subtract_refractory_bias", "homeostasis_wta", "stdp",
                                  "stdp_multiplicative", "tau_equal_dt_small"])
def test_brian2_float_twin_equals_the_numpy_float_twin(kind):
    net, inp = case(kind)
    ft = FloatTwinB2(b2(), net, inp)
    ft.run(inp.shape[0])
    s_np, _ = FloatTwin(net).run(inp)
    assert ft.spikes().sum() > 0
    assert np.array_equal(ft.spikes(), s_np.astype(np.uint8))
    if net.projections and any(pr.stdp is not None for pr in net.projections):
        tw = FloatTwin(net)
        tw.run(inp)
        for p, w in ft.plastic_weights().items():
            assert np.allclose(w, tw.W[p], rtol=0, atol=1e-12)


def test_brian2_float_twin_on_kws_matches_numpy_and_records_v():
    net, inp, _ = standard("kws", 0.5)
    ft = FloatTwinB2(b2(), net, inp, record={"hid": np.arange(4)})
    ft.run(inp.shape[0])
    s_np, rec = FloatTwin(net).run(inp, record=True)
    assert np.array_equal(ft.spikes(), s_np.astype(np.uint8))
    assert np.allclose(ft.v("hid"), rec["v"][:, :4], rtol=0, atol=1e-12)
