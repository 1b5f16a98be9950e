"""Retrain ``fsdd-digits`` with vocal-tract-length augmentation of the training recordings.

    python -m spikeedge.tools.train_fsdd --data ../shared/data/fsdd --report fsdd.json

The same recipe as ``spikeedge.tools.train_apps fsdd-digits`` (the fixed random reservoir of
``CONFIG["fsdd-digits"]``, its fixed-point streaming features, a logistic readout), except
that the readout is also fitted on warped copies of every *training* recording: the
recording is streamed again through the ``audio-delta`` front end with the 32 log band
energies shifted along the (ERB-spaced) frequency axis by ``s`` bands (linear interpolation,
edge bands repeated) before the send-on-delta spikes. One band is about 0.7 ERB, so a shift
of +-1 band is roughly a vocal tract 10 % shorter or longer. Augmentation is for training
only: the shipped model runs the plain ``audio-delta`` preset and its file is the same
format as before.

Protocols (as the model card): leave one speaker out (a held-out speaker's recordings and
their warped copies are never in the fit) and the dataset's own split (train recordings
5-49 and their warped copies, test 0-4 unwarped). ``--float`` repeats them on the float
twin's spikes (slow: a Python loop per step).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikeedge import quantize
from spikeedge.apps.stream import AppReadout, FloatRunner, run_stream
from spikeedge.apps.tasks import TASKS, build_network, list_recordings
from spikeedge.sensors.encoders import Chain, Transform
from spikeedge.sensors.errors import EncoderConfigError
from spikeedge.train import fit_readout, predict

from .train_apps import CONFIG, metadata, summarise, write_model, write_report

TASK = "fsdd-digits"
DEFAULT_SHIFTS = (-1.0, -0.5, 0.5, 1.0)


class BandShift(Transform):
    """Frequency warping of band energies: output band ``j`` is input band ``j + shift``
    (linear interpolation between neighbours; positions outside the bank take the edge band).
    Stateless and causal (row by row)."""

    def __init__(self, in_rate: float, channels: int, shift: float):
        super().__init__(in_rate, channels)
        if not np.isfinite(shift) or abs(shift) >= channels - 1:
            raise EncoderConfigError(f"BandShift: shift must be finite and below "
                                     f"{channels - 1} bands, got {shift}")
        self.shift = float(shift)
        pos = np.clip(np.arange(channels) + self.shift, 0, channels - 1)
        self._lo = np.floor(pos).astype(np.int64)
        self._hi = np.minimum(self._lo + 1, channels - 1)
        self._f = pos - self._lo

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        return x[:, self._lo] * (1.0 - self._f) + x[:, self._hi] * self._f


def warped_encoder(preset: str, rate: float, shift: float, step_hz: float = 1000.0) -> Chain:
    """The ``preset`` audio chain with a :class:`BandShift` before its spike encoder."""
    from spikeedge.sensors import app_encoders  # noqa: F401  (registers the app presets)
    from spikeedge.sensors.presets import make_encoder
    enc = make_encoder(preset, rate, 1, step_hz)
    *front, spk = enc.stages
    return Chain(*front, BandShift(front[-1].out_rate_exact, front[-1].channels_out, shift),
                 spk)


def _features(args):
    """One recording, one shift (0: the shipped front end) -> feature vector, cost."""
    program, meta, url, shift, use_float = args
    program.report["metadata"] = meta
    r = AppReadout.from_program(program, need_weights=False)
    enc = None
    if shift:
        from spikeedge.sensors import open_source
        src = open_source(url)
        src.open()
        rate = src.rate
        src.close()
        enc = warped_encoder(r.encoder, rate, shift, 1.0 / program.dt)
    eng = FloatRunner(program) if use_float else None
    res = run_stream(program, url, r, engine=eng, encoder=enc)
    (d,) = res["decisions"]
    return d["features"], res["events"], res["wall_s"]


def collect(program, meta, recs, shifts, use_float=False, jobs=1, log=print):
    """Features [len(shifts), n_recs, F] (shift order as given) and the cost of shift 0."""
    work = [(program, meta, rec.url, s, use_float) for s in shifts for rec in recs]
    pool = None
    if jobs > 1:
        import multiprocessing
        pool = multiprocessing.get_context("spawn").Pool(jobs)
        results = pool.imap(_features, work, chunksize=8)
    else:
        results = map(_features, work)
    feats, events, wall = [], [], []
    t0 = time.time()
    try:
        for i, (f, ev, w) in enumerate(results):
            feats.append(f)
            events.append(ev)
            wall.append(w)
            if (i + 1) % max(1, len(work) // 10) == 0:
                log(f"  {i + 1}/{len(work)} streams, {time.time() - t0:.0f} s", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    X = np.array(feats).reshape(len(shifts), len(recs), -1)
    n = len(recs)
    return X, {"events": int(np.sum(events[:n])), "wall_s": float(np.sum(wall[:n])),
               "decisions": n}


def protocols(X, y, groups, index, fit, labels, log=print) -> dict:
    """X: [1 + n_aug, n, F], X[0] the unwarped features. Leave one speaker out and the
    dataset split; warped copies only ever of training recordings."""
    n_cls = len(labels)
    X0 = X[0]

    def fit_on(train):
        Xt = X[:, train].reshape(-1, X.shape[2])
        yt = np.tile(y[train], X.shape[0])
        return fit_readout(Xt, yt, n_cls, **fit)

    pred = np.full(len(y), -1, np.int64)
    for g in np.unique(groups):
        test = groups == g
        W, b = fit_on(~test)
        pred[test] = predict(W, b, X0[test])
    out = {"leave_one_group_out": summarise(y, pred, labels),
           "per_group_accuracy": {str(g): float(np.mean(pred[groups == g] == y[groups == g]))
                                  for g in np.unique(groups)}}
    test = index < 5
    W, b = fit_on(~test)
    out["own_split"] = summarise(y[test], predict(W, b, X0[test]), labels)
    for k in ("leave_one_group_out", "own_split"):
        v = out[k]
        lo, hi = v["accuracy_ci"]
        log(f"  {k}: accuracy {v['accuracy']:.4f} [{lo:.4f}, {hi:.4f}] n={v['n']}", flush=True)
    log("  per speaker: " + ", ".join(f"{g} {a:.3f}" for g, a in
                                      out["per_group_accuracy"].items()), flush=True)
    return out


def _shifts(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shifts: comma-separated numbers, got {text!r}") from None
    if any(v == 0 or not np.isfinite(v) or abs(v) > 4 for v in vals):
        raise argparse.ArgumentTypeError("--shifts: nonzero band shifts within +-4")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="the FSDD folder in ../shared/data")
    ap.add_argument("--out", default=None, help="model file (default "
                    "runtime/models/fsdd-digits.npz)")
    ap.add_argument("--report", default=None, help="write the protocol results as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shifts", type=_shifts, default=list(DEFAULT_SHIFTS),
                    help="band shifts of the warped training copies, comma-separated "
                    "(default %(default)s)")
    ap.add_argument("--float", action="store_true", help="also run the float twin")
    ap.add_argument("--no-cv", action="store_true", help="skip the protocols")
    ap.add_argument("--no-save", action="store_true", help="do not write the model")
    ap.add_argument("--cache", default=None, help="save the fixed-point features (.npz) here")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for streaming")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                    help="override a CONFIG entry, e.g. fit.l2=0.1")
    args = ap.parse_args(argv)
    cfg = json.loads(json.dumps(CONFIG[TASK]))
    for s in args.set:
        key, val = s.split("=", 1)
        sec, k = key.split(".", 1)
        cfg[sec][k] = json.loads(val)
    labels = TASKS[TASK]
    recs = list_recordings(TASK, args.data)
    shifts = [0.0] + list(args.shifts)
    print(f"{TASK}: {len(recs)} recordings, band shifts {shifts}, config {json.dumps(cfg)}",
          flush=True)
    prog = quantize(build_network(TASK, args.seed, **cfg["net"]))
    meta = metadata(TASK, cfg)
    y = np.array([r.label for r in recs], np.int64)
    groups = np.array([r.group for r in recs])
    index = np.array([r.index for r in recs])
    X, cost = collect(prog, meta, recs, shifts, jobs=args.jobs)
    print(f"fixed point: {X.shape[1]} recordings x {X.shape[0]} versions x {X.shape[2]} "
          f"features; events/decision {cost['events'] / cost['decisions']:.0f}", flush=True)
    if args.cache:
        np.savez_compressed(args.cache, X=X, y=y, groups=groups, index=index,
                            shifts=np.array(shifts))
    report = {"task": TASK, "config": cfg, "seed": args.seed, "shifts": shifts,
              "n_recordings": len(recs), "cost": cost}
    if not args.no_cv:
        report["fixed"] = protocols(X, y, groups, index, cfg["fit"], labels)
    if args.float:
        print("float twin:", flush=True)
        Xf, _ = collect(prog, meta, recs, shifts, use_float=True, jobs=args.jobs)
        report["float"] = protocols(Xf, y, groups, index, cfg["fit"], labels)
    if not args.no_save:
        # the dataset's convention: recordings 5-49 (and their warped copies) train, 0-4 test
        sel = index >= 5
        Xt = X[:, sel].reshape(-1, X.shape[2])
        yt = np.tile(y[sel], X.shape[0])
        W, b = fit_readout(Xt, yt, len(labels), **cfg["fit"])
        train_acc = float(np.mean(predict(W, b, X[0][sel]) == y[sel]))
        meta["training"] = {"data": Path(args.data).name, "examples": int(len(yt)),
                            "recordings": int(sel.sum()), "band_shifts": shifts,
                            "train_accuracy": train_acc, "seed": args.seed, "fit": cfg["fit"]}
        write_model(args.out, TASK, prog, meta, W, b, train_acc)
    write_report(args.report, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
