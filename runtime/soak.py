"""``spikeedge soak --duration S [--json]``: the daemon under every fault kind, unattended.

All fault kinds at once: the phases below run concurrently for the whole duration, each in
its own process (three for fuzzing), so serial faults happen while another daemon is overloaded,
a third is being killed with SIGKILL, and fuzzing competes for the CPU. Each phase is also a
function the reliability tests call with small sizes:

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
* :func:`fuzz_phase`: :func:`spikeedge.faults.fuzz_all` (mutation fuzzing, structure-aware
  for the checksummed formats) over every reader, loader and parser, 100,000 cases each.
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
from collections import Counter
from pathlib import Path

from .errors import SpikeEdgeError
from .faults import FUZZ_TARGETS, DaemonProc, FaultRelay, Firmware, firmware_binary, fuzz_all

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


def records_lost(records: list[dict]) -> int:
    """Gaps in the ``seq`` numbers of decision and health records (each numbered from 0 by
    one daemon run): records the daemon numbered but that never reached the sink."""
    lost = 0
    for rtype in ("decision", "health"):
        seqs = [r["seq"] for r in records if r.get("type") == rtype and "seq" in r]
        if seqs:
            lost += seqs[-1] - seqs[0] + 1 - len(set(seqs))
    return lost


# ---------------------------------------------------------------------------- serial faults
FAULT_KINDS = ("unplug", "garbage", "bitflip", "truncate", "drop", "stall", "baud", "version")


def serial_phase(workdir: Path, seconds: float | None = None, *, faults: list | None = None,
                 seed: int = 0, stall_s: float = 10.0, timeout_s: float = 3.0,
                 garbage_bytes: int = 65536, unplug_every: int = 2, binary=None,
                 header_timeout: float = 1.0) -> dict:
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
    cfg = {"source": {"url": f"serial://{link}?header_timeout={header_timeout:g}",
                      "block_ms": 50.0,
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
        "records_lost": records_lost(d.records),
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
                    slack: float = 0.5, pace: float = 0.0) -> dict:
    """Kill a learning daemon ``cycles`` times (or until ``seconds`` when ``cycles`` is None;
    with both, whichever comes first); see the module doc. ``pace``: a cycle takes at least
    this long (the soak spreads its kills over the whole run, mixed with the other faults)."""
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
           "interval_s": interval, "steps_learned": 0, "records_lost": 0, "rss_start": None,
           "rss_end": None, "rss_max": 0}
    expect_from = None   # the file the next start must restore from
    k = 0
    t_cycle = t0
    while (cycles is None or k < cycles) and (seconds is None or
                                             time.monotonic() - t0 < seconds):
        if k and pace:
            time.sleep(max(0.0, t_cycle + pace - time.monotonic()))
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
        t_cycle = time.monotonic()
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
        rss = _rss_of(d.proc.pid)
        t_kill = time.time()
        d.kill()
        res["kills"] += 1
        if rss:
            res["rss_start"] = res["rss_start"] or rss
            res["rss_end"], res["rss_max"] = rss, max(res["rss_max"], rss)
        d.poll_records()
        res["records_lost"] += records_lost(d.records)
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
            "records_lost": records_lost(out), "decisions_out": len(seqs),
            "stdout_records": len(out), "rss_curve": rss,
            "rss_start": rss[0][1] if rss else None, "rss_end": rss[-1][1] if rss else None,
            "rss_drift": drift}


# ---------------------------------------------------------------------------- fuzzing
#: the fuzz targets over four processes of about equal cost (CPU per case, one core, measured:
#: WFDB 4.1 ms, mostly the wfdb library's header parser, which the reader calls twice; model
#: 2.1 ms, mostly numpy's zip reader; checkpoint 0.4; csv 0.3; wav 0.2; decoder 0.16; config
#: 0.12). WFDB is in two processes, each doing half of its cases.
FUZZ_GROUPS = (("model", "decoder", "config"), ("wfdb",), ("wfdb", "checkpoint", "wav", "csv"))


def fuzz_phase(workdir: Path, seconds: float, cases=100_000, seed: int = 0,
               targets=FUZZ_TARGETS) -> dict:
    """Mutation fuzzing of ``targets`` round-robin until each had ``cases`` (a number, or a
    dict per target) or ``seconds`` ran out."""
    t0 = time.monotonic()
    r = fuzz_all(tuple(targets), cases, Path(workdir), seed=seed, deadline=t0 + seconds)
    return {"phase": "fuzz", **r, "seconds": round(time.monotonic() - t0, 1)}


# ---------------------------------------------------------------------------- the command
def _run_phase(name: str, fn_name: str, kwargs: dict) -> dict:
    """Body of one soak process: run one phase, never raise (a failure is a result)."""
    t0 = time.time()
    try:
        r = globals()[fn_name](**kwargs)
    except Exception as exc:  # noqa: BLE001 - the soak reports it as a crash of that phase
        import traceback
        r = {"phase": name, "error": f"{type(exc).__name__}: {exc}",
             "traceback": traceback.format_exc(), "crashes": 1}
    r.update(wall_start=round(t0, 2), wall_end=round(time.time(), 2))   # shows the overlap
    return r


def run_soak(duration: float, workdir: Path, seed: int = 0, log=None, *,
             fuzz_cases: int = 100_000, kills: int = 200) -> dict:
    """All fault kinds at once: the serial-fault daemon, the overloaded daemon, the power-loss
    (SIGKILL) cycles and three fuzzing processes run concurrently, each in its own process, for
    ``duration`` seconds; on two cores they also compete for the CPU, as on a busy board."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    say = log or (lambda *_: None)
    workdir = Path(workdir)
    binary = firmware_binary()          # build once, before the processes start
    if binary is None:
        raise SoakError("the soak needs the firmware host build (a source checkout with make "
                        "and a C compiler)")
    t0 = time.time()
    summary = {"duration_s": duration, "seed": seed, "started": t0, "mixed": True}
    stall = min(10.0, max(2.0, duration / 60))
    run_s = max(10.0, duration - 15.0)   # leave time for the phases to wind down
    jobs = {
        "serial": ("serial_phase", {"workdir": workdir / "serial", "seconds": run_s - stall,
                                    "seed": seed, "stall_s": stall, "garbage_bytes": 65536,
                                    "binary": binary, "header_timeout": 3.0}),
        "overload": ("overload_phase", {"workdir": workdir / "overload", "seconds": run_s,
                                        "binary": binary}),
    }
    # two learning daemons killed in turn: a restart costs seconds on a loaded machine
    for i in range(POWER_PROCS):
        n = kills // POWER_PROCS + (i < kills % POWER_PROCS)
        jobs[f"powerloss{i}"] = ("powerloss_phase", {
            "workdir": workdir / f"power{i}", "cycles": n, "seconds": run_s,
            "seed": seed + i, "pace": 0.92 * run_s / max(1, n)})
    share = Counter(t for g in FUZZ_GROUPS for t in g)
    for g, targets in enumerate(FUZZ_GROUPS):
        jobs[f"fuzz{g}"] = ("fuzz_phase", {
            "workdir": workdir / f"fuzz{g}", "seconds": run_s, "seed": seed + 100 * g,
            "cases": {t: -(-fuzz_cases // share[t]) for t in targets}, "targets": targets})
    say(f"{len(jobs)} processes for {duration:.0f} s, all at once: " + ", ".join(jobs))
    results = {}
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=get_context("spawn")) as ex:
        futs = {name: ex.submit(_run_phase, name, fn, kw) for name, (fn, kw) in jobs.items()}
        pending = set(futs)
        next_note = time.time() + 120
        while pending:
            for name in list(pending):
                if futs[name].done():
                    pending.discard(name)
                    try:
                        results[name] = futs[name].result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker process
                        results[name] = {"phase": name, "error": repr(exc), "crashes": 1}
                    say(f"{name} done after {time.time() - t0:.0f} s")
            if time.time() > next_note:
                say(f"{time.time() - t0:.0f} s of {duration:.0f}; running: "
                    + ", ".join(sorted(pending)))
                next_note += 120
            time.sleep(0.5)
    summary.update({k: results[k] for k in ("serial", "overload")})
    summary["powerloss"] = _merge_power([results[f"powerloss{i}"]
                                         for i in range(POWER_PROCS)])
    fz = {"phase": "fuzz", "targets": {}, "processes": []}
    for g in range(len(FUZZ_GROUPS)):
        r = results[f"fuzz{g}"]
        fz["processes"].append({k: r.get(k) for k in ("seconds", "rss_start", "rss_end",
                                                       "error", "wall_start", "wall_end")})
        for t, v in r.get("targets", {}).items():     # a target split over processes
            if t not in fz["targets"]:
                fz["targets"][t] = dict(v, escapes=list(v["escapes"]))
                continue
            m = fz["targets"][t]
            for k in ("cases", "escaped", "refused", "seconds"):
                m[k] = round(m[k] + v[k], 1) if k == "seconds" else m[k] + v[k]
            m["escapes"] += v["escapes"]
            m["rate"] = round(m["cases"] / m["seconds"]) if m["seconds"] else None
    summary["fuzz"] = fz
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["kinds"] = kinds_table(summary)
    summary["ok"] = verdict(summary, fuzz_cases, kills)
    p, o = summary["powerloss"], summary["overload"]
    summary["sizes_reached"] = {
        "kills": f"{p.get('kills')} of {kills}",
        "fuzz_cases": {t: f"{v['cases']} of {fuzz_cases}" for t, v in fz["targets"].items()},
        "overload_s": o.get("seconds")}
    return summary


POWER_PROCS = 2


def _merge_power(parts: list[dict]) -> dict:
    """One power-loss result from several processes (sums; worst case; first/last RSS)."""
    bad = [p for p in parts if "error" in p]
    if bad:
        return bad[0]
    m = {"phase": "powerloss", "processes": len(parts)}
    for k in ("kills", "restarts", "restored_ok", "no_valid_checkpoint", "corrupted",
              "corrupt_detected", "over_interval", "crashes", "records_lost"):
        m[k] = sum(p[k] for p in parts)
    m["restore_mismatch"] = [x for p in parts for x in p["restore_mismatch"]]
    m["max_lost_s"] = max(p["max_lost_s"] for p in parts)
    m["steps_learned"] = max(p["steps_learned"] for p in parts)
    m["interval_s"] = parts[0]["interval_s"]
    m["rss_start"] = parts[0]["rss_start"]
    m["rss_end"] = parts[0]["rss_end"]
    m["rss_max"] = max(p["rss_max"] for p in parts)
    m["seconds"] = max(p["seconds"] for p in parts)
    m["wall_start"] = min(p["wall_start"] for p in parts)
    m["wall_end"] = max(p["wall_end"] for p in parts)
    m["per_process"] = [{k: p[k] for k in ("kills", "rss_start", "rss_end", "max_lost_s")}
                        for p in parts]
    return m


def _mib(b) -> float | None:
    return None if b is None else round(b / 2**20, 1)


def kinds_table(s: dict) -> list[dict]:
    """One row per fault kind: injected, detected, records lost, crashes, restarts,
    checkpoints lost, resident memory at the start and end (MiB) of the process under it."""
    se, p, o, f = s["serial"], s["powerloss"], s["overload"], s["fuzz"]
    rows = []
    if "error" not in se:
        r = se["relay"]
        inj = r["injected"]
        units = {"garbage": f"{inj.get('garbage_bytes', 0)} B",
                 "bitflip": f"{inj.get('bits_flipped', 0)} bits in "
                            f"{inj.get('frames_flipped', 0)} frames",
                 "truncate": f"{inj.get('frames_truncated', 0)} frames",
                 "drop": f"{inj.get('frames_dropped', 0)} frames",
                 "baud": f"{inj.get('baud_bytes', 0)} B garbled",
                 "version": f"{inj.get('bad_version_headers', 0)} HEADERs"}
        for kind in FAULT_KINDS:
            n = se["faults"].get(kind, 0)
            rows.append({"kind": f"serial: {kind}", "injected": f"{n}" + (
                f" ({units[kind]})" if kind in units else "")})
        rows.append({
            "kind": "serial: all of the above (one daemon)",
            "injected": f"{r['expected_errors']} corrupt runs, {r['expected_dropped_frames']} "
                        "frames lost",
            "detected": f"{se['detected_errors']} / {se['detected_dropped_frames']} (" +
                        ("exact" if se["errors_match"] and se["dropped_match"] else "MISMATCH")
                        + ")",
            "records_lost": se["records_lost"], "crashes": se["crashes"],
            "restarts": f"{se['reconnects']} reconnects ({r.get('host_retries', 0)} retried "
                        "by the daemon)", "checkpoints_lost": "-",
            "rss_start": _mib(se["rss_start"]), "rss_end": _mib(se["rss_end"])})
    else:
        rows.append({"kind": "serial", "injected": "-", "detected": se["error"], "crashes": 1})
    if "error" not in p:
        rows.append({
            "kind": "power loss: SIGKILL during learning / checkpointing",
            "injected": p["kills"],
            "detected": f"{p['restored_ok'] - p['corrupt_detected']} restores from the "
                        "newest intact file",
            "records_lost": p["records_lost"], "crashes": p["crashes"],
            "restarts": p["restarts"],
            "checkpoints_lost": p["no_valid_checkpoint"] + len(p["restore_mismatch"]),
            "rss_start": _mib(p["rss_start"]), "rss_end": _mib(p["rss_end"])})
        rows.append({
            "kind": "power loss: checkpoint bytes flipped",
            "injected": p["corrupted"],
            "detected": f"{p['corrupt_detected']} (previous used)",
            "records_lost": "-", "crashes": "-", "restarts": p["corrupted"],
            "checkpoints_lost": p["corrupted"] - p["corrupt_detected"]})
    else:
        rows.append({"kind": "power loss", "injected": "-", "detected": p["error"],
                     "crashes": 1})
    if "error" not in o:
        rows.append({
            "kind": "overload: 3x real time, slow sink",
            "injected": f"{o['seconds']:.0f} s at 3x",
            "detected": f"{o['dropped_blocks']} blocks dropped and counted, queue peak "
                        f"{o['queue_peak']}/{o['queue_max']}",
            "records_lost": o["records_lost"], "crashes": o["crashes"], "restarts": 0,
            "checkpoints_lost": "-", "rss_start": _mib(o["rss_start"]),
            "rss_end": _mib(o["rss_end"])})
    else:
        rows.append({"kind": "overload", "injected": "-", "detected": o["error"],
                     "crashes": 1})
    for t, v in f["targets"].items():
        rows.append({"kind": f"fuzz: {t}", "injected": f"{v['cases']} cases",
                     "detected": f"{v.get('refused')} refused with our error (message "
                                 f"checked), {v['cases'] - v['escaped'] - v.get('refused', 0)} "
                                 f"accepted, {v['escaped']} escaped",
                     "records_lost": "-", "crashes": v["escaped"], "restarts": "-",
                     "checkpoints_lost": "-"})
    for g, pr in enumerate(f["processes"]):
        if pr.get("error"):
            rows.append({"kind": f"fuzz process {g}", "detected": pr["error"], "crashes": 1})
    return rows


def verdict(s: dict, fuzz_cases: int = 0, kills: int = 0) -> bool:
    se, p, o, f = s["serial"], s["powerloss"], s["overload"], s["fuzz"]
    if any("error" in x for x in (se, p, o)) or any(pr.get("error")
                                                   for pr in f["processes"]):
        return False
    return bool(
        se["errors_match"] and se["dropped_match"] and not se["crashes"]
        and not se["records_lost"] and not p["crashes"] and not p["records_lost"]
        and not p["restore_mismatch"] and not p["no_valid_checkpoint"]
        and not p["over_interval"] and p["corrupt_detected"] == p["corrupted"]
        and not o["crashes"] and not o["records_lost"]
        and (o["queue_peak"] or 0) <= (o["queue_max"] or 0)
        and (o["rss_drift"] is None or o["rss_drift"] < 10e6)
        and not any(t["escaped"] for t in f["targets"].values()))


def table(s: dict) -> str:
    """The per-kind table as Markdown, then the RSS curve of the overloaded daemon."""
    cols = ("kind", "injected", "detected", "records_lost", "crashes", "restarts",
            "checkpoints_lost", "rss_start", "rss_end")
    head = ("kind", "injected", "detected", "records lost", "crashes", "restarts",
            "checkpoints lost", "RSS start (MiB)", "RSS end (MiB)")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in s["kinds"]:
        out.append("| " + " | ".join("-" if r.get(c) is None else str(r[c]) for c in cols)
                   + " |")
    o = s["overload"]
    if "rss_curve" in o:
        out.append("")
        out.append(f"overload RSS drift (median of the last quarter - first quarter): "
                   f"{(o['rss_drift'] or 0) / 2**20:.2f} MiB; curve (uptime s: MiB): " + ", ".join(
                       f"{t:.0f}: {r / 2**20:.1f}" for t, r in rss_samples(o["rss_curve"])))
    p = s["powerloss"]
    if "max_lost_s" in p:
        out.append(f"power loss: most learning lost {p['max_lost_s']} s with a checkpoint "
                   f"every {p['interval_s']} s; over interval + 0.5 s: {p['over_interval']}")
    z = s.get("sizes_reached")
    if z:
        short = {t: c for t, c in z["fuzz_cases"].items() if c.split()[0] != c.split()[-1]}
        out.append(f"sizes: SIGKILLs {z['kills']}; overload {z['overload_s']} s; fuzz cases "
                   + ("all at the goal" if not short else "short: " + ", ".join(
                       f"{t} {c}" for t, c in short.items())))
    out.append("verdict: " + ("OK" if s["ok"] else "FAILED"))
    return "\n".join(out)


def rss_samples(curve, n: int = 12) -> list:
    """About ``n`` evenly spaced points of an (uptime, bytes) curve, the last included."""
    if not curve:
        return []
    step = max(1, len(curve) // n)
    pts = list(curve[::step])
    if pts[-1] != curve[-1]:
        pts.append(curve[-1])
    return pts


def cmd_soak(args) -> int:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="spikeedge-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    s = run_soak(args.duration, work, seed=args.seed, fuzz_cases=args.fuzz_cases,
                 kills=args.kills,
                 log=lambda m: print(f"soak: {m}", file=sys.stderr, flush=True))
    s["workdir"] = str(work)
    if args.json:
        s["table"] = table(s)
        print(json.dumps(s, indent=1))
    else:
        print(table(s))
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
    p.add_argument("--kills", type=int, default=200,
                   help="SIGKILLs of the learning daemon, spread over the run (default 200)")
    p.add_argument("--fuzz-cases", type=int, default=100_000,
                   help="mutated inputs per fuzz target (default 100000; fewer if the "
                        "duration runs out first)")
    p.add_argument("--workdir", default=None, help="where to keep configs, records and logs "
                   "(default: a new temporary folder)")
    p.set_defaults(func=cmd_soak)
