"""Public wrapper of the compiled fixed-point kernels.

``spikeedge.kernels.AVAILABLE`` says whether the compiled extension imported. ``prepare(program)``
returns a kernel object; ``run_chunk(kernel, program, inp, state, spikes, record)`` checks every
input before it reaches the nogil loop (the compiled code trusts its arguments).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import BackendError, InputError

try:
    if os.environ.get("SPIKEEDGE_DISABLE_COMPILED", "") not in ("", "0"):
        raise ImportError("disabled by SPIKEEDGE_DISABLE_COMPILED")
    from . import _kernels
    AVAILABLE = True
    IMPORT_ERROR = None
except ImportError as exc:          # no compiled build: the engine falls back to the reference
    _kernels = None
    AVAILABLE = False
    IMPORT_ERROR = str(exc)


def build_info() -> dict:
    if not AVAILABLE:
        return {"compiled": False, "error": IMPORT_ERROR}
    info = dict(_kernels.build_info())
    info["compiled"] = True
    info["module"] = _kernels.__file__
    return info


def prepare(program):
    """lif_prepare: bind a Program's flat arrays once; the result is reused by every run."""
    if not AVAILABLE:
        raise BackendError(f"compiled kernels are not built ({IMPORT_ERROR}); reinstall "
                           f"spikeedge with a C compiler, or use backend='reference'")
    return _kernels.LifKernel(program)


def _check(name, arr, dtype, shape):
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape \
            or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise InputError(f"state array {name!r} must be a writeable C-contiguous {dtype} array "
                         f"of shape {shape}, got "
                         f"{getattr(arr, 'dtype', type(arr))} {getattr(arr, 'shape', '')}")


def run_chunk(kernel, program, inp: np.ndarray, state, spikes: np.ndarray, rec=None,
              learn: bool = True) -> None:
    """lif_run_chunk_q24: run len(inp) steps in place. ``inp`` is uint8 [T, n_in] (C order),
    ``spikes`` a uint8 [T, N] output buffer, ``rec`` None or (v [T, N], i_syn [T, K, N])."""
    if rec is None and kernel.run_state(inp, state.v, state.i_syn, state.ref, state.x_pre,
                                        state.x_post,
                                        state.w if program.plastic else program.weights,
                                        state.theta_a, spikes, bool(learn)):
        return      # every array passed the kernel's own checks (the common, fast call)
    T = inp.shape[0]
    N, K = program.n_neurons, program.n_channels
    _check("v", state.v, np.int32, (N,))
    _check("i_syn", state.i_syn, np.int32, (K, N))
    _check("ref", state.ref, np.int32, (N,))
    n_pre, n_post = program.trace_sizes()
    _check("x_pre", state.x_pre, np.int32, (n_pre,))
    _check("x_post", state.x_post, np.int32, (n_post,))
    w = state.w if program.plastic else program.weights
    _check("w", w, np.int16, program.weights.shape)
    _check("theta_a", state.theta_a, np.int32, (N,))
    _check("spikes", spikes, np.uint8, (T, N))
    if rec is None:
        rv, ri, record = _DUMMY_V, _DUMMY_I, False
    else:
        rv, ri = rec
        _check("rec_v", rv, np.int32, (T, N))
        _check("rec_i", ri, np.int32, (T, K, N))
        record = True
    xp = state.x_pre if n_pre else _DUMMY_X
    xq = state.x_post if n_post else _DUMMY_X
    wv = w if w.size else _DUMMY_W
    # homeostasis work is skipped only when it cannot change anything
    adaptive = program.adaptive or bool(state.theta_a.any())
    kernel.run(inp, state.v, state.i_syn, state.ref, xp, xq, wv, state.theta_a, spikes, rv, ri,
               record, adaptive, bool(learn))


_DUMMY_V = np.zeros((1, 1), np.int32)
_DUMMY_I = np.zeros((1, 1, 1), np.int32)
_DUMMY_X = np.zeros(1, np.int32)
_DUMMY_W = np.zeros(1, np.int16)
