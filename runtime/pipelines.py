"""End-to-end latency and real-time factor of the daemon's pipelines
(``spikeedge bench-pipelines``; ``run_pipeline_bench()`` for ``spikeedge bench``).

Each pipeline runs the real daemon loop (source -> encoder -> engine -> decision -> a file
sink) as fast as it can on a synthetic signal, in 10 ms blocks:

* ``ecg``: ``fake:ecg`` at 360 Hz, ``ecg-delta``, the built-in ``ecg-demo`` model, one
  decision per beat;
* ``audio``: ``fake:tone`` at 16 kHz with noise through the shipped spoken-digit model
  ``builtin:fsdd-digits`` (its encoder ``audio-delta``: 32-band FFT filterbank, ON/OFF delta
  spikes, 64 inputs, 1,024 hidden neurons). Its ``utterance`` policy decides at the end of
  each utterance found by the daemon's live detector (frame energy 12 dB above a running noise
  floor); the steady tone never counts as voiced, so this pipeline measures the full signal path
  but reports no decisions; ``audio_model="random"`` (``--audio-model random``) uses instead
  ``audio-lif`` and a random 32 -> 128 -> 10 LIF network with one decision per 500 ms window.

With ``source="file"`` (the default) the synthetic signal is first written to a file (a WFDB
record for ECG, 16 bits, 1 uV steps; a 16-bit WAV for audio) that the daemon then reads through
``wfdb:`` / ``wav:``, a file source as fast as possible; ``source="fake"`` generates the
signal inside the loop (the generator's cost is then part of the figure). Each pipeline runs
in a fresh process, so ``peak_rss_mb`` is that daemon's own peak resident memory.

Reported per pipeline: ``realtime_factor`` (seconds of signal per second of wall time, whole
loop including the source), ``cpu_realtime_factor`` (the same per second of the process's CPU
time: less sensitive to other load on the machine), ``block_latency_ms`` (block arrival to end
of its processing: encoder, engine, decision, sinks) p50/p99/max, ``decision_latency_ms`` and
``peak_rss_mb``.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
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


def fake_url(name: str, seconds: float) -> str:
    if name == "ecg":
        return f"fake:ecg?seed=11&duration={seconds:g}"
    if name == "audio":
        return f"fake:tone?rate=16000&freq=440&noise=0.05&duration={seconds:g}"
    raise ValueError(name)


def write_signal_file(name: str, seconds: float, folder: str) -> str | None:
    """Write the pipeline's synthetic signal to a file in ``folder``; returns the source URL
    (None when the file format needs a package that is not installed: wfdb for ECG)."""
    from .sensors import open_source
    with open_source(fake_url(name, seconds), block_size=1 << 16) as src:
        x = np.concatenate([b.samples[:, 0] for b in src]).astype(np.float64)
        rate = src.rate
    if name == "ecg":
        try:
            import wfdb
        except ImportError:
            return None
        wfdb.wrsamp("ecg", fs=rate, units=["mV"], sig_name=["MLII"], p_signal=x[:, None],
                    fmt=["16"], adc_gain=[1000.0], baseline=[0], write_dir=folder)
        return "wfdb:" + os.path.join(folder, "ecg") + "?ann=none"
    import wave
    path = os.path.join(folder, "audio.wav")
    pcm = np.clip(np.rint(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return "wav:" + path


#: the model of the audio pipeline (``random``: :func:`audio_program`)
AUDIO_MODEL = "builtin:fsdd-digits"


def bench_one(name: str, seconds: float, block_ms: float = 10.0,
              url: str | None = None, duration: float = 0.0,
              audio_model: str = AUDIO_MODEL) -> dict:
    """Run one pipeline in this process on ``url`` (default: the fake source)."""
    from .daemon import Daemon, percentiles
    cfg = default_config()
    cfg["daemon"]["duration_s"] = duration
    cfg["source"]["block_ms"] = block_ms
    cfg["health"]["interval_s"] = 1e9
    cfg["daemon"]["device_id"] = "bench"
    program = model_id = None
    cfg["source"]["url"] = url or fake_url(name, seconds)
    if name == "ecg":
        cfg["model"]["path"] = "builtin:ecg-demo"
    elif audio_model != "random":
        cfg["model"]["path"] = audio_model
    else:
        program, model_id = audio_program(), "audio-bench"
    lat: list[float] = []
    cpu_lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg["sinks"] = [{"type": "file", "path": os.path.join(tmp, "records.jsonl"),
                         "max_bytes": 0, "backups": 0, "fsync": False, "records": "all"}]
        d = Daemon(cfg, program=program, model_id=model_id)
        orig = d.process

        def timed(block, arrival):
            c = time.thread_time()
            orig(block, arrival)
            cpu_lat.append(time.thread_time() - c)
            lat.append(d.clock.now() - arrival)

        d.process = timed
        c0, t0 = time.process_time(), time.perf_counter()
        d.run()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return {"signal_s": round(d.sensor_time, 3), "wall_s": round(wall, 4),
            "realtime_factor": round(d.sensor_time / wall, 1),
            "cpu_realtime_factor": round(d.sensor_time / max(cpu, 1e-9), 1),
            "blocks": d.blocks, "decisions": d.decisions,
            "block_latency_ms": percentiles([x * 1e3 for x in lat]),
            "block_cpu_ms": percentiles([x * 1e3 for x in cpu_lat]),
            "decision_latency_ms": percentiles([x * 1e3 for x in d.all_decision_latency]),
            "backend": d.c.engine.backend, "block_ms": block_ms, "model": d.c.model_id,
            "encoder": cfg["encoder"]["preset"] if cfg["encoder"]["preset"] != "auto" else
            (d.c.program.report.get("metadata", {}) or {}).get("encoder", {}).get("preset"),
            "source": cfg["source"]["url"].split("?")[0].split(":")[0],
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss would include the parent's
    peak, which Linux carries across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


#: block length of the throughput run (``realtime_factor_1s_blocks``): a file read as fast as
#: possible in large blocks, where per-block overhead no longer dominates
THROUGHPUT_BLOCK_MS = 1000.0


def _worker(env, name: str, seconds: float, block_ms: float, url: str | None,
            duration: float = 0.0, audio_model: str = AUDIO_MODEL) -> dict:
    cmd = [sys.executable, "-m", "spikeedge.pipelines", "--one", name, "--seconds",
           repr(seconds), "--block-ms", repr(block_ms), "--duration", repr(duration),
           "--audio-model", audio_model] + (["--url", url] if url else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"pipeline {name} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_pipeline_bench(names=PIPELINES, seconds: float = 60.0, source: str = "file",
                       block_ms: float = 10.0, audio_model: str = AUDIO_MODEL) -> dict:
    """Each pipeline in a fresh process (its own peak RSS), on a file or the fake source:
    once in ``block_ms`` blocks (latency, real-time factor), once in 1 s blocks (throughput),
    and for ECG once through ``serial:`` for the application's resident memory."""
    out = {}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            url = write_signal_file(n, seconds, tmp) if source == "file" else None
            r = out[n] = _worker(env, n, seconds, block_ms, url, audio_model=audio_model)
            big = _worker(env, n, seconds, THROUGHPUT_BLOCK_MS, url, audio_model=audio_model)
            r["realtime_factor_1s_blocks"] = big["realtime_factor"]
            r["cpu_realtime_factor_1s_blocks"] = big["cpu_realtime_factor"]
            if n == "ecg":
                app = _worker(env, n, 20.0, block_ms, APP_URL, duration=20.0)
                r["app_rss_mb"], r["app_source"] = app["peak_rss_mb"], APP_URL
    return {"pipelines": out}


#: the ECG application as it runs on a board: the firmware protocol over serial (here the
#: in-process fake front end, unpaced), so no file-format library is loaded (the file and
#: fake sources load wfdb/pandas or scipy.signal, which the application does not)
APP_URL = "serial:fake?signal=ecg&rate=360&fast=1"




def cmd_bench_pipelines(args) -> int:
    names = PIPELINES if args.pipeline == "all" else (args.pipeline,)
    doc = run_pipeline_bench(names, args.seconds, getattr(args, "source", "file"),
                             getattr(args, "block_ms", 10.0),
                             getattr(args, "audio_model", AUDIO_MODEL))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(table(doc))
    return 0


def table(doc: dict) -> str:
    lines = [f"{'pipeline':9} {'RT factor':>9} {'(CPU)':>6} {'1 s blk':>8} {'(CPU)':>6} "
             f"{'blk p50':>8} {'blk p99':>8} {'cpu p99':>8} {'dec p99':>8} {'RSS MB':>7} "
             f"{'app RSS':>7}   (latencies in ms)"]
    for n, r in doc["pipelines"].items():
        b, bc, dl = r["block_latency_ms"], r["block_cpu_ms"], r["decision_latency_ms"]
        app = r.get("app_rss_mb")
        lines.append(
            f"{n:9} {r['realtime_factor']:9.1f} {r['cpu_realtime_factor']:6.0f} "
            f"{r['realtime_factor_1s_blocks']:8.1f} {r['cpu_realtime_factor_1s_blocks']:6.0f} "
            f"{b['p50']:8.3f} {b['p99']:8.3f} {bc['p99']:8.3f} {dl['p99'] or 0:8.3f} "
            f"{r['peak_rss_mb']:7.1f} {'' if app is None else f'{app:7.1f}':>7}")
    return "\n".join(lines)


def register(subparsers) -> None:
    from .daemon import _positive
    p = subparsers.add_parser("bench-pipelines",
                              help="end-to-end latency and real-time factor of the ECG and "
                                   "audio pipelines")
    p.add_argument("--pipeline", default="all", choices=["all", *PIPELINES])
    p.add_argument("--seconds", type=_positive, default=60.0, help="seconds of signal")
    p.add_argument("--source", default="file", choices=["file", "fake"],
                   help="file: the signal written to a WFDB/WAV file first and read as fast "
                        "as possible (default); fake: generated inside the loop")
    p.add_argument("--block-ms", type=_positive, default=10.0, help="block length")
    p.add_argument("--audio-model", default=AUDIO_MODEL,
                   help="model of the audio pipeline: a model path or builtin:NAME, or "
                        "'random' (a random 32-128-10 network with window decisions)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_pipelines)


def main(argv=None) -> int:
    """``python -m spikeedge.pipelines --one NAME``: one pipeline, one JSON line (the worker
    of :func:`run_pipeline_bench`)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m spikeedge.pipelines")
    ap.add_argument("--one", required=True, choices=PIPELINES)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--block-ms", type=float, default=10.0)
    ap.add_argument("--url", default=None)
    ap.add_argument("--audio-model", default=AUDIO_MODEL)
    ap.add_argument("--duration", type=float, default=0.0,
                    help="stop after this much signal (for endless sources)")
    a = ap.parse_args(argv)
    print(json.dumps(bench_one(a.one, a.seconds, a.block_ms, a.url, a.duration,
                               a.audio_model)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
