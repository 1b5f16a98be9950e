"""Decoder behaviour: any split of the stream, garbage, bit flips, dropped bytes, truncation.

Every rejected run of bytes between two delimiters is counted exactly once, every intact frame
is recovered, and lost frames show up in ``dropped_frames``. Nothing but our own errors is
ever raised.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeedge.sensors import protocol as P
from spikeedge.sensors.errors import SourceFormatError


def make_frames(count: int, seed: int = 0, n: int = 8, channels: int = 2) -> list[P.DataFrame]:
    rng = np.random.default_rng(seed)
    frames = []
    for seq in range(count):
        samples = rng.integers(-300, 300, size=(n, channels))
        samples[rng.random(samples.shape) < 0.3] = 0  # plenty of zero bytes to stuff
        frames.append(
            P.DataFrame(
                1,
                seq,
                seq * n,
                seq * n * 1000,
                P.SampleFormat.S16,
                channels,
                n,
                P.pack_samples(samples, P.SampleFormat.S16),
            )
        )
    return frames


FRAMES = make_frames(24)
WIRES = [P.encode(f) for f in FRAMES]
STREAM = b"".join(WIRES)
ERRORS = ("cobs_errors", "crc_errors", "malformed", "oversize")


def errors(dec: P.Decoder) -> int:
    return sum(getattr(dec, name) for name in ERRORS)


def nonempty_chunks(stream: bytes) -> int:
    return sum(1 for chunk in stream.split(b"\x00")[:-1] if chunk)


def test_whole_stream():
    dec = P.Decoder()
    assert dec.feed(STREAM) == FRAMES
    assert dec.packets == len(FRAMES) and errors(dec) == 0 and dec.dropped_frames == 0


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_split_gives_the_same_frames(cuts):
    dec = P.Decoder()
    out = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        out += dec.feed(STREAM[a:b])
    assert out == FRAMES
    assert errors(dec) == 0 and dec.bytes_in == len(STREAM)


@given(
    st.lists(st.tuples(st.integers(0, len(FRAMES)), st.binary(min_size=1, max_size=80)), max_size=6)
)
@settings(max_examples=200, deadline=None)
def test_garbage_between_frames_is_counted_and_skipped(inserts):
    parts = list(WIRES)
    expected_errors = 0
    for where, junk in sorted(inserts, key=lambda t: -t[0]):
        junk = junk + b"\x00"  # the garbage ends at a delimiter (or it would eat the frame)
        expected_errors += nonempty_chunks(junk)
        parts.insert(where, junk)
    dec = P.Decoder()
    assert dec.feed(b"".join(parts)) == FRAMES
    assert errors(dec) == expected_errors
    assert dec.dropped_frames == 0


corruption = st.lists(
    st.tuples(
        st.integers(0, len(FRAMES) - 1),
        st.integers(0, 10_000),
        st.integers(0, 7),
        st.sampled_from(["flip", "drop", "insert"]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0],
)


@given(corruption)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_frames_are_counted_exactly(damage):
    parts = [bytearray(w) for w in WIRES]
    for index, pos, bit, how in damage:
        w = parts[index]
        p = pos % len(w)  # may hit the delimiter: two frames merge
        if how == "flip":
            w[p] ^= 1 << bit
        elif how == "drop":
            del w[p]
        else:
            w.insert(p, (pos * 31 + bit) % 256)
    stream = b"".join(parts)
    # A frame survives when its exact bytes are still one run between two delimiters.
    chunks = set(stream.split(b"\x00")[:-1])  # the last run has no delimiter yet
    intact = [i for i, w in enumerate(WIRES) if w[:-1] in chunks]
    dec = P.Decoder()
    out = dec.feed(stream)
    assert out == [FRAMES[i] for i in intact]
    assert dec.packets == len(intact)
    # Every other non-empty run between delimiters is exactly one error.
    assert errors(dec) == nonempty_chunks(stream) - len(intact)
    # Frames lost between the first and the last frame received are counted as dropped.
    expected_dropped = intact[-1] - intact[0] + 1 - len(intact) if intact else 0
    assert dec.dropped_frames == expected_dropped
    assert sum(f.lost_frames for f in out) == dec.dropped_frames


@given(st.integers(0, len(STREAM)))
@settings(max_examples=100, deadline=None)
def test_truncation_keeps_whole_frames_and_waits_for_the_rest(cut):
    dec = P.Decoder()
    out = dec.feed(STREAM[:cut])
    complete = STREAM[:cut].count(b"\x00")
    assert out == FRAMES[:complete]
    assert errors(dec) == 0
    assert dec.feed(STREAM[cut:]) == FRAMES[complete:]


@given(st.binary(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(data):
    dec = P.Decoder()
    out = dec.feed(data)
    assert dec.packets == len(out)
    assert errors(dec) + dec.packets <= nonempty_chunks(data) + 1


def test_oversize_packet_is_discarded_without_buffering():
    dec = P.Decoder()
    assert dec.feed(b"\x55" * (P.MAX_ENCODED * 3)) == []
    assert dec.oversize == 1 and len(dec._buf) == 0
    assert dec.feed(b"\x00" + WIRES[0]) == [FRAMES[0]]
    assert dec.oversize == 1 and errors(dec) == 1


def test_unsynced_start_skips_the_partial_packet():
    dec = P.Decoder(synced=False)
    assert dec.feed(WIRES[0][5:] + WIRES[1]) == [FRAMES[1]]
    assert errors(dec) == 0 and dec.skipped_bytes == len(WIRES[0]) - 5 - 1


def test_sample_gap_from_overrun_and_stream_restart():
    f0 = FRAMES[0]
    overrun = P.DataFrame(1, 1, 100, 100_000, f0.format, f0.channels, f0.n, f0.data, P.FLAG_OVERRUN)
    header = P.Header(
        stream=2, format=2, channels=2, rate_hz=1000, samples_per_frame=8, device_id=1
    )
    restarted = P.DataFrame(2, 1, 8, 8000, f0.format, f0.channels, f0.n, f0.data)
    dec = P.Decoder()
    out = dec.feed(P.encode(f0) + P.encode(overrun) + P.encode(header) + P.encode(restarted))
    assert [type(p).__name__ for p in out] == ["DataFrame", "DataFrame", "Header", "DataFrame"]
    assert out[1].lost_frames == 0 and out[1].lost_samples == 92 and out[1].overrun
    assert out[3].new_stream and out[3].lost_frames == 1 and out[3].lost_samples == 8
    assert dec.overruns == 1 and dec.stream_restarts == 1
    assert dec.dropped_frames == 1 and dec.dropped_samples == 100


def test_sequence_wraps_at_32_bits():
    a = P.DataFrame(1, 0xFFFFFFFF, 0xFFFFFFF8, 0, 2, 1, 4, bytes(8))
    b = P.DataFrame(1, 0, 0xFFFFFFFC, 0, 2, 1, 4, bytes(8))
    dec = P.Decoder()
    dec.feed(P.encode(a) + P.encode(b))
    assert dec.dropped_frames == 0 and dec.dropped_samples == 0 and dec.stream_restarts == 0


@pytest.mark.parametrize(
    "bad",
    [
        lambda: P.encode(P.Command(token=300, opcode=1)),
        lambda: P.encode(P.Header(1, 9, 1, 100, 8, 1)),
        lambda: P.encode(P.DataFrame(1, 0, 0, 0, 2, 1, 4, b"\x00" * 7)),
        lambda: P.encode(P.DataFrame(1, 0, 0, 0, 2, 1, 600, b"\x00" * 1200)),
        lambda: P.pack_samples(np.array([40000]), P.SampleFormat.S16),
        lambda: P.unframe(P.encode(P.Command(1, 1))[:-2] + b"\x01\x00"),
        lambda: P.parse_payload(b"\x7f"),
        lambda: P.cobs_decode(b"\x05\x01"),
    ],
)
def test_encoder_and_parser_errors_are_ours(bad):
    with pytest.raises(P.ProtocolError) as info:
        bad()
    assert isinstance(info.value, SourceFormatError)
