"""The ``spikeedge`` command line: info, bench, and the subcommands of extension modules
(run, demo, bench-pipelines from :mod:`spikeedge.daemon`).

Errors a user can cause (bad arguments, bad files) print one line that says what is wrong and
exit with status 2; they never print a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from .errors import SpikeEdgeError


def cmd_info(args) -> int:
    import numpy as np

    from . import __version__
    from .contract import CONTRACT_VERSION
    from .engine import resolve_backend
    from .kernels import build_info
    from .modelfile import FORMAT_VERSION
    info = {"version": __version__, "backend": resolve_backend("auto"), "build": build_info(),
            "contract_version": CONTRACT_VERSION, "model_format_version": FORMAT_VERSION,
            "numpy": np.__version__, "python": sys.version.split()[0]}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:22} {v}")
    return 0


def cmd_bench(args) -> int:
    from .nets import NAMES
    from .tools.bench import run_bench, table
    nets = NAMES if args.net == "all" else () if args.net == "none" else (args.net,)
    doc = run_bench(nets, repeats=args.repeats, T=args.T, peers=args.peers,
                    instructions=args.instructions)
    if args.pipelines:
        from .pipelines import run_pipeline_bench
        doc.update(run_pipeline_bench(seconds=args.pipeline_seconds))
    if args.encoders:
        from .sensors.tools import bench_encoders
        doc["encoders"] = bench_encoders()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(table(doc))
        for name, r in doc.get("encoders", {}).items():
            print(f"encoder {name}: {r['realtime_factor']:.0f}x real time "
                  f"({r.get('cpu_realtime_factor', 0):.0f}x per CPU second; "
                  f"{r['channels']} ch at {r['in_rate']:g} Hz)")
        if doc.get("pipelines"):
            from .pipelines import table as pipeline_table
            print(pipeline_table(doc))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="spikeedge", description="embedded real-time SNN runtime")
    ap.add_argument("--log-level", default="WARNING",
                    choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="version, active backend and build flags")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("bench", help="benchmark the standard networks")
    p.add_argument("--net", default="all", choices=["all", "none", "kws", "shd", "cuba", "stdp"])
    p.add_argument("--pipelines", action="store_true",
                   help="also run the end-to-end ECG and audio pipelines (source to decision)")
    p.add_argument("--pipeline-seconds", type=_positive_float, default=60.0)
    p.add_argument("--instructions", action="store_true",
                   help="add instructions per simulated second of the kernel step loop "
                        "(valgrind --tool=callgrind; deterministic, for regression checks)")
    p.add_argument("--encoders", action="store_true",
                   help="also time every encoder preset at its nominal rate and channels")
    p.add_argument("--json", action="store_true")
    p.add_argument("--repeats", type=_positive_int, default=3)
    p.add_argument("--T", type=_positive_float, default=None,
                   help="simulated seconds (default: each network's standard duration)")
    p.add_argument("--peers", default=None,
                   help="peer harness results (JSON lines) to compare against, as ratios")
    p.set_defaults(func=cmd_bench)
    for module in _EXTENSIONS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        mod.register(sub)
    return ap


#: modules that add subcommands: each has ``register(subparsers)`` and sets ``func`` on its
#: parsers (one line per module; a module that is not there yet is skipped)
_EXTENSIONS = [
    "spikeedge.sensors_cli",
    "spikeedge.daemon",
    "spikeedge.tools.validate",
    "spikeedge.eval",
    "spikeedge.soak",
    "spikeedge.nir_io",
    "spikeedge.tools.train_sg",
    "spikeedge.unsupervised",
]


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except SpikeEdgeError as exc:
        print(f"spikeedge: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
