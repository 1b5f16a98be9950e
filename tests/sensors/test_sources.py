"""Source base class: blocks, timestamps, pacing on a virtual clock, reconnect and timeouts."""

from __future__ import annotations

import numpy as np
import pytest

from spikeedge.sensors import (
    SourceConfigError,
    SourceDisconnected,
    VirtualClock,
    open_source,
    parse_url,
)
from spikeedge.sensors.base import Source


class Scripted(Source):
    """A backend that plays a script: arrays, 'drop' (disconnect), 'empty', then the end."""

    def __init__(self, script, fail_opens=0, **kw):
        super().__init__(**kw)
        self._rate, self._channels = 100.0, 2
        self.script = list(script)
        self.fail_opens = fail_opens
        self.opens = 0
        self.closes = 0

    def _open(self):
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceDisconnected("device not there")

    def _read_block(self, n):
        if not self.script:
            return None
        item = self.script.pop(0)
        if isinstance(item, str) and item == "drop":
            raise SourceDisconnected("cable pulled")
        if isinstance(item, str) and item == "empty":
            return np.zeros((0, 2))
        if isinstance(item, tuple):  # ("lost", k)
            self._mark_gap(item[1])
            return self._read_block(n)
        return item

    def _close(self):
        self.closes += 1


def blk(n, v=0.0):
    return np.full((n, 2), v)


def test_blocks_carry_sequence_timestamps_and_float32():
    src = Scripted([blk(10), blk(5), blk(7)], clock=VirtualClock())
    blocks = list(src)
    assert [b.seq for b in blocks] == [0, 1, 2]
    assert [b.t0 for b in blocks] == [0.0, 0.1, 0.15]
    assert all(b.samples.dtype == np.float32 and b.samples.shape[1] == 2 for b in blocks)
    assert not any(b.gap for b in blocks)
    assert src.status()["samples"] == 22 and not src.is_open  # iteration opened and closed it


def test_known_loss_advances_time_and_flags_gap():
    src = Scripted([blk(10), ("lost", 30), blk(10)], clock=VirtualClock())
    a, b = list(src)
    assert b.gap and b.t0 == pytest.approx(0.4)
    assert src.status()["lost_samples"] == 30 and src.status()["gaps"] == 1


def test_realtime_pacing_uses_the_injected_clock_only():
    clock = VirtualClock()
    src = Scripted([blk(50), blk(50), blk(100)], clock=clock, realtime=True)
    for _ in src:
        pass
    # Each block is released when its last sample is due: 0.5 s, 1.0 s, 2.0 s.
    assert clock.now() == pytest.approx(2.0)
    assert clock.sleeps == pytest.approx([0.5, 0.5, 1.0])


def test_as_fast_as_possible_never_sleeps():
    clock = VirtualClock()
    list(Scripted([blk(50)] * 4, clock=clock))
    assert clock.sleeps == []


def test_reconnect_with_exponential_backoff_and_gap():
    clock = VirtualClock()
    src = Scripted([blk(10), "drop", blk(10)], clock=clock, fail_opens=0,
                   backoff_initial=0.1, backoff_factor=2.0, backoff_max=1.0)
    src.open()
    src.fail_opens = 2  # the device comes back on the third attempt
    a = src.read()
    b = src.read()
    assert not a.gap and b.gap
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    st = src.status()
    assert st["reconnects"] == 1 and st["errors"] == 3 and "device not there" in st["last_error"]
    src.close()


def test_gives_up_after_max_reconnects_with_a_clear_error():
    src = Scripted(["drop"], clock=VirtualClock(), max_reconnects=2, fail_opens=0)
    src.open()
    src.fail_opens = 10
    with pytest.raises(SourceDisconnected, match="gave up after 2"):
        src.read()


def test_open_retries_a_missing_device():
    clock = VirtualClock()
    src = Scripted([blk(3)], clock=clock, fail_opens=1)
    with src:
        assert src.read().n == 3
    assert src.opens == 2 and src.closes == 1 and src.status()["reconnects"] == 1


def test_timeout_when_no_data_arrives():
    clock = VirtualClock()
    src = Scripted(["empty"] * 3000 + [blk(4)], clock=clock, timeout=0.5, max_reconnects=0)
    src.open()
    with pytest.raises(SourceDisconnected, match="no data"):
        src.read()
    assert clock.now() == pytest.approx(0.5, abs=0.01)


def test_backend_shape_mismatch_is_reported():
    src = Scripted([np.zeros((4, 3))], clock=VirtualClock())
    with pytest.raises(Exception, match="expected"):
        src.read()


@pytest.mark.parametrize(
    "url, match",
    [
        ("nothing", "no scheme"),
        ("ftp:x", "unknown scheme 'ftp'"),
        ("fake:cat", "unknown fake 'cat'"),
        ("fake:tone?freq=abc", "bad value for option 'freq'"),
        ("fake:tone?colour=red", "unknown option 'colour'"),
        ("fake:tone?freq=1&freq=2", "given twice"),
        ("fake:tone?freq=9000&rate=8000", "freq must be in"),
        ("fake:ecg?hr=500", "hr must be"),
        ("wav:x.wav?resample=44100", "not supported"),
        ("fake:tone?block_size=0", "block_size"),
        ("fake:tone?realtime=maybe", "realtime"),
        ("serial:///dev/ttyACM0?baud=921600", "serial"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, match):
    import importlib.util

    if url.startswith("serial:") and importlib.util.find_spec("spikeedge.sensors.serial_link"):
        pytest.skip("serial backend present; its own tests cover its options")
    with pytest.raises(SourceConfigError, match=match):
        open_source(url)


def test_parse_url_forms():
    assert parse_url("wav:a/b.wav?resample=16000") == ("wav", "a/b.wav", {"resample": "16000"})
    assert parse_url("serial:///dev/ttyACM0?baud=9600") == (
        "serial", "/dev/ttyACM0", {"baud": "9600"})
    assert parse_url("fake:ecg") == ("fake", "ecg", {})
