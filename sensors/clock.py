"""Clocks injected into sources so that pacing can run on virtual time in tests.

A clock has two methods: ``now() -> float`` (seconds, monotonic) and ``sleep(seconds)``.
"""

from __future__ import annotations

import time

__all__ = ["Clock", "RealClock", "VirtualClock"]


class Clock:
    """Interface: monotonic time in seconds and a sleep."""

    def now(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class RealClock(Clock):
    """Wall time from :func:`time.monotonic`; :meth:`sleep` really sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock(Clock):
    """Virtual time for tests: :meth:`sleep` advances time instantly and records the request.

    ``sleeps`` lists every positive sleep requested, so tests can assert on pacing and backoff
    without waiting.
    """

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleeps.append(float(seconds))
            self._t += float(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (e.g. to simulate work)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._t += float(seconds)
