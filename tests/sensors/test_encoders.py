"""Encoders: streaming exactness under random splits, analytic checks, rate statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeedge.sensors import (
    EncoderConfigError,
    app_encoders,  # noqa: F401  (registers the emg-lif presets)
)
from spikeedge.sensors.encoders import (
    BandPass,
    Chain,
    CochleaFilterbank,
    Compress,
    DeltaEncoder,
    Envelope,
    FftFilterbank,
    LatencyEncoder,
    LevelCrossingEncoder,
    LIFEncoder,
    Notch,
    Parallel,
    PeakNormalize,
    RateEncoder,
    SigmaDeltaEncoder,
    ThresholdEncoder,
)
from spikeedge.sensors.presets import NOMINAL, make_encoder

RNG = np.random.default_rng(1234)


def signal(n, channels, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    slow = np.sin(2 * np.pi * t / (37 + 11 * np.arange(channels)))
    return scale * (slow + 0.3 * rng.standard_normal((n, channels)))


def factories():
    """(name, factory, input) for every encoder, including rates that do not divide."""
    return {
        "delta-360": (lambda: DeltaEncoder(0.1, 360, 1000, 2), signal(900, 2)),
        "delta-16k": (lambda: DeltaEncoder(0.2, 16000, 1000, 1), signal(3000, 1)),
        "level": (lambda: LevelCrossingEncoder(0.25, 360, 1000, 2), signal(900, 2)),
        "level-hyst": (lambda: LevelCrossingEncoder(0.25, 250, 1000, 1, hysteresis=1),
                       signal(700, 1)),
        "sigma-delta": (lambda: SigmaDeltaEncoder(0.002, 360, 1000, 2), signal(900, 2)),
        "lif": (lambda: LIFEncoder(300, 1000, 2, tau=0.01, threshold=0.3), signal(900, 2)),
        "lif-zero-refr": (lambda: LIFEncoder(2000, 1000, 1, tau=0.004, threshold=0.4,
                                             reset="zero", refractory=2),
                          np.abs(signal(3000, 1))),
        "rate-poisson": (lambda: RateEncoder(500, 1000, 3, max_rate=200, seed=3),
                         np.abs(signal(1200, 3, 0.5))),
        "rate-det": (lambda: RateEncoder(360, 1000, 2, max_rate=300, mode="deterministic"),
                     np.abs(signal(900, 2, 0.5))),
        "latency": (lambda: LatencyEncoder(360, 1000, 2, window=7), np.abs(signal(900, 2, 0.6))),
        "latency-down": (lambda: LatencyEncoder(8000, 1000, 1, window=5),
                         np.abs(signal(3000, 1, 0.6))),
        **{f"preset-{name}": (lambda name=name: make_encoder(name),
                              signal(int(NOMINAL[name][0] * 0.4), NOMINAL[name][1],
                                     0.1 if "audio" in name else (60.0 if "emg" in name else 1.0)))
           for name in NOMINAL},
        "chain-emg": (lambda: Chain(BandPass(20, 90, 200, 2), Envelope(200, 2, 5.0),
                                    SigmaDeltaEncoder(0.5, 200, 1000, 2)),
                      signal(800, 2, 50.0)),
        "chain-notch": (lambda: Chain(Notch(50, 360, 1), Compress(360, 1, "sqrt"),
                                      DeltaEncoder(0.05, 360, 500, 1)), signal(900, 1)),
        "threshold-down": (lambda: ThresholdEncoder(0.8, 1000, 300, 2), signal(2000, 2)),
        "threshold-adapt": (lambda: ThresholdEncoder(0.5, 200, 200, 3, adapt_s=0.5),
                            signal(900, 3, 40.0)),
        "peak-normalize": (lambda: Chain(PeakNormalize(1000, 2, 0.05), Compress(1000, 2, "log",
                                                                                ref=1e-3),
                                         DeltaEncoder(0.3, 1000, 1000, 2)),
                           np.abs(signal(1500, 2))
                           * np.r_[np.ones(700), 8 * np.ones(800)][:, None]),
        "parallel": (lambda: Parallel(Chain(BandPass(20, 90, 200, 2), Envelope(200, 2, 5.0),
                                            SigmaDeltaEncoder(0.5, 200, 1000, 2)),
                                      ThresholdEncoder(40.0, 200, 1000, 2)),
                     signal(800, 2, 50.0)),
    }


CASES = factories()


def run_split(make, x, cuts):
    enc = make()
    parts = np.split(x, sorted(cuts))
    outs = [enc.process(p) for p in parts]
    return np.concatenate(outs), enc


def first_difference(a, b):
    diff = np.argwhere(a != b)
    return f"first difference at step {diff[0][0]}, output {diff[0][1]}" if len(diff) else ""


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_streaming_exact_under_random_splits(name, data):
    make, x = CASES[name]
    whole, enc = run_split(make, x, [])
    cuts = data.draw(st.lists(st.integers(0, len(x)), max_size=8), label="cuts")
    split, _ = run_split(make, x, cuts)
    assert whole.dtype == np.uint8 and whole.shape[1] == enc.n_out
    assert split.shape == whole.shape, f"{name}: {split.shape} vs {whole.shape}"
    assert np.array_equal(split, whole), f"{name}: {first_difference(split, whole)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_count_and_reset(name):
    make, x = CASES[name]
    enc = make()
    out = enc.process(x)
    expected = (len(x) * enc.step_hz_exact.numerator * enc.in_rate_exact.denominator) // (
        enc.step_hz_exact.denominator * enc.in_rate_exact.numerator)
    assert out.shape[0] == expected
    assert set(np.unique(out)) <= {0, 1}
    enc.reset()
    assert np.array_equal(enc.process(x), out)


def test_one_sample_at_a_time_equals_whole():
    x = signal(400, 1)
    a = DeltaEncoder(0.1, 360, 1000).process(x)
    enc = DeltaEncoder(0.1, 360, 1000)
    b = np.concatenate([enc.process(x[i : i + 1]) for i in range(len(x))])
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- analytic
def test_delta_encoder_counts_threshold_crossings_of_a_ramp():
    x = np.linspace(0, 1.0, 1001)[:, None]  # rises by 10 thresholds of 0.1
    out = DeltaEncoder(0.1, 1000, 1000).process(x)
    assert out[:, 0].sum() == 10 and out[:, 1].sum() == 0
    down = DeltaEncoder(0.1, 1000, 1000).process(x[::-1])
    assert down[:, 1].sum() == 10 and down[:, 0].sum() == 0


def test_delta_hysteresis_ignores_small_wiggles():
    x = (0.05 * np.sin(np.arange(500) / 3))[:, None]
    assert DeltaEncoder(0.1, 1000, 1000).process(x).sum() == 0
    assert LevelCrossingEncoder(0.1, 1000, 1000, offset=0.0).process(x).sum() > 10


def test_sigma_delta_tracks_the_integral():
    x = np.full((1000, 1), 2.0)  # integral 2.0 over 1 s at 1 kHz
    out = SigmaDeltaEncoder(0.1, 1000, 1000).process(x)
    assert out[:, 0].sum() == 20 and out[:, 1].sum() == 0


def test_lif_constant_input_fires_at_the_analytic_rate():
    # tau dv/dt = -v + I with I = 2, threshold 1, reset to zero: period = tau ln(I / (I - 1)).
    tau = 0.01
    out = LIFEncoder(1000, 1000, 1, tau=tau, threshold=1.0, reset="zero").process(
        np.full((2000, 1), 2.0))
    isi = np.diff(np.flatnonzero(out[:, 0]))
    assert np.all(np.abs(isi - tau * np.log(2) * 1000) <= 1)


def test_latency_rule():
    assert list(LatencyEncoder.spike_step(np.array([1.0, 0.5, 0.0, 1e-6, -1]), 11)) == [
        0, 5, -1, 10, -1]
    x = np.repeat(np.array([[1.0, 0.5, 0.0, 0.25]]), 20, axis=0)
    out = LatencyEncoder(1000, 1000, 4, window=5).process(x)
    assert out.shape == (20, 4)
    for c, step in enumerate([0, 2, None, 3]):
        fired = np.flatnonzero(out[:, c])
        if step is None:
            assert fired.size == 0
        else:
            assert list(fired) == [step, step + 5, step + 10, step + 15]


def test_poisson_rate_statistics_with_fixed_seed():
    enc = RateEncoder(1000, 1000, 4, max_rate=100, seed=7)
    x = np.tile([0.0, 0.25, 0.5, 1.0], (20000, 1))
    out = enc.process(x)
    rates = out.mean(axis=0) * 1000
    expected = np.array([0, 25, 50, 100])
    sd = np.sqrt(expected / 1000 * (1 - expected / 1000) * 20000) / 20  # spikes->Hz
    assert rates[0] == 0
    assert np.all(np.abs(rates - expected) < 4 * sd + 1e-9)
    again = RateEncoder(1000, 1000, 4, max_rate=100, seed=7).process(x)
    assert np.array_equal(out, again)


def test_deterministic_rate_is_evenly_spaced():
    out = RateEncoder(1000, 1000, 1, max_rate=100, mode="deterministic").process(
        np.full((1000, 1), 0.5))
    isi = np.diff(np.flatnonzero(out[:, 0]))
    assert out.sum() == 50 and set(isi) == {20}


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("bank", ["fft", "iir"])
def test_tone_lands_in_the_right_filterbank_band(rate, bank):
    t = np.arange(int(0.2 * rate)) / rate
    for f in (300.0, 1000.0, 3000.0):
        x = (0.3 * np.sin(2 * np.pi * f * t))[:, None]
        if bank == "fft":
            fb = FftFilterbank(rate, bands=32)
            e = fb.process(x)[-50:].mean(axis=0)
        else:
            fb = CochleaFilterbank(rate, bands=32, order=2)
            e = (fb.process(x)[-rate // 20 :] ** 2).mean(axis=0)
        best = int(np.argmax(e))
        nearest = int(np.argmin(np.abs(np.log(fb.centres / f))))
        assert abs(best - nearest) <= 1, (f, fb.centres[best], fb.centres[nearest])


def test_threshold_encoder_marks_samples_beyond_either_threshold():
    x = np.array([[0.0, 6.0], [5.0, -5.0], [5.5, -7.0], [-9.0, 0.0]])
    out = ThresholdEncoder(5.0, 100, 100, 2).process(x)
    # columns: ON ch0, ON ch1, OFF ch0, OFF ch1; exactly +-5 is not beyond
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1],
                                        [0, 0, 1, 0]])
    # two samples per step: a step spikes when either of its samples does
    down = ThresholdEncoder(5.0, 100, 50, 2).process(x)
    np.testing.assert_array_equal(down, [[0, 1, 0, 0], [1, 0, 1, 1]])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", True, None])
def test_threshold_encoder_rejects_a_bad_threshold(bad):
    with pytest.raises(EncoderConfigError, match="threshold"):
        ThresholdEncoder(bad, 200, 200, 8)


def test_parallel_puts_the_branches_side_by_side():
    x = signal(600, 2, 50.0, seed=3)
    a = Chain(BandPass(20, 90, 200, 2), Envelope(200, 2, 5.0), LIFEncoder(200, 200, 2))
    b = ThresholdEncoder(30.0, 200, 200, 2)
    both = Parallel(a, b)
    assert both.n_out == 6
    out = both.process(x)
    ref = np.concatenate([Chain(BandPass(20, 90, 200, 2), Envelope(200, 2, 5.0),
                                LIFEncoder(200, 200, 2)).process(x),
                          ThresholdEncoder(30.0, 200, 200, 2).process(x)], axis=1)
    np.testing.assert_array_equal(out, ref)
    assert out[:, :2].sum() > 0 and out[:, 2:].sum() > 0


def test_parallel_rejects_branches_that_disagree():
    with pytest.raises(EncoderConfigError, match="two or more"):
        Parallel(ThresholdEncoder(1.0, 200, 200, 2))
    with pytest.raises(EncoderConfigError, match="two or more"):
        Parallel(ThresholdEncoder(1.0, 200, 200, 2), BandPass(20, 90, 200, 2))
    for other in (ThresholdEncoder(1.0, 250, 200, 2), ThresholdEncoder(1.0, 200, 200, 3),
                  ThresholdEncoder(1.0, 200, 100, 2)):
        with pytest.raises(EncoderConfigError, match="differ"):
            Parallel(ThresholdEncoder(1.0, 200, 200, 2), other)
    with pytest.raises(EncoderConfigError, match="shaped"):
        Parallel(ThresholdEncoder(1.0, 200, 200, 2),
                 ThresholdEncoder(2.0, 200, 200, 2)).process(np.zeros((5, 3)))


def test_emg_lif_sign_preset_is_emg_lif_plus_sign_spikes():
    x = signal(1000, 8, 60.0, seed=5)
    enc = make_encoder("emg-lif-sign", 200, 8, 200)
    assert enc.n_out == 24
    out = enc.process(x)
    np.testing.assert_array_equal(out[:, :8], make_encoder("emg-lif", 200, 8, 200).process(x))
    # sign spikes beyond 0.5 x the running RMS (2 s) of the band-passed EMG, sample by sample
    bp = BandPass(20, 90, 200, 8).process(x)
    a, m, on, off = 1.0 - np.exp(-1.0 / 400.0), np.zeros(8), [], []
    for row in bp:
        m = m + (row * row - m) * a
        on.append(row > 0.5 * np.sqrt(m))
        off.append(row < -0.5 * np.sqrt(m))
    assert np.mean(out[:, 8:16] == np.array(on)) > 0.999
    assert np.mean(out[:, 16:] == np.array(off)) > 0.999
    assert 0.2 < out[:, 8:].mean() < 0.5


def test_adaptive_threshold_ignores_the_amplitude():
    """Relative to the running RMS, the spikes are the same for a signal 8 times larger (a
    power of two scales every step of the running mean square exactly)."""
    x = signal(2000, 3, 30.0, seed=9)
    a = ThresholdEncoder(0.5, 200, 200, 3, adapt_s=2.0).process(x)
    b = ThresholdEncoder(0.5, 200, 200, 3, adapt_s=2.0).process(8 * x)
    np.testing.assert_array_equal(a, b)
    assert a.sum() > 500
    fixed = ThresholdEncoder(20.0, 200, 200, 3)
    assert fixed.process(x).sum() < fixed.process(8 * x).sum()


@pytest.mark.parametrize("bad", [0, -2.0, float("inf"), "2", True])
def test_threshold_encoder_rejects_a_bad_adaptation_time(bad):
    with pytest.raises(EncoderConfigError, match="adapt_s"):
        ThresholdEncoder(0.5, 200, 200, 8, adapt_s=bad)


@pytest.mark.parametrize("chunks", [1, 4, 20])
def test_peak_normalize_divides_by_the_peak_of_the_recent_pieces(chunks):
    """The peak is the maximum over every channel of the current piece of the window and
    the chunks - 1 complete pieces before it (all rows so far at the start)."""
    x = np.abs(signal(600, 3, seed=7)) + 0.01
    pn = PeakNormalize(100, 3, window_s=0.8, chunks=chunks)    # 80 rows
    out = pn.process(x)
    c = pn.chunk_rows
    assert c == 80 // chunks
    m = x.max(axis=1)
    for i in (0, 10, c - 1, c, 2 * c + 3, 233, 599):
        start = max(0, (i // c - (chunks - 1)) * c)
        np.testing.assert_array_equal(out[i], x[i] / m[start:i + 1].max())
    assert out.max() == 1.0


def test_audio_agc_preset_ignores_the_recording_level():
    """The automatic gain divides the level out: the same recording 16 times louder gives
    nearly the same spikes (the filterbank rounds samples to integers, so not bit for bit),
    where plain audio-delta's change a lot."""
    rng = np.random.default_rng(3)
    t = np.arange(8000) / 8000
    x = (0.02 * np.sin(2 * np.pi * 440 * t) * (t > 0.3) + 0.002 * rng.standard_normal(8000))

    def differ(preset):
        a = make_encoder(preset, 8000, 1, 1000).process(x)
        b = make_encoder(preset, 8000, 1, 1000).process(16 * x)
        return np.mean(a != b), a.sum()

    agc, n_agc = differ("audio-delta-agc")
    plain, _ = differ("audio-delta")
    assert n_agc > 100
    assert agc < 0.01 and plain > 5 * agc, (agc, plain)


@pytest.mark.parametrize("kw", [{"window_s": 0}, {"window_s": -1.0}, {"window_s": float("nan")},
                                {"window_s": True}, {"floor": 0.0}, {"floor": "1"},
                                {"chunks": 0}, {"chunks": 2.5}])
def test_peak_normalize_rejects_bad_arguments(kw):
    with pytest.raises(EncoderConfigError, match="PeakNormalize"):
        PeakNormalize(1000, 2, **kw)


def test_bad_encoder_arguments():
    with pytest.raises(EncoderConfigError, match="threshold"):
        DeltaEncoder(0, 360)
    with pytest.raises(EncoderConfigError, match="shaped"):
        DeltaEncoder(0.1, 360, channels=2).process(np.zeros((10, 3)))
    with pytest.raises(EncoderConfigError, match="NaN"):
        DeltaEncoder(0.1, 360).process(np.array([[np.nan]]))
    with pytest.raises(EncoderConfigError, match="max_rate"):
        RateEncoder(1000, 1000, max_rate=5000)
    with pytest.raises(EncoderConfigError, match="expects"):
        Chain(BandPass(1, 10, 360), DeltaEncoder(0.1, 200))
    with pytest.raises(EncoderConfigError, match="unknown encoder"):
        make_encoder("nope")
    with pytest.raises(EncoderConfigError, match="multiple"):
        FftFilterbank(16000, hop_hz=3000)


def test_bench_and_plot_helpers(tmp_path):
    from spikeedge.sensors.tools import bench_encoders, encode_source, plot_encoding

    res = bench_encoders(seconds=0.5, repeats=1, names=["ecg-delta", "emg-delta"])
    assert set(res) == {"ecg-delta", "emg-delta"} and res["ecg-delta"]["realtime_factor"] > 1
    x, spikes, rate, enc = encode_source("fake:ecg?duration=5", "ecg-delta")
    assert x.shape == (1800, 1) and spikes.shape == (5000, 2) and spikes.sum() > 0
    out = tmp_path / "enc.png"
    plot_encoding(x, spikes, rate, enc.step_hz, str(out), "fake:ecg")
    assert out.stat().st_size > 1000
