"""The edge daemon: ``spikeedge run --config FILE.toml``.

    source --(bounded queue)--> encoder --> engine stream --> decision --> sinks
                                               |
                                          checkpointer

One process, one processing loop. The source is read in that loop (file and fake sources, and
in tests) or in a reader thread feeding a bounded queue (live devices: ``[source] threaded``);
a full queue drops blocks by ``drop_policy`` and counts them, and the block after a drop is
flagged as a gap so that the encoder and the beat detector restart cleanly. The engine runs
each block through ``Engine.stream(state, max_steps)`` (the state checked once, when the
pipeline is built and at every reload, instead of by every ``run_chunk`` call). Utterance
models find the utterances live (docs/daemon.md, "Utterance models") and decide each at its
end; one still open when the stream ends is decided then. Time comes from an
injected clock (``RealClock`` in production, ``VirtualClock`` in tests), which paces sources,
the health period and the checkpoint period.

Records (JSON objects, one per line on every sink; schema in docs/daemon.md): ``decision``
(one per beat or window), ``health`` (every ``[health] interval_s`` and at exit) and ``event``
(start, reload, reload_failed, gap, source_error, stop).

Signals: SIGTERM and SIGINT stop cleanly (final health record, final checkpoint, sinks flushed
and closed); SIGHUP reloads the configuration file and the model: everything is built and
checked first, and only then swapped in, so a bad new configuration is refused (an event says
why) and the old one keeps running.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import ConfigError, add_flags, apply_overrides, device_id, flag_overrides, load_config
from .errors import SpikeEdgeError

__all__ = ["Daemon", "DaemonError", "load_program", "register", "percentiles"]

log = logging.getLogger("spikeedge.daemon")


class DaemonError(SpikeEdgeError):
    """The daemon cannot start or continue (source gone for good, model unusable)."""


# ---------------------------------------------------------------------------- models
def builtin_models() -> dict[str, str]:
    """builtin:NAME -> path of a model file shipped in the package."""
    from importlib import resources
    out = {}
    for folder in ("data", "models"):      # the demo model, then the application models
        root = resources.files("spikeedge") / folder
        try:
            for p in root.iterdir():
                if p.name.endswith(".npz"):
                    out[p.name[:-4].replace("_", "-")] = str(p)
        except (FileNotFoundError, NotADirectoryError):  # pragma: no cover - broken install
            pass
    return out


def load_program(path: str):
    """(program, model_id, resolved path) of a model file or ``builtin:NAME``."""
    from .modelfile import load_model
    if path.startswith("builtin:"):
        models = builtin_models()
        name = path[len("builtin:"):]
        if name not in models:
            raise ConfigError(f"[model] path = {path!r}: no such built-in model; allowed: "
                              + ", ".join(f"builtin:{m}" for m in sorted(models)))
        path = models[name]
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"[model] path = {path!r}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise ConfigError(f"[model] path = {path!r}: not a regular file")
    prog = load_model(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    name = prog.report.get("metadata", {}).get("name") or \
        os.path.splitext(os.path.basename(path))[0]
    return prog, f"{name}@{digest}", path


def percentiles(values) -> dict:
    if len(values) == 0:
        return {"p50": None, "p99": None, "max": None}
    a = np.asarray(values, np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "max": round(float(a.max()), 4)}


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            import resource
            return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
        except (ImportError, OSError):  # pragma: no cover
            return None


# ---------------------------------------------------------------------------- source reader
_END = object()


class Reader:
    """Blocks from a source, stamped with their arrival time on the clock.

    Synchronous (``threaded=False``): ``get()`` reads the source. Threaded: a thread reads into
    a bounded deque; when it is full, ``drop-oldest`` discards the oldest queued block and
    ``drop-newest`` the incoming one; both count blocks and samples and flag the next delivered
    block as a gap."""

    def __init__(self, source, clock, threaded: bool, maxlen: int, policy: str):
        self.source, self.clock = source, clock
        self.threaded = threaded
        self.maxlen = int(maxlen)
        self.policy = policy
        self.dropped_blocks = 0
        self.dropped_samples = 0
        self.max_depth = 0
        self._q: deque = deque()
        self._cv = threading.Condition()
        self._error: BaseException | None = None
        self._ended = False
        self._stop = False
        self._gap_next = False
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="source-reader",
                                            daemon=True)
            self._thread.start()

    def depth(self) -> int:
        return len(self._q)

    def _run(self):
        try:
            while not self._stop:
                block = self.source.read()
                if block is None:
                    break
                item = (block, self.clock.now())
                with self._cv:
                    if self._gap_next:
                        block.gap, self._gap_next = True, False
                    if len(self._q) >= self.maxlen:
                        self.dropped_blocks += 1
                        if self.policy == "drop-oldest":
                            old, _ = self._q.popleft()
                            self.dropped_samples += old.n
                            self._q.append(item)
                            self._q[0][0].gap = True
                        else:
                            self.dropped_samples += block.n
                            self._gap_next = True
                    else:
                        self._q.append(item)
                    self.max_depth = max(self.max_depth, len(self._q))
                    self._cv.notify()
        except BaseException as exc:  # handed to the processing loop
            self._error = exc
        finally:
            with self._cv:
                self._ended = True
                self._cv.notify()

    def get(self, timeout: float = 0.25):
        """The next ``(block, arrival)``; None when nothing came within ``timeout`` (threaded
        only); ``_END`` at the end of the stream. Re-raises the reader's error."""
        if not self.threaded:
            block = self.source.read()
            return _END if block is None else (block, self.clock.now())
        with self._cv:
            if not self._q and not self._ended:
                self._cv.wait(timeout)
            if self._q:
                return self._q.popleft()
            if self._ended:
                if self._error is not None:
                    raise self._error
                return _END
            return None

    def close(self):
        self._stop = True
        try:
            self.source.close()
        except Exception as exc:  # never let a failing close stop shutdown
            log.warning("closing the source: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout=2.0)


# ---------------------------------------------------------------------------- components
@dataclass
class Components:
    cfg: dict
    program: Any
    model_id: str
    model_path: str
    engine: Any
    readout: Any
    source: Any = None
    reader: Reader | None = None
    encoder: Any = None
    decider: Any = None
    state: Any = None
    sinks: Any = None
    checkpointer: Any = None
    stream: Any = None          # engine.stream(state): the hot loop's validated fast path
    restored_from: str | None = None
    extra: dict = field(default_factory=dict)


def _source_kwargs(cfg: dict, url: str, clock) -> dict:
    from .sensors import parse_url
    _, _, in_url = parse_url(url)
    s = cfg["source"]
    kw = {"clock": clock}
    wanted = {"realtime": s["realtime"],
              "timeout": s["timeout_s"] or None,
              "max_reconnects": None if s["max_reconnects"] < 0 else s["max_reconnects"],
              "backoff_max": s["backoff_max_s"]}
    for k, v in wanted.items():
        if k not in in_url:
            kw[k] = v
    return kw


def open_configured_source(cfg: dict, clock, program=None, first_try_only: bool = False):
    """Open the configured source and size its blocks to ``block_ms``."""
    from .sensors import open_source
    url = cfg["source"]["url"]
    kw = _source_kwargs(cfg, url, clock)
    final_reconnects = kw.get("max_reconnects", "url")
    if first_try_only:
        kw["max_reconnects"] = 0
    src = open_source(url, **kw)
    src.open()
    if first_try_only and final_reconnects != "url":
        src.max_reconnects = final_reconnects
    src.block_size = max(1, int(round(cfg["source"]["block_ms"] * 1e-3 * src.rate)))
    return src


#: [decision] keys that override one live-utterance option of the model, and that option
_UTTERANCE_KEYS = {"utterance_threshold_db": "threshold_db",
                   "utterance_end_threshold_db": "end_threshold_db",
                   "utterance_min_dbfs": "min_dbfs", "utterance_gap_ms": "gap_s",
                   "utterance_max_s": "max_s"}


def utterance_options(cfg: dict, decision: dict):
    """The ``live_utterance`` argument of :class:`AppDecider` from the ``[decision]`` keys:
    None (the model's ``decision.live`` as it is), False (one decision at the end of the
    stream) or the model's options with the configured ones in their place, checked here so
    that a bad combination is a :class:`ConfigError` naming the keys. Models that do not
    decide per utterance ignore these keys."""
    from .apps.stream import AppModelError, utterance_live_options
    if decision.get("policy") != "utterance":
        return None
    d = cfg["decision"]
    over = {opt: (d[k] / 1000.0 if k.endswith("_ms") else d[k])
            for k, opt in _UTTERANCE_KEYS.items() if d[k]}
    mode = d["utterance"]
    if mode == "off":
        return False
    if mode == "auto" and not over:
        return None
    model = decision.get("live", True)
    model_on = model is True or (isinstance(model, dict) and model.get("enabled", True)
                                 is not False)
    if mode == "auto" and not model_on:
        raise ConfigError(f"[decision] {', '.join(k for k in _UTTERANCE_KEYS if d[k])}: the "
                          "model decides once per stream (its decision.live is off); set "
                          "[decision] utterance = 'live' to find utterances in the stream")
    opts = {k: v for k, v in model.items() if k != "enabled"} if isinstance(model, dict) \
        else {}
    opts.update(over)
    try:
        utterance_live_options(opts, "[decision] utterance options")
    except AppModelError as e:
        raise ConfigError(f"{e} (from the model's decision.live and the [decision] "
                          "utterance_* keys)") from None
    return opts


class Daemon:
    """The daemon; see the module docstring.

    ``Daemon(cfg, clock=..., loader=...)``: ``cfg`` is a validated config dict; ``loader()``
    returns a fresh validated config for SIGHUP (or raises ConfigError). ``program`` (with
    ``model_id``) may replace the configured model file (benchmarks, tests). ``on_block(block,
    spikes_in, spikes)`` and ``on_record(record)`` are hooks for the demo and tests.
    """

    def __init__(self, cfg: dict, clock=None, loader=None, stdout=None, program=None,
                 model_id: str | None = None, on_block=None, on_record=None):
        from .sensors import RealClock
        self.clock = clock or RealClock()
        self.loader = loader
        self.stdout = stdout
        self._program_override = (program, model_id or "custom") if program is not None \
            else None
        self.on_block = on_block
        self.on_record = on_record
        self._stop_reason: str | None = None
        self._reload = False
        self.c: Components | None = None
        self.decision_seq = 0
        self.health_seq = 0
        self.blocks = 0
        self.samples = 0
        self.steps = 0
        self.deadline_misses = 0
        self.gaps = 0
        self.reloads = 0
        self.reload_failures = 0
        self.sensor_time = 0.0
        self.block_latency = deque(maxlen=4096)     # seconds, since the last health record
        self.all_decision_latency: list[float] = []  # seconds, for the run summary
        self.decisions = 0
        self.per_class: dict[str, int] = {}
        self._sensor_start: float | None = None
        self.cfg = cfg
        self.c = self._build(cfg, None)
        self._t0 = self.clock.now()
        self._last_health = self._t0
        self._cpu0 = (time.process_time(), time.monotonic())

    # ------------------------------------------------------------------ building
    def _model(self, cfg):
        if self._program_override is not None:
            prog, mid = self._program_override
            return prog, mid, "<in memory>"
        return load_program(cfg["model"]["path"])

    def _build(self, cfg: dict, old: Components | None) -> Components:
        """Everything for ``cfg``, reusing what did not change in ``old``. Raises on any
        problem, having closed what it opened."""
        from . import Engine
        from .checkpoint import Checkpointer
        from .decision import AppDecider, Readout, is_app_model, make_decider
        from .sensors.presets import make_encoder
        from .sinks import SinkSet

        def same(sec):
            return old is not None and old.cfg[sec] == cfg[sec]

        program, model_id, model_path = self._model(cfg)
        if old is not None and old.model_id == model_id and same("model"):
            program, engine = old.program, old.engine
        else:
            engine = Engine(program, backend=cfg["model"]["backend"])
        policy = None if cfg["decision"]["policy"] == "auto" else cfg["decision"]["policy"]
        app = is_app_model(program)
        if app:     # a shipped application model (spikeedge.apps readout convention)
            import spikeedge.sensors.app_encoders  # noqa: F401  (registers its presets)

            from .apps.stream import AppReadout
            readout = AppDecider(AppReadout.from_program(program), None, None)
        else:
            readout = Readout.from_program(program, policy,
                                           cfg["decision"]["window_ms"] * 1e-3 or None)
        meta = program.report.get("metadata", {}) or {}
        c = Components(cfg=cfg, program=program, model_id=model_id, model_path=model_path,
                       engine=engine, readout=readout)
        opened_here = []
        try:
            # source
            if same("source") and old.source is not None:
                c.source, c.reader = old.source, old.reader
            else:
                c.source = open_configured_source(cfg, self.clock, program,
                                                  first_try_only=old is not None)
                opened_here.append(c.source)
                t = cfg["source"]["threaded"]
                threaded = c.source.live if t == "auto" else t == "yes"
                c.reader = Reader(c.source, self.clock, threaded, cfg["source"]["queue_blocks"],
                                  cfg["source"]["drop_policy"])
            step_hz = 1.0 / program.dt
            # encoder
            preset = cfg["encoder"]["preset"]
            if preset == "auto":
                preset = (meta.get("encoder") or {}).get("preset")
                if not preset:
                    raise ConfigError("[encoder] preset = 'auto': the model names no encoder "
                                      "in its metadata; set [encoder] preset to one of the "
                                      "presets (see docs/sensors.md)")
            keep_pipe = same("source") and same("encoder") and same("decision") and \
                old is not None and old.model_id == model_id
            if keep_pipe:
                c.encoder, c.decider = old.encoder, old.decider
            else:
                from .sensors.presets import PRESETS
                if preset not in PRESETS:
                    raise ConfigError(f"[encoder] preset = {preset!r}: allowed: auto, "
                                      + ", ".join(PRESETS))
                c.encoder = make_encoder(preset, c.source.rate, c.source.channels, step_hz)
                if c.encoder.n_out != program.n_in:
                    raise ConfigError(
                        f"[encoder] preset = {preset!r} gives {c.encoder.n_out} inputs for "
                        f"{c.source.channels} channel(s) at {c.source.rate:g} Hz, but the "
                        f"model takes {program.n_in}; pick the model's encoder")
                c.decider = AppDecider(readout.app, c.source.rate, step_hz,
                                       live_utterance=utterance_options(
                                           cfg, readout.app.decision)) if app else \
                    make_decider(readout, c.source.rate, step_hz,
                                 cfg["decision"]["smoothing"])
            # state and learning
            if old is not None and old.model_id == model_id:
                c.state = old.state
            else:
                c.state = engine.initial_state()
            lc = cfg["learning"]
            if lc["checkpoint"]:
                if old is not None and old.checkpointer is not None and \
                        old.checkpointer.path == lc["checkpoint"] and old.model_id == model_id:
                    c.checkpointer = old.checkpointer
                    c.checkpointer.interval_s = lc["checkpoint_interval_s"]
                else:
                    c.checkpointer = Checkpointer(lc["checkpoint"], model_id,
                                                  lc["checkpoint_interval_s"])
                    if lc["restore"] and (old is None or old.model_id != model_id):
                        c.restored_from = c.checkpointer.restore_into(c.state)
            # learning off skips the plasticity step in the kernels (traces and weights
            # frozen); the rate scales the increments; both change without a restart
            engine.set_learning(enabled=bool(lc["enabled"]), rate=float(lc["rate"]))
            # the hot loop runs blocks through a Stream bound to this state (checked once
            # here, after any restore; restore copies into the arrays, so the binding
            # holds); a new model or state gets a new Stream, learning switches are read
            # by every run
            max_steps = int(np.ceil(c.source.block_size * step_hz / c.source.rate)) + 2
            c.stream = engine.stream(c.state, max_steps)
            # sinks last: they are visible to the outside
            c.sinks = SinkSet.build(cfg["sinks"], device_id(cfg), self.stdout,
                                    reuse=None if old is None else old.sinks)
        except BaseException:
            for s in opened_here:
                s.close()
            raise
        return c

    # ------------------------------------------------------------------ records
    def emit(self, record: dict) -> None:
        if self.on_record is not None:
            self.on_record(record)
        self.c.sinks.emit(record)

    def event(self, name: str, **kw) -> None:
        self.emit({"type": "event", "event": name, "device": device_id(self.cfg),
                   "model": self.c.model_id, "wall_time": round(time.time(), 6), **kw})

    def health_record(self) -> dict:
        c = self.c
        now = self.clock.now()
        cpu, mono = time.process_time(), time.monotonic()
        cpu_share = (cpu - self._cpu0[0]) / max(mono - self._cpu0[1], 1e-9)
        self._cpu0 = (cpu, mono)
        st = c.source.status()
        lat = percentiles([x * 1e3 for x in self.block_latency])
        self.block_latency.clear()
        lc = self.cfg["learning"]
        learning = {"enabled": bool(lc["enabled"] and c.program.plastic),
                    "plastic": bool(c.program.plastic),
                    "checkpoint": None if c.checkpointer is None else c.checkpointer.status(),
                    "restored_from": c.restored_from}
        if c.program.plastic:
            learning["weight_change"] = float(np.abs(
                c.state.w.astype(np.int64) - c.program.weights.astype(np.int64)).sum())
        rec = {
            "type": "health", "seq": self.health_seq, "device": device_id(self.cfg),
            "model": c.model_id, "wall_time": round(time.time(), 6),
            "uptime_s": round(now - self._t0, 6), "sensor_time": round(self.sensor_time, 6),
            "blocks": self.blocks, "samples": self.samples, "steps": self.steps,
            "decisions": self.decisions, "deadline_misses": self.deadline_misses,
            "dropped": {"blocks": c.reader.dropped_blocks, "samples": c.reader.dropped_samples,
                        "lost_samples": st.get("lost_samples", 0),
                        "source_dropped_frames": st.get("dropped_frames", 0),
                        "source_skipped": st.get("skipped", 0)},
            "queue": {"source": c.reader.depth(), "source_max": c.reader.maxlen,
                      "source_peak": c.reader.max_depth,
                      "sinks": {s.name: s.queue_depth() for s in c.sinks.sinks}},
            "source": {"url": st.get("url"), "open": st.get("open"),
                       "reconnects": st.get("reconnects"), "gaps": st.get("gaps"),
                       "errors": st.get("errors"), "last_error": st.get("last_error")},
            "block_latency_ms": lat, "cpu_share": round(cpu_share, 4),
            "rss_bytes": _rss_bytes(), "backend": c.engine.backend, "learning": learning,
            "sinks": c.sinks.status(), "reloads": self.reloads,
            "reload_failures": self.reload_failures,
        }
        if c.readout.policy == "beat":
            rec["late_beats"] = c.decider.late_beats
        elif c.readout.policy == "utterance":
            f = getattr(c.decider, "f", None)
            rec["utterance"] = {"live": c.decider.live is not None,
                                "buffered_steps": c.decider.buffered_steps,
                                "dropped": int(getattr(f, "dropped", 0))}
        self.health_seq += 1
        return rec

    # ------------------------------------------------------------------ control
    def request_stop(self, reason: str = "requested") -> None:
        self._stop_reason = reason

    def request_reload(self) -> None:
        self._reload = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.request_stop("SIGINT"))
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def reload(self) -> bool:
        """Build the new configuration beside the old one and swap; on any error keep the
        old one and say why in a ``reload_failed`` event."""
        self._reload = False
        if self.loader is None:
            return False
        old = self.c
        try:
            cfg = self.loader()
            new = self._build(cfg, old)
        except (SpikeEdgeError, OSError) as exc:
            self.reload_failures += 1
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.event("reload_failed", error=str(exc))
            return False
        if new.source is not old.source:
            old.reader.close()
        old.sinks.close(keep=new.sinks)
        self.c, self.cfg = new, cfg
        _set_log_level(cfg)
        self.reloads += 1
        self.event("reload", config_changed=[k for k in cfg if cfg[k] != old.cfg[k]])
        return True

    # ------------------------------------------------------------------ processing
    def process(self, block, arrival: float) -> None:
        c = self.c
        t_start = self.clock.now()
        if self._sensor_start is None:
            self._sensor_start = block.t0
        if block.gap:
            self.gaps += 1
            c.encoder.reset()
            c.decider.reset(int(round(block.t0 * block.rate)), self.steps)
            self.event("gap", sensor_time=round(block.t0, 6), lost=block.info.get(
                "lost_samples"))
        elif self.blocks == 0 and block.t0 > 0:
            c.decider.reset(int(round(block.t0 * block.rate)), self.steps)
        x = block.samples
        spk_in = c.encoder.process(x)
        t = spk_in.shape[0]
        if t > c.stream.max_steps:      # a longer block than the source announced
            c.stream = c.engine.stream(c.state, t)
        # a view of the stream's buffer, valid until the next block (as the old buffer was)
        spikes = c.stream.run(spk_in)
        self.steps += t
        self.blocks += 1
        self.samples += block.n
        self.sensor_time = block.t0 + block.duration
        out = c.decider.feed(x[:, 0], spikes)
        if self.on_block is not None:
            self.on_block(block, spk_in, spikes)
        now = self.clock.now()
        self.block_latency.append(now - arrival)
        if (c.source.live or c.source.realtime) and now - t_start > block.duration:
            self.deadline_misses += 1
        self._emit_decisions(out, now, arrival)

    def _emit_decisions(self, out: list, now: float, arrival: float) -> None:
        if not out:
            return
        c = self.c
        wall = round(time.time(), 6)
        labels = c.readout.labels
        minc = self.cfg["decision"]["min_confidence"]
        for d in out:
            label = labels[d["class_index"]]
            rec = {"type": "decision", "seq": self.decision_seq, "device": device_id(self.cfg),
                   "model": c.model_id, "policy": c.readout.policy}
            if c.readout.policy == "beat":
                rec["sensor_time"] = round(d["beat_time"], 6)
                rec["beat_sample"] = d["beat_sample"]
            else:
                rec["sensor_time"] = round(d["window_end"], 6)
                rec["window_start"] = round(d["window_start"], 6)
            rec.update({
                "decided_at": round(self.sensor_time, 6), "wall_time": wall, "class": label,
                "class_index": d["class_index"],
                "scores": {lab: round(float(s), 5) for lab, s in zip(labels, d["scores"],
                                                                     strict=True)},
                "confidence": round(d["confidence"], 5),
                "uncertain": d["confidence"] < minc,
                "latency_ms": round((now - arrival) * 1e3, 4)})
            self.decision_seq += 1
            self.decisions += 1
            self.per_class[label] = self.per_class.get(label, 0) + 1
            self.all_decision_latency.append(now - arrival)
            self.emit(rec)

    def housekeeping(self) -> None:
        now = self.clock.now()
        if now - self._last_health >= self.cfg["health"]["interval_s"]:
            self._last_health = now
            self.emit(self.health_record())
        c = self.c
        if c.checkpointer is not None and c.checkpointer.maybe_save(
                c.state, now, {"sensor_time": self.sensor_time}):
            log.debug("checkpoint written to %s", c.checkpointer.path)

    def run(self) -> str:
        """Process until the source ends, ``duration_s`` of signal, or a stop request;
        then shut down cleanly. Returns the reason it stopped."""
        c = self.c
        self.event("start", source=self.cfg["source"]["url"], backend=c.engine.backend,
                   policy=c.readout.policy, labels=c.readout.labels,
                   threaded=c.reader.threaded, restored_from=c.restored_from,
                   rate=c.source.rate, block_size=c.source.block_size)
        reason = "end of stream"
        try:
            while True:
                if self._stop_reason is not None:
                    reason = self._stop_reason
                    break
                if self._reload:
                    self.reload()
                try:
                    item = self.c.reader.get()
                except SpikeEdgeError as exc:
                    self.event("source_error", error=str(exc))
                    raise DaemonError(f"source {self.cfg['source']['url']}: {exc}") from None
                if item is _END:
                    if self.c.readout.policy == "utterance":    # one still open at the end
                        now = self.clock.now()
                        self._emit_decisions(self.c.decider.flush(), now, now)
                    break
                if item is not None:
                    self.process(*item)
                self.housekeeping()
                dur = self.cfg["daemon"]["duration_s"]
                if dur and self._sensor_start is not None and \
                        self.sensor_time - self._sensor_start >= dur - 1e-9:
                    reason = "duration reached"
                    break
        finally:
            self.shutdown(reason)
        return reason

    def shutdown(self, reason: str) -> None:
        c = self.c
        try:
            if c.checkpointer is not None:
                c.checkpointer.save(c.state, {"sensor_time": self.sensor_time})
            self.emit(self.health_record())
            self.event("stop", reason=reason)
        finally:
            c.reader.close()
            c.sinks.flush()
            c.sinks.close()


# ---------------------------------------------------------------------------- CLI
def _set_log_level(cfg: dict) -> None:
    logging.getLogger("spikeedge").setLevel(cfg["log"]["level"])


def config_from_args(args) -> dict:
    cfg = load_config(args.config)
    return apply_overrides(cfg, flag_overrides(args))


def cmd_run(args) -> int:
    cfg = config_from_args(args)
    if args.check:
        print(f"config OK: source {cfg['source']['url']}, model {cfg['model']['path']}, "
              f"{len(cfg['sinks'])} sink(s)", file=sys.stderr)
        return 0
    _set_log_level(cfg)
    d = Daemon(cfg, loader=lambda: config_from_args(args))
    d.install_signal_handlers()
    reason = d.run()
    log.info("stopped: %s", reason)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the daemon: sensor -> encoder -> network -> decisions -> sinks",
        description="Run the edge daemon. Every config key is also a flag (flags win); "
                    "see docs/daemon.md.")
    p.add_argument("--config", default=None, help="TOML config file (see docs/daemon.md)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    add_flags(p)
    p.set_defaults(func=cmd_run)
    from . import demo, pipelines
    demo.register(subparsers)
    pipelines.register(subparsers)


def _positive(s):
    """argparse type for a positive finite number (the CLI's own check)."""
    from .cli import _positive_float
    return _positive_float(s)
