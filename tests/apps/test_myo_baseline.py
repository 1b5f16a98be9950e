"""The window policy's ``baseline_s`` option (myo-gestures): features relative to each
feature's running minimum over the recent decisions, and the loader's checks of it."""
import math

import numpy as np
import pytest

from spikeedge import INPUT, Network, Population, Projection, quantize
from spikeedge.apps.stream import AppModelError, AppReadout, make_featurizer


def _readout(**dec):
    d = {"policy": "window", "window_s": 0.02, "hop_s": 0.01}
    d.update(dec)
    return AppReadout(task="t", labels=["a"], population="p", neurons=slice(0, 3),
                      transform="sqrt", decision=d, encoder="x")


def _spikes(n=400, seed=3):
    rng = np.random.default_rng(seed)
    rate = np.where((np.arange(n) // 60) % 2 == 1, 0.6, 0.1)[:, None] * [1.0, 0.5, 0.2]
    return (rng.random((n, 3)) < rate).astype(np.uint8)


def test_baseline_features_are_counts_and_counts_minus_running_minimum():
    spikes = _spikes()
    plain = make_featurizer(_readout(), 1000.0, 1000.0).feed(None, spikes)
    based = make_featurizer(_readout(baseline_s=0.05), 1000.0, 1000.0).feed(None, spikes)
    assert len(plain) == len(based) > 30
    x = np.array([d["features"] for d in plain])
    f = np.array([d["features"] for d in based])
    assert f.shape == (len(x), 6)
    np.testing.assert_array_equal(f[:, :3], x)
    k = 5                                          # baseline_s / hop_s decisions
    for j in range(len(x)):
        np.testing.assert_allclose(f[j, 3:], x[j] - x[max(0, j - k + 1):j + 1].min(0))
    assert (f[:, 3:] >= 0).all() and f[0, 3:].max() == 0
    # active periods stand out from the resting level just before them
    assert f[:, 3:].max() > 1.0


def test_baseline_is_causal_and_independent_of_block_size():
    spikes = _spikes(seed=5)
    r = _readout(baseline_s=0.04)
    a = make_featurizer(r, 1000.0, 1000.0)
    out_a = []
    for i in range(0, len(spikes), 7):
        out_a += a.feed(None, spikes[i:i + 7])
    out_b = make_featurizer(r, 1000.0, 1000.0).feed(None, spikes)
    np.testing.assert_array_equal([d["features"] for d in out_a],
                                  [d["features"] for d in out_b])
    changed = spikes.copy()
    changed[300:] = 1                              # a different future
    out_c = make_featurizer(r, 1000.0, 1000.0).feed(None, changed)
    early = [d for d in out_b if d["t1"] <= 0.3]
    np.testing.assert_array_equal([d["features"] for d in early],
                                  [d["features"] for d in out_c[:len(early)]])


def _program():
    return quantize(Network(n_inputs=2, dt=1e-3, populations=[Population("a", 3)],
                            projections=[Projection(INPUT, "a", np.ones((2, 3)))]))


def _meta(**dec):
    d = {"policy": "window", "window_s": 0.5, "hop_s": 0.25}
    d.update(dec)
    return {"task": "t", "labels": ["x", "y"], "encoder": {"preset": "emg-lif"},
            "readout": {"population": "a", "transform": "sqrt"}, "decision": d}


@pytest.mark.parametrize("bad", [True, "5", -1.0, 0, math.inf, math.nan, 601.0, 0.1, [5],
                                 {"s": 5}, None])
def test_malformed_baseline_is_a_clear_error(bad):
    prog = _program()
    prog.report["metadata"] = _meta(baseline_s=bad)
    if bad is None:                                  # null means no baseline
        assert AppReadout.from_program(prog, need_weights=False).n_features(1e3) == 3
        return
    with pytest.raises(AppModelError, match="baseline_s"):
        AppReadout.from_program(prog, need_weights=False)


@pytest.mark.parametrize("bad", [True, "0.2", -0.1, 0.6, math.nan, math.inf, [0.2]])
def test_malformed_baseline_quantile_is_a_clear_error(bad):
    prog = _program()
    prog.report["metadata"] = _meta(baseline_s=30.0, baseline_q=bad)
    with pytest.raises(AppModelError, match="baseline_q"):
        AppReadout.from_program(prog, need_weights=False)


def test_baseline_quantile_is_the_lower_quantile_of_the_recent_decisions():
    spikes = _spikes(n=600, seed=7)
    plain = make_featurizer(_readout(), 1000.0, 1000.0).feed(None, spikes)
    based = make_featurizer(_readout(baseline_s=0.2, baseline_q=0.25), 1000.0,
                            1000.0).feed(None, spikes)
    x = np.array([d["features"] for d in plain])
    f = np.array([d["features"] for d in based])
    np.testing.assert_array_equal(f[:, :3], x)
    k = 20
    for j in range(len(x)):
        h = np.sort(x[max(0, j - k + 1):j + 1], axis=0)
        m = h[int(np.floor(0.25 * (len(h) - 1)))]
        np.testing.assert_allclose(f[j, 3:], x[j] - m)
    # a quantile above the minimum: some features fall below their baseline
    assert (f[:, 3:] < 0).any()


def test_baseline_without_hop_uses_the_window_and_doubles_the_features():
    prog = _program()
    prog.report["metadata"] = _meta(baseline_s=5.0)
    r = AppReadout.from_program(prog, need_weights=False)
    assert r.n_features(1000.0) == 6
    prog.report["metadata"] = {**_meta(), "decision": {"policy": "window", "window_s": 0.5,
                                                       "baseline_s": 5.0}}
    f = make_featurizer(AppReadout.from_program(prog, need_weights=False), 1000.0, 1000.0)
    assert f.nb == 10
    prog.report["metadata"] = {**_meta(), "decision": {"policy": "window",
                                                       "baseline_s": 5.0}}
    with pytest.raises(AppModelError, match="baseline_s"):
        AppReadout.from_program(prog, need_weights=False)


def test_readout_must_match_the_doubled_features():
    prog = _program()
    prog.report["metadata"] = _meta(baseline_s=5.0)
    prog.extras["readout_w"] = np.zeros((2, 3), np.float32)      # sized for no baseline
    prog.extras["readout_b"] = np.zeros(2, np.float32)
    with pytest.raises(AppModelError, match="do not fit"):
        AppReadout.from_program(prog)
    prog.extras["readout_w"] = np.zeros((2, 6), np.float32)
    assert AppReadout.from_program(prog).w.shape == (2, 6)


# ---------------------------------------------------------------------------- relay population
def test_relay_population_repeats_the_encoder_spikes_one_step_later():
    from spikeedge import Engine
    from spikeedge.apps.tasks import build_network
    prog = quantize(build_network("myo-gestures", 0, n_in=8, n_hid=32, relay=True))
    assert prog.pop_names == ["hid", "relay"]
    rng = np.random.default_rng(1)
    for rate in (0.05, 0.5, 0.95):                 # down to spikes on consecutive steps
        x = (rng.random((800, 8)) < rate).astype(np.uint8)
        eng = Engine(prog)
        s, _, _ = eng.run_chunk(x, eng.initial_state())
        relay = np.asarray(s)[:, prog.pop_slice("relay")]
        np.testing.assert_array_equal(relay[1:], x[:-1])
        assert not relay[0].any()


def test_no_relay_leaves_the_reservoir_unchanged():
    from spikeedge.apps.tasks import build_network
    a = build_network("myo-gestures", 0, n_in=8, n_hid=64)
    b = build_network("myo-gestures", 0, n_in=8, n_hid=64, relay=False)
    c = build_network("myo-gestures", 0, n_in=8, n_hid=64, relay=True)
    assert [p.name for p in a.populations] == [p.name for p in b.populations] == ["hid"]
    qa, qb, qc = quantize(a), quantize(b), quantize(c)
    np.testing.assert_array_equal(qa.weights, qb.weights)
    assert qc.pop_names == ["hid", "relay"]
    # the relay only adds neurons and weights after the reservoir's own
    np.testing.assert_array_equal(qc.weights[:len(qa.weights)], qa.weights)


@pytest.mark.parametrize("bad", [4.0, 1, 0, "true", None, math.nan, [True], ""])
def test_malformed_relay_is_a_clear_error(bad):
    from spikeedge.apps.tasks import DataError, build_network
    with pytest.raises(DataError, match="relay"):
        build_network("myo-gestures", 0, n_in=8, n_hid=16, relay=bad)
