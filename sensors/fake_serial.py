"""A fake serial front end that speaks the spikeedge protocol, in pure Python.

:class:`FakeSerialDevice` behaves like an open :class:`serial.Serial` (``read``, ``write``,
``in_waiting``, ``close``, ``reset_input_buffer``) wired to a device running the same logic as
the firmware (``firmware/src/se_device.c``): it answers START, STOP, SET_RATE and IDENTIFY with
ACKs, sends a HEADER, then DATA frames of a deterministic test signal at the sample rate of an
injected clock (or as fast as they are read). Faults can be injected (dropped frames, bit
flips, garbage, a disconnect) to exercise the host side without hardware.

``signal_value`` reproduces ``firmware/src/se_signal.c`` bit for bit, so tests can check the
samples streamed by the real firmware (host build or under QEMU) exactly.

Select it by URL: ``serial:fake?signal=ramp&rate=1000&channels=2``.
"""

from __future__ import annotations

import random

import numpy as np

from .clock import Clock, RealClock
from .protocol import (
    FLAG_END,
    Ack,
    AckStatus,
    Command,
    DataFrame,
    Decoder,
    Header,
    Opcode,
    SampleFormat,
    encode,
    pack_samples,
)

__all__ = ["SIGNALS", "signal_value", "signal_block", "FakeSerialDevice", "FakeSerialError"]

SIGNALS = {"ramp": 0, "sine": 1, "ecg": 2}

_ECG_T = (0, 120, 160, 200, 260, 280, 300, 320, 340, 480, 560, 640, 1000)
_ECG_V = (0, 0, 150, 0, 0, -100, 1000, -250, 0, 0, 300, 0, 0)


def _cdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero, as C does."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def signal_value(kind: str, fmt: int, period: int, amplitude: int, k: int, c: int) -> int:
    """Value of channel ``c`` at sample ``k`` of a firmware test signal (see se_signal.h)."""
    if kind == "ramp":
        bits = 8 * SampleFormat(fmt).size
        u = (k + 1000 * c) & 0xFFFFFFFF & ((1 << bits) - 1)
        return u - (1 << bits) if u >= 1 << (bits - 1) else u
    phase = ((k & 0xFFFFFFFF) + c * (period // 8)) % period
    if kind == "sine":
        h = period // 2
        u, sign = phase, 1
        if u >= h:
            u, sign = u - h, -1
        p = u * (h - u)
        return sign * _cdiv(amplitude * 16 * p, 5 * h * h - 4 * p)
    if kind == "ecg":
        x = phase * 1000
        for i in range(len(_ECG_T) - 1):
            x0, x1 = _ECG_T[i] * period, _ECG_T[i + 1] * period
            if x < x1:
                v = _ECG_V[i] + _cdiv((_ECG_V[i + 1] - _ECG_V[i]) * (x - x0), x1 - x0)
                return _cdiv(amplitude * v, 1000)
        return 0
    raise ValueError(f"unknown signal {kind!r}; choose from {', '.join(SIGNALS)}")


def signal_block(
    kind: str, fmt: int, period: int, amplitude: int, start: int, n: int, channels: int
) -> np.ndarray:
    """Samples ``start .. start+n`` of every channel as int32 ``[n, channels]``."""
    out = np.empty((n, channels), dtype=np.int32)
    for i in range(n):
        for c in range(channels):
            out[i, c] = signal_value(kind, fmt, period, amplitude, start + i, c)
    return out


class FakeSerialError(OSError):
    """Raised by a FakeSerialDevice after an injected disconnect (like serial.SerialException)."""


class FakeSerialDevice:
    """An in-process front end with a pyserial-like interface; see the module docstring.

    Parameters mirror the host firmware's options (``--signal``, ``--rate``, ``--channels``,
    ``--format``, ``--frame``, ``--count``, ``--period``, ``--amplitude``). ``fast=True``
    produces frames as soon as they are read instead of at the sample rate of ``clock``.

    Faults: ``drop_every=k`` loses every k-th DATA frame (the sequence number still advances);
    ``corrupt_every=k`` flips one bit in every k-th DATA frame; ``garbage_every=k`` inserts
    random bytes before every k-th frame; ``disconnect_after=n`` makes ``read`` raise
    :class:`FakeSerialError` after n DATA frames.
    """

    def __init__(
        self,
        *,
        signal: str = "ecg",
        rate: int = 360,
        channels: int = 1,
        fmt: int = SampleFormat.S16,
        frame: int = 32,
        count: int = 0,
        period: int | None = None,
        amplitude: int = 1000,
        device_id: int = 0x5E0000FA,
        name: str = "spikeedge-fake",
        autostart: bool = False,
        fast: bool = False,
        clock: Clock | None = None,
        timeout: float | None = 0.05,
        drop_every: int = 0,
        corrupt_every: int = 0,
        garbage_every: int = 0,
        disconnect_after: int = 0,
        seed: int = 0,
    ):
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; choose from {', '.join(SIGNALS)}")
        self.signal = signal
        self.rate = int(rate)
        self.channels = int(channels)
        self.fmt = int(fmt)
        self.frame = int(frame)
        self.count = int(count)
        if period is None:
            period = self.rate // 10 if signal == "sine" else self.rate * 4 // 5
        self.period = max(int(period), 8)
        self.amplitude = int(amplitude)
        self.device_id = int(device_id)
        self.name = name
        self.fast = bool(fast)
        self.clock = clock if clock is not None else RealClock()
        self.timeout = timeout
        self.drop_every = int(drop_every)
        self.corrupt_every = int(corrupt_every)
        self.garbage_every = int(garbage_every)
        self.disconnect_after = int(disconnect_after)
        self._rng = random.Random(seed)
        self._rx = Decoder()
        self._out = bytearray()
        self._stream = 0
        self._streaming = False
        self._k = 0
        self._seq = 0
        self._t0 = 0.0
        self.frames_made = 0
        self.is_open = True
        if autostart:
            self._start()

    # ---------------------------------------------------------------- pyserial-like interface
    @property
    def in_waiting(self) -> int:
        self._produce(block=False)
        return len(self._out)

    def write(self, data: bytes) -> int:
        self._check_open()
        for packet in self._rx.feed(bytes(data)):
            if isinstance(packet, Command):
                self._command(packet)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self._check_open()
        self._produce(block=True)
        chunk = bytes(self._out[:size])
        del self._out[:size]
        return chunk

    def reset_input_buffer(self) -> None:
        self._out.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False

    # ---------------------------------------------------------------- device logic
    def _check_open(self) -> None:
        if not self.is_open:
            raise FakeSerialError("fake serial device is closed")
        if self.disconnect_after and self.frames_made >= self.disconnect_after:
            self.is_open = False
            raise FakeSerialError("fake serial device disconnected (injected fault)")

    def header(self) -> Header:
        return Header(
            stream=self._stream,
            format=self.fmt,
            channels=self.channels,
            rate_hz=self.rate,
            samples_per_frame=self.frame,
            device_id=self.device_id,
            name=self.name,
        )

    def _start(self) -> None:
        self._stream = (self._stream + 1) & 0xFF
        self._streaming = True
        self._k = 0
        self._seq = 0
        self._t0 = self.clock.now()
        self._out += b"\x00" + encode(self.header())

    def _command(self, c: Command) -> None:
        if c.opcode == Opcode.START:
            self._out += b"\x00" + encode(Ack(c.token, c.opcode, AckStatus.OK, self.rate))
            self._start()
        elif c.opcode == Opcode.STOP:
            self._streaming = False
            self._out += b"\x00" + encode(Ack(c.token, c.opcode, AckStatus.OK, 0))
        elif c.opcode == Opcode.SET_RATE:
            if not 1 <= c.arg <= 1_000_000:
                self._out += b"\x00" + encode(
                    Ack(c.token, c.opcode, AckStatus.BAD_ARGUMENT, self.rate)
                )
                return
            self.rate = c.arg
            self._out += b"\x00" + encode(Ack(c.token, c.opcode, AckStatus.OK, self.rate))
            if self._streaming:
                self._stream = (self._stream + 1) & 0xFF
                self._k = self._seq = 0
                self._t0 = self.clock.now()
                self._out += b"\x00" + encode(self.header())
        elif c.opcode == Opcode.IDENTIFY:
            self._out += b"\x00" + encode(Ack(c.token, c.opcode, AckStatus.OK, self.device_id))
            self._out += b"\x00" + encode(self.header())
        else:
            self._out += b"\x00" + encode(Ack(c.token, c.opcode, AckStatus.UNKNOWN_OPCODE, 0))

    def _due_samples(self) -> int:
        if self.fast:
            return self._k + self.frame
        return int((self.clock.now() - self._t0) * self.rate + 1e-9)

    def _produce(self, block: bool) -> None:
        if self._out or not self._streaming:
            return
        if block and not self.fast:
            wait = self._t0 + (self._k + self.frame) / self.rate - self.clock.now()
            if wait > 0:
                self.clock.sleep(min(wait, self.timeout if self.timeout is not None else wait))
        while self._streaming and self._due_samples() >= self._k + self.frame:
            self._make_frame()
            if self.fast:
                break  # one frame per read: "as fast as it is read"
        if self._streaming and self.count and self._k >= self.count:
            self._make_frame()

    def _make_frame(self) -> None:
        n = self.frame
        flags = 0
        if self.count:
            n = min(n, self.count - self._k)
            if self._k + n >= self.count and n < self.frame:
                flags |= FLAG_END
        samples = signal_block(
            self.signal, self.fmt, self.period, self.amplitude, self._k, n, self.channels
        )
        f = DataFrame(
            stream=self._stream,
            seq=self._seq,
            sample_index=self._k & 0xFFFFFFFF,
            t_us=self._k * 1_000_000 // self.rate,
            format=self.fmt,
            channels=self.channels,
            n=n,
            data=pack_samples(samples, self.fmt),
            flags=flags,
        )
        self._k += n
        self._seq += 1
        self.frames_made += 1
        if flags & FLAG_END:
            self._streaming = False
        i = self.frames_made
        if self.garbage_every and i % self.garbage_every == 0:
            self._out += bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 9)))
        if self.drop_every and i % self.drop_every == 0:
            return
        wire = bytearray(encode(f))
        if self.corrupt_every and i % self.corrupt_every == 0:
            pos = self._rng.randrange(len(wire) - 1)
            wire[pos] ^= 1 << self._rng.randrange(8)
        self._out += wire
