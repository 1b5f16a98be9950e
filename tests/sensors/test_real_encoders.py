"""Encoders and the QRS detector on the real recordings in ``../shared/data``.

FSDD speech through the audio presets (8 kHz, and resampled to 16 kHz), Myo sEMG sessions
through the EMG presets, MIT-BIH through the ECG presets and the streaming QRS detector. Each
test checks what the encoder is for (activity where the signal is, none where it is not, every
channel alive, the same spikes under any block split), not just that it runs. Every test skips
with the reason when the data folder is absent (set ``SPIKEEDGE_DATA`` to point elsewhere).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeedge.sensors.app_encoders  # noqa: F401  (registers the emg-lif preset)
from spikeedge.sensors import open_source
from spikeedge.sensors.presets import make_encoder
from spikeedge.sensors.qrs import (
    MultiLeadQrsDetector,
    QrsDetector,
    detect_qrs,
    reference_annotations,
    score_beats,
)

DATA = (Path(os.environ["SPIKEEDGE_DATA"]) if os.environ.get("SPIKEEDGE_DATA")
        else Path(__file__).resolve().parents[3] / "shared" / "data")
SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")
RNG_SEED = 20261129


def _need(sub: str) -> Path:
    path = DATA / sub
    if not path.exists():
        pytest.skip(f"real recordings not found at {path} (set SPIKEEDGE_DATA to the shared "
                    "data folder to run this test)")
    return path


def _missing(sub: str) -> str | None:
    path = DATA / sub
    return None if path.exists() else (f"real recordings not found at {path} (set "
                                       "SPIKEEDGE_DATA to the shared data folder)")


@functools.lru_cache(maxsize=64)
def _read(url: str, **opts):
    """(samples [n, ch] float64, per-sample labels or None, rate) of a whole source."""
    with open_source(url, block_size=4096, **opts) as src:
        blocks = list(src)
    x = np.concatenate([b.samples for b in blocks]).astype(np.float64)
    labels = None
    if blocks and "labels" in blocks[0].info:
        labels = np.concatenate([b.info["labels"] for b in blocks])
    return x, labels, src.rate


def _random_splits(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A few split-point sets: single samples at the start, random cuts, many small blocks."""
    return [np.array([1, 2, 3]),
            np.sort(rng.integers(0, n, 5)),
            np.sort(rng.integers(0, n, 40)),
            np.arange(97, n, 97)]


def _assert_split_exact(name: str, x: np.ndarray, rate: float) -> None:
    enc = make_encoder(name, in_rate=rate, channels=x.shape[1])
    whole = enc.process(x)
    rng = np.random.default_rng(RNG_SEED)
    for cuts in _random_splits(len(x), rng):
        enc.reset()
        parts = [enc.process(p) for p in np.split(x, cuts)]
        split = np.concatenate(parts)
        assert split.shape == whole.shape, (name, cuts[:5])
        diff = np.argwhere(split != whole)
        assert diff.size == 0, f"{name}: first differing (step, output) {diff[0]}, cuts {cuts[:5]}"


# --------------------------------------------------------------------------- FSDD audio

def _fsdd_files(root: Path) -> list[Path]:
    files = [root / f"{d}_{s}_{i}.wav" for s in SPEAKERS for d, i in ((0, 0), (7, 3))]
    missing = [f.name for f in files if not f.exists()]
    assert not missing, f"FSDD files missing: {missing}"
    return files


@pytest.mark.parametrize("preset", ["audio-delta", "audio-lif", "audio-delta-agc"])
def test_fsdd_speech_drives_every_band(fsdd, preset):
    """Ten utterances (five speakers, 'zero' and 'seven') at 8 kHz: the exact step count,
    a sane spike rate, every cochlear band active, and nothing at all for silence."""
    per_out = None
    for f in _fsdd_files(fsdd):
        x, _, rate = _read(f"wav:{f}")
        assert rate == 8000
        enc = make_encoder(preset, in_rate=rate, channels=1)
        s = enc.process(x)
        assert s.shape == (len(x) * 1000 // 8000, enc.n_out), (f.name, s.shape)
        rate_hz = s.sum() / (len(x) / rate)
        assert 500 <= rate_hz <= 50_000, (f.name, rate_hz)  # measured 2.6k..11.5k spikes/s
        per_out = s.sum(0) if per_out is None else per_out + s.sum(0)
    assert (per_out > 0).all(), f"silent outputs: {np.flatnonzero(per_out == 0)}"
    silence = make_encoder(preset, in_rate=8000, channels=1).process(np.zeros((8000, 1)))
    assert silence.sum() == 0


def test_fsdd_lif_fires_more_in_loud_frames(fsdd):
    """LIF band neurons follow the band energy: over ten utterances, steps louder than each
    file's median frame RMS carry clearly more spikes than the quieter half."""
    loud = quiet = 0
    for f in _fsdd_files(fsdd):
        x, _, rate = _read(f"wav:{f}")
        s = make_encoder("audio-lif", in_rate=rate, channels=1).process(x)
        hop = int(rate) // 1000
        rms = np.sqrt((x[: s.shape[0] * hop, 0].reshape(-1, hop) ** 2).mean(1))
        is_loud = rms >= np.median(rms)
        loud, quiet = loud + int(s[is_loud].sum()), quiet + int(s[~is_loud].sum())
    assert loud > 1.2 * quiet, (loud, quiet)  # measured 1.08..4.1 per file, 1.47 median


@pytest.mark.parametrize("preset", ["audio-delta", "audio-lif", "audio-delta-agc"])
def test_fsdd_resampled_to_16k_encodes_alike(fsdd, preset):
    """The front end is rate-independent: the same utterance resampled to 16 kHz gives a
    spike count within 30 % of the 8 kHz one (measured 0.84..1.17)."""
    for f in _fsdd_files(fsdd)[::4]:  # three speakers
        x8, _, r8 = _read(f"wav:{f}")
        x16, _, r16 = _read(f"wav:{f}", resample=16000)
        assert r16 == 16000 and abs(len(x16) - 2 * len(x8)) <= 2
        n8 = make_encoder(preset, in_rate=r8, channels=1).process(x8).sum()
        n16 = make_encoder(preset, in_rate=r16, channels=1).process(x16).sum()
        assert 0.7 <= n16 / n8 <= 1.3, (f.name, n8, n16)


def test_fsdd_iir_lif_fires_on_speech(fsdd):
    total = 0
    for f in _fsdd_files(fsdd)[:4]:
        x, _, rate = _read(f"wav:{f}")
        total += int(make_encoder("audio-iir-lif", in_rate=rate, channels=1).process(x).sum())
    assert total > 100


@pytest.mark.parametrize("preset", ["audio-delta", "audio-lif", "audio-iir-lif",
                                    "audio-delta-agc"])
def test_fsdd_split_exact(fsdd, preset):
    x, _, rate = _read(f"wav:{_fsdd_files(fsdd)[1]}")
    _assert_split_exact(preset, x, rate)


# --------------------------------------------------------------------------- Myo EMG

@pytest.mark.parametrize("preset", ["emg-delta", "emg-lif"])
@pytest.mark.parametrize("session", ["12345-1", "78945-2"])
def test_myo_gestures_raise_activity_on_every_channel(myo, preset, session):
    """The seven gesture files of a session (rest and gesture alternating, per-sample labels):
    every output spikes, and outputs fire faster during gestures than at rest."""
    rest_spikes = rest_steps = gest_steps = 0
    gest_spikes = None
    per_out = None
    for g in range(1, 8):
        x, labels, rate = _read(f"myo:{myo / session / f'{g}.txt'}")
        assert x.shape[1] == 8 and labels is not None
        enc = make_encoder(preset, in_rate=rate, channels=8)
        s = enc.process(x).astype(np.int64)
        step_label = labels[np.minimum((np.arange(s.shape[0]) * rate / enc.step_hz).astype(int),
                                       len(labels) - 1)]
        g_mask = step_label != 0
        rest_spikes = rest_spikes + s[~g_mask].sum(0)
        gest_spikes = s[g_mask].sum(0) if gest_spikes is None else gest_spikes + s[g_mask].sum(0)
        rest_steps, gest_steps = rest_steps + int((~g_mask).sum()), gest_steps + int(g_mask.sum())
        per_out = s.sum(0) if per_out is None else per_out + s.sum(0)
    assert (per_out > 0).all(), f"{preset}: silent outputs {np.flatnonzero(per_out == 0)}"
    rest_rate = rest_spikes / rest_steps
    gest_rate = gest_spikes / gest_steps
    # measured: emg-delta 14-16 of 16 outputs higher, mean x3-x7; emg-lif 7-8 of 8, x2-x4
    assert (gest_rate > rest_rate).mean() >= 0.75, (rest_rate, gest_rate)
    assert gest_rate.mean() > 1.8 * rest_rate.mean(), (rest_rate.mean(), gest_rate.mean())


def test_myo_rest_file_is_quieter_than_a_gesture_file(myo):
    x0, _, rate = _read(f"myo:{myo / '12345-1' / '0.txt'}")
    x7, _, _ = _read(f"myo:{myo / '12345-1' / '7.txt'}")
    n = min(len(x0), len(x7))
    rest = make_encoder("emg-delta", in_rate=rate, channels=8).process(x0[:n]).sum()
    fist = make_encoder("emg-delta", in_rate=rate, channels=8).process(x7[:n]).sum()
    assert fist > 2 * rest, (rest, fist)


@pytest.mark.parametrize("preset", ["emg-delta", "emg-lif"])
def test_myo_split_exact(myo, preset):
    x, _, rate = _read(f"myo:{myo / '78945-1' / '5.txt'}")
    _assert_split_exact(preset, x[:4000], rate)


# --------------------------------------------------------------------------- MIT-BIH ECG

def _record(mitbih: Path, rec: str, seconds: float | None = None):
    x, _, rate = _read(f"wfdb:{mitbih / rec}", ann="none")
    beats, vf = reference_annotations(mitbih / rec)
    if seconds is not None:
        n = int(seconds * rate)
        x, beats = x[:n], beats[beats < n]
    return x, beats, vf, rate


@pytest.mark.parametrize("preset", ["ecg-delta", "ecg-sigma-delta", "ecg-level"])
def test_mitbih_ecg_spikes_cluster_on_the_beats(mitbih, preset):
    """Record 101, both leads, 60 s: every output is active, the rate is sane, and spikes
    crowd around the annotated beats (±80 ms windows cover 19 % of the time and hold
    41-68 % of the spikes, measured)."""
    x, beats, _, rate = _record(mitbih, "101", 60)
    enc = make_encoder(preset, in_rate=rate, channels=2)
    s = enc.process(x)
    assert s.shape == (60_000, 4)
    assert (s.sum(0) >= 10).all(), s.sum(0)
    assert 10 <= s.sum() / 60 <= 1000, s.sum() / 60
    near = np.zeros(s.shape[0], dtype=bool)
    for b in beats:
        c = int(b * enc.step_hz / rate)
        near[max(0, c - 80) : c + 80] = True
    share = s[near].sum() / s.sum()
    assert share >= 1.8 * near.mean(), (share, near.mean())


@pytest.mark.parametrize("preset", ["ecg-delta", "ecg-sigma-delta", "ecg-level"])
def test_mitbih_ecg_split_exact(mitbih, preset):
    x, _, _, rate = _record(mitbih, "208", 20)
    _assert_split_exact(preset, x, rate)


def test_mitbih_qrs_short_records(mitbih):
    """Five minutes each: a clean record on one lead, and 208 (ventricular couplets, fusion
    beats) and 116 (the MLII electrode saturates) on both leads. EC57 scoring."""
    x, beats, vf, rate = _record(mitbih, "101", 300)
    s = score_beats(detect_qrs(x[:, 0], rate), beats, rate, exclude=vf)
    assert s["n"] > 300 and s["se"] >= 0.99 and s["ppv"] >= 0.99, s  # measured 341/342, 2 FP
    x, beats, vf, rate = _record(mitbih, "208", 300)
    s = score_beats(detect_qrs(x, rate), beats, rate, exclude=vf)
    assert s["n"] > 450 and s["se"] >= 0.99 and s["ppv"] >= 0.99, s
    x, beats, vf, rate = _record(mitbih, "116", None)
    lo, hi = int(990 * rate), int(1290 * rate)  # the MLII lead saturates at 1000-1003 s
    seg, ref = x[lo:hi], beats[(beats >= lo) & (beats < hi)] - lo
    one = score_beats(detect_qrs(seg[:, 0], rate), ref, rate)
    two = score_beats(detect_qrs(seg, rate), ref, rate)
    assert two["se"] >= 0.995 and two["ppv"] >= 0.995, two
    assert two["fn"] < one["fn"], (one, two)  # the second lead fills what MLII lost


def test_mitbih_qrs_flags_vf_episode_only_in_207(mitbih):
    _, vf = reference_annotations(mitbih / "207")
    assert len(vf) == 6 and all(b > a for a, b in vf)
    assert reference_annotations(mitbih / "101")[1] == []


@functools.lru_cache(maxsize=1)
def _qrs_segment():
    x, _, rate = _read(f"wfdb:{DATA / 'mitbih' / '116'}", ann="none")
    return x[int(960 * rate) : int(1040 * rate)]  # includes the MLII saturation


@pytest.mark.skipif(_missing("mitbih") is not None, reason=str(_missing("mitbih")))
@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(0, 80 * 360), max_size=8), two=st.booleans())
def test_mitbih_qrs_streaming_exact_on_real_signal(cuts, two):
    x = _qrs_segment() if two else _qrs_segment()[:, :1]
    det = MultiLeadQrsDetector(360, 2) if two else QrsDetector(360)
    whole = np.concatenate([det.process(x if two else x[:, 0]), det.flush()])
    assert len(whole) > 80
    det.reset()
    parts = [det.process(p if two else p[:, 0]) for p in np.split(x, sorted(cuts))]
    split = np.concatenate(parts + [det.flush()])
    assert np.array_equal(whole, split), np.setxor1d(whole, split)[:5]
