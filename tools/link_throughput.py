"""Throughput of the serial link over a real pseudo-terminal: the host firmware streams into a
pty and ``SerialSource`` reads it (``python -m spikeedge.tools.link_throughput [--json]``, from a
source checkout after ``make -C firmware host``). Prints samples per second per channel and
what was lost (dropped frames and samples, CRC errors, gaps)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

FW = Path(__file__).resolve().parent.parent / "firmware" / "build" / "host" / "spikeedge-fw-host"

CASES = {
    "fast-2ch-frame128": (["--signal", "ramp", "--channels", "2", "--frame", "128",
                           "--count", "400000", "--fast"], None),
    "fast-2ch-frame32": (["--signal", "ramp", "--channels", "2", "--frame", "32",
                          "--count", "200000", "--fast"], None),
    "realtime-16k-2ch": (["--signal", "ecg", "--channels", "2", "--rate", "16000", "--frame",
                          "64", "--max-lag-ms", "100"], 5.0),
}


def measure(args, seconds=None, fw=FW) -> dict:
    from ..sensors.serial_link import SerialSource
    p = subprocess.Popen([str(fw), "--pty", *args], stdout=subprocess.PIPE, text=True)
    try:
        m = re.match(r"PTY (\S+)", p.stdout.readline())
        if not m:
            raise RuntimeError("the host firmware did not print its pty")
        src = SerialSource(m.group(1), block_size=1024, poll=0.05)
        n = 0
        t0 = time.perf_counter()
        with src:
            for b in src:
                n += b.n
                if seconds and time.perf_counter() - t0 > seconds:
                    break
        dt = time.perf_counter() - t0
        st = src.status()
    finally:
        p.terminate()
        p.wait(timeout=10)
    return {"samples_per_channel": n, "seconds": dt, "samples_per_s_per_channel": n / dt,
            **{k: st.get(k) for k in ("dropped_frames", "dropped_samples", "crc_errors",
                                      "gaps")}}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not FW.exists():
        print(f"build the host firmware first: make -C {FW.parents[2]} host", file=sys.stderr)
        return 2
    res = {name: measure(a, s) for name, (a, s) in CASES.items()}
    if "--json" in argv:
        print(json.dumps(res, indent=2))
    else:
        for name, r in res.items():
            print(f"{name:20} {r['samples_per_s_per_channel']:12.0f} samples/s/ch  "
                  f"dropped_frames={r['dropped_frames']} dropped_samples={r['dropped_samples']} "
                  f"crc={r['crc_errors']} gaps={r['gaps']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
