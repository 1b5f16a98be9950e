"""Encoder presets added for the shipped applications (``spikeedge.apps``).

Importing this module registers them in :data:`spikeedge.sensors.presets.PRESETS` (and
``NOMINAL``), so ``make_encoder(name, ...)`` knows them everywhere after the import:

``emg-lif``
    EMG: 20-90 Hz band-pass, rectification + 5 Hz envelope, log compression
    ``log1p(env / 2)`` (raw Myo units), then one LIF rate neuron per channel (tau 50 ms,
    threshold 0.5, reset by subtraction): the firing rate follows the muscle activity level,
    where ``emg-delta`` signals only its changes.
``emg-lif-sign``
    ``emg-lif`` plus, from the same 20-90 Hz band-passed EMG, one ON and one OFF spike per
    channel at every sample beyond +-0.5 times that channel's running RMS (over about 2 s:
    :class:`ThresholdEncoder` with ``adapt_s``): 8 rate inputs, then 8 ON and 8 OFF sign
    inputs (24). Two electrodes' sign spikes in the same step tell how their signals co-vary,
    which the envelope loses, and the relative threshold keeps an electrode's contact or gain
    out of it (the ``myo-gestures`` network's coincidence neurons count them).
``audio-delta-agc``
    ``audio-delta`` (32 ERB bands from a 32 ms FFT every step, log compression, send-on-delta
    ON/OFF spikes of 0.5) with automatic gain before the compression
    (``audio_encoder(..., agc_window_s=2.0)``): the band powers are
    divided by their largest value over the last 2 s (:class:`PeakNormalize`) and compressed
    with ``log1p(p / 1e-5)``, so the level of a recording no longer changes the spikes and
    what lies more than about 50 dB under the recent peak (a noisy room's floor) makes none.
"""
from __future__ import annotations

from .encoders import (
    BandPass,
    Chain,
    Compress,
    Envelope,
    LIFEncoder,
    Parallel,
    ThresholdEncoder,
)
from .presets import NOMINAL, PRESETS, audio_encoder

__all__ = ["emg_lif_encoder", "emg_lif_sign_encoder", "APP_PRESETS"]


def emg_lif_encoder(in_rate: float = 200, step_hz: float = 200, channels: int = 8,
                    ref: float = 2.0, tau: float = 0.05, threshold: float = 0.5) -> Chain:
    hi = min(90.0, in_rate * 0.45)
    return Chain(
        BandPass(20.0, hi, in_rate, channels, order=2),
        Envelope(in_rate, channels, cutoff=5.0),
        Compress(in_rate, channels, "log", ref=ref),
        LIFEncoder(in_rate, step_hz, channels, tau=tau, threshold=threshold, gain=1.0),
    )


def emg_lif_sign_encoder(in_rate: float = 200, step_hz: float = 200, channels: int = 8,
                         sign_threshold: float = 0.5, adapt_s: float | None = 2.0) -> Parallel:
    hi = min(90.0, in_rate * 0.45)
    return Parallel(
        emg_lif_encoder(in_rate, step_hz, channels),
        Chain(BandPass(20.0, hi, in_rate, channels, order=2),
              ThresholdEncoder(sign_threshold, in_rate, step_hz, channels, adapt_s=adapt_s)),
    )


APP_PRESETS = {
    "emg-lif": (lambda in_rate=200, step_hz=200, channels=8: emg_lif_encoder(
        in_rate, step_hz, channels), (200, 8)),
    "emg-lif-sign": (lambda in_rate=200, step_hz=200, channels=8: emg_lif_sign_encoder(
        in_rate, step_hz, channels), (200, 8)),
    "audio-delta-agc": (lambda in_rate=16000, step_hz=1000, channels=1: audio_encoder(
        in_rate, 32, step_hz, "delta", agc_window_s=2.0), (16000, 1)),
}

for _name, (_make, _nominal) in APP_PRESETS.items():
    PRESETS.setdefault(_name, _make)
    NOMINAL.setdefault(_name, _nominal)
