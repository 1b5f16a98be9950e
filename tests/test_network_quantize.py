import numpy as np
import pytest

from spikeedge import (
    INPUT,
    STDP,
    Network,
    NetworkError,
    Population,
    Projection,
    QuantizationError,
    quantize,
)


def small_net(**pop_kw):
    return Network(3, [Population("a", 4, **pop_kw)],
                   [Projection(INPUT, "a", np.full((3, 4), 0.5), name="in")], dt=1e-3)


@pytest.mark.parametrize("kw,msg", [
    ({"tau_m": -1.0}, "tau_m"), ({"tau_m": float("nan")}, "tau_m"), ({"tau_s": ()}, "tau_s"),
    ({"tau_s": (1e-3,) * 5}, "tau_s"), ({"reset": "bounce"}, "reset"),
    ({"t_ref": -1e-3}, "t_ref"), ({"bias": np.ones(3)}, "bias"), ({"v_init": np.ones(7)}, "v_init"),
    ({"reset": "subtract", "v_th": 0.0, "v_reset": 0.5}, "subtract"),
    ({"v_th": 0.0, "v_reset": 0.0}, "cannot both"), ({"v_th": float("inf")}, "finite"),
])
def test_bad_population_is_refused_with_its_name(kw, msg):
    with pytest.raises(NetworkError, match=msg) as e:
        small_net(**kw).validate()
    assert "'a'" in str(e.value)


def test_bad_projections_are_refused():
    pop = Population("a", 4)
    with pytest.raises(NetworkError, match="shape"):
        Network(3, [pop], [Projection(INPUT, "a", np.ones((4, 3)))]).validate()
    with pytest.raises(NetworkError, match="neither"):
        Network(3, [pop], [Projection("b", "a", np.ones((3, 4)))]).validate()
    with pytest.raises(NetworkError, match="target"):
        Network(3, [pop], [Projection(INPUT, "zz", np.ones((3, 4)))]).validate()
    with pytest.raises(NetworkError, match="channel"):
        Network(3, [pop], [Projection(INPUT, "a", np.ones((3, 4)), channel=1)]).validate()
    with pytest.raises(NetworkError, match="indices"):
        Network(3, [pop], [Projection(INPUT, "a", np.ones(2), indptr=np.array([0, 1, 2, 2]),
                                      indices=np.array([0, 9]))]).validate()
    with pytest.raises(NetworkError, match="indptr"):
        Network(3, [pop], [Projection(INPUT, "a", np.ones(2), indptr=np.array([0, 2, 1, 2]),
                                      indices=np.array([0, 1]))]).validate()
    with pytest.raises(NetworkError, match="finite"):
        Network(3, [pop], [Projection(INPUT, "a", np.full((3, 4), np.nan))]).validate()
    with pytest.raises(NetworkError, match="w_min < w_max"):
        Network(3, [pop], [Projection(INPUT, "a", np.ones((3, 4)),
                                      stdp=STDP(w_min=1.0, w_max=0.5))]).validate()
    with pytest.raises(NetworkError, match="unique"):
        Network(3, [pop, Population("a", 2)]).validate()
    with pytest.raises(NetworkError, match="at least one"):
        Network(3, []).validate()


def test_quantizer_scales_and_report():
    net = Network(2, [Population("a", 3, v_th=-50e-3, v_rest=-49e-3, v_reset=-60e-3,
                                 t_ref=5e-3, tau_s=(5e-3, 10e-3))],
                  [Projection(INPUT, "a", np.array([[1.62e-3, 0, -9e-3], [0, 0, 0]]),
                              name="in")], dt=1e-4)
    prog = quantize(net)
    S = prog.scales[0]
    assert S == pytest.approx(2**20 / 11e-3)
    assert prog.theta[0] == round(-1e-3 * S) and prog.v_reset[0] == round(-11e-3 * S)
    assert prog.ref_steps[0] == 50
    rep = prog.report["projections"]["in"]
    assert rep["saturated"] == 0 and rep["zeroed"] == 0
    assert rep["bits_used"] <= 16 and rep["w_q_min"] < 0 < rep["w_q_max"]
    # the largest weight uses (nearly) the whole int16 range after the chosen shift
    assert 2**14 <= max(abs(rep["w_q_min"]), rep["w_q_max"]) <= 2**15 - 1
    w = prog.weights.astype(np.float64) * 2.0 ** rep["shift"] / S
    assert np.allclose(w.reshape(2, 3), net.projections[0].weights, atol=rep["lsb"])
    assert "alpha_m" in prog.report["populations"]["a"]["constants"]


def test_quantizer_refuses_silent_layer_and_saturation():
    net = small_net()
    net.projections[0].weights = np.full((3, 4), 1e-9)
    with pytest.raises(QuantizationError, match="silent"):
        quantize(net, shifts={"in": 10})
    net = small_net()
    with pytest.raises(QuantizationError, match="saturate"):
        quantize(net, shifts={"in": 0}, weight_bits=4)
    prog = quantize(small_net(), shifts={"in": 0}, weight_bits=4, saturation_budget=1.0)
    assert prog.report["projections"]["in"]["saturated"] == 12
    with pytest.raises(QuantizationError, match="weight_bits"):
        quantize(small_net(), weight_bits=17)
    with pytest.raises(QuantizationError, match="t_ref"):
        quantize(small_net(t_ref=100.0))
