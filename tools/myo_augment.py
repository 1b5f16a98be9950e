"""Retrain ``myo-gestures`` with electrode-shift (armband rotation) augmentation.

    python -m spikeedge.tools.myo_augment --data ../shared/data/myo-wrist-gestures \\
        --report myo.json

The same recipe as ``spikeedge.tools.train_apps myo-gestures`` (the encoder, the fixed random
reservoir, relay and coincidence neurons of ``CONFIG["myo-gestures"]``, its fixed-point
streaming features, a linear readout; ``--set`` overrides an entry as there), except that
the readout is also fitted on *rotated* copies of every training recording (and is ridge by
default, ``DEFAULT_FIT``). The Myo's 8 electrodes sit in a ring
around the forearm and the band may rotate a little between sessions, so a copy is the
recording streamed again through the EMG front end with its channels circularly
shifted by ``s`` electrode pitches (:class:`ChannelRotate`: output channel ``j`` is ring
position ``j + s``, linear interpolation between the two neighbouring electrodes) at one of
two places of the ``emg-lif`` chain (``--stage``; the sign branch of ``emg-lif-sign`` has no
envelope and is always rotated on the raw EMG):

``envelope``
    after the 5 Hz envelope and before the log compression (interpolates the muscle
    activity *level* seen between two electrodes);
``raw``
    on the raw EMG before the band-pass (interpolates the signal itself; two partly
    independent signals mixed half and half lose some amplitude).

Augmentation is for training only: the shipped model runs the plain preset, the same network
and the same features as without it, and its file has the same format (only ``readout_w`` /
``readout_b`` and the metadata's ``training`` entry change).

The readout is ridge regression to +-1 targets (``DEFAULT_FIT``); its weights are then
multiplied by one factor (:func:`score_scale`, chosen on leave-one-session-out scores) so that
the daemon's ``confidence``, ``softmax(scores)``, is calibrated; that changes no decision.

Protocols (as the model card): leave one of the four sessions out, and leave one participant
out; rotated copies only ever of the *training* sessions, the held-out session is scored on
its plain recordings. ``--screen`` compares several shift sets on the same cached features
(ridge or logistic) without writing a model; ``--nested`` measures the choice among
candidates made inside each fold; ``--diagnose`` scores rotated copies of each held-out
session (a diagnostic: did the band sit at another rotation in that session?).
``--cache`` / ``--from-cache`` keep the streamed features of every shift in an ``.npz`` so
that screening does not stream twice.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spikeedge import quantize
from spikeedge.apps.stream import AppModelError, AppReadout, FloatRunner, run_stream
from spikeedge.apps.tasks import (
    TASKS,
    DataError,
    build_network,
    list_recordings,
    truth_and_predictions,
)
from spikeedge.sensors.encoders import Chain, Compress, Envelope, Parallel, Transform
from spikeedge.sensors.errors import EncoderConfigError
from spikeedge.train import TrainError, fit_logistic32, fit_readout, predict

from .train_apps import (
    CONFIG,
    apply_override,
    metadata,
    pool_map,
    summarise,
    write_model,
    write_report,
)

TASK = "myo-gestures"
STAGES = ("envelope", "raw")
DEFAULT_SHIFTS = (-0.25, 0.25)
DEFAULT_STAGE = "envelope"
#: the shipped readout's fit (see the model card for how it was chosen)
DEFAULT_FIT = {"method": "ridge", "alpha": 10.0}


class ChannelRotate(Transform):
    """Circular, fractional rotation of the channels of a ring of electrodes: output channel
    ``j`` is ring position ``j + shift`` (linear interpolation between the two neighbouring
    channels, wrapping around). Stateless and causal (row by row)."""

    def __init__(self, in_rate: float, channels: int, shift: float):
        super().__init__(in_rate, channels)
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) \
                or not np.isfinite(shift) or abs(shift) >= channels:
            raise EncoderConfigError(f"ChannelRotate: shift must be a finite number of "
                                     f"channels below {channels} in size, got {shift!r}")
        self.shift = float(shift)
        pos = (np.arange(channels) + self.shift) % channels
        self._lo = np.floor(pos).astype(np.int64) % channels
        self._hi = (self._lo + 1) % channels
        self._f = pos - np.floor(pos)

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = self._check(samples)
        return x[:, self._lo] * (1.0 - self._f) + x[:, self._hi] * self._f


def rotated_encoder(preset: str, rate: float, channels: int, shift: float,
                    stage: str = DEFAULT_STAGE, step_hz: float = 200.0) -> Chain | Parallel:
    """The ``preset`` EMG chain with a :class:`ChannelRotate` inserted at ``stage`` (before
    the band-pass for ``raw``, between the envelope and the compression for ``envelope``).
    A :class:`Parallel` preset (``emg-lif-sign``) is rotated branch by branch; a branch without
    an envelope (the sign spikes) always on the raw EMG."""
    from spikeedge.sensors import app_encoders  # noqa: F401  (registers the app presets)
    from spikeedge.sensors.presets import make_encoder
    if stage not in STAGES:
        raise EncoderConfigError(f"rotated_encoder: stage must be one of {STAGES}, got "
                                 f"{stage!r}")
    enc = make_encoder(preset, rate, channels, step_hz)
    if isinstance(enc, Parallel):
        # emg-lif-sign: the rate branch as above, the sign branch (no envelope) on the
        # rotated raw EMG
        return Parallel(_rotate_chain(enc.branches[0], preset, shift, stage),
                        *[_rotate_chain(b, preset, shift, "raw") for b in enc.branches[1:]])
    return _rotate_chain(enc, preset, shift, stage)


def _rotate_chain(enc: Chain, preset: str, shift: float, stage: str) -> Chain:
    *front, spk = enc.stages
    if stage == "raw":
        rot = ChannelRotate(front[0].in_rate_exact, front[0].channels, shift)
        return Chain(rot, *front, spk)
    k = [i for i, s in enumerate(front) if isinstance(s, Envelope)]
    if len(k) != 1 or k[0] + 1 >= len(front) or not isinstance(front[k[0] + 1], Compress):
        raise EncoderConfigError(f"rotated_encoder: preset {preset!r} has no envelope "
                                 "followed by a compression (stage 'envelope')")
    e = front[k[0]]
    rot = ChannelRotate(e.out_rate_exact, e.channels_out, shift)
    return Chain(*front[:k[0] + 1], rot, *front[k[0] + 1:], spk)


def _stream(args):
    """One recording, one rotation (0: the shipped front end) -> (truth, features, cost)."""
    program, meta, rec, shift, stage, use_float = args
    program.report["metadata"] = meta
    r = AppReadout.from_program(program, need_weights=False)
    enc = None
    if shift:
        from spikeedge.sensors import open_source
        src = open_source(rec.url)
        src.open()
        rate, ch = src.rate, src.channels
        src.close()
        enc = rotated_encoder(r.encoder, rate, ch, shift, stage, 1.0 / program.dt)
    res = run_stream(program, rec.url, r, encoder=enc,
                     engine=FloatRunner(program) if use_float else None)
    yt, idx, _ = truth_and_predictions(TASK, rec, res)
    X = np.array([res["decisions"][j]["features"] for j in idx], np.float32)
    return yt, X, {"events": res["events"], "wall_s": res["wall_s"],
                   "decisions": len(res["decisions"])}


def collect(program, meta, recs, shifts, stage=DEFAULT_STAGE, jobs=1, log=print,
            use_float=False):
    """Features ``{shift: X [n, F]}`` (rows aligned across shifts: the windows and their true
    classes depend only on the labels), true classes, sessions and the cost of shift 0.
    ``use_float``: the float twin's spikes instead of the fixed-point engine's."""
    shifts = [0.0] + [float(s) for s in shifts if s != 0]
    work = [(program, meta, rec, s, stage, use_float) for s in shifts for rec in recs]
    out = list(pool_map(_stream, work, jobs, log=log))
    n = len(recs)
    y = np.concatenate([o[0] for o in out[:n]])
    groups = np.concatenate([[rec.group] * len(o[0]) for rec, o in zip(recs, out[:n],
                                                                       strict=True)])
    Xs = {}
    for k, s in enumerate(shifts):
        part = out[k * n:(k + 1) * n]
        for o, o0 in zip(part, out[:n], strict=True):
            if not np.array_equal(o[0], o0[0]):
                raise DataError("rotated copy scored different windows than the plain "
                                "recording")
        Xs[s] = np.concatenate([o[1] for o in part])
    cost = {key: sum(o[2][key] for o in out[:n]) for key in ("events", "wall_s", "decisions")}
    return Xs, y, groups, cost


def fit_aug(Xs, y, train, shifts, n_cls, fit):
    """Readout fitted on the ``train`` rows of the plain features and of each rotated copy in
    ``shifts``."""
    missing = [s for s in shifts if s not in Xs]
    if missing:
        raise TrainError(f"no features for shift(s) {missing}")
    Xt = np.concatenate([Xs[0.0][train]] + [Xs[s][train] for s in shifts])
    yt = np.tile(y[train], 1 + len(shifts))
    f = dict(fit)
    if f.get("method", "logistic") == "logistic" and not f.get("balanced"):
        # the objective of spikeedge.train.fit_logistic, float32 products (twice as fast)
        f.pop("method", None)
        return fit_logistic32(Xt, yt, n_cls, **f)
    return fit_readout(Xt, yt, n_cls, **f)


def score_scale(Xs, y, groups, shifts, fit, n_cls) -> float:
    """The factor ``k`` that makes ``softmax(k * scores)`` a calibrated confidence: it
    minimises the cross-entropy of the leave-one-session-out (out-of-fold) scores of the
    training sessions. Multiplying a readout's ``W`` and ``b`` by ``k > 0`` changes no
    decision, only the daemon's ``confidence`` (a ridge readout's scores to +-1 targets are
    otherwise too flat for the softmax)."""
    from scipy.optimize import minimize_scalar
    S = np.zeros((len(y), n_cls))
    for g in np.unique(groups):
        test = groups == g
        W, b = fit_aug(Xs, y, ~test, shifts, n_cls, fit)
        S[test] = Xs[0.0][test].astype(np.float64) @ np.asarray(W, np.float64).T + b

    def nll(logk):
        z = np.exp(logk) * S
        z -= z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(np.log(0.1), np.log(1000.0)), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def protocols(Xs, y, groups, shifts, fit, labels, log=print) -> dict:
    """Leave one session out and leave one participant out; rotated copies of the training
    sessions only."""
    n_cls = len(labels)
    out = {}
    part = np.array([g.split("-")[0] for g in groups])
    for key, grp in (("leave_one_group_out", groups), ("cross_participant", part)):
        pred = np.full(len(y), -1, np.int64)
        for g in np.unique(grp):
            test = grp == g
            W, b = fit_aug(Xs, y, ~test, shifts, n_cls, fit)
            pred[test] = predict(W, b, Xs[0.0][test])
        out[key] = summarise(y, pred, labels)
        if key == "leave_one_group_out":
            out["per_group_accuracy"] = {str(g): float(np.mean(pred[groups == g]
                                                               == y[groups == g]))
                                         for g in np.unique(groups)}
        a = out[key]
        log(f"  {key}: accuracy {a['accuracy']:.4f} [{a['accuracy_ci'][0]:.4f}, "
            f"{a['accuracy_ci'][1]:.4f}] n={a['n']}", flush=True)
    log("  per session: " + ", ".join(f"{g} {v:.3f}" for g, v in
                                      out["per_group_accuracy"].items()), flush=True)
    return out


def nested(Xs, y, groups, candidates, labels, log=print) -> dict:
    """The accuracy of *choosing* among ``candidates`` (each ``{"shifts": [...], "fit":
    {...}}``): for each held-out session, the candidate with the best leave-one-session-out
    accuracy over the three training sessions only is fitted on them and scores the held-out
    session (whose features are never seen by the choice)."""
    n_cls = len(labels)
    pred = np.full(len(y), -1, np.int64)
    chosen = {}
    for g in np.unique(groups):
        outer = groups != g
        inner_acc = []
        for c in candidates:
            ok = 0
            for h in np.unique(groups[outer]):
                tr, te = outer & (groups != h), groups == h
                W, b = fit_aug(Xs, y, tr, c["shifts"], n_cls, c["fit"])
                ok += int(np.sum(predict(W, b, Xs[0.0][te]) == y[te]))
            inner_acc.append(ok / int(outer.sum()))
        k = int(np.argmax(inner_acc))
        chosen[str(g)] = {"candidate": k, "inner_accuracy": inner_acc}
        W, b = fit_aug(Xs, y, outer, candidates[k]["shifts"], n_cls, candidates[k]["fit"])
        pred[~outer] = predict(W, b, Xs[0.0][~outer])
        log(f"  held out {g}: chose {candidates[k]} (inner "
            f"{', '.join(f'{a:.4f}' for a in inner_acc)}), outer "
            f"{np.mean(pred[~outer] == y[~outer]):.4f}", flush=True)
    out = {"leave_one_group_out": summarise(y, pred, labels), "chosen": chosen}
    a = out["leave_one_group_out"]
    log(f"  nested leave_one_group_out: accuracy {a['accuracy']:.4f} "
        f"[{a['accuracy_ci'][0]:.4f}, {a['accuracy_ci'][1]:.4f}] n={a['n']}", flush=True)
    return out


def diagnose(Xs, y, groups, fit, n_cls, log=print) -> dict:
    """Is a held-out session rotated relative to the others? For each session, a readout
    fitted on the *plain* features of the other sessions scores every rotated copy of the
    held-out session; a session worn at another rotation would score best at a non-zero
    shift. A diagnostic only (it looks at the held-out labels): never used for a choice."""
    out = {}
    for g in np.unique(groups):
        test = groups == g
        W, b = fit_aug(Xs, y, ~test, [], n_cls, fit)
        out[str(g)] = {str(s): float(np.mean(predict(W, b, Xs[s][test]) == y[test]))
                       for s in sorted(Xs)}
        log(f"  {g}: " + " ".join(f"{float(s):+g}: {a:.4f}" for s, a in
                                  out[str(g)].items()), flush=True)
    return out


def _candidates(text: str) -> list[dict]:
    try:
        c = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--nested: not JSON ({e})") from None
    if not isinstance(c, list) or not c or not all(
            isinstance(d, dict) and set(d) == {"shifts", "fit"} and isinstance(d["fit"], dict)
            and isinstance(d["shifts"], list) for d in c):
        raise argparse.ArgumentTypeError('--nested needs a JSON list of {"shifts": [...], '
                                         '"fit": {...}} objects')
    for d in c:
        d["shifts"] = _shift_list(",".join(str(v) for v in d["shifts"])) if d["shifts"] \
            else []
    return c


def _shift_list(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"shifts must be comma-separated numbers, got "
                                         f"{text!r}") from None
    if not all(np.isfinite(v) and 0 < abs(v) < 8 for v in vals):
        raise argparse.ArgumentTypeError(f"each shift must be finite, non-zero and below 8 "
                                         f"channels in size, got {text!r}")
    return vals


def _screen_sets(text: str) -> list[list[float]]:
    """``"0.5,-0.5;1,-1;"``: shift sets separated by ';' (an empty set = no augmentation)."""
    return [_shift_list(t) if t.strip() else [] for t in text.split(";")]


def load_cache(path):
    with np.load(path, allow_pickle=False) as z:
        shifts = [float(s) for s in z["shifts"]]
        Xs = {s: z[f"X{i}"] for i, s in enumerate(shifts)}
        return Xs, z["y"], z["groups"].astype(str), str(z["stage"])


def save_cache(path, Xs, y, groups, stage):
    shifts = sorted(Xs)
    np.savez_compressed(path, shifts=np.array(shifts), y=y, groups=groups.astype(str),
                        stage=np.array(stage), **{f"X{i}": Xs[s] for i, s in enumerate(shifts)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="../shared/data/myo-wrist-gestures")
    ap.add_argument("--out", default=None, help="model file (default "
                    "runtime/models/myo-gestures.npz)")
    ap.add_argument("--report", default=None, help="write the protocol results as JSON here")
    ap.add_argument("--shifts", type=_shift_list, default=list(DEFAULT_SHIFTS),
                    help="rotations of the training copies, in electrode pitches "
                    f"(default {','.join(map(str, DEFAULT_SHIFTS))})")
    ap.add_argument("--stage", choices=STAGES, default=DEFAULT_STAGE,
                    help="where the rotation is applied in the emg-lif chain")
    ap.add_argument("--jobs", type=int, default=1, help="streaming worker processes")
    ap.add_argument("--cache", default=None, help="save the streamed features (.npz) here")
    ap.add_argument("--from-cache", default=None,
                    help="use features saved by --cache instead of streaming")
    ap.add_argument("--screen", type=_screen_sets, default=None, metavar="SETS",
                    help="compare shift sets, e.g. ';0.5,-0.5;1,-1' (no model written)")
    ap.add_argument("--nested", type=_candidates, default=None, metavar="JSON",
                    help="choose among candidates inside each leave-one-session-out fold "
                    '(no model written), e.g. \'[{"shifts": [], "fit": {"method": "ridge", '
                    '"alpha": 10}}, ...]\'')
    ap.add_argument("--diagnose", action="store_true",
                    help="score each held-out session's rotated copies with a readout fitted "
                    "on the other sessions' plain features (no model written)")
    ap.add_argument("--fit", default=None, metavar="JSON",
                    help=f"readout fit for --screen / the model (default {DEFAULT_FIT}), "
                    'e.g. \'{"method": "ridge", "alpha": 10}\'')
    ap.add_argument("--float", action="store_true",
                    help="also run the protocols on the float twin's spikes (slow)")
    ap.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                    help="do not scale the readout for a calibrated softmax confidence")
    ap.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    ap.add_argument("--no-save", action="store_true", help="do not write a model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                    help="override a CONFIG entry of train_apps, e.g. net.n_hid=128")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if not args.data and not args.from_cache:
        ap.error("--data (or --from-cache) is required")
    cfg = json.loads(json.dumps(CONFIG[TASK]))
    for spec in args.set:
        apply_override(ap, cfg, spec)
    fit = dict(DEFAULT_FIT)
    if args.fit:
        try:
            fit = json.loads(args.fit)
        except json.JSONDecodeError as e:
            ap.error(f"--fit: not JSON ({e})")
        if not isinstance(fit, dict):
            ap.error("--fit must be a JSON object")
    labels = TASKS[TASK]
    need = sorted({s for s in args.shifts} | {s for st in (args.screen or []) for s in st}
                  | {s for c in (args.nested or []) for s in c["shifts"]})
    try:
        net = build_network(TASK, args.seed, **cfg["net"])
        prog = quantize(net)
        meta = metadata(TASK, cfg)
        if args.from_cache:
            Xs, y, groups, stage = load_cache(args.from_cache)
            if stage != args.stage:
                ap.error(f"--from-cache holds stage {stage!r}, not {args.stage!r}")
            cost = None
        else:
            recs = list_recordings(TASK, args.data)
            print(f"{TASK}: {len(recs)} recordings, shifts {need} at stage {args.stage}",
                  flush=True)
            Xs, y, groups, cost = collect(prog, meta, recs, need, args.stage, args.jobs)
            if args.cache:
                save_cache(args.cache, Xs, y, groups, args.stage)
        print(f"{len(y)} examples x {Xs[0.0].shape[1]} features", flush=True)
        report = {"task": TASK, "config": cfg, "seed": args.seed, "stage": args.stage,
                  "shifts": args.shifts, "fit": fit, "cost": cost}
        if args.diagnose:
            report["diagnose"] = diagnose(Xs, y, groups, fit, len(labels))
            write_report(args.report, report)
            return 0
        if args.nested is not None:
            report["nested"] = nested(Xs, y, groups, args.nested, labels)
            write_report(args.report, report)
            return 0
        if args.screen is not None:
            report["screen"] = []
            for st in args.screen:
                print(f"shifts {st} ({args.stage}), fit {fit}:", flush=True)
                report["screen"].append({"shifts": st,
                                         **protocols(Xs, y, groups, st, fit, labels)})
            write_report(args.report, report)
            return 0
        if not args.no_cv:
            print(f"shifts {args.shifts} ({args.stage}), fit {fit}:", flush=True)
            report["fixed"] = protocols(Xs, y, groups, args.shifts, fit, labels)
        if args.float:
            if cost is None:
                ap.error("--float needs --data (not --from-cache)")
            print("float twin:", flush=True)
            Xf, yf, gf, _ = collect(prog, meta, recs, args.shifts, args.stage, args.jobs,
                                    use_float=True)
            report["float"] = protocols(Xf, yf, gf, args.shifts, fit, labels)
        if not args.no_save:
            if cost is None:
                ap.error("writing a model needs --data (not --from-cache): stream it")
            W, b = fit_aug(Xs, y, np.ones(len(y), bool), args.shifts, len(labels), fit)
            k = score_scale(Xs, y, groups, args.shifts, fit, len(labels)) \
                if args.calibrate else 1.0
            W, b = (W * k).astype(np.float32), (b * k).astype(np.float32)
            print(f"  score scale {k:.4f} (softmax confidence calibrated on "
                  "leave-one-session-out scores)" if args.calibrate else "  no score scale",
                  flush=True)
            train_acc = float(np.mean(predict(W, b, Xs[0.0]) == y))
            meta["training"] = {"data": Path(args.data).name, "examples": int(len(y)),
                                "train_accuracy": train_acc, "seed": args.seed, "fit": fit,
                                "augment": {"channel_rotation": args.shifts,
                                            "stage": args.stage},
                                "score_scale": k}
            write_model(args.out, TASK, prog, meta, W, b, train_acc)
        write_report(args.report, report)
    except (DataError, AppModelError, EncoderConfigError, TrainError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
