"""``spikeedge bench``: the standard networks on the compiled kernels, JSON and a table.

Each network runs in a fresh process (so peak RSS is that network's own), ``--repeats`` times
from the initial state; only the ``run_chunk`` calls are timed (inputs and the program are made
before, as the peer harness does). Medians are reported. It refuses to measure the NumPy
reference fallback. ``--peers FILE`` reads the peer harness's results (JSON lines) and adds each
peer's median and the ratio peer / spikeedge, so the comparison sits in one table.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

CHUNK_STEPS = 1000


def _measure_one(name: str, repeats: int, T: float | None) -> dict:
    from .. import Engine, quantize
    from ..nets import standard, synaptic_events
    net, inp, T = standard(name, T)
    prog = quantize(net)
    eng = Engine(prog, backend="compiled")
    steps, N = inp.shape[0], prog.n_neurons
    out = np.empty((CHUNK_STEPS, N), np.uint8)
    times, cpu_times, counts = [], [], None
    for _ in range(repeats):
        state = eng.initial_state()
        c = np.zeros(N, np.int64)
        elapsed = cpu = 0.0
        for a in range(0, steps, CHUNK_STEPS):
            chunk = inp[a:a + CHUNK_STEPS]
            buf = out[:chunk.shape[0]]
            c0, t0 = time.thread_time(), time.perf_counter()
            eng.run_chunk(chunk, state, out=buf)
            elapsed += time.perf_counter() - t0
            cpu += time.thread_time() - c0
            c += buf.sum(0, dtype=np.int64)
        times.append(elapsed)
        cpu_times.append(cpu)
        if counts is None:
            counts = c
        elif not np.array_equal(c, counts):
            raise RuntimeError(f"{name}: repeats gave different spikes (non-deterministic?)")
    med = statistics.median(times)
    syn = synaptic_events(prog, inp.sum(0, dtype=np.int64), counts)
    rates = {p: float(counts[prog.pop_slice(p)].mean() / T) for p in prog.pop_names}
    return {
        "s_per_sim_s": med / T, "cpu_s_per_sim_s": statistics.median(cpu_times) / T,
        "syn_events_per_s": syn / med,
        "neuron_updates_per_s": N * steps / med, "spikes": int(counts.sum()),
        "syn_events": syn, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024.0, "repeats": repeats, "wall_s": times, "sim_seconds": T, "steps": steps,
        "neurons": N, "input_spikes": int(inp.sum()), "rates_hz": rates,
        "kernel_path": "specialised" if eng._kernel.specialised else "general",
    }


def read_peers(path: str) -> dict:
    """Median s_per_sim_s per (tool, net) from the peer harness's JSON lines (``loop_s`` is
    wall time of the simulation loop only, as ours)."""
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("cold") or "s_per_sim_s" not in r:
                continue
            rows.setdefault((r["tool"], r["net"]), []).append(r["s_per_sim_s"])
    return {k: statistics.median(v) for k, v in rows.items()}


def run_bench(nets, repeats: int = 3, T: float | None = None, peers: str | None = None,
              instructions: bool = False) -> dict:
    from .. import __version__
    from ..engine import resolve_backend
    from ..kernels import build_info
    backend = resolve_backend("auto")
    if backend != "compiled":
        raise SystemExit("spikeedge bench: the compiled kernels are not available, so there is "
                         "nothing to measure (the NumPy reference fallback is not benchmarked); "
                         "reinstall with a C compiler and check `spikeedge info`")
    doc = {"backend": backend, "version": __version__, "build": build_info(),
           "machine": {"cpus": os.cpu_count(), "loadavg1": os.getloadavg()[0],
                       "platform": sys.platform, "machine": os.uname().machine},
           "nets": {}}
    # one BLAS thread: idle OpenBLAS workers spin and steal the core the kernel runs on
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    for name in nets:
        cmd = [sys.executable, "-m", "spikeedge.tools.bench", "--one", name,
               "--repeats", str(repeats)] + ([] if T is None else ["--T", str(T)])
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"spikeedge bench: {name} failed:\n{res.stderr}")
        doc["nets"][name] = json.loads(res.stdout.strip().splitlines()[-1])
    if instructions:
        from . import callgrind
        if not callgrind.available():
            raise SystemExit("spikeedge bench --instructions: valgrind is not installed "
                             "(Debian/Ubuntu: apt-get install valgrind)")
        doc["instructions"] = {"counted": callgrind.TOGGLE,
                               "note": "kernel step loop only, short runs scaled per "
                                       "simulated second (spikeedge.tools.callgrind)"}
        for name, r in doc["nets"].items():
            if name in callgrind.SIM_SECONDS:
                c = callgrind.count(name)
                r["instructions_per_sim_s"] = c["instructions_per_sim_s"]
                r["instructions_per_step"] = c["instructions_per_step"]
                r["instructions_sim_seconds"] = c["sim_seconds"]
    if peers:
        pm = read_peers(peers)
        for name, r in doc["nets"].items():
            r["peers"] = {tool: {"s_per_sim_s": s, "ratio": s / r["s_per_sim_s"]}
                          for (tool, net), s in sorted(pm.items()) if net == name}
    return doc


def table(doc: dict) -> str:
    lines = [f"backend: {doc['backend']}  build: {doc['build'].get('compile_args', '')}",
             f"{'net':6} {'s/sim s':>10} {'syn ev/s':>10} {'upd/s':>10} {'spikes':>9} "
             f"{'RSS MB':>7}  peers (ratio = peer / spikeedge)"]
    for name, r in doc["nets"].items():
        peers = "  ".join(f"{t} {p['s_per_sim_s']:.4g} ({p['ratio']:.1f}x)"
                          for t, p in r.get("peers", {}).items())
        ins = r.get("instructions_per_sim_s")
        ins = "" if ins is None else f" {ins:.4g} instr/sim s"
        lines.append(f"{name:6} {r['s_per_sim_s']:10.3g} {r['syn_events_per_s']:10.3g} "
                     f"{r['neuron_updates_per_s']:10.3g} {r['spikes']:9d} "
                     f"{r['peak_rss_mb']:7.1f}{ins}  {peers}")
    return "\n".join(lines)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m spikeedge.tools.bench")
    ap.add_argument("--one", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--T", type=float, default=None)
    a = ap.parse_args(argv)
    print(json.dumps(_measure_one(a.one, a.repeats, a.T)))


if __name__ == "__main__":
    main()
