"""The daemon as a process: SIGTERM/SIGINT stop cleanly, SIGHUP reloads (a bad config is
refused and the old one keeps running), the systemd unit verifies, the host firmware over a
pty feeds it, and ``spikeedge demo`` prints its summary."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonutil import cli

CFG = """
[source]
url = "fake:ecg?seed=2&duration=inf"
realtime = true
block_ms = 50
[health]
interval_s = {health}
[daemon]
device_id = "proc"
[[sinks]]
type = "stdout"
[[sinks]]
type = "file"
path = "{out}"
"""


def _start(tmp_path, health=0.5):
    cfg = tmp_path / "d.toml"
    out = tmp_path / "records.jsonl"
    cfg.write_text(CFG.format(health=health, out=out))
    proc = subprocess.Popen([sys.executable, "-m", "spikeedge.cli", "run", "--config",
                             str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, cfg, out


def _records(path):
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _wait_for(pred, path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = _records(path)
        if pred(recs):
            return recs
        time.sleep(0.1)
    raise AssertionError(f"timed out; records so far: {_records(path)[-3:]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_flushes(tmp_path, sig):
    proc, _, out = _start(tmp_path)
    try:
        _wait_for(lambda r: any(x["type"] == "decision" for x in r), out)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    recs = _records(out)
    assert recs[-1]["event"] == "stop" and recs[-1]["reason"] == signal.Signals(sig).name
    assert recs[-2]["type"] == "health"
    # stdout got the same records, complete lines
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert lines == recs


def test_sighup_reloads_and_refuses_a_bad_config(tmp_path):
    proc, cfg, out = _start(tmp_path, health=0.5)
    try:
        _wait_for(lambda r: any(x["type"] == "health" for x in r), out)
        # a good change: the health period
        cfg.write_text(cfg.read_text().replace("interval_s = 0.5", "interval_s = 0.25"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda r: any(x.get("event") == "reload" for x in r), out)
        # a bad change: refused, the old config keeps running
        cfg.write_text(cfg.read_text().replace("interval_s = 0.25", "interval_s = -1"))
        proc.send_signal(signal.SIGHUP)
        recs = _wait_for(lambda r: any(x.get("event") == "reload_failed" for x in r), out)
        n = len(recs)
        recs = _wait_for(lambda r: sum(x["type"] == "decision" for x in r[n:]) >= 2, out)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    recs = _records(out)
    ev = [x for x in recs if x["type"] == "event"]
    assert [e["event"] for e in ev] == ["start", "reload", "reload_failed", "stop"]
    assert ev[1]["config_changed"] == ["health"]
    assert "interval_s = -1" in ev[2]["error"] and "must be > 0" in ev[2]["error"]
    assert recs[-2]["reloads"] == 1 and recs[-2]["reload_failures"] == 1
    seqs = [x["seq"] for x in recs if x["type"] == "decision"]
    assert seqs == list(range(len(seqs)))      # one stream of decisions across reloads


def test_systemd_unit_verifies(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not found (not a systemd machine)")
    from importlib import resources
    unit = (resources.files("spikeedge") / "data" / "spikeedge.service").read_text()
    assert "ExecStart=/usr/local/bin/spikeedge run --config /etc/spikeedge/spikeedge.toml" \
        in unit
    exe = shutil.which("spikeedge") or str(Path(sys.executable).parent / "spikeedge")
    if not os.access(exe, os.X_OK):
        pytest.skip("the spikeedge console script is not installed")
    p = tmp_path / "spikeedge.service"
    p.write_text(unit.replace("/usr/local/bin/spikeedge", exe))
    r = subprocess.run([tool, "verify", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    problems = [x for x in (r.stdout + r.stderr).splitlines() if "spikeedge.service" in x]
    assert not problems, problems


def test_demo_json_summary_in_process_fake():
    r = cli("demo", "--duration", "30", "--json", "--source", "fake")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for k in ("decisions", "per_class", "accuracy_vs_truth", "latency_ms", "realtime_factor",
              "source", "model"):
        assert k in s, k
    assert set(s["latency_ms"]) >= {"p50", "p99", "max"}
    assert s["source"].startswith("fake:ecg") and s["model"].startswith("ecg-demo@")
    assert s["decisions"] >= 30 and s["accuracy_vs_truth"] >= 0.95
    assert s["realtime_factor"] > 1
    assert sum(v["truth"] for v in s["per_class"].values()) >= 33


def test_demo_prints_live_decisions_then_summary():
    r = cli("demo", "--duration", "10", "--source", "fake")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines and all(x["type"] == "decision" for x in lines)
    assert "accuracy" in r.stderr and "latency" in r.stderr


@pytest.mark.firmware
def test_demo_through_the_host_firmware_over_a_pty(host_firmware):
    r = cli("demo", "--duration", "30", "--json", "--source", "firmware", cwd=str(
        Path(__file__).resolve().parents[2]))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["source"].startswith("host firmware over /dev/pts/")
    assert s["decisions"] >= 30 and s["accuracy_vs_truth"] >= 0.95
    assert s["missed_beats"] <= 3 and s["false_detections"] == 0


@pytest.mark.slow
def test_demo_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    r = cli("demo", "--duration", "10", "--json", "--source", "fake", "--plot", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 10000


@pytest.mark.slow
def test_bench_pipelines_reports_both(tmp_path):
    r = cli("bench-pipelines", "--seconds", "5", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["pipelines"]
    assert set(d) == {"ecg", "audio"}
    for v in d.values():
        assert v["realtime_factor"] > 0 and v["block_latency_ms"]["p99"] is not None
