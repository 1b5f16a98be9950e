"""File readers on real recordings (skipped without them) and on malformed files."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from spikeedge.sensors import SourceConfigError, SourceFormatError, open_source
from spikeedge.sensors.readers import BEAT_SYMBOLS


def write_wav(path, data, rate=8000, width=2, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def tone16(n=800, rate=8000, f=500.0):
    x = (0.5 * np.sin(2 * np.pi * f * np.arange(n) / rate) * 32767).astype("<i2")
    return x


# ----------------------------------------------------------------------------- WAV
def test_wav_roundtrip_and_resampling(tmp_path):
    x = tone16()
    p = write_wav(tmp_path / "t.wav", x.tobytes())
    src = open_source(f"wav:{p}", block_size=300)
    blocks = list(src)
    assert [b.n for b in blocks] == [300, 300, 200] and src.rate == 8000
    y = np.concatenate([b.samples[:, 0] for b in blocks])
    np.testing.assert_allclose(y, x / 32768.0, atol=1e-7)
    up = np.concatenate([b.samples for b in open_source(f"wav:{p}?resample=16000")])
    assert up.shape == (1600, 1)


def test_wav_stereo_needs_a_channel(tmp_path):
    x = np.stack([tone16(), -tone16()], axis=1).astype("<i2")
    p = write_wav(tmp_path / "s.wav", x.tobytes(), channels=2)
    with pytest.raises(SourceFormatError, match="mono"):
        open_source(f"wav:{p}")
    y = np.concatenate([b.samples for b in open_source(f"wav:{p}?channel=1")])
    np.testing.assert_allclose(y[:, 0], -tone16() / 32768.0, atol=1e-7)


@pytest.mark.parametrize("case, match", [
    ("missing", "not found"),
    ("garbage", "not a readable WAV"),
    ("width8", "8 bit"),
    ("rate44k", "44100 Hz"),
    ("truncated", "truncated"),
])
def test_wav_malformed(tmp_path, case, match):
    p = tmp_path / "bad.wav"
    if case == "garbage":
        p.write_bytes(b"RIFF\x00\x00not a wave file at all")
    elif case == "width8":
        write_wav(p, bytes(800), width=1)
    elif case == "rate44k":
        write_wav(p, tone16().tobytes(), rate=44100)
    elif case == "truncated":
        write_wav(p, tone16().tobytes())
        raw = p.read_bytes()
        p.write_bytes(raw[:-501])
    with pytest.raises(SourceFormatError, match=match) as exc:
        list(open_source(f"wav:{p}"))
    assert str(p) in str(exc.value)


def test_fsdd_recordings(fsdd):
    files = sorted(fsdd.glob("*.wav"))[:5]
    assert files
    for f in files:
        src = open_source(f"wav:{f}")
        x = np.concatenate([b.samples for b in src])
        assert src.rate == 8000 and x.shape[1] == 1 and 0.05 < np.abs(x).max() <= 1.0


# ----------------------------------------------------------------------------- WFDB
def test_mitbih_record_in_mv_with_annotations(mitbih):
    src = open_source(f"wfdb:{mitbih}/101?channel=0", block_size=36000)
    n = 0
    anns = []
    first = None
    for b in src:
        first = b.samples[0, 0] if first is None else first
        n += b.n
        anns.extend(b.info["ann_symbols"])
    assert src.rate == 360 and n == 650000
    assert first == pytest.approx((955 - 1024) / 200, abs=1e-6)  # 101.hea initial value
    assert sum(s in BEAT_SYMBOLS for s in anns) == 1865  # README's beat count for 101


def write_record(tmp_path, crlf=True, truncate=False, header=None):
    import wfdb

    sig = np.round(np.sin(np.arange(720) / 20)[:, None] * [1.0, 0.5], 3)
    wfdb.wrsamp("rec", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig,
                fmt=["212", "212"], adc_gain=[200, 200], baseline=[1024, 1024],
                write_dir=str(tmp_path))
    hea = tmp_path / "rec.hea"
    text = hea.read_text() if header is None else header
    if crlf:
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    hea.write_bytes(text.encode())
    if truncate:
        dat = tmp_path / "rec.dat"
        dat.write_bytes(dat.read_bytes()[:600])
    return tmp_path / "rec", sig


def test_wfdb_crlf_header(tmp_path):
    rec, sig = write_record(tmp_path, crlf=True)
    assert b"\r\n" in (tmp_path / "rec.hea").read_bytes()
    x = np.concatenate([b.samples for b in open_source(f"wfdb:{rec}")])
    np.testing.assert_allclose(x, sig, atol=0.006)


@pytest.mark.parametrize("case, match", [
    ("missing", "not found"),
    ("bad_header", "unreadable WFDB header"),
    ("truncated", "truncated|unreadable"),
    ("no_dat", "signal file"),
])
def test_wfdb_malformed(tmp_path, case, match):
    if case == "missing":
        rec = tmp_path / "nothing"
    elif case == "bad_header":
        rec, _ = write_record(tmp_path, header="rec 2 abc\nthis is not a header\n")
    elif case == "truncated":
        rec, _ = write_record(tmp_path, truncate=True)
    else:
        rec, _ = write_record(tmp_path)
        (tmp_path / "rec.dat").unlink()
    with pytest.raises(SourceFormatError, match=match):
        list(open_source(f"wfdb:{rec}"))


def test_wfdb_bad_channel(tmp_path):
    rec, _ = write_record(tmp_path)
    with pytest.raises(SourceConfigError, match="channel=5"):
        open_source(f"wfdb:{rec}?channel=5")


# ----------------------------------------------------------------------------- Myo CSV
def test_myo_session_file(myo):
    src = open_source(f"myo:{myo}/12345-1/3.txt", block_size=1000)
    blocks = list(src)
    x = np.concatenate([b.samples for b in blocks])
    labels = np.concatenate([b.info["labels"] for b in blocks])
    assert x.shape[1] == 8 and 11900 < x.shape[0] < 12000
    assert set(np.unique(labels)) == {0, 3} and src.status()["skipped"] == 0
    assert x.min() >= -128 and x.max() <= 127


def test_myo_bad_lines_are_skipped_and_counted(tmp_path):
    p = tmp_path / "1.txt"
    p.write_text("1,2,3,4,5,6,7,8,0\n"
                 "1,2,3\n"
                 "1,2,3,4,5,6,7,x,0\n"
                 "\n"
                 "1,2,3,4,5,6,7,300,1\n"
                 "-1,-2,-3,-4,-5,-6,-7,-8,1\r\n")
    src = open_source(f"myo:{p}")
    x = np.concatenate([b.samples for b in src])
    assert x.shape == (2, 8) and x[1, 0] == -1
    st = src.status()
    assert st["skipped"] == 3
    assert [w.split(":")[-2] for w in st["skipped_where"]] == ["2", "3", "5"]
    with pytest.raises(SourceFormatError, match="line 2"):
        list(open_source(f"myo:{p}?strict=1"))


def test_myo_missing_file(tmp_path):
    with pytest.raises(SourceFormatError, match="not found"):
        open_source(f"myo:{tmp_path}/none.txt")
