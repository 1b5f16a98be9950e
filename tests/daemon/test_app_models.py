"""The daemon serves the shipped application models (spikeedge.apps readout convention)."""
import json
import subprocess
import sys

import pytest


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spikeedge.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def decisions(stdout):
    recs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [r for r in recs if r.get("type") == "decision"]


def test_daemon_classifies_beats_with_the_shipped_ecg_model():
    r = run("run", "--model-path", "builtin:mitbih-beats", "--source-url",
            "fake:ecg?seed=3&duration=40", "--daemon-duration-s", "40")
    assert r.returncode == 0, r.stderr
    ds = decisions(r.stdout)
    assert len(ds) >= 30                                  # about one per beat after warm-up
    assert {d["class"] for d in ds} <= {"N", "S", "V", "F", "Q"}
    assert all(d["policy"] == "beat" and d["model"].startswith("mitbih-beats@") for d in ds)
    assert all(0 <= d["beat_sample"] <= 40 * 360 for d in ds)


def test_daemon_classifies_windows_with_the_shipped_emg_model():
    r = run("run", "--model-path", "builtin:myo-gestures", "--source-url",
            "fake:emg?seed=1&duration=5", "--daemon-duration-s", "5")
    if r.returncode == 2 and "inputs" in r.stderr:
        pytest.skip(f"fake:emg does not match the model's input layout: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    ds = decisions(r.stdout)
    assert len(ds) >= 10 and all(d["policy"] == "window" for d in ds)
