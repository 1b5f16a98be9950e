"""Brian2 import, code-generation target and run helpers shared by the twins.

Brian2 is an optional dependency (``pip install 'spikeedge[validate]'``); everything here imports
it lazily so that ``spikeedge`` and the metrics work without it.
"""
from __future__ import annotations

import logging
import os
import tempfile

import numpy as np

from spikeedge.errors import SpikeEdgeError

TARGETS = ("numpy", "cython")
log = logging.getLogger("spikeedge.validate")


class ValidationError(SpikeEdgeError, RuntimeError):
    """The validator cannot run (Brian2 missing, unsupported model feature)."""


def brian2(target: str = "numpy"):
    """Import brian2 and select its runtime code-generation target.

    ``numpy`` needs no compiler and starts at once; ``cython`` compiles each code object once
    (cached under ``$SPIKEEDGE_BRIAN2_CACHE`` or the temp directory) and then runs long
    simulations several times faster."""
    try:
        import brian2 as b2
    except ImportError as exc:
        raise ValidationError(f"brian2 is not installed ({exc}); install the validation extra: "
                              f"pip install 'spikeedge[validate]'") from None
    if target not in TARGETS:
        raise ValidationError(f"Brian2 target must be one of {TARGETS}, got {target!r}")
    b2.prefs.codegen.target = target
    if target == "cython":
        cache = os.environ.get("SPIKEEDGE_BRIAN2_CACHE",
                               os.path.join(tempfile.gettempdir(), "spikeedge-brian2-cache"))
        b2.prefs.codegen.runtime.cython.cache_dir = cache
    logging.getLogger("brian2").setLevel(logging.WARNING)
    b2.BrianLogger.log_level_warn()
    return b2


def spike_generator(b2, raster: np.ndarray, dt: float, name: str, clock):
    """A SpikeGeneratorGroup that emits ``raster`` (uint8/bool [T, n]) at step t, time t*dt."""
    steps, idx = np.nonzero(raster)
    order = np.lexsort((idx, steps))
    return b2.SpikeGeneratorGroup(raster.shape[1], idx[order].astype(np.int32),
                                  steps[order] * dt * b2.second, clock=clock, name=name)


def spikes_to_raster(mon, T: int, n: int, dt: float) -> np.ndarray:
    """SpikeMonitor -> uint8 [T, n] raster (step index = round(t / dt))."""
    out = np.zeros((T, n), np.uint8)
    steps = np.rint(np.asarray(mon.t_[:]) / dt).astype(np.int64)
    idx = np.asarray(mon.i[:], np.int64)
    keep = steps < T
    out[steps[keep], idx[keep]] = 1
    return out


def connect_indices(kind_dense: bool, n_pre: int, n_post: int, ptr=None, idx=None):
    """(i, j) arrays of a dense (row-major) or CSR projection, in weight order."""
    if kind_dense:
        return (np.repeat(np.arange(n_pre), n_post).astype(np.int32),
                np.tile(np.arange(n_post), n_pre).astype(np.int32))
    return (np.repeat(np.arange(n_pre), np.diff(ptr)).astype(np.int32),
            np.asarray(idx, np.int32))


def check_order(S, i, j, what: str) -> None:
    """Brian2 must keep the synapses in the order we created them (weights are set by index)."""
    if not (np.array_equal(np.asarray(S.i[:]), i) and np.array_equal(np.asarray(S.j[:]), j)):
        raise ValidationError(f"{what}: Brian2 reordered the synapses; cannot map weights")
