"""``spikeedge validate``: our fixed-point engine against Brian2 (DESIGN §5).

Three layers, each with a tolerance that sets the exit status:

* **integer twin**: the fixed-point contract written as integer equations in Brian2 must give
  the engine's spikes, membranes and currents (and learned weights and STDP traces) exactly;
* **float twin**: the physical network integrated exactly by Brian2 (``method='exact'``) must
  stay close: coincidence factor Gamma (+-1 dt), rate error, normalised van Rossum distance,
  membrane RMSE / threshold; for recurrent or plastic networks (closed loops) the divergence
  horizon and ISI statistics instead;
* **STDP**: learned weights against Brian2's pair-based STDP on the same spike trains, an
  explicit sign test and a dt-convergence check.

    spikeedge validate --net kws --json
    spikeedge validate --model my.npz --duration 5 --report out/

The method and the defaults are described in docs/validation.md. Exit status: 0 all checks
passed, 1 a tolerance was exceeded, 2 bad arguments / Brian2 missing.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np

from spikeedge.errors import SpikeEdgeError

from .run import DEFAULT_TOLERANCES, validate

__all__ = ["validate", "DEFAULT_TOLERANCES", "register", "load_target", "format_table"]

_TOL_FLAGS = {
    "gamma_min": "--gamma-min",
    "rate_error_max": "--rate-error-max",
    "membrane_rmse_max": "--membrane-rmse-max",
    "recurrent_rate_error_max": "--recurrent-rate-error-max",
    "recurrent_cv_diff_max": "--recurrent-cv-diff-max",
    "stdp_rms_max": "--stdp-rms-max",
    "stdp_window_rel_max": "--stdp-window-rel-max",
}


def register(subparsers) -> None:
    from spikeedge.cli import _positive_float
    p = subparsers.add_parser(
        "validate", help="validate the engine and STDP against Brian2 (integer and float twins)",
        description="Run the fixed-point engine, a Brian2 integer twin (must be exact) and a "
        "Brian2 float twin (within tolerances) on the same input. Exit 1 when a tolerance is "
        "exceeded. Needs the validation extra: pip install 'spikeedge[validate]'.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--net", choices=["kws", "shd", "cuba", "stdp"], default=None,
                     help="a standard network (default: kws)")
    src.add_argument("--model", default=None, help="a model file (.npz) written by save_model")
    p.add_argument("--duration", type=_positive_float, default=None,
                   help="simulated seconds (default: the standard network's duration; 10 s "
                   "for a model file)")
    p.add_argument("--input", default=None,
                   help="input spikes for --model: a .npy uint8 array [steps, n_in]")
    p.add_argument("--input-rate", type=_positive_float, default=20.0,
                   help="for --model without --input: Poisson rate per input (Hz)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated model input")
    p.add_argument("--json", action="store_true", help="print the result document as JSON")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write PNG figures and index.html into DIR")
    p.add_argument("--target", choices=["numpy", "cython"], default="numpy",
                   help="Brian2 code generation target (cython compiles once, then runs "
                   "faster; numpy needs no compiler)")
    p.add_argument("--skip-integer", action="store_true", help="no integer twin")
    p.add_argument("--skip-float", action="store_true", help="no float twin")
    p.add_argument("--no-stdp-extras", action="store_true",
                   help="skip the STDP sign test and dt-convergence check")
    for key, flag in _TOL_FLAGS.items():
        p.add_argument(flag, type=float, default=None, dest=key,
                       help=f"tolerance (default {DEFAULT_TOLERANCES[key]})")
    p.set_defaults(func=cmd_validate)


def load_target(net: str | None, model: str | None, duration: float | None,
                input_path: str | None = None, rate: float = 20.0, seed: int = 0):
    """(name, Program, input uint8 [T, n_in]) for a standard network or a model file."""
    from spikeedge import load_model, quantize
    from spikeedge.nets import standard
    if model is None:
        name = net or "kws"
        network, inp, _ = standard(name, duration)
        return name, quantize(network), inp
    prog = load_model(model)
    if prog.network is None:
        raise SpikeEdgeError(f"{model}: the model file carries no physical network; the float "
                             f"twin needs it")
    if input_path is not None:
        inp = np.load(input_path, allow_pickle=False)
        if inp.ndim != 2 or inp.shape[1] != prog.n_in:
            raise SpikeEdgeError(f"{input_path}: input must have shape [steps, {prog.n_in}], "
                                 f"got {inp.shape}")
        if duration is not None:
            inp = inp[:int(round(duration / prog.dt))]
        inp = (inp != 0).astype(np.uint8)
    else:
        steps = int(round((duration or 10.0) / prog.dt))
        rng = np.random.default_rng(seed)
        inp = (rng.random((steps, prog.n_in)) < rate * prog.dt).astype(np.uint8)
    return model, prog, inp


def cmd_validate(args) -> int:
    import sys
    tol = {k: getattr(args, k) for k in _TOL_FLAGS if getattr(args, k) is not None}
    name, prog, inp = load_target(args.net, args.model, args.duration, args.input,
                                  args.input_rate, args.seed)
    t0 = time.perf_counter()
    doc = validate(prog, inp, name=name, target=args.target, tolerances=tol,
                   integer=not args.skip_integer, floating=not args.skip_float,
                   stdp_extras=not args.no_stdp_extras, keep_traces=args.report is not None,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
    doc["wall_s"]["total"] = time.perf_counter() - t0
    traces = doc.pop("_traces", None)
    if args.report:
        from .report import write_report
        doc["report"] = str(write_report(args.report, doc, traces, prog))
    if args.json:
        print(json.dumps(_jsonable(doc), indent=2))
    else:
        print(format_table(doc))
    return 0 if doc["passed"] else 1


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def format_table(doc: dict) -> str:
    """The result as a plain-text table."""
    lines = [f"spikeedge validate: {doc['net']}  {doc['duration_s']:g} s  dt {doc['dt']:g} s  "
             f"engine {doc['engine_backend']}  brian2 {doc['brian2_version']} "
             f"({doc['brian2_target']})"]
    it = doc.get("integer_twin")
    if it:
        lines.append(f"integer twin: exact={it['exact']}  ({it['steps_compared']} steps, "
                     f"{it['values_compared']} values compared)")
        if it["first_mismatch"]:
            lines.append(f"  first mismatch: {it['first_mismatch']}")
    ft = doc.get("float_twin")
    if ft:
        lines.append("float twin:")
        head = (f"  {'population':12} {'n':>5} {'spk eng':>9} {'spk b2':>9} {'rate err':>9} "
                f"{'gamma':>7} {'vRossum':>8} {'V rmse':>8} {'CV eng':>7} {'CV b2':>7}")
        lines.append(head)
        for pname, m in ft["populations"].items():
            lines.append(f"  {pname:12} {m['n']:5d} {m['spikes_engine']:9d} "
                         f"{m['spikes_brian2']:9d} {m['rate_error']:9.4f} {m['gamma']:7.4f} "
                         f"{m['van_rossum']:8.4f} {m['membrane_rmse']:8.5f} "
                         f"{m['isi_cv_engine']:7.3f} {m['isi_cv_brian2']:7.3f}")
        if "divergence" in ft:
            d = ft["divergence"]
            lines.append(f"  divergence: first spike difference at {d['first_difference_s']} s, "
                         f"decorrelated (window gamma < {d['gamma_floor']}) at "
                         f"{d['decorrelated_s']} s")
    st = doc.get("stdp")
    if st:
        for pname, r in st["open_loop"].items():
            c = r["checkpoints"][-1]
            lines.append(f"STDP {pname}: open loop at {c['t_s']:g} s: RMS {c['rms']:.5f}, "
                         f"max {c['max']:.5f}, mean {c['mean']:+.5f} (of w range)")
        for pname, r in st.get("closed_loop", {}).items():
            c = r["checkpoints"][-1]
            lines.append(f"STDP {pname}: closed loop at {c['t_s']:g} s: RMS {c['rms']:.5f}, "
                         f"max {c['max']:.5f}")
        if "window" in st:
            w = st["window"]
            lines.append(f"STDP sign test: {'ok' if w['sign_ok'] else 'FAILED'}; window max "
                         f"rel. error {w['max_rel_error_near']:.4f}")
            rows = st["dt_convergence"]["rows"]
            lines.append("STDP dt convergence (RMS / w range vs exact event-driven): " + ", ".join(
                f"dt {r['dt'] * 1e3:g} ms: {r['rms_engine']:.4f}" for r in rows))
    lines.append("checks:")
    for c in doc["checks"]:
        v = c["value"]
        vs = f"{v:.5g}" if isinstance(v, float) else str(v)
        lines.append(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['name']}: {vs} "
                     f"{c['op']} {c['limit']}")
    w = doc["wall_s"]
    lines.append("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in w.items()))
    if doc.get("report"):
        lines.append(f"report: {doc['report']}")
    lines.append("PASSED" if doc["passed"] else "FAILED")
    return "\n".join(lines)
