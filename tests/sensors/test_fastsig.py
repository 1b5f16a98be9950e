"""The compiled encoder and QRS loops (spikeedge.sensors._fastsig) against the NumPy code they
replace: identical spikes and beats for any block split; stored filter designs equal SciPy's."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeedge.sensors.encoders as enc_mod
import spikeedge.sensors.qrs as qrs_mod
from spikeedge.sensors import _designs, open_source
from spikeedge.sensors.presets import make_encoder

pytestmark = pytest.mark.skipif(enc_mod._fast is None, reason="compiled sensor loops not built")


def _signal(url, n=None):
    with open_source(url, block_size=4096) as src:
        x = np.concatenate([b.samples for b in src])
    return x if n is None else x[:n]


ECG = _signal("fake:ecg?seed=5&duration=40&noise=0.05&pvc=0.1&apc=0.1")
TONE = _signal("fake:tone?rate=16000&freq=440&noise=0.05&duration=1.5")
EMG = np.random.default_rng(3).normal(0, 30, (3000, 8)).astype(np.float32)
SIGNALS = {"ecg-delta": ECG, "ecg-level": ECG, "audio-lif": TONE, "audio-delta": TONE,
           "emg-delta": EMG}


def _encode(name, x, cuts, fast):
    saved = enc_mod._fast
    enc_mod._fast = enc_mod._fast if fast else None
    try:
        e = make_encoder(name)
        return np.concatenate([e.process(p) for p in np.split(x, cuts)])
    finally:
        enc_mod._fast = saved


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(sorted(SIGNALS)), data=st.data())
def test_compiled_encoders_equal_numpy(name, data):
    x = SIGNALS[name]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(x)), max_size=12)))
    fast = _encode(name, x, cuts, True)
    assert np.array_equal(fast, _encode(name, x, cuts, False))
    assert np.array_equal(fast, _encode(name, x, [], True))


def test_compiled_chain_reports_non_finite_input_as_before():
    e = make_encoder("ecg-delta")
    x = ECG[:100].astype(np.float64)
    x[50] = np.nan
    with pytest.raises(Exception, match="NaN or inf"):
        e.process(x)


def _beats(x, block, fast):
    saved = qrs_mod._fast
    qrs_mod._fast = qrs_mod._fast if fast else None
    try:
        d = qrs_mod.QrsDetector(360)
        parts = [d.process(x[i:i + block]) for i in range(0, len(x), block)]
        return np.concatenate(parts + [d.flush()])
    finally:
        qrs_mod._fast = saved


@pytest.mark.parametrize("block", [4, 37, 100000])
def test_compiled_qrs_front_end_equals_numpy(block):
    x = ECG[:, 0]
    fast = _beats(x, block, True)
    assert len(fast) > 40
    assert np.array_equal(fast, _beats(x, block, False))


def test_stored_designs_are_scipys():
    sps = _designs.signal()
    for order, wn, btype, fs in _designs.DESIGNS:
        sos = _designs.butter_sos(order, wn, btype, fs)
        assert np.array_equal(sos, sps.butter(order, wn, btype, fs=fs, output="sos"))
        assert np.array_equal(_designs.sosfilt_zi(sos), sps.sosfilt_zi(sos))
    # a design that is not stored comes from SciPy
    assert np.array_equal(_designs.butter_sos(3, 7.0, "lowpass", 123.0),
                          sps.butter(3, 7.0, "lowpass", fs=123.0, output="sos"))
