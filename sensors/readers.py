"""File readers: ``wav:`` (mono 16-bit WAV), ``wfdb:`` (PhysioNet WFDB records) and ``myo:``
(Myo armband CSV sessions).

Malformed input raises :class:`~spikeedge.sensors.errors.SourceFormatError` naming the file and
the place; a bad CSV line is skipped and counted (``status()["skipped"]``) with its line number.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Any

import numpy as np

from .base import Source, parse_bool
from .errors import SourceConfigError, SourceFormatError

__all__ = ["WavSource", "WfdbSource", "MyoSource", "AUDIO_RATES", "BEAT_SYMBOLS", "AAMI_CLASSES"]

#: Sampling rates the audio front end is built for; others need ``resample=``.
AUDIO_RATES = (8000, 16000)

#: MIT-BIH annotation symbols that mark a beat, mapped to their AAMI class.
AAMI_CLASSES: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
BEAT_SYMBOLS = frozenset(AAMI_CLASSES)


def _optional_int(value: Any) -> int | None:
    text = str(value).strip().lower()
    return None if text in ("", "none", "all") else int(value)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SourceFormatError(f"{what} not found (check the path)", path=str(path))
    if path.is_dir():
        raise SourceFormatError(f"is a directory, expected a {what}", path=str(path))


class WavSource(Source):
    """Replay a mono 16-bit PCM WAV file at 8 or 16 kHz, scaled to full scale ±1.

    ``resample=RATE`` converts to RATE (any input rate) with a polyphase filter
    (:func:`scipy.signal.resample_poly`); the file is then read whole at open. ``channel=K``
    picks one channel of a multi-channel file.
    """

    scheme = "wav"
    OPTIONS = {**Source.OPTIONS, "resample": _optional_int, "channel": _optional_int}

    def __init__(self, path: str | os.PathLike, *, resample: int | None = None,
                 channel: int | None = None, **kw: Any):
        kw.setdefault("name", f"wav:{path}")
        super().__init__(**kw)
        self.path = Path(path)
        self.resample = resample
        self.channel = channel
        if resample is not None and resample not in AUDIO_RATES:
            raise SourceConfigError(
                f"{self.name}: resample={resample} is not supported; use one of {AUDIO_RATES}"
            )
        info = self._inspect()
        self.file_rate, self.file_channels, self.n_frames = info
        self._rate = float(resample if resample is not None else self.file_rate)
        self._channels = 1
        self._wav: wave.Wave_read | None = None
        self._data: np.ndarray | None = None
        self._avail: int | None = None
        self._pos = 0

    def _inspect(self) -> tuple[int, int, int]:
        _require_file(self.path, "WAV file")
        try:
            with wave.open(str(self.path), "rb") as w:
                rate, ch, width, n = (w.getframerate(), w.getnchannels(), w.getsampwidth(),
                                      w.getnframes())
                comp = w.getcomptype()
        except (wave.Error, EOFError, RuntimeError) as exc:
            # the wave module raises a bare RuntimeError for a chunk that runs past the end
            why = str(exc) or "a chunk runs past the end of the file"
            raise SourceFormatError(f"not a readable WAV file ({why})", path=str(self.path),
                                    where="header") from None
        if comp != "NONE":
            raise SourceFormatError(f"compressed WAV ({comp}) is not supported; need PCM",
                                    path=str(self.path), where="header")
        if width != 2:
            raise SourceFormatError(
                f"sample width is {8 * width} bit; spikeedge reads 16-bit PCM "
                "(convert with e.g. 'sox in.wav -b 16 out.wav')",
                path=str(self.path), where="header")
        if ch != 1 and self.channel is None:
            raise SourceFormatError(
                f"{ch} channels; spikeedge audio is mono (add ?channel=0 to pick one)",
                path=str(self.path), where="header")
        if self.channel is not None and not 0 <= self.channel < ch:
            raise SourceConfigError(f"{self.name}: channel={self.channel} but the file has {ch}")
        if self.resample is None and rate not in AUDIO_RATES:
            raise SourceFormatError(
                f"sample rate is {rate} Hz; the audio front end runs at {AUDIO_RATES} Hz "
                f"(add ?resample=16000 or ?resample=8000)",
                path=str(self.path), where="header")
        return rate, ch, n

    #: files with at most this much PCM (about 4 min of 16 kHz mono) are read whole at open,
    #: as float32 (twice the size); longer ones block by block
    PRELOAD_BYTES = 8 << 20

    def _open(self) -> None:
        self._pos = 0
        self._avail = None
        if self.resample is not None and self.resample != self.file_rate:
            from math import gcd

            from scipy.signal import resample_poly

            with wave.open(str(self.path), "rb") as w:
                x = self._decode(w.readframes(self.n_frames), 0)
            if x.shape[0] < self.n_frames:
                self._truncated(x.shape[0])
            g = gcd(int(self.resample), int(self.file_rate))
            self._data = resample_poly(x, self.resample // g, self.file_rate // g)
        elif self.n_frames * self.file_channels * 2 <= self.PRELOAD_BYTES:
            # read and convert the file once: a block is then a slice (a 10 ms block of
            # 160 samples would otherwise cost a file read and a conversion each)
            with wave.open(str(self.path), "rb") as w:
                raw = w.readframes(self.n_frames)
            whole = len(raw) // (2 * self.file_channels)
            self._data = self._decode(raw[: whole * 2 * self.file_channels], 0, np.float32)
            self._avail = whole  # fewer than n_frames: truncated, reported when reached
        else:
            self._wav = wave.open(str(self.path), "rb")

    def _decode(self, raw: bytes, frame0: int, dtype: type = np.float64) -> np.ndarray:
        ch = self.file_channels
        if len(raw) % (2 * ch):
            raise SourceFormatError(f"data ends inside a frame ({len(raw)} bytes read)",
                                    path=str(self.path), where=f"frame {frame0}")
        x = np.frombuffer(raw, dtype="<i2").reshape(-1, ch)[:, self.channel or 0]
        # int16 / 2**15 is exact in float32 and float64 alike (a power-of-two scale)
        out = x.astype(dtype)
        out *= dtype(1.0 / 32768.0)
        return out

    def _truncated(self, got: int) -> None:
        raise SourceFormatError(
            f"truncated: the header promises {self.n_frames} frames but the data holds {got}",
            path=str(self.path), where=f"frame {got}")

    def _read_block(self, n: int) -> np.ndarray | None:
        if self._data is not None:
            if self._avail is not None:     # preloaded PCM (see _open)
                if self._pos >= self.n_frames:
                    return None
                want = min(n, self.n_frames - self._pos)
                if self._pos + want > self._avail:
                    self._truncated(self._avail)
            elif self._pos >= len(self._data):
                return None
            out = self._data[self._pos : self._pos + n]
            self._pos += len(out)
            return out
        assert self._wav is not None
        if self._pos >= self.n_frames:
            return None
        want = min(n, self.n_frames - self._pos)
        raw = self._wav.readframes(want)
        if len(raw) < want * 2 * self.file_channels:
            self._truncated(self._pos + len(raw) // (2 * self.file_channels))
        out = self._decode(raw, self._pos, np.float32)  # blocks are float32: one conversion
        self._pos += len(out)
        return out

    def _close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        self._data = None


class WfdbSource(Source):
    """Replay a WFDB record (e.g. MIT-BIH) in physical units (mV) through the ``wfdb`` library.

    ``channel=K`` selects one signal (default: all). Beat annotations (``ann=atr`` by default,
    ``ann=none`` to skip) are available as :attr:`annotations` and per block in
    ``Block.info["ann_samples"]`` / ``["ann_symbols"]`` (absolute sample indices).
    """

    scheme = "wfdb"
    OPTIONS = {**Source.OPTIONS, "channel": _optional_int, "ann": str}

    def __init__(self, record: str | os.PathLike, *, channel: int | None = None,
                 ann: str | None = "atr", **kw: Any):
        kw.setdefault("name", f"wfdb:{record}")
        super().__init__(**kw)
        import wfdb

        self._wfdb = wfdb
        self.record = str(record)
        for suffix in (".hea", ".dat"):
            if self.record.endswith(suffix):
                self.record = self.record[: -len(suffix)]
        self.ann = None if ann in (None, "", "none") else ann
        hea = Path(self.record + ".hea")
        _require_file(hea, "WFDB header (.hea)")
        try:
            self.header = wfdb.rdheader(self.record)
        except Exception as exc:  # wfdb raises bare ValueError/IndexError on bad headers
            raise SourceFormatError(f"unreadable WFDB header ({type(exc).__name__}: {exc})",
                                    path=str(hea)) from None
        if not self.header.fs or not self.header.n_sig:
            raise SourceFormatError("header has no sampling rate or no signals", path=str(hea))
        if not self.header.sig_name or len(self.header.sig_name) != self.header.n_sig:
            raise SourceFormatError(f"header announces {self.header.n_sig} signals but "
                                    "describes a different number", path=str(hea))
        if channel is not None and not 0 <= channel < self.header.n_sig:
            raise SourceConfigError(
                f"{self.name}: channel={channel} but the record has {self.header.n_sig} "
                f"signals {self.header.sig_name}")
        self.channel = channel
        self.sig_names = ([self.header.sig_name[channel]] if channel is not None
                          else list(self.header.sig_name))
        self._rate = float(self.header.fs)
        self._channels = 1 if channel is not None else int(self.header.n_sig)
        self.annotations: dict[str, np.ndarray] | None = None
        self._signal: np.ndarray | None = None
        self._pos = 0

    def _open(self) -> None:
        wfdb = self._wfdb
        chans = [self.channel] if self.channel is not None else None
        for f in {s for s in (self.header.file_name or []) if s}:
            _require_file(Path(self.record).parent / f, "WFDB signal file")
        try:
            rec = wfdb.rdrecord(self.record, channels=chans, physical=True)
        except Exception as exc:
            raise SourceFormatError(f"unreadable WFDB signal ({type(exc).__name__}: {exc})",
                                    path=self.record) from None
        sig = rec.p_signal
        if sig is None or sig.ndim != 2 or sig.shape[0] == 0:
            raise SourceFormatError("record holds no samples", path=self.record)
        expected = self.header.sig_len
        if expected and sig.shape[0] < expected:
            raise SourceFormatError(
                f"truncated: header promises {expected} samples, file holds {sig.shape[0]}",
                path=self.record)
        # blocks are float32: convert once here rather than per block (the same values)
        self._signal = np.nan_to_num(sig, nan=0.0).astype(np.float32)
        self._pos = 0
        if self.ann is not None:
            self.annotations = read_annotations(self.record, self.ann)

    def _read_block(self, n: int) -> np.ndarray | None:
        assert self._signal is not None
        if self._pos >= len(self._signal):
            return None
        start = self._pos
        out = self._signal[start : start + n]
        self._pos += len(out)
        if self.annotations is not None:
            s = self.annotations["sample"]
            lo, hi = np.searchsorted(s, [start, start + len(out)])
            self._attach_info(ann_samples=s[lo:hi],
                              ann_symbols=list(self.annotations["symbol"][lo:hi]))
        return out

    def _close(self) -> None:
        self._signal = None


def read_annotations(record: str, extension: str = "atr") -> dict[str, np.ndarray] | None:
    """Read WFDB annotations; returns ``{"sample": int64[k], "symbol": str[k]}`` or None when
    the annotation file does not exist. A corrupt file raises SourceFormatError."""
    import wfdb

    path = Path(f"{record}.{extension}")
    if not path.exists():
        return None
    try:
        ann = wfdb.rdann(str(record), extension)
    except Exception as exc:
        raise SourceFormatError(f"unreadable annotations ({type(exc).__name__}: {exc})",
                                path=str(path)) from None
    return {"sample": np.asarray(ann.sample, dtype=np.int64),
            "symbol": np.asarray(ann.symbol, dtype=object)}


class MyoSource(Source):
    """Replay a Myo armband CSV file: ``ch1,...,ch8,label`` per line, signed 8-bit EMG.

    The rate is not in the file (Myo nominal 200 Hz, ``rate=`` to override). Labels ride along
    in ``Block.info["labels"]``. A line that is not 9 integers, or has EMG outside
    [-128, 127], is skipped and counted with its line number (``status()["skipped_where"]``);
    ``strict=1`` raises SourceFormatError instead.
    """

    scheme = "myo"
    N_EMG = 8
    OPTIONS = {**Source.OPTIONS, "rate": float, "strict": parse_bool}

    def __init__(self, path: str | os.PathLike, *, rate: float = 200.0, strict: bool = False,
                 **kw: Any):
        kw.setdefault("name", f"myo:{path}")
        super().__init__(**kw)
        self.path = Path(path)
        _require_file(self.path, "Myo CSV file")
        if rate <= 0:
            raise SourceConfigError(f"{self.name}: rate must be > 0 Hz")
        self._rate = float(rate)
        self._channels = self.N_EMG
        self.strict = bool(strict)
        self._fh = None
        self._line = 0

    def _open(self) -> None:
        self._fh = open(self.path, encoding="utf-8", errors="replace", newline="")
        self._line = 0

    def _parse(self, text: str) -> tuple[list[int], int] | str:
        parts = text.strip().split(",")
        if len(parts) != self.N_EMG + 1:
            return f"expected {self.N_EMG + 1} comma-separated integers, got {len(parts)} fields"
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            return f"non-integer field in {text.strip()[:60]!r}"
        emg = vals[: self.N_EMG]
        if min(emg) < -128 or max(emg) > 127:
            return "EMG value outside [-128, 127]"
        return emg, vals[-1]

    def _read_block(self, n: int) -> np.ndarray | None:
        assert self._fh is not None
        rows: list[list[int]] = []
        labels: list[int] = []
        while len(rows) < n:
            text = self._fh.readline()
            if not text:
                break
            self._line += 1
            if not text.strip():
                continue
            parsed = self._parse(text)
            if isinstance(parsed, str):
                if self.strict:
                    raise SourceFormatError(parsed, path=str(self.path), where=f"line {self._line}")
                self._skip(f"{self.path}:{self._line}", parsed)
                continue
            rows.append(parsed[0])
            labels.append(parsed[1])
        if not rows:
            return None
        self._attach_info(labels=np.asarray(labels, dtype=np.int64))
        return np.asarray(rows, dtype=np.float32)

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
