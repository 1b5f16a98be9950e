"""``spikeedge soak --duration S [--json]``: the daemon under every fault kind, unattended.

Four phases share the duration (serial faults 45 %, power loss 20 %, overload 20 %, fuzzing
15 %); each is also a function the reliability tests call with small sizes:

* :func:`serial_phase`: the host firmware plays an ECG into a pty; :class:`FaultRelay`
  passes it to the daemon (``builtin:ecg-demo``) and injects a random mix of unplug/replug,
  garbage, bit flips at 1e-3, truncated and dropped frames, stalls, a wrong baud rate and a
  wrong protocol version. At the end the daemon's ``source_skipped`` and
  ``source_dropped_frames`` must equal the relay's counts exactly.
* :func:`powerloss_phase`: a plastic model learns with checkpoints every ``interval`` s and
  is killed with SIGKILL at random moments (some inside checkpoint writes); every restart
  must restore a valid checkpoint, at most one interval of learning may be lost, and a
  checkpoint with flipped bytes must be detected and the previous one used.
* :func:`overload_phase`: the firmware streams at 3x the model's rate into a daemon whose
  stdout is a small pipe read slowly: the source queue stays bounded, drops are counted by
  policy, no record is lost, and resident memory is sampled from the health records.
* fuzzing: :func:`spikeedge.faults.fuzz` over every reader, loader and parser.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import SpikeEdgeError
from .faults import FUZZ_TARGETS, DaemonProc, FaultRelay, Firmware, firmware_binary, fuzz

__all__ = ["serial_phase", "powerloss_phase", "overload_phase", "fuzz_phase", "run_soak",
           "register", "plastic_model"]


class SoakError(SpikeEdgeError):
    """The soak cannot run here (no firmware build, no C toolchain)."""


def _toml(d: dict) -> str:
    out = []
    for sec, body in d.items():
        if sec == "sinks":
            continue
        out.append(f"[{sec}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in body.items()]
    for s in d.get("sinks", []):
        out.append("[[sinks]]")
        out += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
    return "\n".join(out) + "\n"


def _write_config(path: Path, d: dict) -> Path:
    path.write_text(_toml(d))
    return path


def _rss_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------- serial faults
FAULT_KINDS = ("unplug", "garbage", "bitflip", "truncate", "drop", "stall", "baud", "version")


def serial_phase(workdir: Path, seconds: float | None = None, *, faults: list | None = None,
                 seed: int = 0, stall_s: float = 10.0, timeout_s: float = 3.0,
                 garbage_bytes: int = 65536, unplug_every: int = 2, binary=None) -> dict:
    """Run the daemon behind a :class:`FaultRelay` and inject ``faults`` (a list of kinds,
    in order) or, with ``seconds``, a random mix until the time is up (an unplug at least
    every ``unplug_every`` faults). Returns counts and the comparison."""
    binary = binary or firmware_binary()
    if binary is None:
        raise SoakError("the soak needs the firmware host build (a source checkout with make "
                        "and a C compiler)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    link = workdir / "ttySOAK"
    records = workdir / "serial-records.jsonl"
    cfg = {"source": {"url": f"serial://{link}?header_timeout=1", "block_ms": 50.0,
                      "timeout_s": timeout_s, "backoff_max_s": 1.0},
           "model": {"path": "builtin:ecg-demo"}, "health": {"interval_s": 0.5},
           "daemon": {"device_id": "soak-serial"}, "log": {"level": "ERROR"},
           "sinks": [{"type": "file", "path": str(records)}]}
    conf = _write_config(workdir / "serial.toml", cfg)
    t0 = time.monotonic()
    done: list[str] = []
    result: dict = {"phase": "serial"}
    with Firmware(binary, "--signal", "ecg", "--frame", "8") as fw:
        relay = FaultRelay(fw.path, str(link), seed=seed)
        d = DaemonProc(conf, records, stderr=workdir / "serial-daemon.log")
        try:
            if d.wait_for(lambda r: r.get("event") == "start", 60) is None:
                raise SoakError("daemon did not start: see " + str(workdir / "serial-daemon.log"))
            relay.wait_frames(10, 20)
            rss0 = _rss_of(d.proc.pid)
            plan = list(faults or [])
            i = 0
            while True:
                if faults is not None:
                    if not plan:
                        break
                    kind = plan.pop(0)
                else:
                    if time.monotonic() - t0 > seconds:
                        break
                    kind = "unplug" if i % unplug_every == 0 else rng.choice(FAULT_KINDS)
                i += 1
                if kind == "unplug":
                    relay.unplug(rng.uniform(0.05, 0.6))
                elif kind == "garbage":
                    relay.garbage(garbage_bytes)
                elif kind == "bitflip":
                    relay.bitflips(1e-3, rng.uniform(1.0, 3.0))
                elif kind == "truncate":
                    relay.truncate(rng.randint(1, 5))
                elif kind == "drop":
                    relay.drop(rng.randint(1, 5))
                elif kind == "stall":
                    relay.stall(stall_s)
                elif kind == "baud":
                    relay.wrong_baud(min(0.5, timeout_s / 3))
                elif kind == "version":
                    relay.wrong_version(rng.uniform(1.0, 2.5))
                else:
                    raise ValueError(f"unknown fault kind {kind!r}")
                done.append(kind)
                if not relay.wait_idle(60 + stall_s):
                    result["stuck"] = f"relay not idle after {kind}"
                    break
                relay.wait_frames(5, 30)
                if d.proc.poll() is not None:
                    break
            # let clean frames reveal the last losses, then a final health record
            relay.wait_frames(10, 30)
            time.sleep(0.3)
            rss1 = _rss_of(d.proc.pid)
            rc = d.stop()
        finally:
            if d.proc.poll() is None:
                d.kill()
            relay.close()
    health = d.last("health") or {}
    dropped = health.get("dropped", {})
    counts = relay.counts()
    events = [r for r in d.records if r.get("type") == "event"]
    result.update({
        "faults": dict(sorted({k: done.count(k) for k in set(done)}.items())),
        "relay": counts,
        "detected_errors": dropped.get("source_skipped"),
        "detected_dropped_frames": dropped.get("source_dropped_frames"),
        "errors_match": dropped.get("source_skipped") == counts["expected_errors"],
        "dropped_match": dropped.get("source_dropped_frames") ==
        counts["expected_dropped_frames"],
        "reconnects": (health.get("source") or {}).get("reconnects"),
        "gap_events": sum(1 for e in events if e.get("event") == "gap"),
        "source_errors": sum(1 for e in events if e.get("event") == "source_error"),
        "last_error": (health.get("source") or {}).get("last_error"),
        "exit_code": rc, "crashes": int(rc != 0), "relay_error": repr(relay.error)
        if relay.error else None,
        "rss_start": rss0, "rss_end": rss1, "seconds": round(time.monotonic() - t0, 1),
        "decisions": health.get("decisions"), "samples": health.get("samples"),
    })
    return result


# ---------------------------------------------------------------------------- power loss
def plastic_model(path: Path) -> Path:
    """A small plastic (STDP) model for the ECG encoder, saved to ``path``."""
    import numpy as np

    from . import INPUT, STDP, Network, Population, Projection, quantize, save_model
    rng = np.random.default_rng(3)
    net = Network(n_inputs=2, dt=1e-3, populations=[
        Population("hid", 128, tau_m=10e-3), Population("out", 16, tau_m=20e-3)],
        projections=[Projection(INPUT, "hid", rng.uniform(0.3, 0.9, (2, 128)),
                                stdp=STDP(a_pre=0.05, a_post=-0.04)),
                     Projection("hid", "out", rng.uniform(0.0, 0.3, (128, 16)),
                                stdp=STDP(a_pre=0.02, a_post=-0.021))])
    save_model(path, quantize(net), metadata={
        "name": "soak-plastic", "encoder": {"preset": "ecg-delta"},
        "decision": {"policy": "window", "window_s": 1.0}})
    return Path(path)


def powerloss_phase(workdir: Path, cycles: int = 20, seconds: float | None = None, *,
                    interval: float = 0.3, seed: int = 0, corrupt_every: int = 5,
                    slack: float = 0.5) -> dict:
    """Kill a learning daemon ``cycles`` times (or until ``seconds``); see the module doc."""
    from .checkpoint import Checkpointer
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    model = plastic_model(workdir / "plastic.npz")
    ck = workdir / "learn.ckpt"
    for p in (ck, Path(str(ck) + ".prev")):
        if p.exists():
            p.unlink()
    records = workdir / "power-records.jsonl"
    cfg = {"source": {"url": f"fake:ecg?duration=inf&seed={seed}", "block_ms": 20.0},
           "model": {"path": str(model)},
           "learning": {"enabled": True, "checkpoint": str(ck),
                        "checkpoint_interval_s": interval},
           "health": {"interval_s": 1e6}, "daemon": {"device_id": "soak-power"},
           "log": {"level": "ERROR"}, "sinks": [{"type": "file", "path": str(records)}]}
    conf = _write_config(workdir / "power.toml", cfg)
    t0 = time.monotonic()
    res = {"phase": "powerloss", "kills": 0, "restarts": 0, "restored_ok": 0,
           "restore_mismatch": [], "no_valid_checkpoint": 0, "corrupted": 0,
           "corrupt_detected": 0, "max_lost_s": 0.0, "over_interval": 0, "crashes": 0,
           "interval_s": interval, "steps_learned": 0}
    expect_from = None   # the file the next start must restore from
    k = 0
    while (seconds is None and k < cycles) or (seconds is not None and
                                                time.monotonic() - t0 < seconds):
        k += 1
        if records.exists():
            records.unlink()
        d = DaemonProc(conf, records, stderr=workdir / "power-daemon.log")
        start = d.wait_for(lambda r: r.get("event") == "start", 60)
        if start is None:
            d.kill()
            res["crashes"] += 1
            continue
        res["restarts"] += k > 1
        if expect_from is not None:
            if start.get("restored_from") == expect_from:
                res["restored_ok"] += 1
            else:
                res["restore_mismatch"].append((start.get("restored_from"), expect_from))
        t_start = start["wall_time"]
        time.sleep(rng.uniform(0.1, 3 * interval + 0.4))
        if d.proc.poll() is not None:
            res["crashes"] += 1
            continue
        t_kill = time.time()
        d.kill()
        res["kills"] += 1
        got = Checkpointer(str(ck), start["model"]).load()
        if got is None:
            if t_kill - t_start > interval + slack:
                res["no_valid_checkpoint"] += 1
            expect_from = None
            continue
        _, meta, which = got
        lost = t_kill - max(float(meta["written"]), t_start)
        res["max_lost_s"] = round(max(res["max_lost_s"], lost), 3)
        res["over_interval"] += lost > interval + slack
        res["steps_learned"] = max(res["steps_learned"], int(meta.get("step", 0)))
        expect_from = which
        if corrupt_every and k % corrupt_every == 0 and os.path.exists(str(ck) + ".prev") \
                and which == str(ck):
            data = bytearray(ck.read_bytes())
            for _ in range(4):
                i = rng.randrange(40, len(data))
                data[i] ^= 0xFF
            ck.write_bytes(bytes(data))
            res["corrupted"] += 1
            expect_from = str(ck) + ".prev"
            records.unlink(missing_ok=True)
            d2 = DaemonProc(conf, records, stderr=workdir / "power-daemon.log")
            try:
                st = d2.wait_for(lambda r: r.get("event") == "start", 60)
                if st is not None and st.get("restored_from") == expect_from:
                    res["corrupt_detected"] += 1
                    res["restored_ok"] += 1
            finally:
                d2.stop()
            got = Checkpointer(str(ck), start["model"]).load()
            expect_from = None if got is None else got[2]
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


# ---------------------------------------------------------------------------- overload
def overload_phase(workdir: Path, seconds: float = 20.0, *, policy: str = "drop-oldest",
                   speed: int = 3, read_period: float = 1.0, binary=None) -> dict:
    """Input at ``speed`` x the model's 360 Hz, a slow stdout sink; see the module doc."""
    binary = binary or firmware_binary()
    if binary is None:
        raise SoakError("the soak needs the firmware host build")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    records = workdir / f"overload-{policy}.jsonl"
    if records.exists():
        records.unlink()
    t0 = time.monotonic()
    with Firmware(binary, "--signal", "ecg", "--rate", str(360 * speed), "--frame", "8") as fw:
        cfg = {"source": {"url": f"serial://{fw.path}", "block_ms": 10.0,
                          "queue_blocks": 32, "drop_policy": policy},
               "model": {"path": "builtin:ecg-demo"}, "encoder": {"preset": "ecg-delta"},
               "health": {"interval_s": 1.0}, "daemon": {"device_id": "soak-overload"},
               "log": {"level": "ERROR"},
               "sinks": [{"type": "stdout"}, {"type": "file", "path": str(records)}]}
        conf = _write_config(workdir / f"overload-{policy}.toml", cfg)
        d = DaemonProc(conf, records, stdout=subprocess.PIPE,
                       stderr=workdir / "overload-daemon.log")
        try:
            fcntl.fcntl(d.proc.stdout.fileno(), 1031, 4096)   # F_SETPIPE_SZ: a small pipe
        except OSError:
            pass
        got_lines = []
        try:
            while time.monotonic() - t0 < seconds and d.proc.poll() is None:
                line = d.proc.stdout.readline()
                if not line:
                    break
                got_lines.append(line)
                time.sleep(read_period)   # the slow consumer
            d.proc.send_signal(signal.SIGTERM)
            rest = d.proc.stdout.read()    # drain so the daemon can flush and stop
            got_lines += rest.splitlines(keepends=True)
            rc = d.proc.wait(timeout=30)
        finally:
            if d.proc.poll() is None:
                d.kill()
            d.proc.stdout.close()
    d.poll_records()
    health = [r for r in d.records if r.get("type") == "health"]
    out = [json.loads(x) for x in got_lines if x.strip()]
    seqs = [r["seq"] for r in out if r.get("type") == "decision"]
    last = health[-1] if health else {}
    rss = [(round(h["uptime_s"], 1), h["rss_bytes"]) for h in health if h.get("rss_bytes")]
    # drift: median of the last quarter minus median of the first quarter after warm-up
    drift = None
    if len(rss) >= 8:
        vals = [r for _, r in rss[len(rss) // 8:]]
        q = max(1, len(vals) // 4)
        drift = sorted(vals[-q:])[q // 2] - sorted(vals[:q])[q // 2]
    return {"phase": f"overload-{policy}", "seconds": round(time.monotonic() - t0, 1),
            "exit_code": rc, "crashes": int(rc != 0),
            "dropped_blocks": last.get("dropped", {}).get("blocks"),
            "dropped_samples": last.get("dropped", {}).get("samples"),
            "queue_peak": last.get("queue", {}).get("source_peak"),
            "queue_max": last.get("queue", {}).get("source_max"),
            "deadline_misses": last.get("deadline_misses"),
            "samples": last.get("samples"),
            "records_lost": (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0,
            "stdout_records": len(out), "rss_curve": rss,
            "rss_start": rss[0][1] if rss else None, "rss_end": rss[-1][1] if rss else None,
            "rss_drift": drift}


# ---------------------------------------------------------------------------- fuzzing
def fuzz_phase(workdir: Path, seconds: float, cases: int = 100_000, seed: int = 0) -> dict:
    res = {"phase": "fuzz", "targets": {}}
    per = seconds / len(FUZZ_TARGETS)
    for i, t in enumerate(FUZZ_TARGETS):
        r = fuzz(t, cases, Path(workdir) / f"fuzz-{t}", seed=seed + i,
                 deadline=time.monotonic() + per)
        res["targets"][t] = r
    return res


# ---------------------------------------------------------------------------- the command
def run_soak(duration: float, workdir: Path, seed: int = 0, log=None) -> dict:
    say = log or (lambda *_: None)
    t0 = time.time()
    summary = {"duration_s": duration, "seed": seed, "started": t0}
    say(f"serial faults for {0.45 * duration:.0f} s")
    summary["serial"] = serial_phase(workdir / "serial", 0.45 * duration, seed=seed,
                                     stall_s=min(10.0, max(2.0, duration / 60)),
                                     garbage_bytes=65536)
    say(f"power loss for {0.2 * duration:.0f} s")
    summary["powerloss"] = powerloss_phase(workdir / "power", seconds=0.2 * duration, seed=seed)
    say(f"overload for {0.2 * duration:.0f} s")
    summary["overload"] = overload_phase(workdir / "overload", 0.2 * duration)
    say(f"fuzzing for {0.15 * duration:.0f} s")
    summary["fuzz"] = fuzz_phase(workdir / "fuzz", 0.15 * duration, seed=seed)
    summary["wall_s"] = round(time.time() - t0, 1)
    s, p, o, f = summary["serial"], summary["powerloss"], summary["overload"], summary["fuzz"]
    summary["ok"] = bool(
        s["errors_match"] and s["dropped_match"] and not s["crashes"] and not p["crashes"]
        and not p["restore_mismatch"] and not p["no_valid_checkpoint"]
        and not p["over_interval"] and p["corrupt_detected"] == p["corrupted"]
        and not o["crashes"] and not o["records_lost"]
        and (o["queue_peak"] or 0) <= (o["queue_max"] or 0)
        and (o["rss_drift"] is None or o["rss_drift"] < 10e6)
        and not any(t["escaped"] for t in f["targets"].values()))
    return summary


def table(s: dict) -> str:
    se, p, o, f = s["serial"], s["powerloss"], s["overload"], s["fuzz"]
    r = se["relay"]
    inj = r["injected"]
    mb = 1 / 2**20
    rows = [
        ("serial: faults injected", ", ".join(f"{k} {v}" for k, v in se["faults"].items())),
        ("serial: garbage / bits flipped / frames truncated / dropped",
         f"{inj.get('garbage_bytes', 0)} B / {inj.get('bits_flipped', 0)} / "
         f"{inj.get('frames_truncated', 0)} / {inj.get('frames_dropped', 0)}"),
        ("serial: corrupt runs injected / detected",
         f"{r['expected_errors']} / {se['detected_errors']}"
         f" ({'exact' if se['errors_match'] else 'MISMATCH'})"),
        ("serial: frames lost injected / detected",
         f"{r['expected_dropped_frames']} / {se['detected_dropped_frames']}"
         f" ({'exact' if se['dropped_match'] else 'MISMATCH'})"),
        ("serial: reconnects, gap events, decisions",
         f"{se['reconnects']}, {se['gap_events']}, {se['decisions']}"),
        ("serial: crashes (exit code)", f"{se['crashes']} ({se['exit_code']})"),
        ("serial: RSS start / end (MiB)",
         f"{(se['rss_start'] or 0) * mb:.1f} / {(se['rss_end'] or 0) * mb:.1f}"),
        ("power loss: SIGKILLs / restarts / restored from the expected file",
         f"{p['kills']} / {p['restarts']} / {p['restored_ok']}"),
        ("power loss: checkpoints lost (no valid file) / restore mismatches",
         f"{p['no_valid_checkpoint']} / {len(p['restore_mismatch'])}"),
        ("power loss: corrupted / detected, previous used",
         f"{p['corrupted']} / {p['corrupt_detected']}"),
        ("power loss: most learning lost (s; interval)",
         f"{p['max_lost_s']} ({p['interval_s']}); over interval+0.5 s: {p['over_interval']}"),
        ("overload 3x: blocks dropped (drop-oldest) / queue peak / max",
         f"{o['dropped_blocks']} / {o['queue_peak']} / {o['queue_max']}"),
        ("overload 3x: records lost / crashes", f"{o['records_lost']} / {o['crashes']}"),
        ("overload 3x: RSS start / end / drift (MiB)",
         f"{(o['rss_start'] or 0) * mb:.1f} / {(o['rss_end'] or 0) * mb:.1f} / "
         f"{(o['rss_drift'] or 0) * mb:.2f}"),
    ]
    for t, v in f["targets"].items():
        rows.append((f"fuzz {t}: cases / escaped", f"{v['cases']} / {v['escaped']}"))
    rows.append(("verdict", "OK" if s["ok"] else "FAILED"))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def cmd_soak(args) -> int:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="spikeedge-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    s = run_soak(args.duration, work, seed=args.seed,
                 log=lambda m: print(f"soak: {m}", file=sys.stderr, flush=True))
    s["workdir"] = str(work)
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(table(s))
        print("RSS curve (uptime s, MiB) under overload: " + ", ".join(
            f"{t:g}:{r / 2**20:.1f}" for t, r in s["overload"]["rss_curve"][::max(
                1, len(s["overload"]["rss_curve"]) // 12)]))
        print(f"files: {work}")
    return 0 if s["ok"] else 1


def register(subparsers) -> None:
    from .cli import _positive_float
    p = subparsers.add_parser(
        "soak", help="run the daemon under every fault kind and print a summary",
        description="Serial faults with the host firmware over a pty, power loss (SIGKILL "
                    "during learning and checkpointing), overload and fuzzing; prints "
                    "faults injected and detected, records and checkpoints lost, crashes, "
                    "restarts and resident memory. Needs a source checkout with a C "
                    "compiler (the firmware host build).")
    p.add_argument("--duration", type=_positive_float, default=300.0,
                   help="seconds in total (default 300)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="where to keep configs, records and logs "
                   "(default: a new temporary folder)")
    p.set_defaults(func=cmd_soak)
