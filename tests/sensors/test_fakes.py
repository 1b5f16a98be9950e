"""Shipped fakes: deterministic, block-size independent, ground truth included."""

from __future__ import annotations

import numpy as np
import pytest

from spikeedge.sensors import open_source


def collect(url, **kw):
    src = open_source(url, **kw)
    blocks = list(src)
    return src, blocks, np.concatenate([b.samples for b in blocks])


@pytest.mark.parametrize("url", ["fake:ecg?duration=20", "fake:tone?noise=0.1",
                                 "fake:emg?duration=12"])
def test_fakes_are_deterministic_and_block_size_independent(url):
    _, _, a = collect(url, block_size=1000)
    _, _, b = collect(url, block_size=77)
    _, _, c = collect(url + "&seed=5", block_size=1000)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tone_is_the_requested_sine():
    src, blocks, x = collect("fake:tone?freq=1000&rate=8000&duration=0.5&amplitude=0.25")
    n = np.arange(4000)
    assert src.rate == 8000 and x.shape == (4000, 1)
    np.testing.assert_allclose(x[:, 0], 0.25 * np.sin(2 * np.pi * 1000 * n / 8000), atol=1e-6)


def test_ecg_ground_truth_beats_classes_and_r_peaks():
    src, blocks, x = collect("fake:ecg?duration=120&seed=2&noise=0&wander=0&pvc=0.1&apc=0.1",
                             block_size=500)
    beats = np.concatenate([b.info["beat_samples"] for b in blocks])
    classes = sum((b.info["beat_classes"] for b in blocks), [])
    assert len(beats) == len(classes) and 120 <= len(beats) <= 170  # ~70 bpm
    assert {"N", "S", "V"} <= set(classes)
    assert np.all(np.diff(beats) > 0.25 * 360)
    # R peaks of normal beats are local maxima about R_AMPLITUDE_MV high.
    n_beats = beats[np.array(classes) == "N"]
    n_beats = n_beats[(n_beats > 20) & (n_beats < len(x) - 20)]
    peaks = np.array([np.argmax(x[b - 10 : b + 11, 0]) - 10 for b in n_beats])
    assert np.all(np.abs(peaks) <= 2)
    assert 0.9 < np.median(x[n_beats, 0]) < 1.5
    # Premature beats come early: V and S coupling intervals are short.
    rr = np.diff(beats) / 360
    prev_rr = rr[:-1]
    v_idx = [i for i, c in enumerate(classes[1:-1], 1) if c == "V"]
    assert np.all(rr[np.array(v_idx) - 1] < np.median(prev_rr))


def test_emg_labels_and_myo_range():
    src, blocks, x = collect("fake:emg?duration=30", block_size=64)
    labels = np.concatenate([b.info["labels"] for b in blocks])
    assert x.shape == (6000, 8) and labels.shape == (6000,)
    assert x.min() >= -128 and x.max() <= 127 and np.all(x == np.round(x))
    rest, active = x[labels == 0].std(), x[labels > 0].std()
    assert active > 2 * rest
