"""Choose the ridge strength of the mitbih-beats readout patient-wise, and measure that choice
honestly (nested).

    python -m spikeedge.tools.train_apps mitbih-beats --data ../shared/data/mitbih \\
        --no-save --cache beats.npz
    python -m spikeedge.tools.mitbih_alpha beats.npz --alphas 10,30,100,300,1000

On the features of the ``--cache`` file (``X``, ``y``, ``groups``) it prints, for the readout
configuration of ``train_apps`` (class-balanced one-vs-rest ridge, F and Q weight 0, S and V
score offsets):

* ``fixed alpha A``: leave one group out, offsets chosen inside each outer fold (grouped
  ``--inner-folds`` CV of the other groups), for each alpha of the grid: the protocol of the
  model card. Picking the best of these rows is a selection on the held-out groups;
* ``alpha chosen inside``: alpha *and* offsets chosen inside each outer fold on the same inner
  CV (maximising F1(S) + F1(V)): the held-out group never influences either, so this figure
  carries no selection optimism about alpha;
* ``all groups``: the alpha and offsets the same inner CV picks on every group (what a
  training run on all the data would ship).

The ridge fits use per-(group, class) moments (:class:`GroupMoments`), the same solution as
:func:`spikeedge.train.fit_ridge` (up to float rounding) at a fraction of the cost, so a grid
of alphas under the nested protocol takes seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spikeedge.train import _f1_sum, confusion, tune_offsets

__all__ = ["GroupMoments", "nested_alpha", "main"]

LABELS = ("N", "S", "V", "F", "Q")
CLASS_WEIGHT = (1.0, 1.0, 1.0, 0.0, 0.0)
OFFSET_CLASSES = (1, 2)


class GroupMoments:
    """First and second moments of the features per (group, class): ridge fits (as
    :func:`spikeedge.train.fit_ridge` with ``balanced=True``) on any union of groups without
    touching the examples again."""

    def __init__(self, X, y, groups, n_classes: int = len(LABELS)):
        X = np.asarray(X, np.float64)
        y = np.asarray(y, np.int64)
        groups = np.asarray(groups)
        if X.ndim != 2 or y.shape != (len(X),) or groups.shape != (len(X),) or not len(X):
            raise ValueError(f"need X [n, F], y [n] and groups [n] with n > 0, got "
                             f"{X.shape}, {y.shape}, {groups.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("features hold NaN or infinity")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"labels must lie in 0..{n_classes - 1}")
        self.X, self.y, self.groups, self.C = X, y, groups, n_classes
        self.names = list(np.unique(groups))
        G, F = len(self.names), X.shape[1]
        self.n = np.zeros((G, n_classes))
        self.s = np.zeros((G, n_classes, F))
        self.m = np.zeros((G, n_classes, F, F))
        for i, g in enumerate(self.names):
            for c in range(n_classes):
                Xi = X[(groups == g) & (y == c)]
                self.n[i, c] = len(Xi)
                if len(Xi):
                    self.s[i, c] = Xi.sum(0)
                    self.m[i, c] = Xi.T @ Xi

    def fit(self, train: list[int], alpha: float, class_weight=CLASS_WEIGHT):
        """(W [C, F], b [C]) float64 of the ridge readout fitted on the groups with indices
        ``train``."""
        C = self.C
        n = self.n[train].sum(0)
        s = self.s[train].sum(0)
        m = self.m[train].sum(0)
        N = n.sum()
        F = s.shape[1]
        # standardisation over all training examples (weight-0 classes included)
        mu = s.sum(0) / N
        sd = np.sqrt(np.maximum(np.diag(m.sum(0)) / N - mu * mu, 0.0))
        sd[sd < 1e-9] = 1.0
        wc = np.asarray(class_weight, np.float64) * np.where(n > 0, N / (C * np.maximum(n, 1)),
                                                             0.0)
        T = -np.ones((C, C))
        np.fill_diagonal(T, 1.0)                        # T[c]: the targets of class c
        s0 = float((wc * n).sum())
        if not s0 > 0:
            raise ValueError("all training examples have weight 0")
        mean = (wc[:, None] * s).sum(0) / s0
        scatter = (wc[:, None, None] * m).sum(0) - s0 * np.outer(mean, mean)
        tw = (wc * n) @ T / s0
        cross = (wc[:, None] * s).T @ T - s0 * np.outer(mean, tw)
        inv = 1.0 / sd
        A = inv[:, None] * scatter * inv[None, :] + alpha * s0 * np.eye(F) / max(1, F)
        Wz = np.linalg.solve(A, inv[:, None] * cross).T
        bz = tw - Wz @ ((mean - mu) / sd)
        W = Wz / sd[None, :]
        return W, bz - W @ mu

    def inner_scores(self, train: list[int], alpha: float, folds: int) -> np.ndarray:
        """Held-out scores of the examples of ``train``'s groups on ``folds`` grouped folds
        (the sorted groups dealt round-robin, as :func:`spikeedge.train.cross_val_scores`)."""
        sel = np.isin(self.groups, [self.names[i] for i in train])
        S = np.zeros((len(self.y), self.C))
        for part in (train[i::folds] for i in range(folds)):
            rest = [i for i in train if i not in part]
            if not rest or not part:
                continue
            W, b = self.fit(rest, alpha)
            te = np.isin(self.groups, [self.names[i] for i in part])
            S[te] = self.X[te] @ W.T + b
        return S[sel]


def _choose(mom: GroupMoments, train: list[int], alphas, folds: int):
    """(alpha, offsets, F1 sum) maximising F1(S) + F1(V) on the inner CV of ``train``."""
    y = mom.y[np.isin(mom.groups, [mom.names[i] for i in train])]
    best = None
    for a in alphas:
        S = mom.inner_scores(train, a, folds)
        off = tune_offsets(S, y, list(OFFSET_CLASSES))
        f = _f1_sum(y, np.argmax(S + off, 1), list(OFFSET_CLASSES))
        if best is None or f > best[2] + 1e-12:
            best = (float(a), off, f)
    return best


def nested_alpha(mom: GroupMoments, alphas, folds: int = 4):
    """Leave-one-group-out predictions with alpha and offsets chosen inside each outer fold;
    returns (pred [n], {group: (alpha, offsets)})."""
    pred = np.full(len(mom.y), -1, np.int64)
    chosen = {}
    G = len(mom.names)
    for k, g in enumerate(mom.names):
        train = [i for i in range(G) if i != k]
        a, off, _ = _choose(mom, train, alphas, folds)
        W, b = mom.fit(train, a)
        te = mom.groups == g
        pred[te] = np.argmax(mom.X[te] @ W.T + b + off, 1)
        chosen[str(g)] = (a, off.tolist())
    return pred, chosen


def summary(y, pred) -> dict:
    c = confusion(y, pred, len(LABELS))
    out = {"n": int(c.sum()), "accuracy": float(np.trace(c) / c.sum()), "confusion": c.tolist()}
    for i, lab in enumerate(LABELS):
        tp, nt, npred = int(c[i, i]), int(c[i].sum()), int(c[:, i].sum())
        out[lab] = {"n": nt, "se": tp / nt if nt else None, "ppv": tp / npred if npred else None}
    return out


def _line(name: str, s: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"
    return (f"{name:28s} V {pct(s['V']['se'])} / {pct(s['V']['ppv'])}   "
            f"S {pct(s['S']['se'])} / {pct(s['S']['ppv'])}   N {pct(s['N']['se'])} / "
            f"{pct(s['N']['ppv'])}   accuracy {100 * s['accuracy']:.2f} %")


def _alphas(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--alphas: comma-separated numbers, got {text!r}") from None
    if not vals or not all(np.isfinite(v) and v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"--alphas: positive numbers, got {text!r}")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache", help="features saved by train_apps mitbih-beats --cache (.npz)")
    ap.add_argument("--alphas", type=_alphas, default=[10.0, 30.0, 100.0, 300.0, 1000.0],
                    help="comma-separated ridge strengths (default 10,30,100,300,1000)")
    ap.add_argument("--inner-folds", type=int, default=4, choices=range(2, 11),
                    metavar="K", help="grouped folds of the inner CV (2..10, default 4)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    path = Path(args.cache)
    try:
        with np.load(path, allow_pickle=False) as d:
            X, y, groups = d["X"], d["y"], d["groups"]
        mom = GroupMoments(X, y, groups)
    except (OSError, KeyError, ValueError) as e:
        print(f"mitbih_alpha: {path}: not a usable feature cache of train_apps "
              f"(X, y, groups): {e}", file=sys.stderr)
        return 2
    if len(mom.names) <= args.inner_folds:
        print(f"mitbih_alpha: need more than {args.inner_folds} groups, the cache has "
              f"{len(mom.names)}", file=sys.stderr)
        return 2
    k = args.inner_folds
    print(f"{len(y)} examples x {X.shape[1]} features, {len(mom.names)} groups", flush=True)
    report: dict = {"alphas": args.alphas, "inner_folds": k, "fixed": {}}
    G = len(mom.names)
    for a in args.alphas:
        pred = np.full(len(y), -1, np.int64)
        for i, g in enumerate(mom.names):
            train = [j for j in range(G) if j != i]
            S = mom.inner_scores(train, a, k)
            off = tune_offsets(S, y[groups != g], list(OFFSET_CLASSES))
            W, b = mom.fit(train, a)
            te = groups == g
            pred[te] = np.argmax(mom.X[te] @ W.T + b + off, 1)
        s = summary(y, pred)
        report["fixed"][str(a)] = s
        print(_line(f"fixed alpha {a:g}", s), flush=True)
    pred, chosen = nested_alpha(mom, args.alphas, k)
    s = summary(y, pred)
    report["nested"] = {"summary": s, "chosen": chosen}
    print(_line("alpha chosen inside", s))
    counts: dict = {}
    for a, _ in chosen.values():
        counts[a] = counts.get(a, 0) + 1
    print("  alpha chosen per outer fold: " +
          ", ".join(f"{a:g} in {n}" for a, n in sorted(counts.items())))
    a, off, f = _choose(mom, list(range(G)), args.alphas, k)
    report["all_groups"] = {"alpha": a, "offsets": off.tolist(), "f1_sum": f}
    print(f"all groups: alpha {a:g}, offsets S {off[1]:g} V {off[2]:g} "
          f"(inner F1(S) + F1(V) {f:.4f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
