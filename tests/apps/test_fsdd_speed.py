"""Speed perturbation and noise copies of the ``fsdd-digits`` trainer (tools/train_fsdd.py):
the waveform augmentation, the ``wavaug:`` training source, the version bookkeeping of
``--speeds`` / ``--snrs`` / nested candidates, the feature cache, and usage errors."""
import argparse
import wave

import numpy as np
import pytest

from spikeedge.apps.tasks import DataError
from spikeedge.sensors import open_source
from spikeedge.sensors.errors import SourceConfigError
from spikeedge.tools import train_fsdd
from spikeedge.tools.train_fsdd import (
    PLAIN,
    _candidates,
    _snrs,
    _speeds,
    augment_waveform,
    candidate_versions,
    main,
    version_name,
    version_url,
)


def tone(f=500.0, n=8000, rate=8000):
    return 0.3 * np.sin(2 * np.pi * f * np.arange(n) / rate)


def peak_hz(x, rate=8000):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * rate / len(x)


def write_wav(path, x, rate=8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.parametrize("speed", [0.9, 1.1, 0.8])
def test_speed_scales_duration_and_frequency_together(speed):
    x = tone(500.0)
    y = augment_waveform(x, speed)
    assert abs(len(y) - len(x) / speed) <= 1
    assert peak_hz(y) == pytest.approx(500.0 * speed, abs=3.0)
    np.testing.assert_array_equal(augment_waveform(x, 1.0), x)     # speed 1: untouched


def test_noise_has_the_requested_snr_and_is_seeded():
    x = tone(300.0, n=40000)
    y = augment_waveform(x, 1.0, 10.0, np.random.default_rng(5))
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)
    again = augment_waveform(x, 1.0, 10.0, np.random.default_rng(5))
    np.testing.assert_array_equal(y, again)


@pytest.mark.parametrize("kw", [{"speed": 0.3}, {"speed": 2.5}, {"speed": np.nan},
                                {"snr_db": 100.0}, {"snr_db": np.inf}])
def test_augment_waveform_rejects_bad_values(kw):
    with pytest.raises(SourceConfigError):
        augment_waveform(tone(), **kw)


def test_wavaug_source_replays_a_perturbed_copy_at_the_file_rate(tmp_path):
    path = tmp_path / "3_anna_7.wav"
    write_wav(path, tone(400.0))

    def read(url):
        src = open_source(url)
        with src:
            return src.rate, np.concatenate([b.samples for b in src]).astype(np.float64).reshape(-1)

    rate0, x = read(f"wav:{path}")
    rate, y = read(version_url(f"wav:{path}", (0.0, 1.1, None)))
    assert rate == rate0 == 8000
    assert abs(len(y) - len(x) / 1.1) <= 1
    assert peak_hz(y) == pytest.approx(440.0, abs=3.0)
    _, n1 = read(version_url(f"wav:{path}", (0.0, 1.0, 20.0)))
    _, n2 = read(version_url(f"wav:{path}", (0.0, 1.0, 20.0)))
    np.testing.assert_array_equal(n1, n2)                  # the same copy in every run
    assert len(n1) == len(x) and not np.array_equal(n1, x)


@pytest.mark.parametrize("query", ["speed=abc", "speed=5", "snr=200", "resample=16000",
                                   "nosuch=1"])
def test_wavaug_source_bad_options_are_config_errors(tmp_path, query):
    path = tmp_path / "1_anna_0.wav"
    write_wav(path, tone())
    with pytest.raises(SourceConfigError):
        open_source(f"wavaug:{path}?{query}")


def test_version_urls_and_names():
    assert version_url("wav:a/1_x_0.wav", PLAIN) == "wav:a/1_x_0.wav"
    assert version_url("wav:a/1_x_0.wav", (1.0, 1.0, None)) == "wav:a/1_x_0.wav"  # encoder
    assert version_url("wav:a/1_x_0.wav", (0.0, 0.9, 20.0)) == \
        "wavaug:a/1_x_0.wav?speed=0.9&snr=20.0"
    with pytest.raises(DataError):
        version_url("wav:a.wav?resample=8000", (0.0, 0.9, None))
    assert version_name(PLAIN) == "plain"
    assert version_name((0.0, 1.1, 10.0)) == "speed 1.1, snr 10 dB"


def test_candidate_versions_pick_subsets_of_the_command_line():
    versions = [PLAIN, (-1.0, 1.0, None), (1.0, 1.0, None), (0.0, 0.9, None),
                (0.0, 1.1, None), (0.0, 1.0, 20.0)]
    assert candidate_versions({"segments": 4}, versions) == [0, 1, 2, 3, 4, 5]
    assert candidate_versions({"segments": 4, "speeds": [], "snrs": []}, versions) == [0, 1, 2]
    assert candidate_versions({"segments": 4, "speeds": [1.1], "shifts": [],
                               "snrs": []}, versions) == [0, 4]
    with pytest.raises(argparse.ArgumentTypeError):
        candidate_versions({"segments": 4, "speeds": [0.7]}, versions)


def test_speed_and_snr_option_parsing():
    assert _speeds("0.9,1.1") == [0.9, 1.1]
    assert _snrs("20, 10") == [20.0, 10.0]
    for bad in ("1", "0.2", "3", "x", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            _speeds(bad)
    for bad in ("x", "100", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            _snrs(bad)
    for bad in ('[{"segments": 4, "speeds": 0.9}]', '[{"segments": 4, "snrs": ["a"]}]',
                '[{"segments": 4, "shifts": [true]}]'):
        with pytest.raises(argparse.ArgumentTypeError):
            _candidates(bad)


@pytest.mark.parametrize("argv", [
    ["--speeds", "1"],
    ["--speeds", "fast"],
    ["--snrs", "200"],
    ["--speeds", "0.9", "--nested", '[{"segments": 4, "speeds": [1.1]}]'],
])
def test_command_line_errors_are_usage_errors(argv, tmp_path, capsys):
    for i in range(2):
        write_wav(tmp_path / f"{i}_anna_{i}.wav", tone(300.0 + 100 * i, n=800))
    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path), *argv])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_feature_cache_is_reused_only_for_the_same_settings(tmp_path, monkeypatch):
    calls = []

    def fake_collect(program, meta, recs, versions, jobs=1, layouts=(None,)):
        calls.append(list(versions))
        return ([np.full((len(versions), len(recs), 3), len(calls), np.float32)
                 for _ in layouts], {"events": 1, "wall_s": 0.5, "decisions": len(recs)})

    monkeypatch.setattr(train_fsdd, "collect", fake_collect)

    class Rec:
        def __init__(self, url):
            self.url = url

    class Prog:
        weights = np.arange(4)

    recs = [Rec("wav:a.wav"), Rec("wav:b.wav")]
    path = tmp_path / "f.npz"
    args = (Prog(), {"m": 1}, recs)
    v1 = [PLAIN, (0.0, 0.9, None)]
    (a,), cost = train_fsdd._collect_cached(str(path), *args, v1, 1, [None])
    (b,), cost2 = train_fsdd._collect_cached(str(path), *args, v1, 1, [None])
    assert len(calls) == 1 and cost == cost2
    np.testing.assert_array_equal(a, b)
    (c,), _ = train_fsdd._collect_cached(str(path), *args, [PLAIN], 1, [None])
    assert len(calls) == 2 and c.shape[0] == 1 and c[0, 0, 0] == 2
    train_fsdd._collect_cached(str(path), Prog(), {"m": 2}, recs, [PLAIN], 1, [None])
    assert len(calls) == 3                         # other metadata: streamed again
