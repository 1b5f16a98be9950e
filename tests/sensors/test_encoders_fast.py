"""The encoders' compiled fast path (scratch buffers, chunking, the SIMD filterbank, the step
binner) against the plain NumPy/SciPy path: bit-identical band signals and spikes, for any block
split, and no stage writes to its input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeedge.sensors.encoders as enc_mod
from spikeedge.sensors import _designs
from spikeedge.sensors.encoders import (
    Chain,
    CochleaFilterbank,
    Compress,
    FftFilterbank,
    LIFEncoder,
    Rectify,
)
from spikeedge.sensors.errors import EncoderConfigError
from spikeedge.sensors.presets import make_encoder

pytestmark = pytest.mark.skipif(enc_mod._fast is None, reason="compiled sensor loops not built")

AUDIO = 0.1 * np.random.default_rng(7).standard_normal((12000, 1))


def _encode(make, x, cuts, fast):
    saved = enc_mod._fast
    enc_mod._fast = saved if fast else None
    try:
        e = make()
        return np.concatenate([e.process(p) for p in np.split(x, sorted(cuts))])
    finally:
        enc_mod._fast = saved


@pytest.mark.parametrize("order", [1, 2])
def test_simd_filterbank_equals_scipy_per_band(order):
    fb = CochleaFilterbank(16000, bands=32, order=order)
    got = np.concatenate([fb._fast_apply(np.ascontiguousarray(AUDIO[a:a + 1000]))[0].copy()
                          for a in range(0, len(AUDIO), 1000)])
    x = AUDIO[:, 0]
    want = np.stack([_designs.signal().sosfilt(s, x) for s in fb.sos], axis=1)
    diff = np.argwhere(got != want)
    assert not len(diff), f"first difference at sample {diff[0][0]}, band {diff[0][1]}"


def test_filterbank_state_is_shared_by_both_paths():
    a = CochleaFilterbank(8000, bands=16)
    b = CochleaFilterbank(8000, bands=16)
    x = AUDIO[:6000]
    want = a.process(x)
    first = b.process(x[:2500])                       # SciPy path
    rest = b._fast_apply(np.ascontiguousarray(x[2500:]))[0]   # compiled path continues
    assert np.array_equal(np.concatenate([first, rest]), want)


def _iir_chain():
    """The audio-iir-lif stages with a LIF threshold that white noise crosses."""
    return Chain(CochleaFilterbank(16000, 32), Rectify(16000, 32, "half"),
                 Compress(16000, 32, "log", ref=1e-3),
                 LIFEncoder(16000, 1000, 32, tau=0.005, threshold=1.0))


AUDIO_MAKERS = {name: (lambda name=name: make_encoder(name))
                for name in ("audio-delta", "audio-lif", "audio-iir-lif")}
AUDIO_MAKERS["iir-chain"] = _iir_chain


@pytest.mark.parametrize("name", sorted(AUDIO_MAKERS))
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_audio_encoders_compiled_equal_numpy_under_splits(name, data):
    make, x = AUDIO_MAKERS[name], AUDIO[:6000]
    cuts = data.draw(st.lists(st.integers(0, len(x)), max_size=6), label="cuts")
    fast = _encode(make, x, cuts, True)
    if name != "audio-iir-lif":  # that preset is silent on this input (threshold 4)
        assert fast.sum() > 0
    assert np.array_equal(fast, _encode(make, x, cuts, False))
    assert np.array_equal(fast, _encode(make, x, [], True))


def test_long_input_is_chunked_with_the_same_spikes():
    # the FFT filterbank lowers the rate 16x, so its chain's pieces are 16x longer
    assert make_encoder("audio-lif")._chunk == 16 * make_encoder("audio-iir-lif")._chunk
    for name, piece in (("audio-lif", 777), ("audio-iir-lif", None)):
        e = make_encoder(name)
        if piece:
            e._chunk = piece                          # not a multiple of the 16-sample hop
        assert e._chunk < len(AUDIO)
        chunked = e.process(AUDIO)
        e.reset()
        e._chunk = 10 ** 9                            # one piece
        whole = e.process(AUDIO)
        assert whole.sum() > 0 or name == "audio-iir-lif"
        assert np.array_equal(chunked, whole)


def test_rectify_before_compress_is_skipped_only_on_the_fast_path():
    c = Chain(Rectify(1000, 2, "half"), Compress(1000, 2, "log", ref=0.01),
              LIFEncoder(1000, 1000, 2, threshold=0.5))
    assert not any(isinstance(s, Rectify) for s in c._fast_stages)
    x = np.random.default_rng(2).normal(0, 0.05, (3000, 2))
    assert np.array_equal(_encode(lambda: c, x, [700, 1900], True),
                          _encode(lambda: Chain(Rectify(1000, 2, "half"),
                                                Compress(1000, 2, "log", ref=0.01),
                                                LIFEncoder(1000, 1000, 2, threshold=0.5)),
                                  x, [700, 1900], False))


@pytest.mark.parametrize("name", ["audio-delta", "audio-iir-lif", "ecg-delta", "emg-delta"])
def test_input_is_never_written_and_outputs_are_fresh(name):
    e = make_encoder(name)
    rate, ch = enc_mod._as_fraction(e.in_rate, "r"), e.channels
    x = np.random.default_rng(3).normal(0, 0.1, (int(rate) // 2, ch))
    keep = x.copy()
    a = e.process(x)
    b = e.process(x)
    assert np.array_equal(x, keep)
    assert not np.shares_memory(a, b)


def test_fft_filterbank_keeps_its_state_across_paths():
    a, b = FftFilterbank(16000, 32), FftFilterbank(16000, 32)
    x = AUDIO[:5000]
    want = a.process(x)
    got = np.concatenate([b.process(x[:1234]), b._fast_apply(np.ascontiguousarray(
        x[1234:3000]))[0].copy(), b.process(x[3000:])])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("scale", [1e-6, 0.1, 1.0, 1e5, 1e9])
def test_fft_band_pool_equals_numpy_from_silence_to_saturation(scale):
    # 1e5 and 1e9 push bin powers past the 2**50 cap, where the int64 sums wrap as NumPy's do
    x = scale * np.random.default_rng(11).standard_normal((3000, 1))
    a, b = FftFilterbank(16000, 32), FftFilterbank(16000, 32)
    want = a.process(x)
    got = b._fast_apply(np.ascontiguousarray(x))[0]
    assert got.shape == want.shape == (3000 // 16, 32)  # zeros before the first sample
    assert np.array_equal(got, want)


@pytest.mark.parametrize("rate,window", [(16000, None), (8000, None), (4000, 64),
                                         (16000, 2048)])
def test_own_fft_is_the_dft(rate, window):
    fb = FftFilterbank(rate, 8, window=window, fmin=300.0)
    frames = np.random.default_rng(13).standard_normal((9, fb.window))
    want = np.abs(np.fft.rfft(frames * fb._win, axis=1)[:, fb._lo:fb._hi]) ** 2
    got = fb.power(frames)
    assert got.shape == want.shape
    assert got.dtype == np.float32
    assert np.max(np.abs(got - want)) <= 1e-5 * want.max()  # single precision


def test_fft_window_must_be_a_power_of_two():
    for bad in (400, 2, 0):
        with pytest.raises(EncoderConfigError, match="power of two"):
            FftFilterbank(16000, 8, window=bad)


def test_compiled_fft_refuses_mismatched_tables():
    fb = FftFilterbank(16000, 32)
    buf, out = np.zeros(2000), np.zeros((10, 32))
    args = [buf, 10, 16, fb._win32, fb._rev, fb._twr, fb._twi, fb._pcr, fb._pci, fb._lo,
            fb._starts64, fb._w_up, fb._norm, fb._fft_scratch, out]
    enc_mod._fast.fft_filterbank(*args)                   # as the filterbank calls it
    bad = {1: 200, 4: fb._rev[:-1], 5: fb._twr[:-1], 8: fb._pci[:-1], 9: 10 ** 6,
           13: np.zeros(16, np.float32), 14: np.zeros((10, 31))}
    for i, value in bad.items():
        with pytest.raises(ValueError, match="fft_filterbank"):
            enc_mod._fast.fft_filterbank(*[value if j == i else a for j, a in enumerate(args)])
    rev = fb._rev.copy()
    rev[3] = 10 ** 6
    with pytest.raises(ValueError, match="rev"):
        enc_mod._fast.fft_filterbank(*[rev if j == 4 else a for j, a in enumerate(args)])


@pytest.mark.parametrize("mode", ["log", "sqrt"])
def test_compiled_compress_equals_numpy(mode):
    x = np.random.default_rng(12).standard_normal((777, 5)) * 1e-3
    x[0, 0], x[1, 1] = -0.0, 0.0
    c = Compress(1000, 5, mode, ref=3e-5)
    y, finite = c._fast_apply(x)
    assert finite and np.array_equal(y, c.process(x))
    assert (y[x <= 0] == 0).all() and (y[x > 0] > 0).all()


def test_compiled_compress_reports_overflow_as_non_finite():
    c = Compress(1000, 1, "log", ref=1e-300)
    y, finite = c._fast_apply(np.array([[1e300], [1.0]]))
    assert not finite and np.isinf(y[0, 0])
    y, finite = c._fast_apply(np.array([[1.0], [-3.0]]))
    assert finite


ECG = (np.sin(np.arange(5000) * 2 * np.pi / 290) + 0.05 * np.random.default_rng(4)
       .standard_normal(5000))[:, None]


def _stagewise(make):
    e = make()
    e._plan = None
    return e


@pytest.mark.parametrize("name", ["ecg-delta", "emg-delta"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_fused_filter_delta_plan_equals_stagewise_path(name, dtype, data):
    if name == "emg-delta":
        x = np.random.default_rng(5).normal(0, 40, (4000, 8)).astype(dtype)
    else:
        x = (ECG + 0.3).astype(dtype)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(x)), max_size=10), label="cuts"))
    fused = make_encoder(name)
    assert fused._plan is not None
    plain = _stagewise(lambda: make_encoder(name))
    a = [fused.process(p) for p in np.split(x, cuts)]
    b = [plain.process(p) for p in np.split(x, cuts)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert np.concatenate(a).sum() > 10
    assert fused.steps_for(7) == plain.steps_for(7)


def test_fused_plan_after_reset_and_one_sample_blocks():
    e = make_encoder("ecg-delta")
    whole = e.process(ECG[:800])
    e.reset()
    ones = np.concatenate([e.process(ECG[i:i + 1]) for i in range(800)])
    assert np.array_equal(ones, whole)


def test_fused_plan_refuses_non_finite_input_without_changing_state():
    e = make_encoder("ecg-delta")
    e.process(ECG[:100].astype(np.float32))
    k = e.encoder._k.copy()
    bad = ECG[100:110].astype(np.float32)
    bad[3] = np.inf
    with pytest.raises(Exception, match="NaN or inf"):
        e.process(bad)
    assert np.array_equal(e.encoder._k, k) and e.encoder._samples == 100


def test_plan_only_for_supported_chains():
    assert make_encoder("audio-delta")._plan is None      # FFT filterbank
    assert make_encoder("ecg-sigma-delta")._plan is None  # not a delta encoder
    assert make_encoder("ecg-delta")._plan is not None


# ---------------------------------------------------------------- sources on the fast path
def _blocks(url, block_size, **kw):
    from spikeedge.sensors import open_source
    with open_source(url, block_size=block_size, **kw) as src:
        return list(src)


@pytest.mark.parametrize("url,key", [("fake:ecg?duration=9&seed=3&pvc=0.2", "beat_samples"),
                                     ("fake:emg?duration=11", "labels")])
def test_fake_ground_truth_is_the_same_for_any_block_size(url, key):
    small, big = _blocks(url, 4), _blocks(url, 5000)
    assert all(b.samples.dtype == np.float32 for b in small)
    assert np.array_equal(np.concatenate([b.samples for b in small]),
                          np.concatenate([b.samples for b in big]))
    a = np.concatenate([b.info[key] for b in small])
    assert len(a) > 5 and np.array_equal(a, np.concatenate([b.info[key] for b in big]))
    if key == "beat_samples":   # every beat is reported in the block that holds it
        for b in small:
            lo = round(b.t0 * b.rate)
            assert all(lo <= s < lo + b.n for s in b.info[key])


def test_wav_preloaded_and_streamed_give_the_same_blocks(tmp_path):
    import wave

    from spikeedge.sensors.readers import WavSource
    p = tmp_path / "a.wav"
    pcm = (np.random.default_rng(1).normal(0, 3000, 5000)).astype("<i2")
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    pre = _blocks(f"wav:{p}", 160)
    saved = WavSource.PRELOAD_BYTES
    WavSource.PRELOAD_BYTES = 0
    try:
        streamed = _blocks(f"wav:{p}", 160)
    finally:
        WavSource.PRELOAD_BYTES = saved
    assert len(pre) == len(streamed) == 32
    for a, b in zip(pre, streamed, strict=True):
        assert a.samples.dtype == np.float32 and np.array_equal(a.samples, b.samples)
    assert np.array_equal(np.concatenate([b.samples for b in pre])[:, 0], pcm / 32768.0)


def test_compiled_step_binner_rounds_exactly_like_numpy():
    # halves (ties to even), values beyond the clamp, negative zero, odd channel counts
    q = 2.0 ** -20
    vals = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.4999, -3.5001, 0.0, -0.0]) * q
    big = np.array([2.0 ** 31, -2.0 ** 31, 2.0 ** 30 - q / 2, 1e300, -1e300])
    x = np.concatenate([vals, big, np.random.default_rng(9).normal(0, 10, 985)])
    for ch in (1, 2, 3, 8):
        xx = np.resize(x, (len(x) // ch * ch,)).reshape(-1, ch)
        outs = []
        for fast in (True, False):
            saved = enc_mod._fast
            enc_mod._fast = saved if fast else None
            try:
                e = Chain(Compress(16000, ch, "sqrt", ref=1.0),
                          LIFEncoder(16000, 1000, ch, threshold=0.05))
                outs.append(e.process(np.abs(xx)))
                b = LIFEncoder(16000, 1000, ch)
                b.process(xx) if not fast else b._fast_apply(np.ascontiguousarray(xx))
                outs.append((b._binner.acc.copy(), b.v.copy()))
            finally:
                enc_mod._fast = saved
        assert np.array_equal(outs[0], outs[2])
        assert np.array_equal(outs[1][0], outs[3][0]) and np.array_equal(outs[1][1], outs[3][1])
