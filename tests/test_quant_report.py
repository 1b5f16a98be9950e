"""Quantizer reports: weight ranges, bits, saturation counts and the activity change against the
float twin on calibration input; refusal when a layer goes silent or saturates."""
import json

import numpy as np
import pytest

from spikeedge import (
    INPUT,
    Network,
    Population,
    Projection,
    QuantizationError,
    quantize,
    save_model,
)
from spikeedge.quantize import (
    QuantizationReportError,
    activity_report,
    calibration_input,
    format_report,
    quantize_with_report,
)


def two_layer(w_in=None, w_hid=None, seed=0):
    rng = np.random.default_rng(seed)
    w_in = rng.normal(0.3, 0.3, (16, 24)) if w_in is None else w_in
    w_hid = rng.normal(0.3, 0.4, (24, 8)) if w_hid is None else w_hid
    return Network(16, [Population("hid", 24, tau_m=20e-3, tau_s=(5e-3,)),
                        Population("out", 8, tau_m=20e-3, tau_s=(5e-3,))],
                   [Projection(INPUT, "hid", w_in, name="in"),
                    Projection("hid", "out", w_hid, name="hid->out")], dt=1e-3)


def test_report_has_ranges_bits_saturation_and_activity():
    net = two_layer()
    calib = calibration_input(16, 2000, rate=0.05, seed=1)
    prog, rep = quantize_with_report(net, calib)
    p = rep["projections"]["in"]
    w = net.projections[0].weights
    assert p["w_min"] == pytest.approx(w.min()) and p["w_max"] == pytest.approx(w.max())
    assert p["saturated"] == 0 and 14 <= p["bits_used"] <= 16
    assert p["w_q_min"] < 0 < p["w_q_max"]
    act = rep["activity"]
    assert act["steps"] == 2000 and act["seconds"] == pytest.approx(2.0)
    for name in ("hid", "out"):
        a = act["populations"][name]
        assert a["rate_float_hz"] > 1.0          # the layers are active on this input
        # 16-bit weights and 2**20 state units: the rates agree to a few percent
        assert abs(a["rate_rel_change"]) < 0.05
        assert a["state_saturations"] == 0 and a["neurons_silenced"] == 0
        assert a["spikes_fixed"] == pytest.approx(a["rate_fixed_hz"] * a["n"] * 2.0)
    assert act["spike_agreement"] > 0.9
    assert prog.report["activity"] is act
    text = format_report(rep)
    assert "hid->out" in text and "rate float" in text


def test_activity_change_grows_with_fewer_weight_bits():
    net = two_layer()
    calib = calibration_input(16, 2000, rate=0.05, seed=1)
    _, r16 = quantize_with_report(net, calib)
    _, r4 = quantize_with_report(net, calib, weight_bits=4, check=False)
    ch = lambda r: abs(r["activity"]["populations"]["out"]["rate_rel_change"])  # noqa: E731
    assert r4["projections"]["in"]["bits_used"] <= 4
    assert ch(r4) > ch(r16)


def test_refuses_a_layer_that_goes_silent():
    # one large outlier weight (from an input that never spikes) sets the shift: at 4 bits
    # every other weight rounds to zero, so "hid" spikes in float but never in fixed point
    w = np.full((16, 24), 0.4)
    w[15, 0] = 40.0
    net = two_layer(w_in=w)
    calib = calibration_input(16, 1000, rate=0.05, seed=2)
    calib[:, 15] = 0
    with pytest.raises(QuantizationReportError, match="'hid' goes silent") as e:
        quantize_with_report(net, calib, weight_bits=4)
    a = e.value.report["activity"]["populations"]["hid"]
    assert a["rate_float_hz"] > 0 and a["spikes_fixed"] == 0
    assert isinstance(e.value, QuantizationError)
    # at 16 bits the same network is fine
    quantize_with_report(net, calib, weight_bits=16)


def test_refuses_state_saturation_beyond_budget():
    # threshold 1 mV, weights 3000 V: one input spike drives the current far past 2**31 units
    net = Network(4, [Population("a", 6, v_th=1e-3, tau_m=20e-3, tau_s=(50e-3,))],
                  [Projection(INPUT, "a", np.full((4, 6), 3000.0), name="in")], dt=1e-3)
    calib = calibration_input(4, 500, rate=0.2, seed=3)
    with pytest.raises(QuantizationReportError, match="saturate at the int32 bounds") as e:
        quantize_with_report(net, calib)
    a = e.value.report["activity"]["populations"]["a"]
    assert a["saturation_share"] > 0.01 and a["current_saturations"] > 0
    # a generous budget accepts it, and the counts are still reported
    prog, rep = quantize_with_report(net, calib, state_saturation_budget=1.0)
    assert rep["activity"]["populations"]["a"]["state_saturations"] == a["state_saturations"]


def test_max_rate_change_is_enforced_when_given():
    net = two_layer()
    calib = calibration_input(16, 1000, rate=0.05, seed=1)
    with pytest.raises(QuantizationReportError, match="spike rate changes"):
        quantize_with_report(net, calib, weight_bits=3, max_rate_change=0.0)


def test_bad_calibration_input_is_refused():
    net = two_layer()
    with pytest.raises(QuantizationError, match="calibration input 0"):
        quantize_with_report(net, np.zeros((10, 3), np.uint8))
    with pytest.raises(QuantizationError, match="0 or 1"):
        quantize_with_report(net, np.full((10, 16), 2))
    with pytest.raises(QuantizationError, match="state_saturation_budget"):
        quantize_with_report(net, calibration_input(16, 10), state_saturation_budget=2.0)
    prog = quantize(net)
    prog.network = None
    with pytest.raises(QuantizationError, match="no physical network"):
        activity_report(prog, calibration_input(16, 10))


def test_several_calibration_runs_each_start_from_rest():
    net = two_layer()
    runs = [calibration_input(16, 300, seed=s) for s in range(3)]
    prog = quantize(net)
    rep = activity_report(prog, runs)
    one = [activity_report(prog, r)["populations"]["hid"]["spikes_fixed"] for r in runs]
    assert rep["runs"] == 3 and rep["steps"] == 900
    assert rep["populations"]["hid"]["spikes_fixed"] == sum(one)


def test_cli_quantize_report(tmp_path, capsys):
    from spikeedge.cli import main
    net = two_layer()
    path = tmp_path / "m.npz"
    save_model(path, quantize(net))
    assert main(["quantize-report", str(path), "--json", "--seconds", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["activity"]["populations"]["hid"]["rate_float_hz"] > 0
    assert "in" in doc["projections"]
    assert main(["quantize-report", str(path), "--weight-bits", "4", "--seconds", "1"]) in (0, 2)
    capsys.readouterr()
    # a silent layer is a refusal: exit status 2 and one line on stderr, no traceback
    w = np.full((16, 24), 0.4)
    w[15, 0] = 40.0
    save_model(path, quantize(two_layer(w_in=w)))
    calib = calibration_input(16, 500, seed=2)
    calib[:, 15] = 0
    np.save(tmp_path / "calib.npy", calib)
    rc = main(["quantize-report", str(path), "--weight-bits", "4", "--calib",
               str(tmp_path / "calib.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "goes silent" in err and "Traceback" not in err
