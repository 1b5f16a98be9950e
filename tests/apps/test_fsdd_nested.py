"""The ``fsdd-digits`` trainer's readout fit and nested speaker-wise choice
(tools/train_fsdd.py): ``spikeedge.train.fit_logistic32`` optimises the objective of
``spikeedge.train.fit_logistic``, ``nested_loso`` chooses on the training speakers only, and
``--nested`` / ``--set`` reject malformed values with a usage error."""
import argparse

import numpy as np
import pytest

from spikeedge.tools.train_fsdd import _candidates, main, nested_loso
from spikeedge.train import TrainError, fit_logistic, fit_logistic32, predict


def blobs(n_per=30, n_cls=3, f=12, groups=("a", "b", "c", "d"), informative=4, seed=0):
    """Classes separated along the first ``informative`` features, plus a speaker offset."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    centres = rng.standard_normal((n_cls, informative)) * 2.0
    for name in groups:
        off = rng.standard_normal(f) * 0.5
        for c in range(n_cls):
            x = rng.standard_normal((n_per, f)) + off
            x[:, :informative] += centres[c]
            X.append(x)
            y += [c] * n_per
            g += [name] * n_per
    return np.concatenate(X), np.array(y), np.array(g)


def test_fit_logistic32_matches_the_float64_fit():
    X, y, _ = blobs()
    W, b = fit_logistic32(X, y, 3, l2=0.03)
    W64, b64 = fit_logistic(X, y, 3, l2=0.03)
    assert W.dtype == np.float32 and W.shape == (3, 12) and b.shape == (3,)
    s, s64 = X @ W.T + b, X @ W64.T + b64
    np.testing.assert_allclose(s, s64, atol=2e-3 * np.abs(s64).max())
    assert np.array_equal(predict(W, b, X), predict(W64, b64, X))
    assert np.mean(predict(W, b, X) == y) > 0.9


@pytest.mark.parametrize("kw", [{"balanced": True}, {"method": "ridge"}, {"alpha": 1.0}])
def test_fit_logistic32_refuses_options_it_does_not_have(kw):
    X, y, _ = blobs(n_per=5)
    with pytest.raises(TrainError):
        fit_logistic32(X, y, 3, **kw)


def test_fit_logistic32_checks_labels():
    X, y, _ = blobs(n_per=5)
    with pytest.raises(TrainError):
        fit_logistic32(X, y + 1, 3)
    with pytest.raises(TrainError):
        fit_logistic32(X[:-1], y, 3)


def test_nested_choice_uses_training_speakers_and_finds_the_informative_features():
    X, y, g = blobs(n_per=20, f=12, informative=4, seed=1)
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(X.shape) * 2.0          # a candidate without the class signal
    Xs = [noise[None], X[None]]                           # [versions=1, n, F]
    cands = [{"segments": 4}, {"segments": [1, 2]}]
    out = nested_loso(Xs, y, g, cands, {"method": "logistic", "l2": 0.03}, 3,
                      log=lambda *a, **k: None)
    assert set(out["folds"]) == {"a", "b", "c", "d"}
    for fold in out["folds"].values():
        assert fold["chosen"] == 1
        assert len(fold["inner_scores"]) == 2
        assert fold["inner_scores"][1] > fold["inner_scores"][0]
    assert out["candidates"][1]["leave_one_speaker_out"] > 0.65      # chance: 1/3
    assert out["candidates"][0]["leave_one_speaker_out"] < 0.6
    assert out["nested_accuracy"] == pytest.approx(out["candidates"][1]["leave_one_speaker_out"])
    preds = out["predictions"]
    assert set(preds) == {0, 1} and all(p.min() >= 0 for p in preds.values())


def test_nested_inner_scores_never_see_the_held_out_speaker():
    X, y, g = blobs(n_per=10, seed=3)
    X2 = X.copy()
    X2[g == "a"] = 0.0           # speaker a's features changed: inner scores of the other
    fit = {"method": "logistic", "l2": 0.03}   # folds change, fold a's inner scores do not
    cands = [{"segments": 1}]
    quiet = {"log": lambda *a, **k: None}
    o1 = nested_loso([X[None]], y, g, cands, fit, 3, **quiet)
    o2 = nested_loso([X2[None]], y, g, cands, fit, 3, **quiet)
    assert o1["folds"]["a"]["inner_scores"] == o2["folds"]["a"]["inner_scores"]


def test_candidates_parsing():
    assert _candidates('[{"segments": 4}, {"segments": [1, 2, 3, 4], "l2": 0.1}]') == [
        {"segments": 4}, {"segments": [1, 2, 3, 4], "l2": 0.1}]
    for bad in ("", "4", "[]", "[4]", '[{"l2": 0.1}]', '[{"segments": 0}]',
                '[{"segments": [1, 2.5]}]', '[{"segments": 4, "l2": -1}]',
                '[{"segments": 4, "l2": "x"}]', '[{"segments": 4, "foo": 1}]', "{not json"):
        with pytest.raises(argparse.ArgumentTypeError):
            _candidates(bad)


@pytest.mark.parametrize("argv", [
    ["--nested", "[{\"segments\": 99}]"],
    ["--set", "decision.segments=[0]"],
    ["--set", "nosuch.key=1"],
    ["--set", "decision.segments"],
    ["--set", "fit.l2=notjson"],
    [],                                    # an empty folder: no FSDD recordings
])
def test_command_line_errors_are_usage_errors(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path), *argv])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_deflate_model_keeps_every_array(tmp_path):
    import zipfile

    from spikeedge import load_model
    from spikeedge.daemon import load_program
    from spikeedge.modelfile import save_model
    from spikeedge.tools.train_fsdd import deflate_model

    prog, _, _ = load_program("builtin:fsdd-digits")
    path = tmp_path / "m.npz"
    save_model(path, prog, metadata=prog.report["metadata"], extras=dict(prog.extras))
    stored = path.stat().st_size
    size = deflate_model(path)
    assert size == path.stat().st_size < stored
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    back = load_model(path)
    assert back.report["metadata"] == prog.report["metadata"]
    for k, v in prog.extras.items():
        np.testing.assert_array_equal(back.extras[k], v)
    np.testing.assert_array_equal(back.weights, prog.weights)
    assert not (tmp_path / "m.npz.tmp").exists()
