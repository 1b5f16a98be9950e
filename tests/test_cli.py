"""The command line, run as a user runs it: a subprocess of the installed console script."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from spikeedge.kernels import AVAILABLE

EXE = shutil.which("spikeedge") or ""


def run(*args, env=None, timeout=300):
    cmd = [EXE, *args] if EXE else [sys.executable, "-m", "spikeedge.cli", *args]
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


def test_info_json_reports_the_backend():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == ("compiled" if AVAILABLE else "reference")
    assert info["build"]["compiled"] is AVAILABLE
    assert "-march=native" not in info["build"].get("compile_args", "") or \
        os.environ.get("SPIKEEDGE_NATIVE")


def test_info_without_build_falls_back_and_says_so():
    r = run("info", "--json", env={"SPIKEEDGE_DISABLE_COMPILED": "1"})
    assert r.returncode == 0
    assert json.loads(r.stdout)["backend"] == "reference"
    assert r.stderr.count("falling back") == 1


def test_bench_refuses_the_reference_fallback():
    r = run("bench", "--net", "kws", "--T", "0.1", env={"SPIKEEDGE_DISABLE_COMPILED": "1"})
    assert r.returncode != 0
    assert "not benchmarked" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not AVAILABLE, reason="compiled kernels are not built")
def test_bench_json_has_the_documented_fields():
    r = run("bench", "--net", "kws", "--T", "0.5", "--repeats", "3", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["backend"] == "compiled"
    k = doc["nets"]["kws"]
    for key in ("s_per_sim_s", "syn_events_per_s", "neuron_updates_per_s", "spikes",
                "syn_events", "peak_rss_mb", "repeats"):
        assert key in k, key
    assert k["repeats"] == 3 and k["spikes"] > 0 and k["syn_events"] > k["spikes"]
    assert k["s_per_sim_s"] > 0 and k["peak_rss_mb"] > 1


@pytest.mark.parametrize("args,msg", [
    (("bench", "--net", "nope"), "invalid choice"),
    (("bench", "--repeats", "0"), "positive integer"),
    (("bench", "--T", "-1"), "positive number"),
    (("bench", "--T", "abc"), "positive number"),
    (("frobnicate",), "invalid choice"),
    ((), "required"),
])
def test_bad_arguments_exit_2_with_a_message(args, msg):
    r = run(*args)
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_demo_streams_decisions():
    r = run("demo", "--duration", "10", "--source", "fake")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) >= 8
    assert [x["seq"] for x in recs] == list(range(len(recs)))
    assert all(x["type"] == "decision" and x["latency_ms"] >= 0 for x in recs)
    assert "accuracy" in r.stderr


def test_encode_and_plot(tmp_path):
    png = tmp_path / "enc.png"
    r = run("encode", "fake:ecg", "--encoder", "ecg-delta", "--seconds", "3", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["spikes"] > 0 and summary["outputs"] == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,msg", [
    (("encode", "nope:x", "--encoder", "ecg-delta"), "scheme"),
    (("encode", "fake:ecg", "--encoder", "no-such-encoder"), "no-such-encoder"),
    (("qrs", "/nonexistent-dir"), "not a folder"),
])
def test_sensor_commands_refuse_bad_input(args, msg):
    r = run(*args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_qrs_on_real_records(shared_data, tmp_path):
    rec = shared_data / "mitbih"
    for ext in ("hea", "dat", "atr"):
        (tmp_path / f"101.{ext}").write_bytes((rec / f"101.{ext}").read_bytes())
    r = run("qrs", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["aggregate"]["n"] > 1800
    assert res["aggregate"]["se"] > 0.99 and res["aggregate"]["ppv"] > 0.99
