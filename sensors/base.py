"""Sample blocks and the :class:`Source` base class every sensor backend builds on.

A source is an iterator of :class:`Block` objects. The base class owns everything that is the
same for every backend: opening and closing (also as a context manager), cutting the stream
into blocks of ``block_size`` samples, sensor timestamps, gap flags, timeouts, reconnecting with
exponential backoff, real-time pacing through an injected clock, and status counters.

A backend implements one small hook set::

    class MySource(Source):
        scheme = "my"
        OPTIONS = {**Source.OPTIONS, "gain": float}     # options accepted in URLs

        def __init__(self, target, *, gain=1.0, **kw):
            super().__init__(**kw)
            self._rate, self._channels = 1000.0, 2         # known here or set in _open()
            ...

        def _open(self): ...                               # acquire the device / file
        def _read_block(self, n): ...                      # -> array [m, channels] (m may be < n,
                                                           #    0 = nothing yet), or None at end
        def _close(self): ...                              # release; must not raise

``_read_block`` raises :class:`~spikeedge.sensors.errors.SourceDisconnected` for a recoverable
loss (unplugged, device error); the base class then closes, waits with backoff on the clock,
reopens, and flags the next block ``gap=True``. A backend that knows how many samples were lost
(for example from frame sequence numbers) calls :meth:`Source._mark_gap` with the count so that
timestamps stay right; it can attach extras to the next block with :meth:`Source._attach_info`
and count skipped input (a bad CSV line, a corrupt frame) with :meth:`Source._skip`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .clock import Clock, RealClock
from .errors import SensorError, SourceConfigError, SourceDisconnected

__all__ = ["Block", "Source", "parse_bool"]

log = logging.getLogger("spikeedge.sensors")


@dataclass(slots=True)
class Block:
    """A block of samples from a source.

    ``samples`` is float32 ``[n, channels]`` in physical units (mV for ECG, full scale ±1 for
    audio, raw sensor units for EMG); ``t0`` is the sensor time of the first sample in seconds
    from the start of the stream; ``seq`` counts blocks from 0; ``gap`` is True when samples were
    lost before this block; ``info`` holds optional extras (annotations, ground truth).
    """

    samples: np.ndarray
    t0: float
    rate: float
    seq: int
    gap: bool = False
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples (rows) in the block."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Duration of the block in seconds."""
        return self.n / self.rate


def parse_bool(value: Any) -> bool:
    """Parse a boolean URL option (``1/0``, ``true/false``, ``yes/no``, ``on/off``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no), got {value!r}")


def _optional_int(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("none", "inf", "-1"):
        return None
    return int(value)


def _optional_float(value: Any) -> float | None:
    if value is None or str(value).strip().lower() in ("none", "inf", "0"):
        return None
    return float(value)


class Source:
    """Base class of every sensor source; see the module docstring for the backend hooks.

    Parameters (all keyword-only, all also accepted as URL query options):

    block_size
        Samples per block requested from the backend (a backend may deliver fewer).
    realtime
        Pace delivery at the sensor rate on ``clock`` (replay at recorded speed); False runs
        as fast as possible. Live backends (microphone, serial) are paced by the device and
        ignore it.
    clock
        Object with ``now()`` and ``sleep(s)``; :class:`~spikeedge.sensors.clock.RealClock`
        by default, :class:`~spikeedge.sensors.clock.VirtualClock` in tests.
    timeout
        Seconds without any sample before the source counts as disconnected (None: never).
    max_reconnects
        Reconnect attempts after a loss before giving up with ``SourceDisconnected``
        (None: keep trying for ever, as a daemon should).
    backoff_initial, backoff_factor, backoff_max
        Wait before reconnect attempt k is ``min(initial * factor**k, max)`` seconds.
    """

    scheme: ClassVar[str] = ""
    live: ClassVar[bool] = False  # True when the device itself paces the stream
    OPTIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "block_size": int,
        "realtime": parse_bool,
        "timeout": _optional_float,
        "max_reconnects": _optional_int,
        "backoff_initial": float,
        "backoff_factor": float,
        "backoff_max": float,
    }
    SKIP_LOG_LIMIT: ClassVar[int] = 20  # skipped items remembered in status()["skipped_where"]

    def __init__(
        self,
        *,
        block_size: int = 256,
        realtime: bool = False,
        clock: Clock | None = None,
        timeout: float | None = None,
        max_reconnects: int | None = 5,
        backoff_initial: float = 0.1,
        backoff_factor: float = 2.0,
        backoff_max: float = 5.0,
        name: str | None = None,
    ):
        if int(block_size) < 1:
            raise SourceConfigError(f"block_size must be >= 1, got {block_size}")
        if timeout is not None and timeout <= 0:
            raise SourceConfigError(f"timeout must be > 0 seconds or None, got {timeout}")
        if max_reconnects is not None and max_reconnects < 0:
            raise SourceConfigError(f"max_reconnects must be >= 0 or None, got {max_reconnects}")
        if backoff_initial < 0 or backoff_max < 0 or backoff_factor < 1:
            raise SourceConfigError(
                "backoff needs backoff_initial >= 0, backoff_max >= 0 and backoff_factor >= 1"
            )
        self.block_size = int(block_size)
        self.realtime = bool(realtime)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.timeout = timeout
        self.max_reconnects = max_reconnects
        self.backoff_initial = float(backoff_initial)
        self.backoff_factor = float(backoff_factor)
        self.backoff_max = float(backoff_max)
        self.name = name or type(self).__name__
        self.url: str | None = None  # set by open_source()
        # Backends set these in __init__ or _open().
        self._rate: float | None = None
        self._channels: int | None = None
        # Run state.
        self._is_open = False
        self._ended = False
        self._seq = 0
        self._sample_pos = 0  # sensor time in samples of the next sample
        self._gap_pending = False
        self._info_pending: dict = {}
        self._t_start: float | None = None  # clock time at which sample 0 was due
        self._pace_origin_sample = 0
        self._last_data_clock: float | None = None
        # Counters.
        self._n_blocks = 0
        self._n_samples = 0
        self._n_gaps = 0
        self._lost_samples = 0
        self._reconnects = 0
        self._errors = 0
        self._skipped = 0
        self._skipped_where: deque[str] = deque(maxlen=self.SKIP_LOG_LIMIT)
        self._last_error: str | None = None

    # ------------------------------------------------------------------ backend hooks
    def _open(self) -> None:
        """Acquire the underlying device or file. Raise SourceDisconnected to retry."""

    def _read_block(self, n: int) -> np.ndarray | None:  # pragma: no cover - abstract
        """Return up to ``n`` samples as ``[m, channels]`` (or ``[m]`` for one channel).

        ``m == 0`` means nothing is available yet (the base class applies ``timeout``);
        ``None`` means the end of the stream.
        """
        raise NotImplementedError

    def _close(self) -> None:
        """Release the device or file. Must not raise."""

    # ------------------------------------------------------------------ helpers for backends
    def _mark_gap(self, lost_samples: int | None = None) -> None:
        """Flag the next block as following a gap; advance sensor time by ``lost_samples``."""
        self._gap_pending = True
        if lost_samples:
            self._sample_pos += int(lost_samples)
            self._lost_samples += int(lost_samples)

    def _attach_info(self, **info: Any) -> None:
        """Attach extras to the next block's ``info`` dict."""
        self._info_pending.update(info)

    def _skip(self, where: str, reason: str) -> None:
        """Count one skipped input item (a bad line, a corrupt frame) and remember where."""
        self._skipped += 1
        entry = f"{where}: {reason}"
        self._skipped_where.append(entry)
        if self._skipped <= self.SKIP_LOG_LIMIT:
            log.warning("%s: skipped %s", self.name, entry)
        elif self._skipped == self.SKIP_LOG_LIMIT + 1:
            log.warning("%s: more skipped input; see status()['skipped']", self.name)

    # ------------------------------------------------------------------ public API
    @classmethod
    def from_url(cls, target: str, options: dict[str, Any], url: str = "") -> Source:
        """Build from the part of a URL after the scheme and its (string) query options."""
        kwargs = cls.convert_options(options, url or f"{cls.scheme}:{target}")
        return cls(target, **kwargs)

    @classmethod
    def convert_options(cls, options: dict[str, Any], url: str) -> dict[str, Any]:
        """Convert URL option strings with :attr:`OPTIONS`; unknown options are refused."""
        out: dict[str, Any] = {}
        for key, value in options.items():
            if key == "clock" or key == "name":
                out[key] = value
                continue
            conv = cls.OPTIONS.get(key)
            if conv is None:
                allowed = ", ".join(sorted(cls.OPTIONS))
                raise SourceConfigError(
                    f"{url}: unknown option {key!r} for {cls.scheme or cls.__name__}; "
                    f"allowed: {allowed}"
                )
            try:
                out[key] = conv(value) if isinstance(value, str) else value
            except (TypeError, ValueError) as exc:
                raise SourceConfigError(f"{url}: bad value for option {key!r}: {exc}") from None
        return out

    @property
    def rate(self) -> float:
        """Sampling rate in Hz."""
        if self._rate is None:
            raise SensorError(f"{self.name}: rate is known only after open()")
        return float(self._rate)

    @property
    def channels(self) -> int:
        """Number of channels (columns of ``Block.samples``)."""
        if self._channels is None:
            raise SensorError(f"{self.name}: channel count is known only after open()")
        return int(self._channels)

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> Source:
        """Open the source (idempotent); retries with backoff on SourceDisconnected."""
        if self._is_open:
            return self
        try:
            self._open()
        except SourceDisconnected as exc:
            self._recover(exc, opening=True)
        self._is_open = True
        self._ended = False
        self._last_data_clock = self.clock.now()
        return self

    def close(self) -> None:
        """Close the source (idempotent)."""
        if self._is_open:
            self._is_open = False
            self._close()

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Block]:
        opened_here = not self._is_open
        self.open()
        try:
            while True:
                block = self.read()
                if block is None:
                    return
                yield block
        finally:
            if opened_here:
                self.close()

    def read(self) -> Block | None:
        """Return the next block, or None at the end of the stream."""
        if not self._is_open:
            self.open()
        if self._ended:
            return None
        while True:
            try:
                data = self._read_block(self.block_size)
            except SourceDisconnected as exc:
                self._recover(exc)
                continue
            if data is None:
                self._ended = True
                return None
            data = np.asarray(data, dtype=np.float32)
            if data.ndim == 1:
                data = data[:, None]
            if data.ndim != 2 or (self._channels is not None and data.shape[1] != self._channels):
                raise SensorError(
                    f"{self.name}: backend returned shape {data.shape}, expected [n, "
                    f"{self._channels}] (a bug in the backend)"
                )
            if data.shape[0] == 0:
                self._check_timeout()
                continue
            self._last_data_clock = self.clock.now()
            return self._emit(np.ascontiguousarray(data))

    def status(self) -> dict:
        """Counters and state for health reports."""
        return {
            "name": self.name,
            "url": self.url,
            "open": self._is_open,
            "ended": self._ended,
            "rate": self._rate,
            "channels": self._channels,
            "blocks": self._n_blocks,
            "samples": self._n_samples,
            "gaps": self._n_gaps,
            "lost_samples": self._lost_samples,
            "reconnects": self._reconnects,
            "errors": self._errors,
            "skipped": self._skipped,
            "skipped_where": list(self._skipped_where),
            "last_error": self._last_error,
        }

    # ------------------------------------------------------------------ internals
    def _emit(self, data: np.ndarray) -> Block:
        n = data.shape[0]
        rate = self.rate
        gap = self._gap_pending
        if gap:
            self._n_gaps += 1
            # Pacing restarts after a gap: the stream was interrupted.
            self._t_start = None
        block = Block(
            samples=data,
            t0=self._sample_pos / rate,
            rate=rate,
            seq=self._seq,
            gap=gap,
            info=self._info_pending,
        )
        self._info_pending = {}
        self._gap_pending = False
        self._seq += 1
        self._n_blocks += 1
        self._n_samples += n
        self._sample_pos += n
        if self.realtime and not self.live:
            self._pace(block)
        return block

    def _pace(self, block: Block) -> None:
        now = self.clock.now()
        first = int(round(block.t0 * block.rate))
        if self._t_start is None:
            self._t_start = now
            self._pace_origin_sample = first
        due = self._t_start + (first + block.n - self._pace_origin_sample) / block.rate
        if due > now:
            self.clock.sleep(due - now)

    def _check_timeout(self) -> None:
        now = self.clock.now()
        if self._last_data_clock is None:
            self._last_data_clock = now
        if self.timeout is not None and now - self._last_data_clock > self.timeout:
            self._recover(
                SourceDisconnected(f"{self.name}: no data for {now - self._last_data_clock:.3g} s")
            )
        else:
            # Backends should block briefly when no data is ready; this guards against a spin.
            self.clock.sleep(0.001)

    def _recover(self, exc: SourceDisconnected, opening: bool = False) -> None:
        """Close, wait with exponential backoff, reopen; give up after max_reconnects."""
        self._errors += 1
        self._last_error = str(exc)
        log.warning("%s: %s; reconnecting", self.name, exc)
        if not opening:
            try:
                self._close()
            except Exception as close_exc:  # a broken device may fail to close
                log.debug("%s: error while closing: %s", self.name, close_exc)
        attempt = 0
        while True:
            if self.max_reconnects is not None and attempt >= self.max_reconnects:
                raise SourceDisconnected(
                    f"{self.name}: gave up after {attempt} reconnect attempt(s); "
                    f"last error: {self._last_error}"
                ) from exc
            delay = min(self.backoff_initial * self.backoff_factor**attempt, self.backoff_max)
            self.clock.sleep(delay)
            attempt += 1
            try:
                self._open()
            except SourceDisconnected as again:
                self._errors += 1
                self._last_error = str(again)
                continue
            break
        self._reconnects += 1
        self._last_data_clock = self.clock.now()
        if not opening:
            # How many samples were lost is unknown here; backends that know call _mark_gap().
            self._gap_pending = True
