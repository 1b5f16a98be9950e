"""Fast readout-only training: linear classifiers on spike-count features.

A readout is ``scores = W @ features + b`` with ``W`` float32 ``[n_classes, n_features]`` and
``b`` ``[n_classes]``; the class is ``argmax(scores)`` (the convention of model files'
``extras["readout_w"]`` / ``extras["readout_b"]``). Features are standardised while fitting and
the standardisation is folded back into ``W`` and ``b``, so what ships is one affine map.

    W, b = fit_readout(X, y, n_classes, method="logistic", l2=1e-3, balanced=True)
    pred = predict(W, b, X)
    pred_cv = cross_validate(X, y, groups, n_classes, method="ridge")   # leave one group out
    offs = tune_offsets(scores, y, classes=[1, 2])     # per-class score offsets (thresholds)
    pred_nested, offs_per_group = nested_offsets(X, y, groups, n_classes, classes=[1, 2], ...)

``ridge`` is closed form (one-vs-rest targets +-1); ``logistic`` is multinomial logistic
regression fitted with L-BFGS (scipy). ``balanced=True`` weights each class by
n / (n_classes * n_class), as rare classes (ECG S, V, F beats) need.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import SpikeEdgeError

__all__ = ["TrainError", "fit_readout", "fit_ridge", "fit_logistic", "fit_logistic32", "predict",
           "cross_validate", "cross_val_scores", "tune_offsets", "nested_offsets",
           "wilson_interval", "confusion"]

METHODS = ("ridge", "logistic")


class TrainError(SpikeEdgeError, ValueError):
    """Training data or options are unusable (empty, non-finite, one class only)."""


def _check(X, y, n_classes):
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.int64)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise TrainError(f"features must be [n, F] and labels [n], got {X.shape} and {y.shape}")
    if len(y) == 0:
        raise TrainError("no training examples")
    if not np.all(np.isfinite(X)):
        raise TrainError("features hold NaN or infinity")
    if y.min() < 0 or y.max() >= n_classes:
        raise TrainError(f"labels must lie in 0..{n_classes - 1}")
    return X, y


def _weights(y, n_classes, balanced, class_weight=None):
    if class_weight is not None:
        cw = np.asarray(class_weight, np.float64)
        if cw.shape != (n_classes,) or np.any(cw < 0):
            raise TrainError(f"class_weight must be {n_classes} non-negative numbers")
    else:
        cw = np.ones(n_classes)
    if balanced:
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        cw = cw * np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    w = cw[y]
    if not w.sum() > 0:
        raise TrainError("all training examples have weight 0")
    return w


def _standardise(X):
    mu = X.mean(0)
    sd = X.std(0)
    sd[sd < 1e-9] = 1.0
    return mu, sd


def _fold(Wz, bz, mu, sd):
    """Scores on standardised z = (x - mu) / sd  ->  the same scores on raw x."""
    W = Wz / sd[None, :]
    b = bz - W @ mu
    return W.astype(np.float32), b.astype(np.float32)


def fit_ridge(X, y, n_classes: int, alpha: float = 1.0, balanced: bool = False,
              class_weight=None):
    """One-vs-rest ridge regression to +-1 targets; returns (W [C, F], b [C]) float32.
    ``class_weight`` multiplies each class's examples (0 = never a target of its own: the
    class is then scored as "not this" everywhere and practically never predicted)."""
    X, y = _check(X, y, n_classes)
    mu, sd = _standardise(X)
    Z = (X - mu) / sd
    sw = _weights(y, n_classes, balanced, class_weight)
    keep = sw > 0
    Z, y, sw = Z[keep], y[keep], sw[keep]
    T = -np.ones((len(y), n_classes))
    T[np.arange(len(y)), y] = 1.0
    # centre with weights so the intercept is exact
    zw = (sw[:, None] * Z).sum(0) / sw.sum()
    tw = (sw[:, None] * T).sum(0) / sw.sum()
    Zc, Tc = Z - zw, T - tw
    A = (Zc * sw[:, None]).T @ Zc + alpha * sw.sum() * np.eye(Z.shape[1]) / max(1, Z.shape[1])
    Wz = np.linalg.solve(A, (Zc * sw[:, None]).T @ Tc).T
    bz = tw - Wz @ zw
    return _fold(Wz, bz, mu, sd)


def fit_logistic(X, y, n_classes: int, l2: float = 1e-3, balanced: bool = False,
                 max_iter: int = 500, class_weight=None):
    """Multinomial logistic regression (L2 penalty ``l2`` on standardised features);
    returns (W [C, F], b [C]) float32."""
    from scipy.optimize import minimize
    X, y = _check(X, y, n_classes)
    mu, sd = _standardise(X)
    Z = (X - mu) / sd
    n, f = Z.shape
    sw = _weights(y, n_classes, balanced, class_weight)
    sw = sw / sw.sum()
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1.0

    def loss(theta):
        W = theta[: n_classes * f].reshape(n_classes, f)
        b = theta[n_classes * f:]
        S = Z @ W.T + b
        S -= S.max(1, keepdims=True)
        logp = S - np.log(np.exp(S).sum(1, keepdims=True))
        val = -(sw * (Y * logp).sum(1)).sum() + 0.5 * l2 * (W * W).sum()
        G = (np.exp(logp) - Y) * sw[:, None]
        gW = G.T @ Z + l2 * W
        gb = G.sum(0)
        return val, np.concatenate([gW.ravel(), gb])

    theta0 = np.zeros(n_classes * (f + 1))
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter)})
    Wz = res.x[: n_classes * f].reshape(n_classes, f)
    bz = res.x[n_classes * f:]
    return _fold(Wz, bz, mu, sd)


def fit_logistic32(X, y, n_classes: int, l2: float = 1e-3, max_iter: int = 500, **kw):
    """Multinomial logistic regression with the objective of
    :func:`spikeedge.train.fit_logistic` (mean cross-entropy over equally weighted examples
    plus ``l2 / 2 * |W|^2`` on standardised features, L-BFGS-B), with the large products in
    float32; returns (W [C, F], b [C]) float32 on raw features."""
    from scipy.optimize import minimize
    if kw.pop("method", "logistic") != "logistic" or kw.pop("balanced", False) or kw:
        raise TrainError(f"fit_logistic32: logistic, unbalanced, options l2 and max_iter "
                         f"only (got {kw})")
    X = np.asarray(X, np.float32)
    y = np.asarray(y, np.int64)
    if X.ndim != 2 or len(X) != len(y) or not len(y) or y.min() < 0 or y.max() >= n_classes:
        raise TrainError(f"fit_logistic32: need X [n, F] and n labels in 0..{n_classes - 1}")
    mu = X.mean(0, dtype=np.float64)
    sd = X.std(0, dtype=np.float64)
    sd[sd < 1e-9] = 1.0
    Z = ((X - mu) / sd).astype(np.float32)
    n, f = Z.shape
    Y = np.zeros((n, n_classes))
    Y[np.arange(n), y] = 1.0

    def loss(theta):
        W = theta[: n_classes * f].reshape(n_classes, f)
        S = (Z @ W.T.astype(np.float32)).astype(np.float64) + theta[n_classes * f:]
        S -= S.max(1, keepdims=True)
        logp = S - np.log(np.exp(S).sum(1, keepdims=True))
        val = -(Y * logp).sum() / n + 0.5 * l2 * (W * W).sum()
        G = (np.exp(logp) - Y) / n
        gW = (G.T.astype(np.float32) @ Z).astype(np.float64) + l2 * W
        return val, np.concatenate([gW.ravel(), G.sum(0)])

    res = minimize(loss, np.zeros(n_classes * (f + 1)), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter)})
    W = res.x[: n_classes * f].reshape(n_classes, f) / sd[None, :]
    b = res.x[n_classes * f:] - W @ mu
    return W.astype(np.float32), b.astype(np.float32)


def fit_readout(X, y, n_classes: int, method: str = "logistic", **kw):
    """Fit a linear readout with ``method`` in :data:`METHODS`; keyword options go to
    :func:`fit_ridge` (``alpha``, ``balanced``, ``class_weight``) or :func:`fit_logistic`
    (``l2``, ``balanced``, ``class_weight``, ``max_iter``)."""
    if method == "ridge":
        return fit_ridge(X, y, n_classes, **kw)
    if method == "logistic":
        return fit_logistic(X, y, n_classes, **kw)
    raise TrainError(f"readout method must be one of {METHODS}, got {method!r}")


def predict(W, b, X) -> np.ndarray:
    return np.argmax(np.asarray(X, np.float64) @ np.asarray(W, np.float64).T + b, axis=1)


def cross_validate(X, y, groups, n_classes: int, method: str = "logistic", **kw) -> np.ndarray:
    """Leave-one-group-out predictions: each group is predicted by a readout fitted on all
    the other groups (speakers, patients, sessions)."""
    X = np.asarray(X)
    y = np.asarray(y)
    groups = np.asarray(groups)
    pred = np.full(len(y), -1, np.int64)
    for g in np.unique(groups):
        test = groups == g
        W, b = fit_readout(X[~test], y[~test], n_classes, method, **kw)
        pred[test] = predict(W, b, X[test])
    return pred


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion k / n (returns (nan, nan) when n = 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def cross_val_scores(X, y, groups, n_classes: int, method: str = "logistic",
                     folds: int = 0, **kw) -> np.ndarray:
    """Held-out scores ``[n, n_classes]``: each group scored by a readout fitted on the other
    groups (``folds=0``: leave one group out; ``folds=k``: the sorted groups dealt into k
    folds round-robin)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    groups = np.asarray(groups)
    names = list(np.unique(groups))
    parts = [[g] for g in names] if not folds else [names[i::folds] for i in range(folds)]
    S = np.zeros((len(y), n_classes))
    for part in parts:
        test = np.isin(groups, part)
        if not test.any() or test.all():
            continue
        W, b = fit_readout(X[~test], y[~test], n_classes, method, **kw)
        S[test] = X[test] @ np.asarray(W, np.float64).T + b
    return S


def _f1_sum(y, pred, classes) -> float:
    total = 0.0
    for c in classes:
        tp = float(np.sum((pred == c) & (y == c)))
        se = tp / max(1, int(np.sum(y == c)))
        ppv = tp / max(1, int(np.sum(pred == c)))
        total += 2 * se * ppv / (se + ppv) if se + ppv > 0 else 0.0
    return total


def tune_offsets(scores, y, classes, grid=None) -> np.ndarray:
    """Per-class score offsets (added to ``b``; 0 for the classes not in ``classes``) that
    maximise the sum of the F1 scores (harmonic mean of Se and +P) of ``classes`` on held-out
    ``scores``: a per-class decision threshold. Grid search over ``grid`` per class
    (coordinate-wise, two passes)."""
    S = np.asarray(scores, np.float64)
    y = np.asarray(y)
    grid = np.linspace(-3, 3, 25) if grid is None else np.asarray(grid, np.float64)
    off = np.zeros(S.shape[1])
    for _ in range(2):
        for c in classes:
            best, arg = -1.0, 0.0
            for v in grid:
                off[c] = v
                f = _f1_sum(y, np.argmax(S + off, 1), classes)
                if f > best + 1e-12:
                    best, arg = f, v
            off[c] = arg
    return off


def nested_offsets(X, y, groups, n_classes: int, classes, method: str = "logistic",
                   inner_folds: int = 4, grid=None, **kw):
    """Leave-one-group-out predictions whose per-class offsets are chosen *inside* each
    outer fold (on ``inner_folds`` grouped folds of the training groups only), so the
    held-out group never influences its own thresholds. Returns (pred [n], {group: offsets})."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    groups = np.asarray(groups)
    pred = np.full(len(y), -1, np.int64)
    chosen = {}
    for g in np.unique(groups):
        test = groups == g
        Si = cross_val_scores(X[~test], y[~test], groups[~test], n_classes, method,
                              folds=inner_folds, **kw)
        off = tune_offsets(Si, y[~test], classes, grid)
        W, b = fit_readout(X[~test], y[~test], n_classes, method, **kw)
        pred[test] = np.argmax(X[test] @ np.asarray(W, np.float64).T + b + off, 1)
        chosen[str(g)] = off.tolist()
    return pred, chosen
