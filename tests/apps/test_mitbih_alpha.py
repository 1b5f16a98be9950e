"""spikeedge.tools.mitbih_alpha: the moment-based ridge equals spikeedge.train's, the nested
choice of alpha never looks at the held-out group, and bad input is a clear error."""
import json

import numpy as np
import pytest

from spikeedge.tools.mitbih_alpha import GroupMoments, main, nested_alpha
from spikeedge.train import cross_val_scores, fit_ridge


def _data(seed=0, groups=6, per=120, F=7):
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    centres = rng.normal(0, 1.5, (5, F))
    for k in range(groups):
        shift = rng.normal(0, 0.3, F)            # a per-group offset (a "patient")
        cls = rng.choice(5, per, p=[0.6, 0.15, 0.15, 0.07, 0.03])
        X.append(centres[cls] + shift + rng.normal(0, 1.0, (per, F)))
        y.append(cls)
        g += [f"r{k}"] * per
    return np.concatenate(X), np.concatenate(y), np.array(g)


@pytest.mark.parametrize("alpha", [0.1, 10.0, 300.0])
def test_moment_ridge_equals_fit_ridge(alpha):
    X, y, g = _data()
    mom = GroupMoments(X, y, g)
    train = [0, 2, 3, 5]
    sel = np.isin(g, [mom.names[i] for i in train])
    W, b = mom.fit(train, alpha)
    W0, b0 = fit_ridge(X[sel], y[sel], 5, alpha=alpha, balanced=True,
                       class_weight=[1, 1, 1, 0, 0])
    s, s0 = X @ W.T + b, X @ W0.astype(np.float64).T + b0
    assert np.max(np.abs(s - s0)) < 1e-4 * max(1.0, np.max(np.abs(s0)))


def test_inner_scores_equal_grouped_cross_validation():
    X, y, g = _data(seed=1)
    mom = GroupMoments(X, y, g)
    train = [0, 1, 2, 4, 5]
    sel = np.isin(g, [mom.names[i] for i in train])
    S = mom.inner_scores(train, 30.0, 3)
    S0 = cross_val_scores(X[sel], y[sel], g[sel], 5, "ridge", folds=3, alpha=30.0,
                          balanced=True, class_weight=[1, 1, 1, 0, 0])
    assert np.max(np.abs(S - S0)) < 1e-4 * max(1.0, np.max(np.abs(S0)))


def test_nested_choice_ignores_the_held_out_group():
    X, y, g = _data(seed=2)
    mom = GroupMoments(X, y, g)
    pred, chosen = nested_alpha(mom, [1.0, 100.0], folds=3)
    assert set(chosen) == set(mom.names)
    assert all(a in (1.0, 100.0) for a, _ in chosen.values())
    assert np.mean(pred == y) > 0.5                  # separable classes are learnt
    # scrambling the held-out group's labels changes neither its alpha nor its offsets
    y2 = y.copy()
    held = g == mom.names[0]
    y2[held] = np.random.default_rng(0).permutation(y2[held])
    _, chosen2 = nested_alpha(GroupMoments(X, y2, g), [1.0, 100.0], folds=3)
    assert chosen2[mom.names[0]] == chosen[mom.names[0]]


def test_cli_reports_and_rejects_bad_input(tmp_path, capsys):
    X, y, g = _data(seed=3)
    cache = tmp_path / "c.npz"
    np.savez(cache, X=X, y=y, groups=g)
    out = tmp_path / "r.json"
    assert main([str(cache), "--alphas", "1,100", "--inner-folds", "3", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["all_groups"]["alpha"] in (1.0, 100.0)
    assert set(rep["fixed"]) == {"1.0", "100.0"}
    assert "alpha chosen inside" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=X)                                   # no labels
    assert main([str(bad)]) == 2
    assert "not a usable feature cache" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.npz")]) == 2
    Xn = X.copy()
    Xn[0, 0] = np.nan
    np.savez(bad, X=Xn, y=y, groups=g)
    assert main([str(bad)]) == 2
    assert "NaN" in capsys.readouterr().err
    for argv in (["--alphas", "x"], ["--alphas", "-1"], ["--inner-folds", "1"]):
        with pytest.raises(SystemExit) as e:
            main([str(cache), *argv])
        assert e.value.code == 2
