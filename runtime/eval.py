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


def evaluate(model: str, data_dir: str, limit: int = 0, match: str | None = None,
             engine: str = "fixed", max_seconds: float = 0.0, progress=None) -> dict:
    """Run the streaming evaluation; returns the JSON document of ``spikeedge eval``."""
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
    t0 = time.perf_counter()
    for i, rec in enumerate(recs):
        res = run_stream(prog, rec.url, r, max_seconds=max_seconds,
                         engine=FloatRunner(prog) if engine == "float" else None)
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
                    "total_wall_s": round(time.perf_counter() - t0, 3)}}
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


def cmd_eval(args) -> int:
    from .errors import ModelFormatError
    try:
        doc = evaluate(args.model, args.data_dir, limit=args.limit, match=args.match,
                       engine="float" if args.float else "fixed",
                       max_seconds=args.max_seconds)
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
    p.set_defaults(func=cmd_eval)
    q = subparsers.add_parser("models", help="list the shipped application models")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models)
