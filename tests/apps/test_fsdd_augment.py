"""The vocal-tract-length augmentation of the ``fsdd-digits`` trainer (tools/train_fsdd.py):
the band-shift stage, the warped encoder, and its command-line checks."""
import argparse

import numpy as np
import pytest

from spikeedge.sensors.errors import EncoderConfigError
from spikeedge.sensors.presets import make_encoder
from spikeedge.tools.train_fsdd import BandShift, _shifts, warped_encoder


def test_band_shift_moves_energy_along_the_bands():
    x = np.zeros((3, 8))
    x[:, 4] = 1.0
    np.testing.assert_allclose(BandShift(1000, 8, 0.0).process(x), x)
    up = BandShift(1000, 8, 1.0).process(x)          # band j takes band j + 1
    assert np.flatnonzero(up[0]).tolist() == [3]
    half = BandShift(1000, 8, -0.5).process(x)       # halfway between bands j - 1 and j
    np.testing.assert_allclose(half[0], [0, 0, 0, 0, 0.5, 0.5, 0, 0])
    edge = BandShift(1000, 8, 2.0).process(np.arange(8.0)[None])
    np.testing.assert_allclose(edge[0], [2, 3, 4, 5, 6, 7, 7, 7])   # edge band repeated


@pytest.mark.parametrize("shift", [np.nan, 7.0, -9.0])
def test_band_shift_rejects_bad_shifts(shift):
    with pytest.raises(EncoderConfigError):
        BandShift(1000, 8, shift)


def test_warped_encoder_is_the_preset_plus_a_shift():
    rng = np.random.default_rng(1)
    t = np.arange(4000) / 8000
    audio = 0.1 * np.sin(2 * np.pi * (300 + 2000 * t) * t) + 0.01 * rng.standard_normal(4000)
    plain = make_encoder("audio-delta", 8000, 1, 1000)
    warped = warped_encoder("audio-delta", 8000, 1.0)
    assert warped.n_out == plain.n_out == 64
    a, b = plain.process(audio), warped.process(audio)
    assert a.shape == b.shape and a.any() and b.any()
    assert not np.array_equal(a, b)
    # the same spikes as shifting the preset's band energies by hand, block by block
    fb, comp, delta = (s for s in make_encoder("audio-delta", 8000, 1, 1000).stages)
    e = comp.process(fb.process(audio))
    manual = delta.process(BandShift(1000, 32, 1.0).process(e))
    np.testing.assert_array_equal(manual, b)


def test_warped_encoder_streams_like_one_block():
    audio = np.random.default_rng(2).standard_normal(3000) * 0.05
    whole = warped_encoder("audio-delta", 8000, -0.5).process(audio)
    enc = warped_encoder("audio-delta", 8000, -0.5)
    parts = np.concatenate([enc.process(audio[:1234]), enc.process(audio[1234:])])
    np.testing.assert_array_equal(whole, parts)


def test_shift_option_parsing():
    assert _shifts("-1,-0.5,0.5,1") == [-1.0, -0.5, 0.5, 1.0]
    for bad in ("0", "a,b", "5", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            _shifts(bad)
