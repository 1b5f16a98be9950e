"""Microphone source with a fake sounddevice module (no audio hardware needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikeedge.sensors import SourceConfigError, SourceDisconnected, VirtualClock
from spikeedge.sensors.mic import MicSource


class FakeStream:
    def __init__(self, sd, callback, finished_callback, **kw):
        self.sd, self.callback, self.finished = sd, callback, finished_callback
        self.kw = kw
        sd.streams.append(self)

    def start(self):
        if self.sd.unplugged:
            raise RuntimeError("Error opening InputStream: device unavailable")
        if self.sd.on_start is not None:
            self.feed(self.sd.on_start)

    def stop(self):
        pass

    def close(self):
        pass

    def feed(self, x):
        self.callback(np.asarray(x, dtype=np.float32)[:, None], len(x), None, None)


class FakeSd:
    def __init__(self):
        self.streams = []
        self.unplugged = False
        self.on_start = None

    def InputStream(self, **kw):  # noqa: N802 - mirrors sounddevice
        return FakeStream(self, **kw)


def make_mic(sd, clock, **kw):
    return MicSource("default", rate=16000, sd_module=sd, clock=clock, block_size=100,
                     poll=0.0, backoff_initial=0.5, **kw)


def test_mic_delivers_fed_audio_with_timestamps():
    sd = FakeSd()
    mic = make_mic(sd, VirtualClock())
    mic.open()
    sd.streams[-1].feed(np.arange(250) / 1000)
    a, b = mic.read(), mic.read()
    assert a.n == 100 and b.n == 100 and a.t0 == 0 and b.t0 == pytest.approx(100 / 16000)
    np.testing.assert_allclose(b.samples[:, 0], np.arange(100, 200) / 1000, atol=1e-6)
    mic.close()


def test_mic_reconnects_after_the_device_vanishes():
    sd = FakeSd()
    clock = VirtualClock()
    mic = make_mic(sd, clock)
    mic.open()
    sd.streams[-1].feed(np.zeros(250))
    mic.read()
    sd.streams[-1].finished()  # PortAudio ends the stream when the device is unplugged
    sd.on_start = np.ones(30)
    blk = mic.read()
    assert blk.gap and blk.n == 30 and np.all(blk.samples == 1)
    st = mic.status()
    assert st["reconnects"] == 1 and st["lost_samples"] == 150 and clock.sleeps[0] == 0.5
    mic.close()


def test_mic_gives_up_when_the_device_stays_away():
    sd = FakeSd()
    mic = make_mic(sd, VirtualClock(), max_reconnects=2)
    mic.open()
    sd.streams[-1].finished()
    sd.unplugged = True
    with pytest.raises(SourceDisconnected, match="gave up after 2"):
        mic.read()


def test_missing_sounddevice_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    mic = MicSource("default", rate=16000, max_reconnects=0)
    with pytest.raises(SourceConfigError, match="libportaudio2"):
        mic.open()


def test_mic_rate_is_checked():
    with pytest.raises(SourceConfigError, match="rate"):
        MicSource("default", rate=44100, sd_module=FakeSd())
