"""Sensor subcommands: ``spikeedge qrs`` (score the streaming QRS detector on WFDB records) and
``spikeedge encode`` (run a source through an encoder; ``--plot`` draws signal above spikes)."""
from __future__ import annotations

import json
import sys


def cmd_qrs(args) -> int:
    from .sensors.qrs import evaluate_records
    res = evaluate_records(args.records_dir, tolerance_s=args.tolerance_ms / 1000.0,
                           start_s=args.start_s, leads=args.leads)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'record':8} {'n':>7} {'Se %':>8} {'PPV %':>8} {'FN':>5} {'FP':>5} {'VF s':>6}")
    for rec, r in res["records"].items():
        print(f"{rec:8} {r['n']:7d} {100 * r['se']:8.2f} {100 * r['ppv']:8.2f} {r['fn']:5d} "
              f"{r['fp']:5d} {r['vf_s']:6.1f}")
    a = res["aggregate"]
    print(f"{'all':8} {a['n']:7d} {100 * a['se']:8.2f} {100 * a['ppv']:8.2f} {a['fn']:5d} "
          f"{a['fp']:5d}")
    return 0


def cmd_encode(args) -> int:
    import numpy as np

    from .sensors.tools import encode_source, plot_encoding
    samples, spikes, rate, enc = encode_source(args.source, args.encoder,
                                               max_seconds=args.seconds)
    summary = {"source": args.source, "encoder": args.encoder, "samples": int(samples.shape[0]),
               "rate": rate, "channels": int(samples.shape[1]), "steps": int(spikes.shape[0]),
               "step_hz": enc.step_hz, "outputs": int(spikes.shape[1]),
               "spikes": int(spikes.sum()),
               "rate_hz_per_output": float(spikes.sum() / max(1, spikes.shape[1])
                                           / max(1e-12, spikes.shape[0] / enc.step_hz))}
    if args.plot:
        plot_encoding(samples, np.asarray(spikes), rate, enc.step_hz, args.plot,
                      title=f"{args.source}  ->  {args.encoder}")
        summary["plot"] = args.plot
    print(json.dumps(summary, indent=None if not args.json else 2))
    return 0


def register(sub) -> None:
    from .cli import _positive_float
    p = sub.add_parser("qrs", help="score the streaming QRS detector on WFDB records (.atr)")
    p.add_argument("records_dir")
    p.add_argument("--tolerance-ms", type=_positive_float, default=150.0,
                   help="match window (EC57: 150 ms)")
    p.add_argument("--start-s", type=float, default=0.0,
                   help="score beats from this time on (EC57 skips a 300 s learning period; "
                        "default 0: the whole record)")
    p.add_argument("--leads", type=int, default=2, choices=(1, 2),
                   help="1: the MLII lead only; 2: MLII plus the other lead filling its gaps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_qrs)
    p = sub.add_parser("encode", help="encode a source to spikes (and plot them)")
    p.add_argument("source", help="source URL, e.g. fake:ecg, wav:a.wav, wfdb:DIR/208")
    p.add_argument("--encoder", required=True, help="encoder preset (see docs/sensors.md)")
    p.add_argument("--seconds", type=_positive_float, default=10.0)
    p.add_argument("--plot", default=None, help="PNG file: the signal above its spike raster")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_encode)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main
    sys.exit(main(["qrs", *sys.argv[1:]]))
