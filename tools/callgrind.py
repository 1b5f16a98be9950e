"""Instruction counts of the compiled kernels under ``valgrind --tool=callgrind``: a stable
regression metric (the same count on every run of the same build, whatever the load).

What is counted: only the kernel step loop, ``se_steps`` (lif_kernel.h) and everything it calls
(membrane, threshold, propagation, fold, STDP; ``--collect-atstart=no
--toggle-collect=se_steps*``). Python start-up, building and quantizing the network,
generating the inputs and the Python wrappers of ``run_chunk`` are not counted. Each network
runs a short simulated duration (``SIM_SECONDS``, from the initial state, in chunks of
``bench.CHUNK_STEPS`` steps as ``spikeedge bench`` runs it); the count is divided by it
(instructions per simulated second).

Which SIMD clone runs is the one valgrind's virtual CPU selects: valgrind has no AVX-512, so on
x86-64 the counts are of the AVX2 clones of ``lif_ops.h`` (the bench's wall times use AVX-512
where the CPU has it). Counts change with the compiler and flags, so a baseline belongs to one
build environment (recorded in the file).

    python -m spikeedge.tools.callgrind                    # counts, one JSON document
    python -m spikeedge.tools.callgrind --update FILE      # write a baseline file
    python -m spikeedge.tools.callgrind --check FILE       # exit 1 if a count grew > 10 %
    python -m spikeedge.tools.callgrind --spike-free       # the same nets fed all-zero input:
                                                           # the part of a step spikes do not drive
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

#: simulated seconds per network under callgrind (a slowdown of about 50x)
SIM_SECONDS = {"kws": 2.0, "shd": 1.0, "cuba": 0.1, "stdp": 1.0}
TOGGLE = "se_steps*"
TOLERANCE = 0.10
BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "perf_baseline.json")


def available() -> bool:
    return shutil.which("valgrind") is not None


def _worker(name: str, T: float, spike_free: bool = False) -> None:
    """Run the net for T simulated seconds (inside callgrind); spike_free: with its input
    replaced by zeros."""
    import numpy as np

    from .. import Engine, quantize
    from ..nets import standard
    from .bench import CHUNK_STEPS
    net, inp, T = standard(name, T)
    if spike_free:
        inp = np.zeros_like(inp)
    prog = quantize(net)
    eng = Engine(prog, backend="compiled")
    state = eng.initial_state()
    out = np.empty((CHUNK_STEPS, prog.n_neurons), np.uint8)
    spikes = 0
    for a in range(0, inp.shape[0], CHUNK_STEPS):
        chunk = inp[a:a + CHUNK_STEPS]
        eng.run_chunk(chunk, state, out=out[:chunk.shape[0]])
        spikes += int(out[:chunk.shape[0]].sum())
    print(json.dumps({"steps": int(inp.shape[0]), "spikes": spikes}))


def count(name: str, T: float | None = None, spike_free: bool = False) -> dict:
    """Instructions of the kernel step loop for ``name`` over T simulated seconds (with an
    all-zero input when spike_free)."""
    T = SIM_SECONDS[name] if T is None else float(T)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   PYTHONMALLOC="malloc")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               "--collect-atstart=no", f"--toggle-collect={TOGGLE}",
               sys.executable, "-m", "spikeedge.tools.callgrind", "--worker", name, repr(T)]
        if spike_free:
            cmd.append("--spike-free")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"callgrind run of {name} failed:\n{res.stderr[-2000:]}")
        ir = None
        with open(out) as f:
            for line in f:
                m = re.match(r"(summary|totals):\s+(\d+)", line)
                if m:
                    ir = int(m.group(2))
        if not ir:
            raise RuntimeError(f"callgrind counted nothing for {name} (is {TOGGLE} in the "
                               "build?)")
        run = json.loads(res.stdout.strip().splitlines()[-1])
    return {"instructions": ir, "sim_seconds": T, "instructions_per_sim_s": round(ir / T),
            "instructions_per_step": round(ir / run["steps"]), "spikes": run["spikes"]}


def count_all(names=None, spike_free: bool = False) -> dict:
    names = list(SIM_SECONDS) if names is None else list(names)
    return {n: count(n, spike_free=spike_free) for n in names}


def environment() -> dict:
    import numpy as np

    from ..kernels import build_info
    cc = ""
    try:
        cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout \
            .splitlines()[0]
    except (OSError, IndexError):
        pass
    vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout
    return {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "compiler": cc, "valgrind": vg.strip(),
            "compile_args": build_info().get("compile_args"), "counted": TOGGLE,
            "sim_seconds": SIM_SECONDS}


def compare(counts: dict, baseline: dict, tolerance: float = TOLERANCE) -> list[str]:
    """Networks whose count grew more than ``tolerance`` against the baseline."""
    bad = []
    for name, r in counts.items():
        base = baseline["nets"].get(name)
        if base is None:
            continue
        grow = r["instructions_per_sim_s"] / base["instructions_per_sim_s"] - 1.0
        if grow > tolerance:
            bad.append(f"{name}: {r['instructions_per_sim_s']:.4g} instructions per simulated "
                       f"second, {100 * grow:.1f} % above the baseline "
                       f"{base['instructions_per_sim_s']:.4g}")
    return bad


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m spikeedge.tools.callgrind")
    ap.add_argument("--worker", nargs=2, metavar=("NET", "T"), help=argparse.SUPPRESS)
    ap.add_argument("--net", action="append", choices=list(SIM_SECONDS))
    ap.add_argument("--update", metavar="FILE", help="write the counts as the baseline")
    ap.add_argument("--check", metavar="FILE", help="fail if a count grew > 10 %%")
    ap.add_argument("--spike-free", action="store_true",
                    help="feed each net an all-zero input: counts what a step costs without "
                         "any spike (not comparable with a baseline)")
    a = ap.parse_args(argv)
    if a.spike_free and (a.update or a.check):
        ap.error("--spike-free counts are not baselines: drop --update / --check")
    if a.worker:   # internal: the command line count() builds
        _worker(a.worker[0], float(a.worker[1]), a.spike_free)
        return 0
    if not available():
        print("valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)",
              file=sys.stderr)
        return 2
    counts = count_all(a.net, a.spike_free)
    doc = {"environment": environment(), "nets": counts}
    if a.spike_free:
        doc["input"] = "all zero (--spike-free)"
    if a.update:
        with open(a.update, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    print(json.dumps(doc, indent=2))
    if a.check:
        with open(a.check) as f:
            bad = compare(counts, json.load(f))
        for b in bad:
            print("REGRESSION " + b, file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
