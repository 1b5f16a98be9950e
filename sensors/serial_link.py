"""The ``serial:`` source: samples from a spikeedge firmware front end over a serial port.

    serial:///dev/ttyACM0?baud=921600           a microcontroller over USB serial
    serial:///dev/pts/5                         the host build of the firmware on a pty
    serial:fake?signal=ramp&rate=1000           an in-process fake front end (no hardware)

On open the source sends START (or SET_RATE first when ``rate=`` is given) and waits for the
device's HEADER, which gives the rate, channels and calibration (START restarts the stream at
sample 0: frames the device sent before it, e.g. from a stream it started at boot, are dropped,
neither delivered nor counted as lost). It then turns DATA frames into blocks. Decoding is
done by :class:`~spikeedge.sensors.protocol.Decoder` (no I/O here beyond pyserial reads and
writes). Frames lost on the link are found from sequence numbers
and first-sample indices: the next block is flagged ``gap=True`` and sensor time advances by
exactly the lost samples. Corrupt packets are counted (``status()`` shows ``crc_errors``,
``cobs_errors``, ``malformed``, ``dropped_frames``, ``dropped_samples``) and skipped. A port
error or a silent device is a disconnect: the base class reconnects with backoff, and the
source then resumes the device's stream with IDENTIFY instead of restarting it, so frames lost
while away are still counted.

Samples are in physical units when the HEADER carries a gain (``(count - offset) / gain``),
otherwise raw counts; ``raw=1`` always gives raw counts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Source, parse_bool
from .errors import SourceConfigError, SourceDisconnected, SourceFormatError
from .protocol import (
    Ack,
    AckStatus,
    Command,
    DataFrame,
    Decoder,
    Header,
    Opcode,
    SampleFormat,
    encode,
)

__all__ = ["SerialSource"]

log = logging.getLogger("spikeedge.sensors")

_FAKE_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "signal": str,
    "channels": int,
    "fmt": int,
    "frame": int,
    "count": int,
    "period": int,
    "amplitude": int,
    "fast": parse_bool,
    "drop_every": int,
    "corrupt_every": int,
    "garbage_every": int,
    "disconnect_after": int,
    "seed": int,
}


class SerialSource(Source):
    """Blocks from a firmware front end; see the module docstring.

    Parameters
    ----------
    target
        Port name or pyserial URL (``/dev/ttyACM0``, ``COM3``, ``socket://host:port``), or
        ``fake`` for :class:`~spikeedge.sensors.fake_serial.FakeSerialDevice`.
    baud
        Baud rate (ignored by USB CDC devices and ptys).
    start
        Send START on the first open (default). False only listens (a device that streams
        from boot), sending IDENTIFY to learn the stream format.
    rate
        Ask the device for this sample rate (SET_RATE) before starting.
    raw
        Deliver raw ADC counts even when the device reports a calibration.
    header_timeout
        Seconds to wait for the HEADER after opening before counting as disconnected.
    poll
        Read timeout of the port in seconds: how long a read waits for more bytes before a
        partly filled block is delivered.
    port
        A pyserial-like object or a zero-argument factory of one, used instead of opening
        ``target`` (tests inject ports this way).
    """

    scheme = "serial"
    live = True
    OPTIONS = {
        **Source.OPTIONS,
        "baud": int,
        "start": parse_bool,
        "rate": int,
        "raw": parse_bool,
        "header_timeout": float,
        "poll": float,
        **_FAKE_OPTIONS,
    }

    def __init__(
        self,
        target: str,
        *,
        baud: int = 921600,
        start: bool = True,
        rate: int | None = None,
        raw: bool = False,
        header_timeout: float = 2.0,
        poll: float = 0.1,
        port: Any = None,
        **kw: Any,
    ):
        fake = {k: kw.pop(k) for k in list(kw) if k in _FAKE_OPTIONS}
        super().__init__(**kw)
        self.target = target or ""
        if not self.target and port is None:
            raise SourceConfigError(
                "serial: no port given; use serial:///dev/ttyACM0 (or serial:fake for a fake)"
            )
        if fake and self.target != "fake":
            raise SourceConfigError(
                f"serial:{self.target}: options {', '.join(sorted(fake))} only apply to serial:fake"
            )
        if baud <= 0:
            raise SourceConfigError(f"serial:{self.target}: baud must be > 0, got {baud}")
        if rate is not None and rate <= 0:
            raise SourceConfigError(f"serial:{self.target}: rate must be > 0 Hz, got {rate}")
        if header_timeout <= 0 or poll <= 0:
            raise SourceConfigError("serial: header_timeout and poll must be > 0 seconds")
        self.baud = int(baud)
        self.start = bool(start)
        self.requested_rate = rate
        self.raw = bool(raw)
        self.header_timeout = float(header_timeout)
        self.poll = float(poll)
        self._fake_options = fake
        self._port_arg = port
        self._port: Any = None
        self._decoder = Decoder(synced=False)
        self._header: Header | None = None
        self._scale: tuple[float, float] | None = None  # (offset, gain)
        self._pending: deque[DataFrame] = deque()
        self._buffered: list[np.ndarray] = []
        self._n_buffered = 0
        self._buffer_info: dict[str, int] | None = None
        self._end_after_buffer = False
        self._opened_once = False
        self._token = 0
        self.acks: dict[int, Ack] = {}
        self._reported_errors = 0
        self._seen_data = False
        self._header_seen: Header | None = None

    # ------------------------------------------------------------------ port handling
    def _make_port(self) -> Any:
        if self._port_arg is not None:
            return self._port_arg() if callable(self._port_arg) else self._port_arg
        if self.target == "fake":
            from .fake_serial import FakeSerialDevice

            return FakeSerialDevice(clock=self.clock, timeout=self.poll, **self._fake_options)
        import serial  # pyserial

        try:
            return serial.serial_for_url(
                self.target, baudrate=self.baud, timeout=self.poll, write_timeout=1.0
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceDisconnected(f"serial:{self.target}: cannot open: {exc}") from None

    def _port_read(self) -> bytes:
        try:
            waiting = getattr(self._port, "in_waiting", 0) or 0
            return bytes(self._port.read(max(1, min(int(waiting), 65536))))
        except (OSError, ValueError, TypeError) as exc:
            # serial.SerialException is an OSError; a closed fd gives TypeError/ValueError.
            raise SourceDisconnected(f"serial:{self.target}: read failed: {exc}") from None

    def send_command(self, opcode: int, arg: int = 0) -> int:
        """Send a COMMAND; returns its token (the ACK lands in :attr:`acks`)."""
        self._token = (self._token + 1) & 0xFF
        self._header_seen = None  # the HEADER that answers this command may come with the ACK
        try:
            self._port.write(encode(Command(self._token, int(opcode), int(arg))))
        except (OSError, ValueError, TypeError) as exc:
            raise SourceDisconnected(f"serial:{self.target}: write failed: {exc}") from None
        return self._token

    def _open(self) -> None:
        self._port = self._make_port()
        self._decoder.resync()
        resume = self._opened_once
        # Frames decoded during a failed attempt were counted as received: when the stream is
        # resumed their samples (and any loss they carried) are lost, so sensor time must skip
        # them. The first START restarts the stream at sample 0: they were never part of it.
        lost = sum(f.n + f.lost_samples for f in self._pending)
        self._pending.clear()
        if lost and (resume or not self.start):
            self._mark_gap(lost)
        previous = self._header
        try:
            if resume:
                token = self.send_command(Opcode.IDENTIFY)
            else:
                if self.requested_rate is not None:
                    self._expect_ack(self.send_command(Opcode.SET_RATE, self.requested_rate))
                token = self.send_command(Opcode.START if self.start else Opcode.IDENTIFY)
            header = self._wait_header(token)
            if resume and previous is not None and header.stream != previous.stream:
                # The device restarted meanwhile (reset, power loss): start it again.
                header = self._wait_header(self.send_command(Opcode.START))
        except SourceDisconnected:
            self._close()
            raise
        self._use_header(header)
        self._opened_once = True

    def _expect_ack(self, token: int) -> Ack:
        deadline = self.clock.now() + self.header_timeout
        while token not in self.acks:
            if self.clock.now() > deadline:
                raise SourceDisconnected(
                    f"serial:{self.target}: no ACK from the device within {self.header_timeout}"
                    " s; is the spikeedge firmware running on it, at this baud rate?"
                )
            if not self._pump():
                self.clock.sleep(0.001)
        ack = self.acks.pop(token)
        if ack.status != AckStatus.OK:
            raise SourceConfigError(
                f"serial:{self.target}: device refused {Opcode(ack.opcode).name} "
                f"({AckStatus(ack.status).name}); current value {ack.value}"
            )
        return ack

    def _wait_header(self, token: int) -> Header:
        malformed = self._decoder.malformed
        self._expect_ack(token)
        deadline = self.clock.now() + self.header_timeout
        while self._header_seen is None:
            if self.clock.now() > deadline:
                why = ""
                if self._decoder.malformed > malformed:  # e.g. another protocol version
                    why = f"; refused one: {self._decoder.last_error}"
                raise SourceDisconnected(
                    f"serial:{self.target}: no HEADER from the device within "
                    f"{self.header_timeout} s{why}"
                )
            if not self._pump():
                self.clock.sleep(0.001)
        return self._header_seen

    def _use_header(self, h: Header) -> None:
        old = self._header
        if old is not None and (old.channels != h.channels or old.rate_hz != h.rate_hz):
            raise SourceFormatError(
                f"device now streams {h.channels} channel(s) at {h.rate_hz} Hz instead of "
                f"{old.channels} at {old.rate_hz} Hz; open the source again",
                path=f"serial:{self.target}",
            )
        self._header = h
        self._rate = float(h.rate_hz)
        self._channels = int(h.channels)
        self._scale = None if self.raw or not h.gain_milli else (float(h.offset), h.gain)

    def _pump(self) -> bool:
        """Read once from the port and sort the packets; True if any bytes arrived."""
        data = self._port_read()
        if not data:
            return False
        for packet in self._decoder.feed(data):
            if isinstance(packet, DataFrame):
                self._pending.append(packet)
            elif isinstance(packet, Ack):
                self.acks[packet.token] = packet
                if len(self.acks) > 64:
                    self.acks.pop(next(iter(self.acks)))
                if packet.opcode == Opcode.START and not self._opened_once:
                    # Frames before the first START took effect belong to the stream it
                    # replaced (a device streaming from boot): not samples of this source.
                    self._pending.clear()
            elif isinstance(packet, Header):
                self._header_seen = packet
                if self._header is not None and packet.stream != self._header.stream:
                    self._use_header(packet)
        self._report_errors()
        return True

    def _report_errors(self) -> None:
        d = self._decoder
        total = d.cobs_errors + d.crc_errors + d.malformed + d.oversize
        while self._reported_errors < total:
            self._reported_errors += 1
            self._skip(f"byte {d.bytes_in}", d.last_error or "corrupt packet")

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:  # closing a vanished device may fail; never raise here
                log.debug("serial:%s: error while closing: %s", self.target, exc)

    # ------------------------------------------------------------------ blocks
    def _to_units(self, counts: np.ndarray) -> np.ndarray:
        if self._scale is None:
            return counts.astype(np.float32)
        offset, gain = self._scale
        return ((counts.astype(np.float64) - offset) / gain).astype(np.float32)

    def _take_buffer(self) -> np.ndarray:
        if not self._buffered:
            return np.zeros((0, self.channels), dtype=np.float32)
        out = np.concatenate(self._buffered) if len(self._buffered) > 1 else self._buffered[0]
        self._buffered, self._n_buffered = [], 0
        if self._buffer_info:
            self._attach_info(**self._buffer_info)
        self._buffer_info = None
        return out

    def _read_block(self, n: int) -> np.ndarray | None:
        if self._end_after_buffer and not self._buffered:
            return None
        while self._n_buffered < n:
            if not self._pending:
                if self._end_after_buffer or not self._pump():
                    break  # nothing more right now: deliver what we have
                continue
            f = self._pending[0]
            # A gap: samples lost on the link or by a device overrun, or the device restarted
            # its stream (its sample clock starts again from 0).
            gap = f.lost_samples > 0 or (f.new_stream and self._seen_data)
            if gap and self._buffered:
                break  # deliver the samples before the gap first
            self._pending.popleft()
            self._seen_data = True
            if gap:
                self._mark_gap(f.lost_samples)
                self._attach_info(lost_frames=f.lost_frames, lost_samples=f.lost_samples)
            if f.n:
                if self._buffer_info is None:
                    self._buffer_info = {
                        "device_seq": f.seq,
                        "device_index": f.sample_index,
                        "device_t_us": f.t_us,
                    }
                self._buffered.append(self._to_units(f.samples))
                self._n_buffered += f.n
            if f.end:
                self._end_after_buffer = True
                break
        out = self._take_buffer()
        if out.shape[0] > n:
            # A frame straddles the block boundary: keep the tail for the next block.
            self._buffered, self._n_buffered = [out[n:]], out.shape[0] - n
            out = out[:n]
            self._buffer_info = None
        if out.shape[0] == 0 and self._end_after_buffer:
            return None
        return out

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        st = super().status()
        st.update(self._decoder.counters())
        h = self._header
        st["device"] = (
            None
            if h is None
            else {
                "id": f"{h.device_id:#010x}",
                "name": h.name,
                "rate_hz": h.rate_hz,
                "channels": h.channels,
                "format": SampleFormat(h.format).name,
                "samples_per_frame": h.samples_per_frame,
                "stream": h.stream,
            }
        )
        return st
