"""The spikeedge serial protocol (version 1): packet types, encoders and an I/O-free decoder.

The firmware in ``firmware/`` speaks it; ``docs/protocol.md`` is the specification with byte
layouts and worked examples. On the wire every packet is::

    COBS(payload || CRC-32(payload) as 4 bytes little-endian) || 0x00

CRC-32 is CRC-32/ISO-HDLC (:func:`zlib.crc32`: reflected polynomial 0xEDB88320, initial value
and final XOR 0xFFFFFFFF). The first payload byte is the packet type, every multi-byte field is
little-endian:

=========  =====  ==============  ====================================================
type       code   direction       payload
=========  =====  ==============  ====================================================
HEADER     0x01   device -> host  version, stream, format, channels, rate, device id, ...
DATA       0x02   device -> host  stream, flags, seq, first-sample index and time, samples
COMMAND    0x10   host -> device  token, opcode (START, STOP, SET_RATE, IDENTIFY), argument
ACK        0x11   device -> host  token, opcode, status, value
=========  =====  ==============  ====================================================

:class:`Decoder` does no I/O: ``feed(bytes) -> list of packets``. It accepts any split of the
byte stream, resynchronises on the next 0x00 after garbage, and counts every rejected packet in
exactly one of ``cobs_errors``, ``crc_errors``, ``malformed`` or ``oversize``; it never raises
on bad input. Sequence numbers give ``dropped_frames``; first-sample indices give
``dropped_samples``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, fields
from enum import IntEnum

import numpy as np

from .errors import SourceFormatError

__all__ = [
    "PROTOCOL_VERSION",
    "PacketType",
    "SampleFormat",
    "Opcode",
    "AckStatus",
    "FLAG_OVERRUN",
    "FLAG_END",
    "MAX_SAMPLE_BYTES",
    "MAX_WIRE",
    "ProtocolError",
    "Header",
    "DataFrame",
    "Command",
    "Ack",
    "Packet",
    "cobs_encode",
    "cobs_decode",
    "crc32",
    "frame_payload",
    "unframe",
    "encode_payload",
    "encode",
    "encode_header",
    "encode_data",
    "encode_command",
    "encode_ack",
    "parse_payload",
    "pack_samples",
    "Decoder",
]

PROTOCOL_VERSION = 1


class PacketType(IntEnum):
    HEADER = 0x01
    DATA = 0x02
    COMMAND = 0x10
    ACK = 0x11


class SampleFormat(IntEnum):
    """Signed little-endian integers; channels interleaved sample by sample."""

    S8 = 1
    S16 = 2
    S32 = 3

    @property
    def size(self) -> int:
        return {1: 1, 2: 2, 3: 4}[int(self)]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({1: "<i1", 2: "<i2", 3: "<i4"}[int(self)])


class Opcode(IntEnum):
    START = 1  # (re)start streaming: ACK, HEADER, DATA from seq 0
    STOP = 2  # stop streaming
    SET_RATE = 3  # argument: rate in Hz; the ACK value is the rate in use
    IDENTIFY = 4  # ACK (value = device id), then a HEADER


class AckStatus(IntEnum):
    OK = 0
    UNKNOWN_OPCODE = 1
    BAD_ARGUMENT = 2
    BAD_LENGTH = 3


FLAG_OVERRUN = 0x01  # the device dropped samples before this frame (sample_index jumps)
FLAG_END = 0x02  # last frame of a finite recording

HEADER_FIXED_LEN = 24
HEADER_NAME_MAX = 32
DATA_FIXED_LEN = 24
MAX_SAMPLE_BYTES = 1024
CRC_LEN = 4
MAX_PAYLOAD = DATA_FIXED_LEN + MAX_SAMPLE_BYTES
#: Largest encoded packet (COBS of the largest payload plus CRC), without the delimiter.
MAX_ENCODED = (MAX_PAYLOAD + CRC_LEN) + (MAX_PAYLOAD + CRC_LEN) // 254 + 1
MAX_WIRE = MAX_ENCODED + 1

_HEADER = struct.Struct("<BBBBBBHIIiI")  # type .. gain_milli: 24 bytes
_DATA = struct.Struct("<BBBBBBHIIQ")  # type .. t_us: 24 bytes
_ACK = struct.Struct("<BBBBI")
_U32 = struct.Struct("<I")
assert _HEADER.size == HEADER_FIXED_LEN and _DATA.size == DATA_FIXED_LEN and _ACK.size == 8


class ProtocolError(SourceFormatError):
    """A packet cannot be encoded or parsed (bad field, bad length, bad CRC or COBS)."""


# ---------------------------------------------------------------------------------- packets
@dataclass(frozen=True)
class Header:
    """Stream description, sent after START and IDENTIFY."""

    stream: int
    format: int
    channels: int
    rate_hz: int
    samples_per_frame: int
    device_id: int
    offset: int = 0  # ADC count that means zero physical units
    gain_milli: int = 0  # ADC counts per physical unit x 1000; 0 = raw counts
    name: str = ""
    version: int = PROTOCOL_VERSION

    @property
    def gain(self) -> float | None:
        """Counts per physical unit, or None for an uncalibrated (raw) stream."""
        return self.gain_milli / 1000.0 if self.gain_milli else None


@dataclass(frozen=True)
class DataFrame:
    """Samples of one frame. ``data`` is the packed bytes; :attr:`samples` the int32 array.

    The decoder fills ``lost_frames`` / ``lost_samples`` (lost since the previous frame of the
    same stream) and ``new_stream``; they do not take part in equality.
    """

    stream: int
    seq: int
    sample_index: int
    t_us: int
    format: int
    channels: int
    n: int
    data: bytes
    flags: int = 0
    lost_frames: int = field(default=0, compare=False)
    lost_samples: int = field(default=0, compare=False)
    new_stream: bool = field(default=False, compare=False)

    @property
    def samples(self) -> np.ndarray:
        """Samples as int32 ``[n, channels]``."""
        dtype = SampleFormat(self.format).dtype
        return np.frombuffer(self.data, dtype=dtype).astype(np.int32).reshape(self.n, self.channels)

    @property
    def end(self) -> bool:
        return bool(self.flags & FLAG_END)

    @property
    def overrun(self) -> bool:
        return bool(self.flags & FLAG_OVERRUN)


@dataclass(frozen=True)
class Command:
    token: int
    opcode: int
    arg: int = 0


@dataclass(frozen=True)
class Ack:
    token: int
    opcode: int
    status: int
    value: int = 0


Packet = Header | DataFrame | Command | Ack


# ---------------------------------------------------------------------------------- COBS, CRC
def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no 0x00 in the result; the delimiter is not added).

    A run of 254 non-zero bytes is closed by a 0xFF code even at the very end, exactly as the
    C encoder does, so both produce the same bytes.
    """
    out = bytearray()
    for piece in bytes(data).split(b"\x00"):
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS packet (without delimiter); :class:`ProtocolError` if invalid."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ProtocolError(f"invalid COBS code {code:#04x} at byte {i} of {n}")
        block = data[i + 1 : end]
        if 0 in block:
            raise ProtocolError(f"0x00 inside a COBS block at byte {i + 1 + block.index(0)}")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC of ``data`` (check value ``crc32(b"123456789") == 0xCBF43926``)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def frame_payload(payload: bytes) -> bytes:
    """Wire bytes of a payload: COBS(payload + CRC) + 0x00."""
    payload = bytes(payload)
    return cobs_encode(payload + _U32.pack(crc32(payload))) + b"\x00"


def unframe(wire: bytes) -> bytes:
    """Payload of one packet's wire bytes (with or without the trailing 0x00).

    Raises :class:`ProtocolError` for bad COBS or a CRC mismatch.
    """
    if wire.endswith(b"\x00"):
        wire = wire[:-1]
    body = cobs_decode(wire)
    if len(body) < CRC_LEN + 1:
        raise ProtocolError(f"packet of {len(body)} bytes is too short for a type and a CRC")
    payload, (crc,) = body[:-CRC_LEN], _U32.unpack(body[-CRC_LEN:])
    if crc != crc32(payload):
        raise ProtocolError(f"CRC mismatch: got {crc:#010x}, computed {crc32(payload):#010x}")
    return payload


# ---------------------------------------------------------------------------------- encoders
def _check_range(name: str, value: int, lo: int, hi: int) -> int:
    if not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ProtocolError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def pack_samples(samples: np.ndarray, fmt: int) -> bytes:
    """Pack an integer array ``[n, channels]`` (or ``[n]``) into little-endian bytes of ``fmt``.

    Values must fit the format (no silent wrapping).
    """
    sf = SampleFormat(fmt)
    arr = np.asarray(samples)
    if arr.dtype.kind not in "iu":
        raise ProtocolError(f"samples must be integers, got dtype {arr.dtype}")
    info = np.iinfo(sf.dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ProtocolError(
            f"samples out of range for {sf.name}: [{arr.min()}, {arr.max()}] not in "
            f"[{info.min}, {info.max}]"
        )
    return arr.astype(sf.dtype).tobytes()


def encode_header(h: Header) -> bytes:
    """Payload (no CRC, no COBS) of a HEADER packet."""
    name = h.name.encode("ascii")
    if len(name) > HEADER_NAME_MAX:
        raise ProtocolError(f"device name longer than {HEADER_NAME_MAX} bytes: {h.name!r}")
    SampleFormat(_check_range("format", h.format, 1, 3))
    return (
        _HEADER.pack(
            PacketType.HEADER,
            _check_range("version", h.version, 0, 255),
            _check_range("stream", h.stream, 0, 255),
            h.format,
            _check_range("channels", h.channels, 1, 255),
            len(name),
            _check_range("samples_per_frame", h.samples_per_frame, 0, 0xFFFF),
            _check_range("device_id", h.device_id, 0, 0xFFFFFFFF),
            _check_range("rate_hz", h.rate_hz, 1, 0xFFFFFFFF),
            _check_range("offset", h.offset, -(2**31), 2**31 - 1),
            _check_range("gain_milli", h.gain_milli, 0, 0xFFFFFFFF),
        )
        + name
    )


def encode_data(d: DataFrame) -> bytes:
    """Payload of a DATA packet (``d.data`` must hold ``n * channels`` packed samples)."""
    sf = SampleFormat(_check_range("format", d.format, 1, 3))
    _check_range("channels", d.channels, 1, 255)
    _check_range("n", d.n, 0, 0xFFFF)
    nbytes = d.n * d.channels * sf.size
    if nbytes > MAX_SAMPLE_BYTES:
        raise ProtocolError(f"{nbytes} sample bytes exceed the frame limit of {MAX_SAMPLE_BYTES}")
    if len(d.data) != nbytes:
        raise ProtocolError(f"data holds {len(d.data)} bytes, expected {nbytes}")
    return _DATA.pack(
        PacketType.DATA,
        _check_range("stream", d.stream, 0, 255),
        _check_range("flags", d.flags, 0, 255),
        d.format,
        d.channels,
        0,
        d.n,
        _check_range("seq", d.seq, 0, 0xFFFFFFFF),
        _check_range("sample_index", d.sample_index, 0, 0xFFFFFFFF),
        _check_range("t_us", d.t_us, 0, 2**64 - 1),
    ) + bytes(d.data)


def encode_command(c: Command) -> bytes:
    """Payload of a COMMAND packet (SET_RATE carries its u32 argument)."""
    head = bytes(
        [
            PacketType.COMMAND,
            _check_range("token", c.token, 0, 255),
            _check_range("opcode", c.opcode, 0, 255),
        ]
    )
    if c.opcode == Opcode.SET_RATE:
        return head + _U32.pack(_check_range("arg", c.arg, 0, 0xFFFFFFFF))
    return head


def encode_ack(a: Ack) -> bytes:
    """Payload of an ACK packet."""
    return _ACK.pack(
        PacketType.ACK,
        _check_range("token", a.token, 0, 255),
        _check_range("opcode", a.opcode, 0, 255),
        _check_range("status", a.status, 0, 255),
        _check_range("value", a.value, 0, 0xFFFFFFFF),
    )


def encode_payload(packet: Packet) -> bytes:
    """Payload of any packet."""
    if isinstance(packet, Header):
        return encode_header(packet)
    if isinstance(packet, DataFrame):
        return encode_data(packet)
    if isinstance(packet, Command):
        return encode_command(packet)
    if isinstance(packet, Ack):
        return encode_ack(packet)
    raise ProtocolError(f"not a protocol packet: {type(packet).__name__}")


def encode(packet: Packet) -> bytes:
    """Wire bytes of any packet (payload, CRC, COBS, delimiter)."""
    return frame_payload(encode_payload(packet))


# ---------------------------------------------------------------------------------- parser
def parse_payload(p: bytes) -> Packet:
    """Parse a payload (CRC already checked and stripped); :class:`ProtocolError` if invalid."""
    if not p:
        raise ProtocolError("empty payload")
    kind = p[0]
    if kind == PacketType.DATA:
        if len(p) < DATA_FIXED_LEN:
            raise ProtocolError(f"DATA payload of {len(p)} bytes is shorter than {DATA_FIXED_LEN}")
        _, stream, flags, fmt, ch, reserved, n, seq, index, t_us = _DATA.unpack_from(p)
        if fmt not in (1, 2, 3) or ch == 0 or reserved != 0:
            raise ProtocolError(f"DATA: bad format {fmt}, channels {ch} or reserved byte")
        nbytes = n * ch * SampleFormat(fmt).size
        if nbytes > MAX_SAMPLE_BYTES or len(p) != DATA_FIXED_LEN + nbytes:
            raise ProtocolError(
                f"DATA: {n} samples x {ch} channels of format {fmt} need "
                f"{DATA_FIXED_LEN + nbytes} bytes, payload has {len(p)}"
            )
        return DataFrame(stream, seq, index, t_us, fmt, ch, n, bytes(p[DATA_FIXED_LEN:]), flags)
    if kind == PacketType.HEADER:
        if len(p) < HEADER_FIXED_LEN:
            raise ProtocolError(f"HEADER payload of {len(p)} bytes is too short")
        (_, version, stream, fmt, ch, name_len, spf, dev, rate, offset, gain) = _HEADER.unpack_from(
            p
        )
        if name_len > HEADER_NAME_MAX or len(p) != HEADER_FIXED_LEN + name_len:
            raise ProtocolError(f"HEADER: name length {name_len} does not match {len(p)} bytes")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"HEADER: protocol version {version}, this host speaks {PROTOCOL_VERSION}"
            )
        if fmt not in (1, 2, 3) or ch == 0 or rate == 0:
            raise ProtocolError(f"HEADER: bad format {fmt}, channels {ch} or rate {rate}")
        name = bytes(p[HEADER_FIXED_LEN:]).decode("ascii", errors="replace")
        return Header(stream, fmt, ch, rate, spf, dev, offset, gain, name, version)
    if kind == PacketType.COMMAND:
        if len(p) < 3:
            raise ProtocolError(f"COMMAND payload of {len(p)} bytes is too short")
        want = 7 if p[2] == Opcode.SET_RATE else 3
        if len(p) != want:
            raise ProtocolError(f"COMMAND opcode {p[2]}: {len(p)} bytes, expected {want}")
        arg = _U32.unpack_from(p, 3)[0] if want == 7 else 0
        return Command(p[1], p[2], arg)
    if kind == PacketType.ACK:
        if len(p) != _ACK.size:
            raise ProtocolError(f"ACK payload of {len(p)} bytes, expected {_ACK.size}")
        _, token, opcode, status, value = _ACK.unpack(p)
        return Ack(token, opcode, status, value)
    raise ProtocolError(f"unknown packet type {kind:#04x}")


# ---------------------------------------------------------------------------------- decoder
_COUNTERS = (
    "bytes_in",
    "packets",
    "cobs_errors",
    "crc_errors",
    "malformed",
    "oversize",
    "skipped_bytes",
    "dropped_frames",
    "dropped_samples",
    "overruns",
    "stream_restarts",
)


class Decoder:
    """Turn received bytes into packets; no I/O, never raises on bad input.

    ``synced=False`` (a port opened in the middle of a stream) silently skips the bytes before
    the first 0x00 (counted in ``skipped_bytes``) instead of reporting them as a bad packet.

    Every non-empty run of bytes between two delimiters ends up in exactly one counter:
    ``packets`` (good), ``cobs_errors``, ``crc_errors`` (includes packets too short to hold a
    CRC), ``malformed`` (good CRC, bad content) or ``oversize`` (longer than any valid packet;
    discarded up to the next delimiter without buffering it). Gap accounting on DATA frames
    of one stream: ``dropped_frames`` from sequence numbers, ``dropped_samples`` from
    first-sample indices (this also covers device overruns, counted in ``overruns``).
    """

    def __init__(self, *, synced: bool = True, max_encoded: int = MAX_ENCODED):
        self.max_encoded = int(max_encoded)
        self._buf = bytearray()
        self._synced = bool(synced)
        self._discarding = False
        self.header: Header | None = None
        self.last_error: str | None = None
        self._stream: int | None = None
        self._next_seq = 0
        self._next_index: int | None = None
        self._header_pending = False
        for name in _COUNTERS:
            setattr(self, name, 0)

    def counters(self) -> dict[str, int]:
        """All counters as a dict."""
        return {name: getattr(self, name) for name in _COUNTERS}

    def resync(self) -> None:
        """Drop a partly received packet and skip to the next delimiter (after a reconnect);
        sequence tracking is kept, so frames lost meanwhile are still counted."""
        self._buf.clear()
        self._discarding = False
        self._synced = False

    def reset_stream(self) -> None:
        """Forget sequence tracking (after a reconnect the next frame starts afresh)."""
        self._stream = None
        self._next_index = None
        self._header_pending = False
        self._buf.clear()
        self._discarding = False
        self._synced = False

    def feed(self, data: bytes) -> list[Packet]:
        """Consume ``data`` (any split of the stream) and return the packets completed by it."""
        data = bytes(data)
        self.bytes_in += len(data)
        out: list[Packet] = []
        start = 0
        n = len(data)
        while start < n:
            z = data.find(0, start)
            end = n if z < 0 else z
            piece = data[start:end]
            if not self._synced:
                self.skipped_bytes += len(piece)
            elif self._discarding:
                pass
            else:
                self._buf += piece
                if len(self._buf) > self.max_encoded:
                    self.oversize += 1
                    self.last_error = f"packet longer than {self.max_encoded} bytes"
                    self._buf.clear()
                    self._discarding = True
            if z < 0:
                break
            # A delimiter: complete the current packet.
            if self._synced and not self._discarding and self._buf:
                packet = self._packet(bytes(self._buf))
                if packet is not None:
                    out.append(packet)
            self._buf.clear()
            self._synced = True
            self._discarding = False
            start = z + 1
        return out

    def _packet(self, wire: bytes) -> Packet | None:
        try:
            body = cobs_decode(wire)
        except ProtocolError as exc:
            self.cobs_errors += 1
            self.last_error = str(exc)
            return None
        if len(body) < CRC_LEN + 1 or _U32.unpack(body[-CRC_LEN:])[0] != crc32(body[:-CRC_LEN]):
            self.crc_errors += 1
            self.last_error = f"CRC mismatch in a {len(body)}-byte packet"
            return None
        try:
            packet = parse_payload(body[:-CRC_LEN])
        except ProtocolError as exc:
            self.malformed += 1
            self.last_error = str(exc)
            return None
        self.packets += 1
        if isinstance(packet, DataFrame):
            return self._track(packet)
        if isinstance(packet, Header):
            self.header = packet
            if packet.stream != self._stream:
                if self._stream is not None:
                    self.stream_restarts += 1
                self._stream = packet.stream
                self._next_seq = 0
                self._next_index = 0
                self._header_pending = True
        return packet

    def _track(self, f: DataFrame) -> DataFrame:
        lost_frames = lost_samples = 0
        new_stream = self._header_pending
        self._header_pending = False
        if self._stream is None:
            new_stream = True  # first frame seen: nothing to compare with
        elif f.stream != self._stream or ((f.seq - self._next_seq) & 0xFFFFFFFF) >= 2**31:
            # Another stream (or the sequence went backwards: the device restarted).
            new_stream = True
            self.stream_restarts += 1
            lost_frames = f.seq
            lost_samples = f.sample_index
        else:
            lost_frames = (f.seq - self._next_seq) & 0xFFFFFFFF
            if self._next_index is not None:
                lost_samples = (f.sample_index - self._next_index) & 0xFFFFFFFF
        if f.overrun:
            self.overruns += 1
        self.dropped_frames += lost_frames
        self.dropped_samples += lost_samples
        self._stream = f.stream
        self._next_seq = (f.seq + 1) & 0xFFFFFFFF
        self._next_index = (f.sample_index + f.n) & 0xFFFFFFFF
        if lost_frames or lost_samples or new_stream:
            return DataFrame(
                **{fl.name: getattr(f, fl.name) for fl in fields(f) if fl.compare},
                lost_frames=lost_frames,
                lost_samples=lost_samples,
                new_stream=new_stream,
            )
        return f
