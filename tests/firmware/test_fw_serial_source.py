"""SerialSource on the in-process fake front end: exact samples, gaps, errors, reconnects."""

from __future__ import annotations

import numpy as np
import pytest

from spikeedge.sensors import open_source
from spikeedge.sensors.clock import VirtualClock
from spikeedge.sensors.errors import SourceConfigError, SourceDisconnected
from spikeedge.sensors.fake_serial import FakeSerialDevice, signal_block
from spikeedge.sensors.protocol import SampleFormat
from spikeedge.sensors.serial_link import SerialSource


def ramp(start: int, n: int, channels: int) -> np.ndarray:
    return signal_block("ramp", SampleFormat.S16, 8, 0, start, n, channels).astype(np.float32)


def read_all(src, limit=10_000):
    blocks = []
    with src:
        for block in src:
            blocks.append(block)
            if sum(b.n for b in blocks) >= limit:
                break
    return blocks


def test_exact_samples_and_timestamps_through_the_url():
    src = open_source(
        "serial:fake?signal=ramp&channels=2&frame=16&count=1000&fast=1&block_size=100",
        clock=VirtualClock(),
    )
    blocks = read_all(src)
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, ramp(0, 1000, 2))
    assert [b.t0 for b in blocks] == [i * 100 / 360 for i in range(10)]
    assert not any(b.gap for b in blocks)
    st = src.status()
    assert st["dropped_frames"] == 0 and st["crc_errors"] == 0 and st["samples"] == 1000
    assert st["device"]["rate_hz"] == 360 and st["device"]["channels"] == 2
    assert blocks[0].info["device_index"] == 0


def test_realtime_fake_on_virtual_clock():
    clock = VirtualClock()
    src = SerialSource("fake", signal="ecg", channels=1, frame=32, block_size=64, clock=clock)
    with src:
        b1 = src.read()
        b2 = src.read()
    assert b1.n == 64 and b2.n == 64 and b2.t0 == pytest.approx(64 / 360)
    # Sixteen frames of 32 samples at 360 Hz take 0.178 s of (virtual) device time.
    assert clock.now() == pytest.approx(128 / 360, abs=0.02)
    np.testing.assert_array_equal(
        np.concatenate([b1.samples, b2.samples])[:, 0],
        signal_block("ecg", SampleFormat.S16, 288, 1000, 0, 128, 1)[:, 0],
    )


def test_dropped_frames_flag_gaps_and_keep_time_exact():
    src = SerialSource(
        "fake",
        signal="ramp",
        frame=10,
        count=200,
        fast=True,
        drop_every=5,
        block_size=1000,
        clock=VirtualClock(),
    )
    blocks = read_all(src)
    st = src.status()
    # Frames 5, 10, 15 and 20 are lost; the empty END frame after them reveals the last loss.
    assert st["dropped_frames"] == 4
    assert st["dropped_samples"] == 40
    assert st["lost_samples"] == 40 and st["gaps"] == 3
    for b in blocks:
        first = int(round(b.t0 * b.rate))
        np.testing.assert_array_equal(b.samples, ramp(first, b.n, 1))
    assert [b.gap for b in blocks] == [False, True, True, True]
    assert blocks[1].info["lost_frames"] == 1


def test_corrupt_frames_are_counted_and_skipped():
    src = SerialSource(
        "fake",
        signal="ramp",
        frame=10,
        count=300,
        fast=True,
        corrupt_every=3,
        garbage_every=7,
        block_size=1000,
        clock=VirtualClock(),
    )
    blocks = read_all(src)
    st = src.status()
    errors = st["crc_errors"] + st["cobs_errors"] + st["malformed"]
    assert errors >= 10 and st["skipped"] == errors
    assert st["dropped_frames"] >= 9
    for b in blocks:
        first = int(round(b.t0 * b.rate))
        np.testing.assert_array_equal(b.samples, ramp(first, b.n, 1))


def test_reconnect_resumes_the_stream_and_counts_the_loss():
    clock = VirtualClock()
    made = []

    def port():
        if not made:
            dev = FakeSerialDevice(
                signal="ramp", frame=10, fast=True, clock=clock, disconnect_after=5
            )
        else:  # the device kept streaming while the cable was out: it is 4 frames further
            dev = made[0]
            dev.is_open, dev.disconnect_after = True, 0
            for _ in range(4):
                dev._make_frame()
            dev.reset_input_buffer()
        made.append(dev)
        return dev

    src = SerialSource("x", port=port, block_size=10, clock=clock, backoff_initial=0.5)
    with src:
        blocks = [src.read() for _ in range(8)]
    st = src.status()
    assert st["reconnects"] == 1 and st["errors"] == 1
    assert 0.5 in clock.sleeps
    gap_blocks = [b for b in blocks if b.gap]
    assert len(gap_blocks) == 1
    g = gap_blocks[0]
    assert int(round(g.t0 * g.rate)) == g.info["device_index"]
    np.testing.assert_array_equal(g.samples, ramp(g.info["device_index"], 10, 1))
    assert st["dropped_frames"] >= 4


def test_set_rate_and_refusal():
    src = SerialSource("fake", rate=1000, signal="ramp", fast=True, clock=VirtualClock())
    with src:
        assert src.rate == 1000.0
    bad = SerialSource("fake", rate=5_000_000, fast=True, clock=VirtualClock())
    with pytest.raises(SourceConfigError, match="BAD_ARGUMENT"):
        bad.open()


def test_silent_port_is_a_disconnect_with_a_clear_message():
    class Silent:
        in_waiting = 0

        def read(self, n):
            return b""

        def write(self, b):
            return len(b)

        def close(self):
            pass

    src = SerialSource(
        "x", port=Silent, header_timeout=0.05, max_reconnects=2, clock=VirtualClock()
    )
    with pytest.raises(SourceDisconnected, match="no ACK from the device"):
        src.open()


@pytest.mark.parametrize(
    "url",
    [
        "serial:",
        "serial:///dev/ttyUSB9?signal=ramp",
        "serial:fake?baud=0",
        "serial:fake?colour=red",
    ],
)
def test_bad_urls_are_refused(url):
    with pytest.raises(SourceConfigError):
        open_source(url)


def test_missing_port_is_a_disconnect():
    src = open_source(
        "serial:///dev/does-not-exist-spikeedge", max_reconnects=1, clock=VirtualClock()
    )
    with pytest.raises(SourceDisconnected, match="cannot open"):
        src.open()


# A device that streams from boot (the firmware under QEMU autostarts) while the host's START
# is still on its way: its frames reach the host, its answer comes later (or, on a slow boot,
# only after the first attempt gave up). START restarts the stream at sample 0, so none of
# those frames is a sample of the source and none of them is a loss.


def ecg2(start: int, n: int) -> np.ndarray:
    return signal_block("ecg", SampleFormat.S16, 288, 1000, start, n, 2).astype(np.float32)


class DeafPort:
    """The device's output reaches the host, the host's commands never reach the device."""

    def __init__(self, dev):
        self.dev = dev

    @property
    def in_waiting(self):
        return self.dev.in_waiting

    def read(self, n):
        return self.dev.read(n)

    def write(self, data):
        return len(data)

    def close(self):
        pass


def test_start_unanswered_in_the_first_attempt_is_no_gap():
    clock = VirtualClock()
    dev = FakeSerialDevice(signal="ecg", channels=2, frame=32, autostart=True, clock=clock)
    ports = [DeafPort(dev), dev]
    src = SerialSource(
        "x", port=lambda: ports.pop(0), block_size=96, header_timeout=0.5, max_reconnects=1,
        clock=clock,
    )
    with src:
        blocks = [src.read() for _ in range(4)]
        st = src.status()
    assert st["reconnects"] == 1 and st["stream_restarts"] == 1  # frames of stream 1 came
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, ecg2(0, got.shape[0]))
    assert [b.gap for b in blocks] == [False] * 4
    assert blocks[0].t0 == 0.0 and st["lost_samples"] == 0 and st["gaps"] == 0
    assert st["dropped_frames"] == 0


def test_frames_of_the_autostarted_stream_before_the_start_ack_are_not_delivered():
    clock = VirtualClock()
    dev = FakeSerialDevice(signal="ecg", channels=2, frame=32, autostart=True, clock=clock)
    clock.advance(3 * 32 / 360)
    for _ in range(3):  # three frames of stream 1 on the wire when START is sent
        dev._make_frame()
    src = SerialSource("x", port=dev, block_size=96, clock=clock)
    with src:
        blocks = [src.read() for _ in range(4)]
        st = src.status()
    assert st["stream_restarts"] == 1 and st["device"]["stream"] == 2
    got = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(got, ecg2(0, got.shape[0]))
    assert blocks[0].info["device_seq"] == 0 and blocks[0].info["device_index"] == 0
    assert not any(b.gap for b in blocks) and st["gaps"] == 0 and st["lost_samples"] == 0


def test_a_frame_lost_after_an_autostarted_boot_is_still_a_gap():
    clock = VirtualClock()
    dev = FakeSerialDevice(
        signal="ecg", channels=2, frame=32, autostart=True, clock=clock, drop_every=6
    )
    clock.advance(3 * 32 / 360)
    for _ in range(3):  # stream 1; frames_made counts on, so frame 6 (stream 2, seq 2) is lost
        dev._make_frame()
    src = SerialSource("x", port=dev, block_size=32, clock=clock)
    with src:
        blocks = [src.read() for _ in range(5)]
        st = src.status()
    assert [b.gap for b in blocks] == [False, False, True, False, False]
    assert blocks[2].info["lost_frames"] == 1 and blocks[2].info["lost_samples"] == 32
    assert st["dropped_frames"] == 1 and st["lost_samples"] == 32 and st["gaps"] == 1
    for b in blocks:
        np.testing.assert_array_equal(b.samples, ecg2(int(round(b.t0 * b.rate)), b.n))


def test_frames_decoded_by_a_failed_reconnect_attempt_are_lost_samples():
    """Only the first START makes the frames of a failed attempt harmless: when a reconnect
    resumes the stream, the frames a failed attempt decoded and dropped are lost samples."""
    clock = VirtualClock()
    dev = FakeSerialDevice(signal="ramp", frame=10, rate=1000, clock=clock, disconnect_after=3)
    opened = []

    def port():
        opened.append(dev)
        if len(opened) == 1:
            return dev
        dev.is_open, dev.disconnect_after = True, 0  # plugged in again
        return DeafPort(dev) if len(opened) == 2 else dev

    src = SerialSource(
        "x", port=port, block_size=10, header_timeout=0.05, max_reconnects=3,
        backoff_initial=0.01, clock=clock,
    )
    with src:
        blocks = [src.read() for _ in range(8)]
        st = src.status()
    assert len(opened) == 3 and st["reconnects"] == 1
    assert [b.gap for b in blocks].count(True) == 1 and st["lost_samples"] > 0
    for b in blocks:  # sensor time stays the device's sample index
        first = int(round(b.t0 * b.rate))
        assert first == b.info["device_index"]
        np.testing.assert_array_equal(b.samples, ramp(first, b.n, 1))
