"""Sensor sources (chosen by URL) and spike encoders.

>>> from spikeedge.sensors import open_source
>>> with open_source("fake:tone?freq=440&rate=8000&duration=1") as src:
...     for block in src:
...         pass

URL forms: ``scheme:target?key=value&...`` (``scheme://target`` is accepted too, so
``serial:///dev/ttyACM0`` means the port ``/dev/ttyACM0``). Schemes:

========  =======================================  ===========================================
scheme    target                                   examples
========  =======================================  ===========================================
wav       path to a mono 16-bit WAV (8/16 kHz)     ``wav:a.wav``, ``wav:a.wav?resample=16000``
wfdb      record path without extension            ``wfdb:data/mitbih/208?channel=0``
myo       Myo CSV file (8 EMG columns + label)     ``myo:12345-1/3.txt``
mic       sounddevice input device (or default)    ``mic:default?rate=16000``
fake      ecg, tone or emg                         ``fake:ecg?seed=1&duration=60``
serial    serial port of the firmware front end    ``serial:///dev/ttyACM0?baud=921600``
========  =======================================  ===========================================

Every source accepts the base options of :class:`~spikeedge.sensors.base.Source`
(``block_size``, ``realtime``, ``timeout``, ``max_reconnects``, ``backoff_*``).
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qsl

from .base import Block, Source
from .clock import RealClock, VirtualClock
from .errors import (
    EncoderConfigError,
    SensorError,
    SourceConfigError,
    SourceDisconnected,
    SourceFormatError,
)

__all__ = [
    "Block",
    "Source",
    "RealClock",
    "VirtualClock",
    "SensorError",
    "SourceConfigError",
    "SourceDisconnected",
    "SourceFormatError",
    "EncoderConfigError",
    "SCHEMES",
    "open_source",
    "parse_url",
    "register_scheme",
]

#: scheme -> "module:Class"; imported only when the scheme is used.
SCHEMES: dict[str, str] = {
    "wav": "spikeedge.sensors.readers:WavSource",
    "wfdb": "spikeedge.sensors.readers:WfdbSource",
    "myo": "spikeedge.sensors.readers:MyoSource",
    "mic": "spikeedge.sensors.mic:MicSource",
    "fake": "spikeedge.sensors.fakes:FakeSource",
    "serial": "spikeedge.sensors.serial_link:SerialSource",
}


def register_scheme(scheme: str, target: str) -> None:
    """Register (or replace) a URL scheme: ``target`` is ``"package.module:Class"``."""
    if not scheme.isidentifier() or ":" not in target:
        raise SourceConfigError(
            f"register_scheme({scheme!r}, {target!r}): need an identifier and 'module:Class'"
        )
    SCHEMES[scheme.lower()] = target


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``scheme:target?k=v&...`` into ``(scheme, target, options)``; validate the form."""
    allowed = ", ".join(f"{s}:" for s in sorted(SCHEMES))
    if not isinstance(url, str) or ":" not in url:
        raise SourceConfigError(
            f"source URL {url!r} has no scheme; use one of {allowed} (e.g. 'wav:recording.wav')"
        )
    scheme, rest = url.split(":", 1)
    scheme = scheme.strip().lower()
    if scheme not in SCHEMES:
        raise SourceConfigError(
            f"source URL {url!r}: unknown scheme {scheme!r}; allowed: {allowed}"
        )
    if rest.startswith("//"):
        rest = rest[2:]
    target, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise SourceConfigError(
            f"source URL {url!r}: malformed query {query!r} ({exc}); use ?key=value&key=value"
        ) from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise SourceConfigError(f"source URL {url!r}: option {key!r} given twice")
        options[key] = value
    return scheme, target, options


def _load(scheme: str, url: str) -> type[Source]:
    target = SCHEMES[scheme]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SourceConfigError(
                f"{url}: the {scheme!r} backend ({module_name}) is not available in this "
                "installation"
            ) from None
        raise
    cls = getattr(module, class_name, None)
    if cls is None:
        raise SourceConfigError(f"{url}: {module_name} has no {class_name} for scheme {scheme!r}")
    return cls


def open_source(url: str, **opts: Any) -> Source:
    """Create the source named by ``url`` (not yet opened; iterate it or use ``with``).

    Keyword options override URL query options and may be typed values (e.g. ``clock=``).
    """
    scheme, target, options = parse_url(url)
    cls = _load(scheme, url)
    options.update(opts)
    src = cls.from_url(target, options, url)
    src.url = url
    return src
