"""Surrogate-gradient training (float, then quantization-aware) and quantizer reports.

    spikeedge train-sg --task fsdd-digits --data ../shared/data/fsdd --protocol split \\
        --out fsdd-digits-sg.npz --report sg.json
    python -m spikeedge.tools.train_sg --spikes my_spikes.npz --hidden 64 --epochs 20
    spikeedge quantize-report MODEL [--calib spikes.npy | --source URL] [--weight-bits 8] [--json]

``train-sg`` builds a stack of LIF layers (:mod:`spikeedge.sgtrain`), trains it with BPTT
and surrogate gradients in float, measures float accuracy (torch) and fixed-point accuracy
after plain post-training quantization (PTQ; the real Engine), then fine-tunes with
quantization-aware training (QAT) and measures both again. Every number it prints is float
and fixed side by side.

Data: ``--task fsdd-digits --data DIR`` streams each WAV file through the model's encoder
(``audio-delta`` at the network's step ``--dt``, the code ``spikeedge eval`` runs) once and
trains on those spike trains; ``--spikes FILE.npz`` takes ready spike trains: ``x`` uint8
[n, T, n_in], ``y`` [n], optional ``lengths`` [n] (valid steps of each example) and ``test``
[n] bool (held-out examples; default a seeded 20 %).

Protocols (FSDD): ``split`` trains on recordings 5-49 and tests on 0-4 (the dataset's own
split; the model it trains is the one ``--out`` writes, an application model that
``spikeedge eval`` runs), ``loso`` trains on four speakers and tests on the fifth (mean over
folds; ``--folds`` limits how many), ``both`` runs both.

``quantize-report`` re-quantizes the physical network stored in a model file (optionally with
other weight bits) and prints the per-projection weight report plus the activity of a
calibration run against the float twin; it exits with status 2 when a population would go
silent or saturate beyond ``--state-budget``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikeedge.errors import SpikeEdgeError


class TrainSGError(SpikeEdgeError, ValueError):
    """``train-sg`` / ``quantize-report`` cannot run with these arguments or data."""


# ---------------------------------------------------------------------------- data
def encode_task(task: str, data: str, dt: float, encoder: str = "audio-delta",
                block_s: float = 0.1, log=print):
    """Spike trains of every recording of ``task`` in ``data`` (the streaming encoder of
    ``spikeedge eval``, fed in blocks of ``block_s``). Returns (X list, y, groups, index)."""
    from spikeedge.apps.tasks import list_recordings
    from spikeedge.sensors import app_encoders, open_source
    from spikeedge.sensors.presets import make_encoder
    del app_encoders
    if task != "fsdd-digits":
        raise TrainSGError(f"task {task!r}: train-sg supports fsdd-digits (one label per "
                           "recording); use --spikes for other data")
    recs = list_recordings(task, data)
    X = []
    t0 = time.time()
    for r in recs:
        src = open_source(r.url)
        src.open()
        try:
            src.block_size = max(1, int(round(block_s * src.rate)))
            enc = make_encoder(encoder, src.rate, src.channels, 1.0 / dt)
            enc.reset()
            parts = [enc.process(b.samples) for b in src]
        finally:
            src.close()
        x = np.concatenate(parts).astype(np.uint8) if parts else np.zeros((0, enc.n_out))
        X.append(x if len(x) else np.zeros((1, enc.n_out), np.uint8))
    log(f"encoded {len(recs)} recordings with {encoder} at {1 / dt:g} steps/s "
        f"({time.time() - t0:.0f} s)")
    return (X, np.array([r.label for r in recs], np.int64), np.array([r.group for r in recs]),
            np.array([r.index for r in recs]))


def load_spikes(path: str, seed: int = 0):
    try:
        d = np.load(path, allow_pickle=False)
        x, y = np.asarray(d["x"]), np.asarray(d["y"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise TrainSGError(f"{path}: not a spike file with arrays x [n, T, n_in] and y [n] "
                           f"({exc})") from None
    if x.ndim != 3 or len(x) != len(y):
        raise TrainSGError(f"{path}: x must be [n, T, n_in] and y [n], got {x.shape}, {y.shape}")
    lengths = np.asarray(d["lengths"]) if "lengths" in d else np.full(len(x), x.shape[1])
    X = [x[i, :max(1, int(lengths[i]))] for i in range(len(x))]
    if "test" in d:
        test = np.asarray(d["test"], bool)
    else:
        test = np.random.default_rng(seed).random(len(x)) < 0.2
    return X, y, test


def audio_augment(bands: int = 32, max_shift: int = 2, stretch: float = 0.1):
    """Speaker-style augmentation of ``audio-delta`` spike trains (ON bands then OFF bands):
    shift every band by up to ``max_shift`` ERB bands (a different vocal tract) and stretch
    time by up to ``stretch`` (a different speaking rate)."""
    def aug(x, rng):
        if x.shape[1] != 2 * bands:
            raise TrainSGError(f"--augment audio needs {2 * bands} inputs (ON/OFF bands), got "
                               f"{x.shape[1]}")
        k = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
        if k:
            y = np.zeros_like(x)
            for h in (0, bands):
                src = x[:, h:h + bands]
                if k > 0:
                    y[:, h + k:h + bands] = src[:, :bands - k]
                else:
                    y[:, h:h + bands + k] = src[:, -k:]
            x = y
        if stretch:
            f = rng.uniform(1.0 - stretch, 1.0 + stretch)
            n = max(1, int(round(len(x) * f)))
            x = x[np.minimum((np.arange(n) / f).astype(np.int64), len(x) - 1)]
        return x
    return aug


# ---------------------------------------------------------------------------- training
def build_net(args, n_in: int, n_classes: int):
    from spikeedge.sgtrain import LayerSpec, SGNet
    sizes = [int(s) for s in str(args.hidden).split(",") if s.strip()]
    names = ["hid"] if len(sizes) == 1 else [f"hid{i}" for i in range(len(sizes))]
    layers = [LayerSpec(n, tau_m=args.tau_m, tau_s=args.tau_s, t_ref=args.t_ref,
                        recurrent=args.recurrent, density=args.density, name=nm)
              for n, nm in zip(sizes, names, strict=True)]
    if args.readout != "linear":
        layers.append(LayerSpec(n_classes, tau_m=args.tau_m, tau_s=args.tau_s, name="out"))
    return SGNet(n_in, layers, dt=args.dt, readout=args.readout, n_classes=n_classes,
                 segments=args.segments, transform=args.transform, slope=args.slope,
                 weight_bits=args.weight_bits, seed=args.seed, name="sgnet")


def train_and_measure(args, Xtr, ytr, Xte, yte, n_in, n_classes, log=print, tag=""):
    """Float training, PTQ measurement, QAT, measurement. Returns (net, program, result)."""
    from spikeedge.sgtrain import evaluate_engine, evaluate_torch, fit
    net = build_net(args, n_in, n_classes)
    prog_bar = not args.no_progress
    aug = None
    if args.augment == "audio":
        aug = audio_augment(n_in // 2, args.band_shift, args.stretch)
    kw = {"batch_size": args.batch_size, "rate_reg": args.rate_reg, "augment": aug,
          "input_dropout": args.input_dropout, "weight_decay": args.weight_decay,
          "progress": prog_bar, "log": log}
    t0 = time.time()
    fit(net, Xtr, ytr, epochs=args.epochs, lr=args.lr, seed=args.seed, **kw)
    res = {"n_train": len(Xtr), "n_test": len(Xte)}
    res["float"] = evaluate_torch(net, Xte, yte)["accuracy"]
    prog = net.to_program()
    res["fixed_ptq"] = evaluate_engine(net, prog, Xte, yte, progress=prog_bar)["accuracy"]
    log(f"{tag}after float training ({time.time() - t0:.0f} s): float {res['float']:.4f}  "
        f"fixed (PTQ, {args.weight_bits}-bit weights) {res['fixed_ptq']:.4f}")
    if args.qat_epochs > 0:
        fit(net, Xtr, ytr, epochs=args.qat_epochs, lr=args.qat_lr, quant=True,
            seed=args.seed + 1, **kw)
        prog = net.to_program()
        res["float_after_qat"] = evaluate_torch(net, Xte, yte)["accuracy"]
        res["fixed_qat"] = evaluate_engine(net, prog, Xte, yte, progress=prog_bar)["accuracy"]
        log(f"{tag}after QAT ({time.time() - t0:.0f} s): float {res['float_after_qat']:.4f}  "
            f"fixed (QAT) {res['fixed_qat']:.4f}")
    res["fixed"] = res.get("fixed_qat", res["fixed_ptq"])
    res["wall_s"] = time.time() - t0
    return net, prog, res


def app_metadata(net, args, extra: dict) -> dict:
    from spikeedge.apps.tasks import TASKS
    return {"task": "fsdd-digits", "name": Path(args.out).stem if args.out else "fsdd-digits-sg",
            "labels": TASKS["fsdd-digits"],
            "encoder": {"preset": args.encoder, "params": {}},
            "readout": {"population": net.layers[-1].name, "feature": "counts",
                        "transform": net.transform},
            "decision": {"policy": "utterance", "segments": net.segments},
            "training": extra}


def cmd_train_sg(args) -> int:
    from spikeedge import save_model
    from spikeedge.sgtrain import _torch
    torch = _torch()
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    log = (lambda *a, **k: None) if args.quiet else (lambda m: print(m, flush=True))
    report = {"args": {k: v for k, v in vars(args).items() if k != "func"}}
    if args.task:
        if not args.data:
            raise TrainSGError("--task needs --data DIR")
        if args.readout != "linear" and args.out:
            raise TrainSGError("an application model (--out with --task) needs --readout "
                               "linear (the featurizer's per-segment rates)")
        X, y, groups, index = encode_task(args.task, args.data, args.dt, args.encoder, log=log)
        n_in, n_classes = X[0].shape[1], 10
        folds = []
        if args.protocol in ("split", "both"):
            folds.append(("split", index >= 5, index < 5))
        if args.protocol in ("loso", "both"):
            speakers = sorted(set(groups.tolist()))
            if args.folds:
                want = [f.strip() for f in args.folds.split(",") if f.strip()]
                if len(want) == 1 and want[0].isdigit():
                    speakers = speakers[:int(want[0])]
                else:
                    bad = [w for w in want if w not in speakers]
                    if bad:
                        raise TrainSGError(f"--folds: no speaker {bad} (have {speakers})")
                    speakers = want
            folds += [(f"loso:{s}", groups != s, groups == s) for s in speakers]
    else:
        if not args.spikes:
            raise TrainSGError("give --task fsdd-digits --data DIR or --spikes FILE.npz")
        X, y, test = load_spikes(args.spikes, args.seed)
        n_in, n_classes = X[0].shape[1], int(y.max()) + 1
        folds = [("holdout", ~test, test)]
    results = {}
    saved = None
    for name, tr, te in folds:
        itr, ite = np.flatnonzero(tr), np.flatnonzero(te)
        log(f"== {name}: {len(itr)} train, {len(ite)} test")
        net, prog, res = train_and_measure(args, [X[i] for i in itr], y[itr],
                                           [X[i] for i in ite], y[ite], n_in, n_classes,
                                           log=log, tag=f"[{name}] ")
        results[name] = res
        if name in ("split", "holdout") and saved is None:
            saved = (net, prog, res)
    report["results"] = results
    loso = [r for k, r in results.items() if k.startswith("loso:")]
    if loso:
        keys = [k for k in ("float", "fixed_ptq", "float_after_qat", "fixed_qat") if k in loso[0]]
        report["loso_mean"] = {k: float(np.mean([r[k] for r in loso])) for k in keys}
        report["loso_mean"]["folds"] = len(loso)
        log("leave one speaker out, mean over " f"{len(loso)} folds: " +
            "  ".join(f"{k} {v:.4f}" for k, v in report["loso_mean"].items() if k != "folds"))
    if args.out:
        if saved is None:
            raise TrainSGError("--out needs a model trained on the split (--protocol split or "
                               "both)")
        net, prog, res = saved
        extra = {"method": "surrogate-gradient BPTT + QAT", "data": Path(args.data).name
                 if args.data else Path(args.spikes).name, "result": res,
                 "command": " ".join(sys.argv)}
        if args.task:
            meta = app_metadata(net, args, extra)
            w, b = net.readout_arrays()
            save_model(args.out, prog, metadata=meta, extras={"readout_w": w, "readout_b": b})
        else:
            save_model(args.out, prog, metadata={"training": extra})
        log(f"wrote {args.out}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return 0


# ---------------------------------------------------------------------------- report
def cmd_quantize_report(args) -> int:
    from spikeedge.quantize import (
        QuantizationReportError,
        calibration_input,
        format_report,
        quantize_with_report,
    )
    prog = _load(args.model)
    if prog.network is None:
        raise TrainSGError(f"{args.model}: the model file stores no physical network; a report "
                           "needs it")
    net = prog.network
    if args.calib:
        try:
            calib = np.load(args.calib, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise TrainSGError(f"--calib {args.calib}: cannot read a .npy array ({exc})") \
                from None
    elif args.source:
        calib = _encode_source(prog, args.source)
    else:
        steps = max(1, int(round(args.seconds / net.dt)))
        calib = calibration_input(net.n_inputs, steps, rate=args.rate, seed=args.seed)
    bits = args.weight_bits or prog.report.get("weight_bits") or 16
    try:
        _, rep = quantize_with_report(net, calib, weight_bits=bits,
                                      state_saturation_budget=args.state_budget,
                                      max_rate_change=args.max_rate_change)
        rc = 0
    except QuantizationReportError as exc:
        rep, rc = exc.report, 2
        print(f"spikeedge: error: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, indent=1, default=_json_default))
    else:
        print(format_report(rep))
    return rc


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _load(model: str):
    from spikeedge.daemon import load_program
    from spikeedge.eval import resolve_model
    try:
        path = resolve_model(model)
    except SpikeEdgeError:
        path = model
    return load_program(path)[0] if path.startswith("builtin:") else \
        __import__("spikeedge").load_model(path)


def _encode_source(prog, url: str) -> np.ndarray:
    from spikeedge.sensors import app_encoders, open_source
    from spikeedge.sensors.presets import make_encoder
    del app_encoders
    enc_meta = (prog.report.get("metadata") or {}).get("encoder") or {}
    preset = enc_meta.get("preset")
    if not preset:
        raise TrainSGError("--source needs a model whose metadata names its encoder preset; "
                           "use --calib spikes.npy otherwise")
    src = open_source(url)
    src.open()
    try:
        enc = make_encoder(preset, src.rate, src.channels, 1.0 / prog.dt)
        enc.reset()
        parts = [enc.process(b.samples) for b in src]
    finally:
        src.close()
    return np.concatenate(parts)


# ---------------------------------------------------------------------------- CLI
def add_train_args(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--task", choices=["fsdd-digits"], default=None,
                   help="an application task (with --data)")
    d.add_argument("--data", default=None, help="the task's recordings folder")
    d.add_argument("--spikes", default=None,
                   help="spike trains .npz: x [n, T, n_in], y [n], optional lengths, test")
    d.add_argument("--encoder", default="audio-delta", help="encoder preset (task data)")
    d.add_argument("--protocol", choices=["split", "loso", "both"], default="split",
                   help="FSDD: split = recordings 0-4 test; loso = leave one speaker out")
    d.add_argument("--folds", default="",
                   help="loso: only the first N speakers, or a comma list of speakers")
    n = p.add_argument_group("network")
    n.add_argument("--hidden", default="128", help="hidden layer sizes, comma separated")
    n.add_argument("--recurrent", action="store_true", help="recurrent hidden layers")
    n.add_argument("--density", type=float, default=1.0,
                   help="share of feed-forward weights kept (< 1: fixed sparse mask, CSR)")
    n.add_argument("--dt", type=float, default=2e-3, help="time step (s); also the encoder's")
    n.add_argument("--tau-m", type=float, default=20e-3)
    n.add_argument("--tau-s", type=float, default=10e-3)
    n.add_argument("--t-ref", type=float, default=0.0)
    n.add_argument("--readout", choices=["linear", "counts", "membrane"], default="linear")
    n.add_argument("--segments", type=int, default=4, help="linear readout: utterance parts")
    n.add_argument("--transform", choices=["none", "sqrt", "log1p"], default="none")
    n.add_argument("--weight-bits", type=int, default=16)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=10, help="float epochs")
    t.add_argument("--qat-epochs", type=int, default=2, help="quantization-aware epochs")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--qat-lr", type=float, default=5e-4)
    t.add_argument("--slope", type=float, default=10.0, help="surrogate slope")
    t.add_argument("--rate-reg", type=float, default=0.0)
    t.add_argument("--input-dropout", type=float, default=0.0,
                   help="drop this share of input spikes while training")
    t.add_argument("--augment", choices=["none", "audio"], default="none",
                   help="audio: random band shift and time stretch of each training example")
    t.add_argument("--band-shift", type=int, default=2, help="--augment audio: max bands")
    t.add_argument("--stretch", type=float, default=0.1, help="--augment audio: max stretch")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1, help="torch threads")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="write the trained model file here")
    o.add_argument("--report", default=None, help="write the results as JSON here")
    o.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    o.add_argument("--quiet", action="store_true")


def add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model file or shipped model name")
    p.add_argument("--calib", default=None, help="calibration spikes .npy [T, n_in]")
    p.add_argument("--source", default=None,
                   help="calibration recording URL, encoded with the model's encoder")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="random calibration input: seconds (default 5)")
    p.add_argument("--rate", type=float, default=0.05,
                   help="random calibration input: spike probability per input and step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-bits", type=int, default=0,
                   help="re-quantize with this many weight bits (default: the model's)")
    p.add_argument("--state-budget", type=float, default=0.01,
                   help="refuse above this share of saturated state updates (default 0.01)")
    p.add_argument("--max-rate-change", type=float, default=None,
                   help="refuse above this relative spike-rate change (default: no limit)")
    p.add_argument("--json", action="store_true")


def register(subparsers) -> None:
    p = subparsers.add_parser("train-sg", help="surrogate-gradient training (+ QAT) in PyTorch",
                              description=__doc__.split("\n\n")[0])
    add_train_args(p)
    p.set_defaults(func=cmd_train_sg)
    q = subparsers.add_parser("quantize-report",
                              help="quantizer report: weights, saturation, activity vs float",
                              description="Per-projection weight report and a calibration "
                                          "run against the float twin; status 2 when a layer "
                                          "would go silent or saturate beyond the budget.")
    add_report_args(q)
    q.set_defaults(func=cmd_quantize_report)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spikeedge.tools.train_sg",
                                 description=__doc__.split("\n\n")[0])
    add_train_args(ap)
    args = ap.parse_args(argv)
    try:
        return cmd_train_sg(args)
    except SpikeEdgeError as exc:
        print(f"spikeedge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
