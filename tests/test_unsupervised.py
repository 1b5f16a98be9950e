"""Unsupervised STDP learning (spikeedge.unsupervised): it learns, deterministically, with the
kernel's own plasticity, and bad input gets a clear error."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from spikeedge.engine import compiled_available
from spikeedge.unsupervised import (
    DCConfig,
    DCNetwork,
    UnsupervisedError,
    adapt,
    assign_labels,
    fit_and_score,
    main,
    predict,
    synthetic_task,
    utterance_image,
)

CFG = dict(n_neurons=30, present_s=0.1, theta_plus=0.01, norm=0.2)
NC = 8


def _task(seed=0):
    x, y = synthetic_task(n_classes=NC, side=8, per_class=30, noise=0.3, seed=seed)
    h = len(y) // 2
    return x[:h], y[:h], x[h:], y[h:]


@pytest.mark.parametrize("seed", [0, 1])
def test_stdp_learns_well_above_random_weights(seed):
    xa, ya, xb, yb = _task(seed)
    cfg = DCConfig(**CFG, seed=seed)
    net, learned = fit_and_score(cfg, xa, ya, xb, yb, 2, True, NC)
    _, base = fit_and_score(cfg, xa, ya, xb, yb, 2, False, NC)
    assert learned["accuracy"] >= 0.9, learned
    assert learned["accuracy"] >= base["accuracy"] + 0.2, (learned, base)
    # learning moved the input weights; the baseline run kept them
    fresh = DCNetwork(xa.shape[1], cfg)
    assert not np.array_equal(net.w_in, fresh.w_in)
    # every neuron's input weights were renormalised to the same sum
    sums = net.w_in.astype(np.int64).sum(axis=0)
    assert np.ptp(sums) <= net.n_in


def test_baseline_keeps_weights_up_to_normalisation():
    xa, _, _, _ = _task()
    cfg = DCConfig(**CFG)
    net = DCNetwork(xa.shape[1], cfg)
    w_norm = DCNetwork(xa.shape[1], cfg)
    w_norm.normalize()
    net.train(xa, 1, stdp=False)
    assert np.array_equal(net.w_in, w_norm.w_in)
    assert np.any(net.state.theta_a > 0)      # homeostasis still ran


def test_deterministic():
    xa, ya, xb, yb = _task()
    cfg = DCConfig(**CFG)
    a, ra = fit_and_score(cfg, xa, ya, xb, yb, 1, True, NC)
    b, rb = fit_and_score(cfg, xa, ya, xb, yb, 1, True, NC)
    assert np.array_equal(a.state.w, b.state.w)
    assert np.array_equal(a.state.theta_a, b.state.theta_a)
    assert np.array_equal(a.assignments, b.assignments)
    ra.pop("train_seconds"), rb.pop("train_seconds")
    assert ra == rb
    c, _ = fit_and_score(DCConfig(**{**CFG, "seed": 5}), xa, ya, xb, yb, 1, True, NC)
    assert not np.array_equal(a.state.w, c.state.w)


@pytest.mark.skipif(not compiled_available(), reason="compiled kernels not built")
@pytest.mark.parametrize("rule", ["additive", "multiplicative"])
def test_compiled_learning_equals_golden_model(rule):
    """The weights learned through the compiled kernels are those of the golden model."""
    x, _ = synthetic_task(n_classes=2, side=6, per_class=4, seed=3)
    cfg = DCConfig(n_neurons=8, present_s=0.04, theta_plus=0.05, norm=0.2, seed=4,
                   rule=rule)
    nets = {}
    for backend in ("compiled", "reference"):
        nets[backend] = DCNetwork(x.shape[1], cfg, backend)
        nets[backend].train(x, 1)
    assert np.array_equal(nets["compiled"].state.w, nets["reference"].state.w)
    assert np.array_equal(nets["compiled"].state.theta_a, nets["reference"].state.theta_a)
    assert not np.array_equal(nets["compiled"].state.w,
                              DCNetwork(x.shape[1], cfg).state.w)


def test_label_assignment_and_prediction():
    counts = np.array([[5, 0, 0], [4, 1, 0], [0, 3, 0], [0, 2, 0]])
    labels = np.array([0, 0, 1, 1])
    a = assign_labels(counts, labels, 2)
    assert a.tolist() == [0, 1, -1]           # the third neuron never fired
    assert predict(np.array([[3, 0, 0], [0, 2, 0], [0, 0, 0]]), a, 2).tolist() == [0, 1, -1]


def test_adaptation_uses_the_runtime_learning_switch():
    xa, ya, xb, yb = _task()
    cfg = DCConfig(**CFG)
    net, _ = fit_and_score(cfg, xa, ya, xb, yb, 1, True, NC)
    labels = net.assignments.copy()
    w0 = net.w_in.copy()
    res = adapt(net, xb[:20], xb[20:], yb[20:], NC, rate=0.5)
    assert not np.array_equal(net.w_in, w0)           # it learned without labels
    assert np.array_equal(net.assignments, labels)    # and kept the labels
    assert net.engine.learning is False and net.engine.learning_rate == 1.0
    assert 0 <= res["before"] <= 1 and 0 <= res["after"] <= 1
    assert res["n_adapt"] == 20 and res["n_eval"] == len(yb) - 20
    # rate 0 changes no weight (the thresholds may still move)
    net2, _ = fit_and_score(cfg, xa, ya, xb, yb, 1, True, NC)
    cfg_norm_off = net2.w_in.copy()
    net2._norm_q = 0
    adapt(net2, xb[:10], xb[10:], yb[10:], NC, rate=0.0)
    assert np.array_equal(net2.w_in, cfg_norm_off)


def test_model_file_roundtrip(tmp_path):
    xa, ya, xb, yb = _task()
    net, res = fit_and_score(DCConfig(**CFG), xa, ya, xb, yb, 1, True, NC)
    net.save(tmp_path / "m.ckpt")
    back, meta = DCNetwork.load(tmp_path / "m.ckpt")
    assert np.array_equal(back.state.w, net.state.w)
    assert np.array_equal(back.assignments, net.assignments)
    assert meta["n_in"] == xa.shape[1]
    assert predict(back.responses(xb, tag=3), back.assignments, NC).tolist() == \
        predict(net.responses(xb, tag=3), net.assignments, NC).tolist()
    (tmp_path / "bad.ckpt").write_bytes(b"junk")
    with pytest.raises(UnsupervisedError, match="not a spikeedge checkpoint"):
        DCNetwork.load(tmp_path / "bad.ckpt")


def test_utterance_image_is_level_invariant():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    x = np.sin(2 * np.pi * (300 + 500 * t) * t) * np.hanning(t.size) + 1e-3 * rng.normal(
        size=t.size)
    a = utterance_image(x, 8000, bands=16, frames=10)
    b = utterance_image(0.25 * x, 8000, bands=16, frames=10)
    assert a.shape == (160,) and a.min() >= 0 and a.max() == 1.0
    assert np.max(np.abs(a - b)) < 0.02


@pytest.mark.parametrize("bad", [dict(n_neurons=0), dict(rule="hebb"), dict(a_post=0.1),
                                 dict(max_rate=2000.0), dict(tau_m=float("nan")),
                                 dict(n_neurons=2.5), dict(norm=5.0)])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(UnsupervisedError, match="config"):
        DCConfig(**bad).validate()


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    net = DCNetwork(16, DCConfig(n_neurons=4))
    with pytest.raises(UnsupervisedError, match="shape"):
        net.train(np.zeros((3, 15)), 1)
    with pytest.raises(UnsupervisedError, match=r"\[0, 1\]"):
        net.responses(np.full((2, 16), 2.0))
    with pytest.raises(UnsupervisedError):
        DCConfig.from_dict({"nope": 1})
    assert main(["train", "--data", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "recordings").mkdir()
    with wave.open(str(tmp_path / "recordings" / "3_bob_0.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 10)
    assert main(["train", "--data", str(tmp_path)]) == 2
    assert "too short" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--set", "tau_m=abc"]) == 2
    assert main(["train", "--data", str(tmp_path), "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["adapt", "--data", str(tmp_path), "--fraction", "1.5"]) == 2
    assert "share" in capsys.readouterr().err
    with pytest.raises(UnsupervisedError, match="silent"):
        utterance_image(np.zeros(4000), 8000)
    assert main(["synthetic", "--set", "bogus=1"]) == 2


def test_fsdd_images_from_real_recordings(shared_data):
    import os
    import tempfile

    from spikeedge.unsupervised import load_fsdd
    fsdd = shared_data / "fsdd"
    if not fsdd.is_dir():
        pytest.skip(f"FSDD recordings not found at {fsdd}")
    files = sorted((fsdd / "recordings").glob("[0-9]_jackson_0.wav"))
    assert len(files) == 10
    with tempfile.TemporaryDirectory() as d:
        for f in files:
            os.symlink(f, Path(d) / f.name)
        data = load_fsdd(d)
    assert data["images"].shape == (10, 240)
    assert data["labels"].tolist() == list(range(10))
    assert np.all(data["images"].max(axis=1) == 1.0)
    # different digits give different images
    assert np.min(np.abs(data["images"][0] - data["images"][1:]).sum(axis=1)) > 5
