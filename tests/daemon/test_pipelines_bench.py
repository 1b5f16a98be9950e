"""The end-to-end pipeline bench (``spikeedge.pipelines``): what each pipeline runs and what it
reports, on a few seconds of signal in this process."""
from __future__ import annotations

import pytest

from spikeedge import pipelines


@pytest.mark.parametrize("block_ms", [10.0, 1000.0])
def test_ecg_pipeline_decides_per_beat(block_ms):
    r = pipelines.bench_one("ecg", 6.0, block_ms)
    assert r["model"].startswith("ecg-demo") and r["encoder"] == "ecg-delta"
    assert r["signal_s"] == pytest.approx(6.0, abs=0.02)
    assert r["decisions"] >= 3                       # about one per beat after the learning
    assert r["realtime_factor"] > 0 and r["cpu_realtime_factor"] > 0
    assert r["block_latency_ms"]["p99"] >= r["block_latency_ms"]["p50"] > 0
    assert r["peak_rss_mb"] > 0


def test_audio_pipeline_runs_the_shipped_digit_model():
    r = pipelines.bench_one("audio", 2.0, 10.0)
    assert r["model"].startswith("fsdd-digits") and r["encoder"] == "audio-delta"
    assert r["blocks"] == 200 and r["signal_s"] == pytest.approx(2.0)
    assert r["decisions"] == 0       # a steady tone is never voiced for the utterance detector


def test_audio_pipeline_with_the_random_network_decides_per_window():
    r = pipelines.bench_one("audio", 2.0, 10.0, audio_model="random")
    assert r["model"].startswith("audio-bench") and r["encoder"] == "audio-lif"
    assert r["decisions"] == 4       # one per 500 ms window


def test_file_source_holds_the_fake_signal(tmp_path):
    url = pipelines.write_signal_file("audio", 1.0, str(tmp_path))
    assert url.startswith("wav:")
    r = pipelines.bench_one("audio", 1.0, 10.0, url=url)
    assert r["source"] == "wav" and r["signal_s"] == pytest.approx(1.0)
