"""``python -m spikeedge.tools.fsdd_live``: the daemon's live utterance latency on real FSDD
recordings, and its argument and input checks."""
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from spikeedge.tools.fsdd_live import build_stream
from testutil import data_dir


def tool(*args):
    return subprocess.run([sys.executable, "-m", "spikeedge.tools.fsdd_live", *args],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))


def recordings() -> Path:
    """The FSDD recordings folder, or skip."""
    folder = data_dir() / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"FSDD recordings not found in {folder} (set SPIKEEDGE_DATA)")
    return folder


def live_json(*args) -> dict:
    r = tool("--data", str(recordings()), *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_daemon_decides_each_utterance_after_the_gap():
    doc = live_json("--speakers", "george,jackson")
    assert doc["recordings"] == doc["decisions"] == 20
    # the detector decides gap_s (0.3 s) after the last voiced frame, at a block's end
    assert 300 - 1e-6 <= doc["from_detected_end_ms"]["min"] <= doc["from_detected_end_ms"]["max"] \
        <= 310 + 1e-6
    assert 0 < doc["compute_ms"]["p50"] <= doc["compute_ms"]["max"] < 1000
    assert doc["from_true_end_ms"]["max"] <= 320
    assert doc["correct"] >= 14                  # measured 18 of 20 (index 1, test split)


def test_quiet_speakers_are_not_cut_short():
    """theo and yweweler speak quietly and end softly: their utterances must be decided whole
    (hysteresis, a floor that does not sink during an utterance). Measured 18 of 20 in
    -61 dBFS room noise; the detector without them got 11."""
    doc = live_json("--speakers", "theo,yweweler")
    assert doc["decisions"] == 20 and doc["noise_dbfs"] == -61.0
    assert doc["correct"] >= 16, doc["by_speaker"]
    assert sum(v["correct"] for v in doc["by_speaker"].values()) == doc["correct"]
    assert {k: v["recordings"] for k, v in doc["by_speaker"].items()} == \
        {"theo": 10, "yweweler": 10}


def test_correct_counts_only_the_true_digit():
    """With each recording's digit shifted by one, (almost) nothing may count as correct."""
    from spikeedge.tools.fsdd_live import measure
    folder = recordings()
    files = [folder / f"{d}_george_1.wav" for d in range(10)]
    right = measure(files, list(range(10)))
    wrong = measure(files, [(d + 1) % 10 for d in range(10)])
    assert right["decisions"] == wrong["decisions"] == 10
    assert right["correct"] >= 7 and wrong["correct"] <= 10 - right["correct"]


@pytest.mark.parametrize("args,msg", [
    (["--index", "50"], "--index"), (["--index", "x"], "--index"),
    (["--index", "3-1"], "--index"), (["--index", "1,1"], "--index"),
    (["--index", "-1"], "--index"), (["--index", "0-50"], "--index"),
    (["--speakers", " , "], "--speakers"), (["--block-ms", "nan"], "--block-ms"),
    (["--block-ms", "0"], "--block-ms"), (["--noise-dbfs", "3"], "--noise-dbfs"),
    (["--noise-dbfs", "nan"], "--noise-dbfs"), (["--noise-dbfs", "loud"], "--noise-dbfs"),
    ([], "--data")])
def test_bad_arguments_are_usage_errors(tmp_path, args, msg):
    r = tool(*(["--data", str(tmp_path)] if args != [] else []), *args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_an_unusable_model_is_a_clear_error(tmp_path):
    folder = recordings()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    for model in (str(tmp_path / "missing.npz"), str(bad), "builtin:nope"):
        r = tool("--data", str(folder), "--speakers", "george", "--model", model)
        assert r.returncode == 2 and "spikeedge run failed" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_missing_recordings_are_named(tmp_path):
    r = tool("--data", str(tmp_path / "nowhere"), "--speakers", "george")
    assert r.returncode == 2 and "0_george_1.wav" in r.stderr and "Traceback" not in r.stderr


def _wav(path, rate, n=800, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(n * channels, np.int16).tobytes())
    return path


def test_stream_layout_and_bad_recordings(tmp_path):
    a, b = _wav(tmp_path / "a.wav", 8000, 800), _wav(tmp_path / "b.wav", 8000, 400)
    spans = build_stream([a, b], tmp_path / "s.wav", gap_s=0.5)
    assert np.allclose(spans, [(0.5, 0.6), (1.1, 1.15)], atol=1e-12)
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert w.getnframes() == 800 + 400 + 3 * 4000 and w.getframerate() == 8000
        y = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
    # the room noise lies under the whole stream, recordings included, at its level
    for a0, b0 in [(0, 4000), (4000, 4800), (8800, 9200)]:
        level = 20 * np.log10(np.sqrt(np.mean(y[a0:b0] ** 2)))
        assert abs(level - (-61.0)) < 1.0, (a0, level)
    with pytest.raises(ValueError, match="noise level"):
        build_stream([a], tmp_path / "w.wav", noise_dbfs=float("nan"))
    with pytest.raises(ValueError, match="Hz"):
        build_stream([a, _wav(tmp_path / "c.wav", 16000)], tmp_path / "t.wav")
    with pytest.raises(ValueError, match="mono"):
        build_stream([_wav(tmp_path / "d.wav", 8000, channels=2)], tmp_path / "u.wav")
    with pytest.raises(ValueError, match="no recordings"):
        build_stream([], tmp_path / "v.wav")
