"""Exceptions raised by sensor sources and encoders.

Every error says what is wrong, where, and (when there is one) what to do about it.
"""

from __future__ import annotations

from ..errors import SpikeEdgeError

__all__ = [
    "SensorError",
    "SourceConfigError",
    "SourceDisconnected",
    "SourceFormatError",
    "EncoderConfigError",
]


class SensorError(SpikeEdgeError):
    """Base class of every error raised by :mod:`spikeedge.sensors`."""


class SourceConfigError(SensorError, ValueError):
    """A source URL or option is invalid (unknown scheme, bad option value, missing backend)."""


class SourceDisconnected(SensorError):
    """The sensor went away (unplugged, device error, timeout).

    Backends raise it for *recoverable* loss; :class:`~spikeedge.sensors.base.Source` then
    reconnects with exponential backoff and flags the next block with ``gap=True``.
    """


class SourceFormatError(SensorError):
    """A file or stream is malformed.

    ``path`` names the file (or stream) and ``where`` the position (line, byte offset, field),
    when known; both are included in the message.
    """

    def __init__(self, message: str, *, path: str | None = None, where: str | None = None):
        self.path = path
        self.where = where
        parts = []
        if path is not None:
            parts.append(str(path))
        if where is not None:
            parts.append(str(where))
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class EncoderConfigError(SensorError, ValueError):
    """An encoder was constructed with invalid parameters or fed input of the wrong shape."""
