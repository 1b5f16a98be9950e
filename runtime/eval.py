"""``spikeedge eval MODEL DATA_DIR [--json]`` and ``spikeedge models``.

``eval`` streams every recording in DATA_DIR through the fixed-point pipeline of the shipped
applications (source blocks -> encoder -> ``Engine.run_chunk`` -> featurizer -> linear readout,
:func:`spikeedge.apps.stream.run_stream`) and scores the decisions:

* ``fsdd-digits``: one decision per WAV file, true class from the file name;
* ``mitbih-beats``: AAMI EC57: detected beats matched one-to-one to the reference beats within
  150 ms; ``per_class`` Se and +P (``se``, ``ppv``) over matched beats for N, S, V, F, Q;
  ``detection`` gives the QRS detector's Se / +P and the reference beats it missed per class;
* ``myo-gestures``: one decision per window, true class the majority label of its samples
  (windows across a label change are not scored).

JSON: ``{"model", "task", "n", "accuracy", "per_class": {CLASS: {"n", "se", "ppv"}},
"confusion" (rows true, columns predicted), "labels"}`` plus ``accuracy_ci`` (95 % Wilson),
``recordings``, ``cost`` and, for ECG, ``detection``. Errors (bad model, empty or wrong folder)
print one line and exit with status 2.
"""
from __future__ import annotations

import fnmatch
import json
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import SpikeEdgeError

__all__ = ["shipped_models", "resolve_model", "evaluate", "register"]


def shipped_models() -> dict[str, str]:
    """Shipped model name -> path (package data ``spikeedge/models/*.npz``)."""
    out = {}
    try:
        for p in (resources.files("spikeedge") / "models").iterdir():
            if p.name.endswith(".npz"):
                out[p.name[:-4]] = str(p)
    except (FileNotFoundError, NotADirectoryError):  # pragma: no cover - broken install
        pass
    return dict(sorted(out.items()))


class EvalError(SpikeEdgeError):
    """``spikeedge eval`` cannot run: unknown model, unusable data folder."""


def resolve_model(model: str) -> str:
    models = shipped_models()
    if model in models:
        return models[model]
    p = Path(model)
    if p.is_file():
        return str(p)
    raise EvalError(f"model {model!r}: no such file and not a shipped model; shipped: "
                    f"{', '.join(models) or '(none installed)'}")


#: what each decision policy's latency is measured from (see :func:`event_end_s`)
LATENCY_FROM = {"window": "end of the window", "beat": "R peak of the beat",
                "utterance": "end of the utterance"}
#: ``--block-ms`` bounds: the daemon's default is 10 ms; more than 10 s is not streaming
BLOCK_MS_RANGE = (0.1, 10_000.0)


def event_end_s(policy: str, d: dict, rate: float, stream_end_s: float) -> float:
    """Signal time (seconds from the start of the recording) of the end of the event decision
    ``d`` is about: a window's end, a beat's R peak (the beat's own end, its T wave, is later:
    measuring from the R peak counts that too), an utterance's end (its last sample for the
    live detector; the end of the file when the file is the utterance, as in ``eval``)."""
    if policy == "beat":
        return d["beat_sample"] / rate
    t1 = d.get("t1")
    return stream_end_s if t1 is None else float(t1)


def _latency(policy: str, signal: list, compute: list, block_s: float) -> dict:
    from .daemon import percentiles
    ms = lambda v: [x * 1e3 for x in v]      # noqa: E731
    total = [a + b for a, b in zip(signal, compute, strict=True)]
    return {"from": LATENCY_FROM.get(policy, policy), "block_ms": round(block_s * 1e3, 4),
            "signal_ms": percentiles(ms(signal)), "compute_ms": percentiles(ms(compute)),
            "total_ms": percentiles(ms(total))}


def evaluate(model: str, data_dir: str, limit: int = 0, match: str | None = None,
             engine: str = "fixed", max_seconds: float = 0.0, progress=None,
             block_s: float = 0.1) -> dict:
    """Run the streaming evaluation; returns the JSON document of ``spikeedge eval``.
    ``block_s``: the source's block size (the daemon's is 10 ms); the decisions do not depend
    on it, their latency does: ``latency`` gives, per decision, how much signal had been read
    past the end of its event when it was made (``signal_ms``: the policy's look-ahead plus
    the wait for the block's end), the wall time from the block's arrival to the decision
    (``compute_ms``) and their sum (``total_ms``: what a live source would see)."""
    lo, hi = BLOCK_MS_RANGE
    if not (isinstance(block_s, (int, float)) and lo <= block_s * 1e3 <= hi):
        raise EvalError(f"block size {block_s!r} s: must be within {lo:g} to {hi:g} ms")
    from .apps.stream import AppReadout, FloatRunner, run_stream
    from .apps.tasks import list_recordings, truth_and_predictions
    from .modelfile import load_model
    from .train import confusion, wilson_interval
    path = resolve_model(model)
    prog = load_model(path)
    r = AppReadout.from_program(prog)
    recs = list_recordings(r.task, data_dir)
    if match:
        recs = [x for x in recs if fnmatch.fnmatch(Path(x.url.split(":", 1)[1]).name, match)
                or fnmatch.fnmatch(x.name, match)]
        if not recs:
            raise EvalError(f"{data_dir}: no recording matches {match!r}")
    if limit:
        recs = recs[:limit]
    labels = r.labels
    y_all, p_all = [], []
    missed = np.zeros(len(labels), np.int64)
    extra = reference = 0
    events = steps = n_dec = 0
    wall = signal_s = 0.0
    lat_signal, lat_compute = [], []
    policy = r.decision["policy"]
    t0 = time.perf_counter()
    for i, rec in enumerate(recs):
        res = run_stream(prog, rec.url, r, max_seconds=max_seconds, block_s=block_s,
                         engine=FloatRunner(prog) if engine == "float" else None)
        end = res["n_samples"] / res["rate"]
        for d in res["decisions"]:
            lat_signal.append(d["emitted_s"] - event_end_s(policy, d, res["rate"], end))
            lat_compute.append(d["compute_s"])
        y, idx, ex = truth_and_predictions(r.task, rec, res)
        y_all.append(y)
        p_all.append(np.array([res["decisions"][j]["class_index"] for j in idx], np.int64))
        if ex:
            missed += ex["missed"]
            extra += ex["extra"]
            reference += ex["reference"]
        events += res["events"]
        steps += res["steps"]
        n_dec += len(res["decisions"])
        wall += res["wall_s"]
        signal_s += res["steps"] * prog.dt
        if progress:
            progress(i + 1, len(recs))
    y = np.concatenate(y_all) if y_all else np.zeros(0, np.int64)
    p = np.concatenate(p_all) if p_all else np.zeros(0, np.int64)
    c = confusion(y, p, len(labels))
    n, k = int(c.sum()), int(np.trace(c))
    per = {}
    for j, lab in enumerate(labels):
        tp, nt, npred = int(c[j, j]), int(c[j].sum()), int(c[:, j].sum())
        per[lab] = {"n": nt, "se": round(tp / nt, 6) if nt else None,
                    "ppv": round(tp / npred, 6) if npred else None}
    doc = {"model": model, "model_path": path, "task": r.task, "engine": engine,
           "recordings": len(recs), "n": n,
           "accuracy": round(k / n, 6) if n else None,
           "accuracy_ci": [round(x, 6) for x in wilson_interval(k, n)] if n else None,
           "per_class": per, "confusion": c.tolist(), "labels": labels,
           "cost": {"decisions": n_dec, "synaptic_events": events,
                    "events_per_decision": round(events / n_dec, 1) if n_dec else None,
                    "wall_ms_per_decision": round(wall * 1e3 / n_dec, 4) if n_dec else None,
                    "signal_s": round(signal_s, 3), "pipeline_wall_s": round(wall, 3),
                    "realtime_factor": round(signal_s / wall, 1) if wall else None,
                    "total_wall_s": round(time.perf_counter() - t0, 3)},
           "latency": _latency(policy, lat_signal, lat_compute, block_s)}
    if r.task == "mitbih-beats":
        tp = reference - int(missed.sum())
        doc["detection"] = {"reference_beats": reference, "matched": tp,
                            "missed": int(missed.sum()), "extra": extra,
                            "se": round(tp / reference, 6) if reference else None,
                            "ppv": round(tp / (tp + extra), 6) if tp + extra else None,
                            "missed_per_class": dict(zip(labels, missed.tolist(),
                                                         strict=True)),
                            "tolerance_s": 0.150}
    return doc


def _print_text(doc: dict) -> None:
    lo, hi = doc["accuracy_ci"] or (float("nan"), float("nan"))
    acc = doc["accuracy"]
    print(f"{doc['model']} ({doc['task']}, {doc['engine']}): {doc['recordings']} recordings, "
          f"{doc['n']} decisions scored")
    print(f"accuracy {acc if acc is not None else float('nan'):.4f}  (95 % CI {lo:.4f} - "
          f"{hi:.4f})")
    print(f"{'class':>12} {'n':>7} {'Se':>8} {'+P':>8}")
    for lab, pc in doc["per_class"].items():
        se = "-" if pc["se"] is None else f"{pc['se']:.4f}"
        pp = "-" if pc["ppv"] is None else f"{pc['ppv']:.4f}"
        print(f"{lab:>12} {pc['n']:7d} {se:>8} {pp:>8}")
    if "detection" in doc:
        d = doc["detection"]
        print(f"beat detection: Se {d['se']}, +P {d['ppv']} ({d['missed']} missed, "
              f"{d['extra']} extra of {d['reference_beats']})")
    c = doc["cost"]
    print(f"cost: {c['events_per_decision']} synaptic events and {c['wall_ms_per_decision']} "
          f"ms per decision; {c['realtime_factor']}x real time")
    la = doc["latency"]
    print(f"latency from the {la['from']} to the decision ({la['block_ms']:g} ms blocks), "
          f"median / p99 / max ms: signal {_pmm(la['signal_ms'])}, compute "
          f"{_pmm(la['compute_ms'])}, total {_pmm(la['total_ms'])}")


def _pmm(p: dict) -> str:
    return " / ".join("-" if p[k] is None else f"{p[k]:g}" for k in ("p50", "p99", "max"))


def cmd_eval(args) -> int:
    from .errors import ModelFormatError
    try:
        doc = evaluate(args.model, args.data_dir, limit=args.limit, match=args.match,
                       engine="float" if args.float else "fixed",
                       max_seconds=args.max_seconds, block_s=args.block_ms * 1e-3)
    except (SpikeEdgeError, ModelFormatError, OSError) as exc:
        print(f"spikeedge eval: error: {exc}", file=sys.stderr)
        return 2
    if doc["n"] == 0:
        print(f"spikeedge eval: error: {args.data_dir}: no decisions could be scored",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        _print_text(doc)
    return 0


def cmd_models(args) -> int:
    from .modelfile import load_model
    rows = []
    for name, path in shipped_models().items():
        try:
            meta = load_model(path).report.get("metadata", {})
        except SpikeEdgeError as exc:
            meta = {"error": str(exc)}
        rows.append({"name": name, "path": path, "task": meta.get("task"),
                     "labels": meta.get("labels"), "encoder": (meta.get("encoder") or {})
                     .get("preset"), "decision": (meta.get("decision") or {}).get("policy"),
                     "card": meta.get("card"), "bytes": Path(path).stat().st_size})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no shipped models installed")
    for r in rows:
        print(f"{r['name']:14} {r['task'] or '?':14} encoder {r['encoder']}, one decision per "
              f"{r['decision']}, {len(r['labels'] or [])} classes, {r['bytes']} bytes")
    return 0


def _block_ms(text: str) -> float:
    import argparse
    import math
    lo, hi = BLOCK_MS_RANGE
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise argparse.ArgumentTypeError(f"{text}: must be within {lo:g} to {hi:g} ms")
    return v


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="accuracy of an application model on a folder of recordings",
        description="Stream every recording in DATA_DIR through the fixed-point pipeline "
                    "and score the decisions (AAMI EC57 for ECG). MODEL is a shipped model "
                    "name (see 'spikeedge models') or a model file.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--limit", type=int, default=0, help="only the first N recordings")
    p.add_argument("--match", default=None, metavar="GLOB",
                   help="only recordings whose file name matches, e.g. '*_[0-4].wav' (the "
                        "FSDD test split)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="only the first S seconds of each recording")
    p.add_argument("--float", action="store_true",
                   help="run the float twin instead of the fixed-point engine (slow)")
    p.add_argument("--block-ms", type=_block_ms, default=100.0, metavar="MS",
                   help="source block size in ms (default 100; the daemon's is 10): the "
                        "decisions do not depend on it, the reported latency does")
    p.set_defaults(func=cmd_eval)
    q = subparsers.add_parser("models", help="list the shipped application models")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models)
