"""Named encoder presets for audio, ECG and EMG (used by ``spikeedge encode`` and the bench).

``make_encoder(name, in_rate, channels)`` builds a fresh :class:`~.encoders.Chain`; the names are
listed in :data:`PRESETS`.
"""

from __future__ import annotations

from collections.abc import Callable

from .encoders import (
    BandPass,
    BaselineRemoval,
    Chain,
    CochleaFilterbank,
    Compress,
    DeltaEncoder,
    Envelope,
    FftFilterbank,
    LevelCrossingEncoder,
    LIFEncoder,
    Notch,
    PeakNormalize,
    Rectify,
    SigmaDeltaEncoder,
)
from .errors import EncoderConfigError

__all__ = ["PRESETS", "NOMINAL", "make_encoder", "audio_encoder", "ecg_encoder", "emg_encoder"]


def audio_encoder(in_rate: float = 16000, bands: int = 32, step_hz: float = 1000,
                  spikes: str = "delta", filterbank: str = "fft",
                  agc_window_s: float | None = None) -> Chain:
    """Cochlea-like audio front end at 8 or 16 kHz.

    ``filterbank="fft"`` (fast, default): ERB-spaced triangular bands pooled from a 32 ms
    short-time power spectrum every step, then log compression. ``filterbank="iir"`` (literal,
    slower): ERB-spaced Butterworth band-pass filters, half-wave rectification, log
    compression, averaged per step by the encoder. Spikes: send-on-delta ON/OFF per band
    (``"delta"``, 2*bands outputs) or LIF neurons per band (``"lif"``). ``agc_window_s``
    (FFT path): automatic gain, the band powers divided by their peak over that many seconds
    (:class:`PeakNormalize`) and compressed with ``log1p(p / 1e-5)``: about 50 dB under the
    recent peak, whatever the recording level.
    """
    if in_rate not in (8000, 16000):
        raise EncoderConfigError(f"audio encoder runs at 8000 or 16000 Hz, got {in_rate}")
    if agc_window_s is not None and filterbank != "fft":
        raise EncoderConfigError("audio encoder: agc_window_s needs the 'fft' filterbank")
    if filterbank == "fft":
        fb = FftFilterbank(in_rate, bands=bands, hop_hz=step_hz)
        # Band power of speech at normal level is ~1e-7..1e-3 (full scale 1): log1p(p / 1e-7)
        # spans about 0..9.
        stages = [fb, Compress(step_hz, bands, "log", ref=1e-7)]
        if agc_window_s is not None:
            stages = [fb, PeakNormalize(step_hz, bands, window_s=agc_window_s),
                      Compress(step_hz, bands, "log", ref=1e-5)]
        rate = step_hz
    elif filterbank == "iir":
        # Band amplitudes of speech at normal level are ~1e-4..3e-2: log1p(a / 1e-5) spans about
        # 2..8 while the band is active, the range of the FFT path's levels.
        stages = [CochleaFilterbank(in_rate, bands=bands), Rectify(in_rate, bands, "half"),
                  Compress(in_rate, bands, "log", ref=1e-5)]
        rate = in_rate
    else:
        raise EncoderConfigError(f"audio encoder: filterbank must be 'fft' or 'iir', "
                                 f"got {filterbank!r}")
    if spikes == "lif":
        # The IIR path integrates the half-wave rectified signal sample by sample, whose mean
        # is half the envelope's: gain 2 puts both paths on the same scale (the iir-lif preset
        # used gain 1 with ref 1e-3 and never reached threshold on speech).
        gain = 2.0 if filterbank == "iir" else 1.0
        enc = LIFEncoder(rate, step_hz, bands, tau=0.005, threshold=4.0, gain=gain)
    elif spikes == "delta":
        enc = DeltaEncoder(0.5, rate, step_hz, bands)
    else:
        raise EncoderConfigError(f"audio encoder: spikes must be 'lif' or 'delta', got {spikes!r}")
    return Chain(*stages, enc)


def ecg_encoder(in_rate: float = 360, step_hz: float = 1000, spikes: str = "delta",
                channels: int = 1, mains_hz: float | None = None) -> Chain:
    """ECG: baseline removal (0.5 Hz high-pass), 40 Hz low-pass band limit, optional mains
    notch, then delta (0.05 mV), sigma-delta (0.002 mV*s) or level-crossing (0.1 mV) spikes."""
    stages = [BaselineRemoval(in_rate, channels), BandPass(0.5, min(40.0, in_rate * 0.45),
                                                           in_rate, channels, order=2)]
    if mains_hz:
        stages.append(Notch(mains_hz, in_rate, channels))
    if spikes == "delta":
        enc = DeltaEncoder(0.05, in_rate, step_hz, channels)
    elif spikes == "sigma_delta":
        enc = SigmaDeltaEncoder(0.002, in_rate, step_hz, channels)
    elif spikes == "level":
        enc = LevelCrossingEncoder(0.1, in_rate, step_hz, channels, hysteresis=1)
    else:
        raise EncoderConfigError(
            f"ecg encoder: spikes must be 'delta', 'sigma_delta' or 'level', got {spikes!r}")
    return Chain(*stages, enc)


def emg_encoder(in_rate: float = 200, step_hz: float = 1000, channels: int = 8,
                threshold: float = 2.0) -> Chain:
    """EMG: 20-90 Hz band-pass, rectification + 5 Hz envelope, per-channel delta spikes
    (``threshold`` in raw Myo units)."""
    hi = min(90.0, in_rate * 0.45)
    return Chain(
        BandPass(20.0, hi, in_rate, channels, order=2),
        Envelope(in_rate, channels, cutoff=5.0),
        DeltaEncoder(threshold, in_rate, step_hz, channels),
    )


def _lc_level(in_rate: float, step_hz: float, channels: int) -> Chain:
    return ecg_encoder(in_rate, step_hz, "level", channels)


PRESETS: dict[str, Callable[..., Chain]] = {
    "audio-delta": lambda in_rate=16000, step_hz=1000, channels=1: audio_encoder(
        in_rate, 32, step_hz, "delta"),
    "audio-lif": lambda in_rate=16000, step_hz=1000, channels=1: audio_encoder(
        in_rate, 32, step_hz, "lif"),
    "audio-iir-lif": lambda in_rate=16000, step_hz=1000, channels=1: audio_encoder(
        in_rate, 32, step_hz, "lif", "iir"),
    "ecg-delta": lambda in_rate=360, step_hz=1000, channels=1: ecg_encoder(
        in_rate, step_hz, "delta", channels),
    "ecg-sigma-delta": lambda in_rate=360, step_hz=1000, channels=1: ecg_encoder(
        in_rate, step_hz, "sigma_delta", channels),
    "ecg-level": _lc_level,
    "emg-delta": lambda in_rate=200, step_hz=1000, channels=8: emg_encoder(
        in_rate, step_hz, channels),
}

#: Nominal settings of the speed requirement: preset -> (in_rate, channels).
NOMINAL: dict[str, tuple[float, int]] = {
    "audio-delta": (16000, 1),
    "audio-lif": (16000, 1),
    "audio-iir-lif": (16000, 1),
    "ecg-delta": (360, 1),
    "ecg-sigma-delta": (360, 1),
    "ecg-level": (360, 1),
    "emg-delta": (200, 8),
}


def make_encoder(name: str, in_rate: float | None = None, channels: int | None = None,
                 step_hz: float = 1000) -> Chain:
    """Build the preset ``name`` for a given input rate and channel count."""
    if name not in PRESETS:
        raise EncoderConfigError(f"unknown encoder {name!r}; choose from {', '.join(PRESETS)}")
    rate0, ch0 = NOMINAL[name]
    return PRESETS[name](in_rate=in_rate or rate0, step_hz=step_hz, channels=channels or ch0)
