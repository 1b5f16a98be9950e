"""Live microphone input through ``sounddevice`` (PortAudio): ``mic:DEVICE``.

``sounddevice`` is optional and imported only when a microphone is opened. The audio callback
puts blocks into a bounded queue; when the consumer falls behind the oldest audio is dropped,
counted (``status()["lost_samples"]``) and the next block is flagged ``gap=True``. A device that
vanishes raises :class:`~spikeedge.sensors.errors.SourceDisconnected` inside the source, which
then reconnects with backoff.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from .base import Source
from .errors import SourceConfigError, SourceDisconnected
from .readers import AUDIO_RATES

__all__ = ["MicSource", "import_sounddevice"]

INSTALL_HINT = (
    "live audio needs the 'sounddevice' package and the PortAudio library: "
    "pip install sounddevice; on Debian/Raspberry Pi OS also apt install libportaudio2"
)


def import_sounddevice() -> Any:
    """Import ``sounddevice`` or raise SourceConfigError explaining what to install."""
    try:
        import sounddevice
    except ImportError as exc:
        raise SourceConfigError(f"{INSTALL_HINT} ({exc})") from None
    except OSError as exc:  # raised by sounddevice when libportaudio is missing
        raise SourceConfigError(f"{INSTALL_HINT} (PortAudio: {exc})") from None
    return sounddevice


class MicSource(Source):
    """Microphone at 8 or 16 kHz, mono, float32 full scale ±1.

    ``device`` is a sounddevice device name or index (``default`` for the system default).
    ``queue_blocks`` bounds the buffered audio (drop-oldest policy). ``sd_module`` replaces the
    ``sounddevice`` module (tests pass a fake with ``InputStream``).
    """

    scheme = "mic"
    live = True
    OPTIONS = {**Source.OPTIONS, "rate": int, "queue_blocks": int, "poll": float}

    def __init__(self, device: str | int | None = "default", *, rate: int = 16000,
                 queue_blocks: int = 64, poll: float = 0.1, sd_module: Any = None, **kw: Any):
        kw.setdefault("name", f"mic:{device}")
        kw.setdefault("timeout", 2.0)
        kw.setdefault("max_reconnects", None)
        super().__init__(**kw)
        if rate not in AUDIO_RATES:
            raise SourceConfigError(f"{self.name}: rate must be one of {AUDIO_RATES}, got {rate}")
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device = None if device in (None, "", "default") else device
        self._rate = float(rate)
        self._channels = 1
        self.poll = float(poll)
        self._sd = sd_module
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_blocks)))
        self._stream = None
        self._pending = np.zeros((0, 1), dtype=np.float32)
        self._overflows = 0
        self._failed: str | None = None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self._overflows += 1
        block = np.array(indata[:, :1], dtype=np.float32)
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            try:
                dropped = self._queue.get_nowait()
                self._mark_gap(len(dropped))
            except queue.Empty:
                pass
            self._queue.put_nowait(block)

    def _finished(self) -> None:
        # PortAudio stops the stream when the device goes away.
        self._failed = "audio stream stopped (device unplugged?)"

    def _open(self) -> None:
        sd = self._sd if self._sd is not None else import_sounddevice()
        self._sd = sd
        self._failed = None
        # Audio still queued from a previous stream belongs before the gap: count it as lost.
        lost = len(self._pending)
        self._pending = np.zeros((0, 1), dtype=np.float32)
        while True:
            try:
                lost += len(self._queue.get_nowait())
            except queue.Empty:
                break
        if lost:
            self._mark_gap(lost)
        try:
            self._stream = sd.InputStream(
                device=self.device, channels=1, samplerate=self._rate, dtype="float32",
                blocksize=0, callback=self._callback, finished_callback=self._finished)
            self._stream.start()
        except Exception as exc:  # PortAudioError, ValueError for an unknown device
            self._stream = None
            text = f"{self.name}: cannot open input device {self.device or 'default'!r}: {exc}"
            if isinstance(exc, ValueError):
                raise SourceConfigError(text) from None
            raise SourceDisconnected(text) from None

    def _read_block(self, n: int) -> np.ndarray | None:
        if self._failed:
            raise SourceDisconnected(f"{self.name}: {self._failed}")
        parts = [self._pending] if len(self._pending) else []
        have = len(self._pending)
        try:
            while have < n:
                block = self._queue.get(timeout=self.poll if have == 0 else 0.0)
                parts.append(block)
                have += len(block)
        except queue.Empty:
            pass
        if not parts:
            return np.zeros((0, 1), dtype=np.float32)
        data = np.concatenate(parts)
        self._pending = data[n:]
        return data[:n]

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # the device may already be gone
                pass

    def status(self) -> dict:
        st = super().status()
        st["input_overflows"] = self._overflows
        return st
