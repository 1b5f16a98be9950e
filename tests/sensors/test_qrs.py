"""Streaming QRS detector: exact under splits, accurate on fakes and on MIT-BIH."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeedge.sensors import open_source
from spikeedge.sensors.qrs import QrsDetector, evaluate_record, score_beats


def fake_ecg(seconds=120, **opts):
    q = "&".join(f"{k}={v}" for k, v in {"duration": seconds, **opts}.items())
    src = open_source(f"fake:ecg?{q}", block_size=1000)
    blocks = list(src)
    x = np.concatenate([b.samples[:, 0] for b in blocks])
    beats = np.concatenate([b.info["beat_samples"] for b in blocks])
    return x, beats


X_FAKE, BEATS_FAKE = fake_ecg(60, seed=4, pvc=0.08, apc=0.08, noise=0.05)


def test_detects_fake_ecg_beats_including_ectopics():
    d0 = QrsDetector(360)
    det = np.concatenate([d0.process(X_FAKE), d0.flush()])
    s = score_beats(det, BEATS_FAKE, 360)
    assert s["se"] >= 0.99 and s["ppv"] >= 0.99, s


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, len(X_FAKE)), max_size=6))
def test_streaming_exact(cuts):
    d0 = QrsDetector(360)
    whole = np.concatenate([d0.process(X_FAKE), d0.flush()])
    det = QrsDetector(360)
    split = np.concatenate([det.process(p) for p in np.split(X_FAKE, sorted(cuts))]
                           + [det.flush()])
    assert np.array_equal(whole, split)


def test_score_beats_matching():
    s = score_beats([100, 400, 1000], [98, 420, 700], 360)
    assert (s["tp"], s["fn"], s["fp"]) == (2, 1, 1)


def test_mitbih_101(mitbih):
    r = evaluate_record(mitbih / "101")
    assert r["n"] == 1865
    assert r["se"] > 0.99 and r["ppv"] > 0.99, r
