"""``spikeedge demo``: the whole chain on a built-in default that needs no data files.

A synthetic ECG (``fake:ecg``: normal, supraventricular and ventricular beats, with ground
truth) is classified beat by beat by the built-in model ``builtin:ecg-demo``. When the
firmware sources and a C compiler are at hand (a source checkout: ``firmware/`` in the current
directory, beside the installed package, or ``$SPIKEEDGE_FIRMWARE``), the signal is written to
a file, the host build of the firmware plays it into a pseudo-terminal and the daemon reads it
through ``serial:`` exactly as from a microcontroller; otherwise the in-process ``fake:ecg``
source is used. Decisions are printed live as JSON lines, then a summary: per-class counts
against the generator's truth, accuracy, decision latency (arrival of the block that completed
a beat's window to the decision) p50/p99/max and the real-time factor (seconds of signal per
second of wall time).
"""
from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import default_config
from .errors import SpikeEdgeError

__all__ = ["run_demo", "register", "find_firmware", "match_beats"]

log = logging.getLogger("spikeedge.daemon")

ECG_RATE = 360
FW_GAIN = 1000.0  # counts per mV in the firmware's HEADER


class DemoError(SpikeEdgeError):
    """The demo could not run (plot backend missing, firmware failed)."""


def find_firmware() -> Path | None:
    """The firmware source folder, if this is a source checkout (or $SPIKEEDGE_FIRMWARE)."""
    cands = [os.environ.get("SPIKEEDGE_FIRMWARE"), Path.cwd() / "firmware",
             Path(__file__).resolve().parent.parent / "firmware"]
    for c in cands:
        if c and (Path(c) / "Makefile").is_file() and \
                (Path(c) / "boards" / "posix" / "host_main.c").is_file():
            return Path(c)
    return None


class HostFirmware:
    """The firmware's host build playing a recording into a pty (a context manager)."""

    def __init__(self, fw_dir: Path, raw: Path, realtime: bool, workdir: Path):
        self.fw_dir, self.raw, self.realtime, self.workdir = fw_dir, raw, realtime, workdir
        self.proc = None
        self.pty = None

    def build(self) -> Path:
        if shutil.which("make") is None or (shutil.which("cc") is None and
                                            shutil.which("gcc") is None):
            raise DemoError("no C toolchain (make, cc)")
        out = self.workdir / "fw"
        r = subprocess.run(["make", "-s", "-C", str(self.fw_dir), f"BUILD={out}", "host"],
                           capture_output=True, text=True, timeout=300)
        binary = out / "host" / "spikeedge-fw-host"
        if r.returncode != 0 or not binary.is_file():
            raise DemoError(f"building the host firmware failed: {r.stderr.strip()[-300:]}")
        return binary

    def __enter__(self):
        binary = self.build()
        # no --exit-at-end: the device stays up (idle) after the recording, as a real front
        # end would, and the daemon stops at the demo's duration; exiting at the end raced
        # with the daemon's last read and turned into a disconnect
        cmd = [str(binary), "--pty", "--play", str(self.raw), "--rate", str(ECG_RATE),
               "--gain", str(FW_GAIN), "--offset", "0"]
        if not self.realtime:
            cmd.append("--fast")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PTY "):
            self.__exit__()
            raise DemoError(f"the host firmware did not report its pty (got {line!r})")
        self.pty = line.split(None, 1)[1].strip()
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ecg_truth(url: str):
    """Samples and ground-truth beats of a fake:ecg URL, generated in-process."""
    from .sensors import open_source
    xs, beats, classes = [], [], []
    with open_source(url, block_size=3600) as src:
        for b in src:
            xs.append(b.samples[:, 0])
            beats.extend(int(s) for s in b.info["beat_samples"])
            classes.extend(b.info["beat_classes"])
    return np.concatenate(xs), beats, classes


def match_beats(decisions: list[dict], truth_samples, truth_classes, rate: float,
                tolerance_s: float = 0.15, skip_s: float = 0.0) -> dict:
    """Per-class counts and accuracy of beat decisions against ground truth (each true beat
    matched to at most one decision within ``tolerance_s``); beats in the first ``skip_s`` are
    not counted (the detector is learning then)."""
    truth = np.asarray(truth_samples, np.int64)
    tcls = list(truth_classes)
    keep = truth >= skip_s * rate
    used = np.zeros(len(truth), bool)
    labels = sorted(set(tcls) | {d["class"] for d in decisions})
    per = {lab: {"truth": 0, "decided": 0, "correct": 0} for lab in labels}
    for i, c in enumerate(tcls):
        if keep[i]:
            per[c]["truth"] += 1
    tol = int(round(tolerance_s * rate))
    matched = correct = false_det = 0
    for d in decisions:
        s = d.get("beat_sample")
        if s is None or s < skip_s * rate:
            continue
        per[d["class"]]["decided"] += 1
        j = int(np.searchsorted(truth, s))
        best = None
        for k in (j - 1, j):
            if 0 <= k < len(truth) and not used[k] and abs(int(truth[k]) - s) <= tol and \
                    (best is None or abs(int(truth[k]) - s) < abs(int(truth[best]) - s)):
                best = k
        if best is None:
            false_det += 1
            continue
        used[best] = True
        matched += 1
        if tcls[best] == d["class"]:
            correct += 1
            per[d["class"]]["correct"] += 1
    return {"per_class": per, "matched": matched, "correct": correct,
            "missed": int((keep & ~used).sum()), "false_detections": false_det,
            "accuracy_vs_truth": round(correct / matched, 4) if matched else None}


def run_demo(duration: float = 60.0, seed: int = 2, realtime: bool = False,
             source: str = "auto", live=None, plot: str | None = None,
             block_ms: float = 50.0) -> dict:
    """Run the demo; ``live(record)`` gets each decision. Returns the summary dict."""
    from .daemon import Daemon, percentiles
    url = f"fake:ecg?seed={seed}&duration={duration:g}"
    cfg = default_config()
    cfg["model"]["path"] = "builtin:ecg-demo"
    cfg["source"]["realtime"] = bool(realtime)
    cfg["source"]["block_ms"] = float(block_ms)
    cfg["health"]["interval_s"] = 1e9
    cfg["sinks"] = []
    cfg["daemon"]["device_id"] = "demo"
    truth_s: list[int] = []
    truth_c: list[str] = []
    used = "fake:ecg (in-process)"
    decisions: list[dict] = []
    trace = {"x": [], "spk": [], "t0": []} if plot else None

    def on_record(rec):
        if rec["type"] == "decision":
            decisions.append(rec)
            if live is not None:
                live(rec)

    def on_block(block, spk_in, spikes):
        if "beat_samples" in block.info and used.startswith("fake"):
            truth_s.extend(int(s) for s in block.info["beat_samples"])
            truth_c.extend(block.info["beat_classes"])
        if trace is not None and block.t0 < 30.0:
            trace["x"].append(block.samples[:, 0].copy())
            trace["spk"].append(spikes.copy())
            trace["t0"].append(block.t0)

    fw = find_firmware() if source in ("auto", "firmware") else None
    if source == "firmware" and fw is None:
        raise DemoError("--source firmware: no firmware sources found (run from a source "
                        "checkout or set SPIKEEDGE_FIRMWARE)")
    with tempfile.TemporaryDirectory(prefix="spikeedge-demo-") as tmp:
        host = None
        if fw is not None:
            x, truth_s, truth_c = _ecg_truth(url)
            raw = Path(tmp) / "ecg.raw"
            np.clip(np.rint(x * FW_GAIN), -32768, 32767).astype("<i2").tofile(raw)
            host = HostFirmware(fw, raw, realtime, Path(tmp))
            try:
                host.__enter__()
                used = f"host firmware over {host.pty} (serial:), playing {url}"
                cfg["source"]["url"] = f"serial://{host.pty}?header_timeout=5"
                cfg["source"]["threaded"] = "yes" if realtime else "no"
                cfg["source"]["max_reconnects"] = 2
            except DemoError as exc:
                if source == "firmware":
                    raise
                log.warning("demo: %s; using the in-process fake:ecg instead", exc)
                host, truth_s, truth_c = None, [], []
                used = f"fake:ecg (in-process; firmware unavailable: {exc})"
        if host is None:
            cfg["source"]["url"] = url
        cfg["daemon"]["duration_s"] = float(duration)
        t0 = time.perf_counter()
        try:
            d = Daemon(cfg, on_record=on_record, on_block=on_block)
            d.run()
        finally:
            if host is not None:
                host.__exit__()
        wall = time.perf_counter() - t0
    signal_s = d.sensor_time
    m = match_beats(decisions, truth_s, truth_c, ECG_RATE, skip_s=0.0)
    summary = {
        "decisions": len(decisions),
        "per_class": m["per_class"],
        "accuracy_vs_truth": m["accuracy_vs_truth"],
        "matched_beats": m["matched"], "missed_beats": m["missed"],
        "false_detections": m["false_detections"],
        "latency_ms": percentiles([r["latency_ms"] for r in decisions]),
        "realtime_factor": round(signal_s / wall, 2) if wall > 0 else None,
        "signal_s": round(signal_s, 3), "wall_s": round(wall, 3),
        "source": used, "model": d.c.model_id, "backend": d.c.engine.backend,
    }
    if plot:
        _plot(plot, trace, decisions, truth_s, truth_c, d)
        summary["plot"] = plot
    return summary


def _plot(path, trace, decisions, truth_s, truth_c, d) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        raise DemoError("--plot needs matplotlib (pip install matplotlib)") from None
    if not trace["x"]:
        raise DemoError("--plot: no signal was captured")
    x = np.concatenate(trace["x"])
    spk = np.concatenate(trace["spk"])
    t_end = min(len(x) / ECG_RATE, 10.0)
    n = int(t_end * ECG_RATE)
    colors = {"N": "tab:green", "S": "tab:orange", "V": "tab:red"}
    fig, ax = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    tx = np.arange(n) / ECG_RATE + trace["t0"][0]
    ax[0].plot(tx, x[:n], lw=0.8, color="k")
    for s, c in zip(truth_s, truth_c, strict=True):
        if s / ECG_RATE <= tx[-1]:
            ax[0].axvline(s / ECG_RATE, color=colors.get(c, "gray"), alpha=0.3, lw=3)
    ax[0].set_ylabel("ECG (mV)\ntruth shaded")
    steps = int(t_end / d.c.program.dt)
    tt, nn = np.nonzero(spk[:steps])
    ax[1].scatter(tt * d.c.program.dt + trace["t0"][0], nn, s=1, color="k")
    ax[1].set_ylabel("hidden neuron")
    for r in decisions:
        if r["sensor_time"] <= tx[-1]:
            ax[2].scatter(r["sensor_time"], r["confidence"], color=colors.get(r["class"], "b"),
                          s=40)
            ax[2].annotate(r["class"], (r["sensor_time"], r["confidence"]),
                           textcoords="offset points", xytext=(0, 6), ha="center")
    ax[2].set_ylim(0, 1.15)
    ax[2].set_ylabel("decision\nconfidence")
    ax[2].set_xlabel("sensor time (s)")
    fig.suptitle(f"spikeedge demo: {d.c.model_id}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(s: dict) -> str:
    lines = [f"source   {s['source']}", f"model    {s['model']} ({s['backend']})",
             f"signal   {s['signal_s']:.1f} s in {s['wall_s']:.2f} s wall "
             f"(real-time factor {s['realtime_factor']})",
             f"beats    {s['decisions']} decisions, {s['matched_beats']} matched to truth, "
             f"{s['missed_beats']} missed, {s['false_detections']} false detections",
             "class    truth  decided  correct"]
    for lab, v in s["per_class"].items():
        lines.append(f"  {lab:6} {v['truth']:6d} {v['decided']:8d} {v['correct']:8d}")
    acc = s["accuracy_vs_truth"]
    lines.append("accuracy " + ("n/a" if acc is None else f"{acc:.4f}") + " (matched beats)")
    lat = s["latency_ms"]
    if lat["p50"] is not None:
        lines.append(f"latency  p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  "
                     f"max {lat['max']:.3f} ms (block arrival to decision)")
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from .sinks import to_json_line

    def live(rec):
        sys.stdout.write(to_json_line(rec))
        sys.stdout.flush()

    summary = run_demo(args.duration, args.seed, args.realtime, args.source,
                       None if (args.json or args.quiet) else live, args.plot, args.block_ms)
    if args.json:
        print(json.dumps(summary))
    else:
        print(_table(summary), file=sys.stdout if args.quiet else sys.stderr)
    return 0


def register(subparsers) -> None:
    from .daemon import _positive
    p = subparsers.add_parser(
        "demo", help="classify a built-in synthetic ECG beat by beat and summarise",
        description=__doc__.split("\n\n")[1])
    p.add_argument("--duration", type=_positive, default=60.0,
                   help="seconds of signal (default 60)")
    p.add_argument("--json", action="store_true",
                   help="print only the summary, as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no live decisions, summary table")
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="draw signal, spikes and decisions (needs matplotlib)")
    p.add_argument("--realtime", action="store_true",
                   help="pace the signal at its real rate (default: as fast as possible)")
    p.add_argument("--source", default="auto", choices=["auto", "firmware", "fake"],
                   help="auto: the host firmware over a pty when it can be built, else the "
                        "in-process fake")
    p.add_argument("--block-ms", type=_positive, default=50.0,
                   help="block size in ms of signal (default 50: 18 samples at 360 Hz)")
    p.add_argument("--seed", type=int, default=2, help="seed of the synthetic ECG (default 2, "
                   "a seed the model was not trained on)")
    p.set_defaults(func=cmd_demo)
