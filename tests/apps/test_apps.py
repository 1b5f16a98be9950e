"""The shipped application models, ``spikeedge eval`` / ``models``, and the readout trainer.

The quick evaluations run ``spikeedge eval`` on the subset of ``../shared/data`` named in each
model card's ``ci-eval`` line and fail when the accuracy falls more than 2 points below the
card's figure; they skip (with the reason) when the recordings are absent.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeedge.apps.stream import AppReadout, run_stream
from spikeedge.apps.tasks import list_recordings
from spikeedge.eval import shipped_models
from spikeedge.modelfile import load_model
from spikeedge.train import cross_validate, fit_readout, predict, wilson_interval
from testutil import REPO, data_dir

EXE = shutil.which("spikeedge") or ""
MODELS = ("fsdd-digits", "mitbih-beats", "myo-gestures")
DATA = {"fsdd-digits": "fsdd", "mitbih-beats": "mitbih", "myo-gestures": "myo-wrist-gestures"}


def run(*args, timeout=300):
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "spikeedge.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


def card_ci(name: str) -> dict:
    text = (REPO / "docs" / "models" / f"{name}.md").read_text()
    m = re.search(r"<!-- ci-eval: (\{.*?\}) -->", text)
    assert m, f"docs/models/{name}.md has no ci-eval line"
    return json.loads(m.group(1))


# ---------------------------------------------------------------------------- shipped files
@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_is_small_and_complete(name):
    models = shipped_models()
    assert name in models, f"{name} is not installed as package data ({list(models)})"
    path = Path(models[name])
    assert path.stat().st_size < 1_000_000
    prog = load_model(path)
    r = AppReadout.from_program(prog)
    meta = prog.report["metadata"]
    assert meta["task"] == name
    assert r.w.shape == (len(meta["labels"]), r.n_features(1 / prog.dt))
    assert prog.extras["readout_w"].dtype == np.float32
    assert (REPO / "docs" / "models" / f"{name}.md").exists()


def test_models_command_lists_the_three():
    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    names = {m["name"] for m in json.loads(r.stdout)}
    assert set(MODELS) <= names


# ---------------------------------------------------------------------------- quick evals
@pytest.mark.parametrize("name", MODELS)
def test_quick_eval_matches_the_model_card(name):
    folder = data_dir() / DATA[name]
    if not folder.is_dir():
        pytest.skip(f"real recordings not found at {folder} (set SPIKEEDGE_DATA)")
    ci = card_ci(name)
    r = run("eval", name, str(folder), "--json", *ci["args"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["task"] == name and doc["labels"] and doc["n"] > 0
    assert set(doc["per_class"]) == set(doc["labels"])
    assert np.asarray(doc["confusion"]).sum() == doc["n"]
    assert doc["accuracy"] >= ci["accuracy"] - 0.02, \
        f"{name}: accuracy {doc['accuracy']:.4f} on {ci['args']} fell more than 2 points " \
        f"below the card's {ci['accuracy']:.4f}"
    if name == "mitbih-beats":
        assert set(doc["labels"]) == {"N", "S", "V", "F", "Q"}
        assert doc["detection"]["se"] > 0.95
    lat = doc["latency"]
    assert lat["block_ms"] == 100.0
    assert 0 < lat["compute_ms"]["p50"] <= lat["compute_ms"]["p99"] <= lat["compute_ms"]["max"]
    for k in ("p50", "p99", "max"):
        assert lat["total_ms"][k] >= lat["signal_ms"][k] >= 0


def _first_recording(name):
    """The shipped model ``name``, its readout and the first recording of its data folder
    (skips when the recordings are absent)."""
    folder = data_dir() / DATA[name]
    if not folder.is_dir():
        pytest.skip(f"real recordings not found at {folder} (set SPIKEEDGE_DATA)")
    prog = load_model(shipped_models()[name])
    return prog, AppReadout.from_program(prog), list_recordings(name, folder)[0]


def test_streaming_is_independent_of_block_size():
    prog, r, rec = _first_recording("mitbih-beats")
    a = run_stream(prog, rec.url, r, block_s=0.1, max_seconds=40)
    b = run_stream(prog, rec.url, r, block_s=0.037, max_seconds=40)
    assert len(a["decisions"]) > 20
    assert [d["beat_sample"] for d in a["decisions"]] == [d["beat_sample"] for d in
                                                          b["decisions"]]
    for da, db in zip(a["decisions"], b["decisions"], strict=True):
        np.testing.assert_array_equal(da["features"], db["features"])
        assert da["class_index"] == db["class_index"]


def test_decision_latency_follows_the_block_boundaries():
    """``emitted_s`` is the end of the first block at or after the end of a window (exactly
    the window's end when the blocks divide the hop), whatever the block size, and the
    decisions themselves do not change."""
    prog, r, rec = _first_recording("myo-gestures")
    a = run_stream(prog, rec.url, r, block_s=0.01, max_seconds=8)
    b = run_stream(prog, rec.url, r, block_s=0.07, max_seconds=8)
    assert len(a["decisions"]) == len(b["decisions"]) > 20
    for da, db in zip(a["decisions"], b["decisions"], strict=True):
        assert da["t1"] == db["t1"] and da["class_index"] == db["class_index"]
        assert da["emitted_s"] == pytest.approx(da["t1"], abs=1e-9)      # 2 samples per block
        blocks = int(np.ceil(round(db["t1"] * 200) / 14))                # 14 samples per block
        assert db["emitted_s"] == pytest.approx(min(blocks * 14, 8 * 200) / 200, abs=1e-9)
        assert 0 < da["compute_s"] < 5 and 0 < db["compute_s"] < 5


def test_beat_latency_includes_the_look_ahead():
    from spikeedge.eval import event_end_s
    prog, r, rec = _first_recording("mitbih-beats")
    res = run_stream(prog, rec.url, r, block_s=0.01, max_seconds=30)
    ds = res["decisions"]
    assert len(ds) > 20
    post = float(r.decision["post_s"])
    for d, nxt in zip(ds[:-1], ds[1:], strict=True):
        lag = d["emitted_s"] - event_end_s("beat", d, res["rate"], 30.0)
        # decided once the next R peak is known and post_s of spikes after this one ran
        assert lag >= post - 1e-9
        assert d["emitted_s"] >= nxt["beat_sample"] / res["rate"]
        assert lag < 3.0


# ---------------------------------------------------------------------------- errors
def _assert_clean_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_eval_bad_model_path(tmp_path):
    _assert_clean_error(run("eval", str(tmp_path / "nope.npz"), str(tmp_path)), "nope.npz",
                        "shipped")


def test_eval_corrupt_model_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    _assert_clean_error(run("eval", str(bad), str(tmp_path)), "bad.npz")


def test_eval_empty_dir(tmp_path):
    _assert_clean_error(run("eval", "fsdd-digits", str(tmp_path)), "no FSDD-named WAV")


def test_eval_missing_dir(tmp_path):
    _assert_clean_error(run("eval", "myo-gestures", str(tmp_path / "absent")), "not a folder")


def test_eval_wrong_kind_of_data(tmp_path):
    (tmp_path / "0_alice_0.wav").write_bytes(b"RIFF")
    _assert_clean_error(run("eval", "mitbih-beats", str(tmp_path)), "WFDB")
    _assert_clean_error(run("eval", "myo-gestures", str(tmp_path)), "Myo")


def test_eval_unreadable_recording(tmp_path):
    (tmp_path / "0_alice_0.wav").write_bytes(b"RIFF....WAVEjunk")
    _assert_clean_error(run("eval", "fsdd-digits", str(tmp_path)))


@pytest.mark.parametrize("bad", ["0", "-10", "nan", "inf", "ten", "20000", ""])
def test_eval_bad_block_size(tmp_path, bad):
    r = run("eval", "fsdd-digits", str(tmp_path), "--block-ms", bad)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "--block-ms" in r.stderr, r.stderr


def test_evaluate_checks_the_block_size(tmp_path):
    from spikeedge.eval import EvalError, evaluate
    for bad in (0.0, -0.01, 11.0, float("nan"), "0.01"):
        with pytest.raises(EvalError, match="block size"):
            evaluate("fsdd-digits", str(tmp_path), block_s=bad)


def test_eval_model_without_readout(tmp_path):
    from spikeedge import INPUT, Network, Population, Projection, quantize, save_model
    net = Network(n_inputs=2, dt=1e-3, populations=[Population("a", 3)],
                  projections=[Projection(INPUT, "a", np.ones((2, 3)))])
    p = tmp_path / "plain.npz"
    save_model(p, quantize(net))
    _assert_clean_error(run("eval", str(p), str(tmp_path)), "not an application model")


# ---------------------------------------------------------------------------- trainer
def _blobs(n=300, f=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centres = rng.normal(0, 3, (c, f))
    return centres[y] + rng.normal(0, 1, (n, f)), y


@pytest.mark.parametrize("method", ["ridge", "logistic"])
def test_readout_separates_blobs_and_folds_standardisation(method):
    X, y = _blobs()
    W, b = fit_readout(X * 50 + 7, y, 3, method)
    assert W.shape == (3, 5) and b.shape == (3,) and W.dtype == np.float32
    assert np.mean(predict(W, b, X * 50 + 7) == y) > 0.95


def test_balanced_weights_find_a_rare_class():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(0, 1, (950, 2)), rng.normal(1.5, 1, (50, 2))]
    y = np.r_[np.zeros(950, int), np.ones(50, int)]
    W, b = fit_readout(X, y, 2, "logistic", balanced=True)
    assert np.mean(predict(W, b, X)[y == 1] == 1) > 0.7


def test_cross_validation_holds_each_group_out():
    X, y = _blobs(n=200)
    groups = np.repeat(["a", "b", "c", "d"], 50)
    pred = cross_validate(X, y, groups, 3, method="ridge")
    assert pred.min() >= 0 and np.mean(pred == y) > 0.9


def test_wilson_interval():
    lo, hi = wilson_interval(90, 100)
    assert 0.82 < lo < 0.9 < hi < 0.95
    assert all(np.isnan(wilson_interval(0, 0)))


# ---------------------------------------------------------------------------- streaming parts
def test_running_norm_is_causal_and_tracks_the_dominant_shape():
    from spikeedge.apps.stream import RunningNorm
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 1.0, (600, 3))
    ectopic = rng.random(600) < 0.35                  # a third of the beats look different
    x[ectopic] += 8.0
    a, b = RunningNorm(64), RunningNorm(64)
    za = np.array([a(v) for v in x])
    zb = np.array([b(v) for v in np.r_[x[:300], x[300:] * 0 + 100]])
    np.testing.assert_array_equal(za[:300], zb[:300])  # the future never changes the past
    assert abs(np.median(za[200:][~ectopic[200:]])) < 0.6       # normal beats near 0
    assert np.median(za[200:][ectopic[200:]]) > 2.5              # ectopic ones stand out


def _window_readout(hop):
    from spikeedge.apps.stream import AppReadout
    dec = {"policy": "window", "window_s": 0.02}
    if hop:
        dec["hop_s"] = hop
    return AppReadout(task="t", labels=["a"], population="p", neurons=slice(0, 2),
                      transform="none", decision=dec, encoder="x")


def test_overlapping_windows_sum_consecutive_hops():
    from spikeedge.apps.stream import make_featurizer
    rng = np.random.default_rng(1)
    spikes = (rng.random((100, 2)) < 0.3).astype(np.uint8)
    f = make_featurizer(_window_readout(0.005), 1000.0, 1000.0)
    out = f.feed(None, spikes[:37]) + f.feed(None, spikes[37:])
    assert len(out) == (100 - 20) // 5 + 1
    for d in out:
        a, b = int(round(d["t0"] * 1000)), int(round(d["t1"] * 1000))
        assert b - a == 20
        np.testing.assert_array_equal(d["features"], spikes[a:b].sum(0))
    plain = make_featurizer(_window_readout(None), 1000.0, 1000.0).feed(None, spikes)
    assert [d["t0"] for d in plain] == [0.0, 0.02, 0.04, 0.06, 0.08]


def test_bad_decision_options_are_clear_errors():
    from spikeedge import INPUT, Network, Population, Projection, quantize
    from spikeedge.apps.stream import AppModelError, AppReadout
    prog = quantize(Network(n_inputs=2, dt=1e-3, populations=[Population("a", 3)],
                            projections=[Projection(INPUT, "a", np.ones((2, 3)))]))
    base = {"task": "t", "labels": ["x"], "encoder": {"preset": "ecg-delta"},
            "readout": {"population": "a"}}
    for dec, word in [({"policy": "window", "window_s": 0.25, "hop_s": 0.1}, "hop_s"),
                      ({"policy": "beat", "pre_s": 0.2, "post_s": 0.2, "bin_s": 0.1,
                        "pool": "bins"}, "pool"),
                      ({"policy": "beat", "pre_s": 0.2, "post_s": 0.2, "bin_s": 0.1,
                        "rr_set": "x"}, "rr_set"),
                      ({"policy": "beat", "pre_s": 0.2, "post_s": 0.2, "bin_s": 0.1,
                        "norm": {"window": 0}}, "norm")]:
        prog.report["metadata"] = {**base, "decision": dec}
        with pytest.raises(AppModelError, match=word):
            AppReadout.from_program(prog, need_weights=False)
    # encoder parameters would be ignored by make_encoder: refused, not silently dropped
    prog.report["metadata"] = {**base, "encoder": {"preset": "ecg-delta",
                                                   "params": {"threshold": 0.1}},
                               "decision": {"policy": "window", "window_s": 0.25}}
    with pytest.raises(AppModelError, match="encoder.params"):
        AppReadout.from_program(prog, need_weights=False)
    prog.report["metadata"]["encoder"]["params"] = {}
    AppReadout.from_program(prog, need_weights=False)


def test_tuned_offsets_trade_sensitivity_for_predictivity():
    from spikeedge.train import tune_offsets
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(2000, int), np.ones(100, int)]
    S = np.c_[np.zeros(len(y)), rng.normal(-1.5, 1.0, len(y)) + 2.0 * y]
    off = tune_offsets(S, y, classes=[1])
    assert off[0] == 0 and off[1] < 0       # too many false positives at 0: a higher bar
    f1 = [_f1(y, np.argmax(S + o, 1)) for o in (np.zeros(2), off)]
    assert f1[1] > f1[0] + 0.03


def _f1(y, p):
    tp = np.sum((p == 1) & (y == 1))
    se, ppv = tp / max(1, np.sum(y == 1)), tp / max(1, np.sum(p == 1))
    return 2 * se * ppv / max(se + ppv, 1e-9)


def test_nested_offsets_never_see_the_held_out_group():
    from spikeedge.train import nested_offsets
    X, y = _blobs(n=400, c=3, seed=3)
    groups = np.repeat(list("abcdefgh"), 50)
    pred, off = nested_offsets(X, y, groups, 3, classes=[1, 2], method="ridge", inner_folds=3)
    assert set(off) == set("abcdefgh") and np.mean(pred == y) > 0.9
    y2 = y.copy()
    y2[groups == "a"] = (y2[groups == "a"] + 1) % 3      # corrupt the held-out group only
    _, off2 = nested_offsets(X, y2, groups, 3, classes=[1, 2], method="ridge", inner_folds=3)
    assert off2["a"] == off["a"]
