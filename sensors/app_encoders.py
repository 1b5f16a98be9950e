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
    channel at every sample beyond +-5 raw Myo units (:class:`ThresholdEncoder`): 8 rate
    inputs, then 8 ON and 8 OFF sign inputs (24). Two electrodes' sign spikes in the same
    step tell how their signals co-vary, which the envelope loses (the ``myo-gestures``
    network's coincidence neurons count them).
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
from .presets import NOMINAL, PRESETS

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
                         sign_threshold: float = 5.0) -> Parallel:
    hi = min(90.0, in_rate * 0.45)
    return Parallel(
        emg_lif_encoder(in_rate, step_hz, channels),
        Chain(BandPass(20.0, hi, in_rate, channels, order=2),
              ThresholdEncoder(sign_threshold, in_rate, step_hz, channels)),
    )


APP_PRESETS = {
    "emg-lif": (lambda in_rate=200, step_hz=200, channels=8: emg_lif_encoder(
        in_rate, step_hz, channels), (200, 8)),
    "emg-lif-sign": (lambda in_rate=200, step_hz=200, channels=8: emg_lif_sign_encoder(
        in_rate, step_hz, channels), (200, 8)),
}

for _name, (_make, _nominal) in APP_PRESETS.items():
    PRESETS.setdefault(_name, _make)
    NOMINAL.setdefault(_name, _nominal)
