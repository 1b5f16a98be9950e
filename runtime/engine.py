"""The engine: prepare a Program once, then run chunks of time steps.

    eng = Engine(program)                      # backend "auto": compiled if built, else reference
    state = eng.initial_state()
    spikes, state, rec = eng.run_chunk(inp)    # inp: [T, n_in] 0/1, spikes: uint8 [T, N]

``run_chunk`` serves file replay and live streaming alike: the state carries over between calls,
so running a signal in chunks of any size gives exactly the spikes of running it whole.
"""
from __future__ import annotations

import logging

import numpy as np

from . import reference
from .errors import BackendError, InputError
from .program import Program, State

log = logging.getLogger("spikeedge")
BACKENDS = ("auto", "compiled", "reference")
_warned = False


def compiled_available() -> bool:
    from .kernels import AVAILABLE
    return AVAILABLE


def resolve_backend(backend: str = "auto") -> str:
    global _warned
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return "reference"
    if compiled_available():
        return "compiled"
    from .kernels import IMPORT_ERROR
    if backend == "compiled":
        raise BackendError(f"compiled kernels are not available: {IMPORT_ERROR}")
    if not _warned:
        log.warning("spikeedge: compiled kernels not available (%s); falling back to the NumPy "
                    "reference backend, which is much slower", IMPORT_ERROR)
        _warned = True
    return "reference"


class Engine:
    """A prepared program plus the chosen backend. Holds no simulation state of its own."""

    def __init__(self, program: Program, backend: str = "auto"):
        if not isinstance(program, Program):
            raise InputError(f"Engine needs a Program (see spikeedge.quantize), got "
                             f"{type(program).__name__}")
        self.program = program
        self.backend = resolve_backend(backend)
        self._kernel = None
        self.learning = True
        self.learning_rate = 1.0
        from .program import PL_A_POST, PL_A_PRE
        self._base_rates = program.plast[:, [PL_A_PRE, PL_A_POST]].astype(np.int64).copy()
        if self.backend == "compiled":
            from . import kernels
            self._kernel = kernels.prepare(program)

    @property
    def n_inputs(self) -> int:
        return self.program.n_in

    @property
    def n_neurons(self) -> int:
        return self.program.n_neurons

    def initial_state(self) -> State:
        return self.program.initial_state()

    def set_learning(self, enabled: bool | None = None, rate: float | None = None) -> None:
        """Switch plasticity on or off and scale its learning rate, between chunks, without
        a restart. The rate multiplies the quantized trace increments (re-rounded from the
        values the program was prepared with); it changes this engine's program in place."""
        from .program import PL_A_POST, PL_A_PRE
        if enabled is not None:
            self.learning = bool(enabled)
        if rate is not None:
            rate = float(rate)
            if not (rate >= 0 and np.isfinite(rate)):
                raise InputError(f"learning rate must be a finite number >= 0, got {rate!r}")
            scaled = np.clip(np.rint(self._base_rates * rate), -2**31, 2**31 - 1)
            self.program.plast[:, PL_A_PRE] = scaled[:, 0].astype(np.int32)
            self.program.plast[:, PL_A_POST] = scaled[:, 1].astype(np.int32)
            self.learning_rate = rate

    def _check_input(self, inp) -> np.ndarray:
        inp = np.asarray(inp)
        if inp.ndim != 2 or inp.shape[1] != self.program.n_in:
            raise InputError(f"input must have shape [T, {self.program.n_in}] (steps x inputs), "
                             f"got {inp.shape}")
        if inp.dtype == np.bool_:
            inp = inp.view(np.uint8)
        elif inp.dtype != np.uint8:
            if not np.issubdtype(inp.dtype, np.integer):
                raise InputError(f"input spikes must be bool or integer 0/1, got {inp.dtype}")
            if inp.size and (inp.min() < 0 or inp.max() > 1):
                raise InputError("input spikes must be 0 or 1")
            inp = inp.astype(np.uint8)
        return np.ascontiguousarray(inp)

    def run_chunk(self, inp, state: State | None = None, record: bool = False,
                  out: np.ndarray | None = None):
        """Run len(inp) steps from ``state`` (the initial state when None), updating it in
        place. Returns (spikes uint8 [T, N], state, record or None); ``record`` holds the
        integer ``v`` [T, N] and ``i_syn`` [T, K, N] after each step. ``out`` may be a
        preallocated uint8 [T, N] buffer for the spikes (no allocation then)."""
        inp = self._check_input(inp)
        if state is None:
            state = self.initial_state()
        if not isinstance(state, State):
            raise InputError(f"state must be a spikeedge State, got {type(state).__name__}")
        T, N, K = inp.shape[0], self.program.n_neurons, self.program.n_channels
        if state.theta_a is None:
            state.theta_a = np.zeros(N, np.int32)
        if self.backend == "reference":
            spikes, state, rec = reference.run_chunk(self.program, state, inp, record,
                                                     learn=self.learning)
            if out is not None:
                out[...] = spikes
                spikes = out
            return spikes, state, rec
        spikes = np.empty((T, N), np.uint8) if out is None else out
        rec = None
        if record:
            rec = {"v": np.empty((T, N), np.int32), "i_syn": np.empty((T, K, N), np.int32)}
        from . import kernels
        kernels.run_chunk(self._kernel, self.program, inp, state, spikes,
                          None if rec is None else (rec["v"], rec["i_syn"]), learn=self.learning)
        state.step += T
        return spikes, state, rec

    def stream(self, state: State | None = None, max_steps: int = 1000) -> Stream:
        """A fast path for many small chunks on one state (for example 10 ms blocks): the
        state's arrays are checked once here, each ``Stream.run`` then checks only its input.
        See ``Stream``."""
        return Stream(self, self.initial_state() if state is None else state, max_steps)

    def run(self, inp, state: State | None = None, chunk: int = 1000, record: bool = False):
        """Convenience: run a whole input in chunks; returns (spikes, state, record)."""
        inp = self._check_input(inp)
        state = self.initial_state() if state is None else state
        parts, recs = [], []
        for a in range(0, inp.shape[0], max(1, int(chunk))):
            s, state, r = self.run_chunk(inp[a:a + chunk], state, record)
            parts.append(s)
            recs.append(r)
        spikes = np.concatenate(parts) if parts else np.zeros((0, self.n_neurons), np.uint8)
        rec = None
        if record and recs:
            rec = {k: np.concatenate([r[k] for r in recs]) for k in ("v", "i_syn")}
        return spikes, state, rec


class Stream:
    """``Engine.run_chunk`` for a stream of chunks on one state, with the per-call checks moved
    to construction: the state's arrays (dtype, shape, C order, writeable) are checked once and
    bound; ``run(inp)`` checks only that ``inp`` is a C-contiguous uint8 or bool [T, n_in]
    array with T <= max_steps, runs, and returns the spikes as a view of a buffer it owns
    (valid until the next ``run``; copy it to keep it). Same results as ``run_chunk``, bit for
    bit. The bound arrays are the state's at construction: make a new Stream after replacing
    one of them (assigning ``state.v = ...``); changing their contents in place is fine. On
    the reference backend, or for inputs that need converting, it calls ``run_chunk``.

        st = engine.stream(state, max_steps=10)
        for block in blocks:            # uint8 [10, n_in]
            spikes = st.run(block)      # uint8 [10, N], a view
    """

    def __init__(self, engine: Engine, state: State, max_steps: int = 1000):
        if not isinstance(state, State):
            raise InputError(f"state must be a spikeedge State, got {type(state).__name__}")
        max_steps = int(max_steps)
        if max_steps < 1:
            raise InputError(f"max_steps must be >= 1, got {max_steps}")
        self.engine, self.state, self.max_steps = engine, state, max_steps
        N = engine.program.n_neurons
        if state.theta_a is None:
            state.theta_a = np.zeros(N, np.int32)
        self._out = np.zeros((max_steps, N), np.uint8)
        self._bound = None
        if engine.backend == "compiled":
            prog = engine.program
            self._bound = engine._kernel.bind(
                state.v, state.i_syn, state.ref, state.x_pre, state.x_post,
                state.w if prog.plastic else prog.weights, state.theta_a)
            if self._bound is None:     # the checked path names the offending array
                from . import kernels
                kernels.run_chunk(engine._kernel, prog, np.zeros((0, prog.n_in), np.uint8),
                                  state, self._out[:0])
                raise InputError("state arrays do not fit the program")   # pragma: no cover

    def run(self, inp) -> np.ndarray:
        """Run len(inp) steps (at most max_steps); returns uint8 spikes [T, N] (a view)."""
        b = self._bound
        if b is not None and type(inp) is np.ndarray and inp.ndim == 2 \
                and inp.shape[0] <= self.max_steps:
            out = self._out[:inp.shape[0]]
            if b.run(inp, out, self.engine.learning):
                self.state.step += inp.shape[0]
                return out
        inp = self.engine._check_input(inp)
        if inp.shape[0] > self.max_steps:
            raise InputError(f"this stream runs at most {self.max_steps} steps per call, got "
                             f"{inp.shape[0]}")
        spikes, _, _ = self.engine.run_chunk(inp, self.state, out=self._out[:inp.shape[0]])
        return spikes
