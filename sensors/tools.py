"""Helpers behind ``spikeedge bench --encoders`` and ``spikeedge encode SOURCE --plot``.

Both are plain functions so that the CLI stays a thin wrapper: :func:`bench_encoders` returns a
JSON-ready dict, :func:`encode_source` runs a source through a preset and :func:`plot_encoding`
draws the signal above its spike raster (matplotlib, imported lazily).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .presets import NOMINAL, make_encoder

__all__ = ["bench_encoders", "encode_source", "plot_encoding"]


def bench_encoders(seconds: float = 10.0, repeats: int = 3, names: list[str] | None = None,
                   block_s: float = 0.5) -> dict[str, Any]:
    """Time each preset (the application models' too) at its nominal setting on ``seconds``
    of synthetic input, fed in blocks of ``block_s`` seconds (the way a live stream arrives).
    Best of ``repeats``.

    Returns ``{name: {"in_rate", "channels", "seconds", "wall_s", "realtime_factor",
    "cpu_s", "cpu_realtime_factor"}}``: ``realtime_factor`` is seconds of signal per second of
    wall time, ``cpu_realtime_factor`` per second of this thread's CPU time (less sensitive to
    other load on the machine); both best of ``repeats``.
    """
    from . import app_encoders  # noqa: F401  (registers the application models' presets)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for name in names or list(NOMINAL):
        rate, ch = NOMINAL[name]
        n = int(rate * seconds)
        scale = 0.1 if name.startswith("audio") else (40.0 if name.startswith("emg") else 1.0)
        x = scale * rng.standard_normal((n, ch))
        block = max(1, int(rate * block_s))
        enc = make_encoder(name)
        best = best_cpu = float("inf")
        for _ in range(repeats):
            enc.reset()
            c, t = time.thread_time(), time.perf_counter()
            for i in range(0, n, block):
                enc.process(x[i : i + block])
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.thread_time() - c)
        out[name] = {"in_rate": rate, "channels": ch, "seconds": seconds, "wall_s": best,
                     "realtime_factor": seconds / best if best > 0 else float("inf"),
                     "cpu_s": best_cpu,
                     "cpu_realtime_factor": seconds / best_cpu if best_cpu > 0 else float("inf")}
    return out


def encode_source(url: str, encoder: str, max_seconds: float | None = 10.0,
                  **source_opts: Any) -> tuple[np.ndarray, np.ndarray, float, Any]:
    """Read ``url`` (up to ``max_seconds``) and encode it with preset ``encoder``.

    Returns ``(samples [n, ch], spikes [steps, n_out], rate, encoder)``.
    """
    from . import open_source

    src = open_source(url, **source_opts)
    xs, spikes = [], []
    enc = None
    with src:
        for block in src:
            if enc is None:
                enc = make_encoder(encoder, in_rate=block.rate, channels=block.samples.shape[1])
            xs.append(block.samples)
            spikes.append(enc.process(block.samples))
            if max_seconds is not None and sum(len(a) for a in xs) >= max_seconds * block.rate:
                break
    if enc is None:
        raise ValueError(f"{url}: the source delivered no samples")
    return np.concatenate(xs), np.concatenate(spikes), src.rate, enc


def plot_encoding(samples: np.ndarray, spikes: np.ndarray, rate: float, step_hz: float,
                  path: str, title: str = "") -> None:
    """Save a figure: the signal (top) above its spike raster (bottom), on one time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(11, 6),
                                   gridspec_kw={"height_ratios": [1, 2]})
    t = np.arange(samples.shape[0]) / rate
    ax1.plot(t, samples, lw=0.6)
    ax1.set_ylabel("signal")
    if title:
        ax1.set_title(title)
    steps, neurons = np.nonzero(spikes)
    ax2.scatter(steps / step_hz, neurons, s=1.5, marker="|", color="k")
    ax2.set_ylabel("output channel")
    ax2.set_xlabel("time (s)")
    ax2.set_ylim(-0.5, spikes.shape[1] - 0.5)
    from matplotlib.ticker import MaxNLocator
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
