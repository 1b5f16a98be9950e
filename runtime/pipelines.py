"""End-to-end latency and real-time factor of the daemon's pipelines
(``spikeedge bench-pipelines``; ``run_pipeline_bench()`` for ``spikeedge bench``).

Each pipeline runs the real daemon loop (source -> encoder -> engine -> decision -> a file
sink) as fast as it can on a synthetic signal, in 10 ms blocks:

* ``ecg``: ``fake:ecg`` at 360 Hz, ``ecg-delta``, the built-in ``ecg-demo`` model, one
  decision per beat;
* ``audio``: ``fake:tone`` at 16 kHz with noise, ``audio-lif`` (32-band FFT filterbank, LIF
  spikes), a random 32 -> 128 -> 10 LIF network, one decision per 500 ms window.

Reported per pipeline: ``realtime_factor`` (seconds of signal per second of wall time, whole
loop including the source), ``block_latency_ms`` (block arrival to end of its processing:
encoder, engine, decision, sinks) p50/p99/max, and ``decision_latency_ms``.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import numpy as np

from .config import default_config

__all__ = ["run_pipeline_bench", "register", "PIPELINES"]

PIPELINES = ("ecg", "audio")


def audio_program(seed: int = 0):
    from . import INPUT, Network, Population, Projection, quantize
    rng = np.random.default_rng(seed)
    net = Network(n_inputs=32, dt=1e-3, name="audio-bench", populations=[
        Population("hid", 128, tau_m=20e-3, tau_s=(5e-3,), v_th=1.0, t_ref=2e-3),
        Population("out", 10, tau_m=20e-3)],
        projections=[Projection(INPUT, "hid", rng.normal(0.3, 0.3, (32, 128))),
                     Projection("hid", "out", rng.normal(0.05, 0.1, (128, 10)))])
    prog = quantize(net)
    prog.report["metadata"] = {"name": "audio-bench", "encoder": {"preset": "audio-lif"},
                               "decision": {"policy": "window", "window_s": 0.5}}
    return prog


def bench_one(name: str, seconds: float, block_ms: float = 10.0) -> dict:
    from .daemon import Daemon, percentiles
    cfg = default_config()
    cfg["source"]["block_ms"] = block_ms
    cfg["health"]["interval_s"] = 1e9
    cfg["daemon"]["device_id"] = "bench"
    program = model_id = None
    if name == "ecg":
        cfg["source"]["url"] = f"fake:ecg?seed=11&duration={seconds:g}"
        cfg["model"]["path"] = "builtin:ecg-demo"
    elif name == "audio":
        cfg["source"]["url"] = f"fake:tone?rate=16000&freq=440&noise=0.05&duration={seconds:g}"
        program, model_id = audio_program(), "audio-bench"
    else:
        raise ValueError(name)
    lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg["sinks"] = [{"type": "file", "path": os.path.join(tmp, "records.jsonl"),
                         "max_bytes": 0, "backups": 0, "fsync": False, "records": "all"}]
        d = Daemon(cfg, program=program, model_id=model_id)
        orig = d.process

        def timed(block, arrival):
            orig(block, arrival)
            lat.append(d.clock.now() - arrival)

        d.process = timed
        t0 = time.perf_counter()
        d.run()
        wall = time.perf_counter() - t0
    return {"signal_s": round(d.sensor_time, 3), "wall_s": round(wall, 4),
            "realtime_factor": round(d.sensor_time / wall, 1),
            "blocks": d.blocks, "decisions": d.decisions,
            "block_latency_ms": percentiles([x * 1e3 for x in lat]),
            "decision_latency_ms": percentiles([x * 1e3 for x in d.all_decision_latency]),
            "backend": d.c.engine.backend, "block_ms": block_ms}


def run_pipeline_bench(names=PIPELINES, seconds: float = 60.0) -> dict:
    return {"pipelines": {n: bench_one(n, seconds) for n in names}}


def cmd_bench_pipelines(args) -> int:
    names = PIPELINES if args.pipeline == "all" else (args.pipeline,)
    doc = run_pipeline_bench(names, args.seconds)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{'pipeline':9} {'signal s':>9} {'RT factor':>10} {'block p50':>10} "
          f"{'block p99':>10} {'dec p50':>9} {'dec p99':>9}  (ms)")
    for n, r in doc["pipelines"].items():
        b, dl = r["block_latency_ms"], r["decision_latency_ms"]
        print(f"{n:9} {r['signal_s']:9.1f} {r['realtime_factor']:10.1f} {b['p50']:10.3f} "
              f"{b['p99']:10.3f} {dl['p50'] or 0:9.3f} {dl['p99'] or 0:9.3f}")
    return 0


def register(subparsers) -> None:
    from .daemon import _positive
    p = subparsers.add_parser("bench-pipelines",
                              help="end-to-end latency and real-time factor of the ECG and "
                                   "audio pipelines")
    p.add_argument("--pipeline", default="all", choices=["all", *PIPELINES])
    p.add_argument("--seconds", type=_positive, default=60.0, help="seconds of signal")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_pipelines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cmd_bench_pipelines(type("A", (), {"pipeline": "all", "seconds": 60.0,
                                                "json": False})()))
