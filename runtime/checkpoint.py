"""Atomic, checksummed checkpoints of the engine state (learned weights and the rest).

File layout: ``b"SEKCKPT1"`` (8 bytes), the SHA-256 of the payload (32 bytes), then the
payload: an ``.npz`` (no pickle) with the state arrays under ``state/NAME`` and a JSON header
(``__meta__``: format version, model id, step, wall time, anything the caller adds).

Writing never leaves a half-written checkpoint under the checkpoint's name, whenever the
process dies (``kill -9``, power loss): the new file is written to ``PATH.tmp`` and fsynced,
the current one is hard-linked to ``PATH.prev`` (so a good checkpoint exists under ``PATH`` at
every moment), then ``PATH.tmp`` is renamed over ``PATH`` and the directory fsynced. Reading
checks the magic and the checksum; a corrupt or truncated ``PATH`` is reported and ``PATH.prev``
is used instead.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time

import numpy as np

from .errors import SpikeEdgeError

__all__ = ["CheckpointError", "Checkpointer", "write_checkpoint", "read_checkpoint"]

log = logging.getLogger("spikeedge.daemon")

MAGIC = b"SEKCKPT1"
VERSION = 1


class CheckpointError(SpikeEdgeError):
    """A checkpoint file is corrupt, truncated, or does not belong to this model."""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(path: str, arrays: dict, meta: dict) -> None:
    """Write ``arrays`` (name -> numeric array) and ``meta`` (JSON dict) atomically."""
    path = os.fspath(path)
    buf = io.BytesIO()
    header = {"version": VERSION, "written": time.time(), **meta}
    payload = {f"state/{k}": np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(buf, **payload)
    body = buf.getvalue()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(body).digest() + body)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        prev_tmp = path + ".prev.tmp"
        try:
            if os.path.exists(prev_tmp):
                os.unlink(prev_tmp)
            os.link(path, prev_tmp)
        except OSError:  # no hard links here (some filesystems): copy instead
            with open(path, "rb") as src, open(prev_tmp, "wb") as dst:
                dst.write(src.read())
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(prev_tmp, path + ".prev")
    os.replace(tmp, path)
    _fsync_dir(path)


def read_checkpoint(path: str) -> tuple[dict, dict]:
    """(arrays, meta) of one checkpoint file; CheckpointError when it is not intact."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: cannot read it ({exc.strerror})") from None
    if len(data) < 40 or data[:8] != MAGIC:
        raise CheckpointError(f"checkpoint {path}: not a spikeedge checkpoint (bad magic or "
                              "truncated)")
    body = data[40:]
    if hashlib.sha256(body).digest() != data[8:40]:
        raise CheckpointError(f"checkpoint {path}: checksum mismatch (corrupt or truncated)")
    try:
        z = np.load(io.BytesIO(body), allow_pickle=False)
        meta = json.loads(z["__meta__"].tobytes().decode())
        arrays = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
    except Exception as exc:  # checksummed, so only a writer bug gets here
        raise CheckpointError(f"checkpoint {path}: unreadable payload ({exc})") from None
    # checksummed, but a planted file can be well-formed: check what restore relies on
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: __meta__ is not a JSON object")
    if not isinstance(meta.get("step", 0), int) or isinstance(meta.get("step"), bool):
        raise CheckpointError(f"checkpoint {path}: __meta__ step is not an integer")
    for k, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise CheckpointError(f"checkpoint {path}: member state/{k} is not a .npy array")
    return arrays, meta


class Checkpointer:
    """Periodic checkpoints of an engine :class:`~spikeedge.State` for one model.

    ``load()`` returns the newest intact checkpoint (``PATH``, else ``PATH.prev``) as
    ``(arrays, meta, which)`` or None; ``maybe_save(state, now)`` writes when ``interval_s``
    has passed on the caller's clock; ``save(state)`` writes now.
    """

    def __init__(self, path: str, model_id: str, interval_s: float = 60.0):
        self.path = os.fspath(path)
        self.model_id = model_id
        self.interval_s = float(interval_s)
        self.saves = 0
        self.failures = 0
        self.corrupt_found = 0
        self.last_save_wall: float | None = None
        self.last_error: str | None = None
        self._last = None
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise CheckpointError(f"checkpoint {self.path}: directory {d} does not exist")

    def load(self):
        for which in (self.path, self.path + ".prev"):
            if not os.path.exists(which):
                continue
            try:
                arrays, meta = read_checkpoint(which)
            except CheckpointError as exc:
                self.corrupt_found += 1
                log.error("%s; trying the previous checkpoint", exc)
                continue
            if meta.get("model_id") != self.model_id:
                log.warning("checkpoint %s belongs to model %s, not %s: not restored", which,
                            meta.get("model_id"), self.model_id)
                return None
            return arrays, meta, which
        return None

    def restore_into(self, state) -> str | None:
        """Copy checkpointed arrays into ``state`` (same shapes only); returns the file used."""
        got = self.load()
        if got is None:
            return None
        arrays, meta, which = got
        mine = state.arrays()
        for k, a in arrays.items():
            if k not in mine or mine[k].shape != a.shape or mine[k].dtype != a.dtype:
                log.warning("checkpoint %s: array %s does not fit the model; not restored",
                            which, k)
                return None
        for k, a in arrays.items():
            np.copyto(mine[k], a)
        state.step = int(meta.get("step", state.step))
        log.info("restored state from %s (step %s)", which, state.step)
        return which

    def save(self, state, extra: dict | None = None) -> bool:
        try:
            write_checkpoint(self.path, state.arrays(),
                             {"model_id": self.model_id, "step": int(state.step),
                              **(extra or {})})
        except OSError as exc:
            self.failures += 1
            self.last_error = f"{exc}"
            log.error("checkpoint %s: write failed (%s); keeping the previous one", self.path,
                      exc)
            return False
        self.saves += 1
        self.last_save_wall = time.time()
        return True

    def maybe_save(self, state, now: float, extra: dict | None = None) -> bool:
        if self._last is None:
            self._last = now
            return False
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return self.save(state, extra)

    def status(self) -> dict:
        return {"path": self.path, "saves": self.saves, "failures": self.failures,
                "corrupt_found": self.corrupt_found, "last_save_wall": self.last_save_wall,
                "last_error": self.last_error}
