"""Helpers of the daemon tests: configs, an in-process daemon on virtual time, the command
line."""
from __future__ import annotations

import copy
import subprocess
import sys

from spikeedge.config import default_config


def make_cfg(url="fake:ecg?seed=2&duration=20", sinks=(), **sections):
    """A validated-looking config dict: defaults, ``url``, ``sinks`` and section overrides
    given as ``source={"block_ms": 50}``."""
    cfg = default_config()
    cfg["source"]["url"] = url
    cfg["source"]["block_ms"] = 50.0
    cfg["health"]["interval_s"] = 1e9
    cfg["daemon"]["device_id"] = "test"
    cfg["sinks"] = [dict(s) for s in sinks]
    for sec, vals in sections.items():
        cfg[sec].update(vals)
    return copy.deepcopy(cfg)


def run_daemon(cfg, clock=None, **kw):
    """Run a daemon to the end on a VirtualClock; returns (daemon, records)."""
    from spikeedge.daemon import Daemon
    from spikeedge.sensors import VirtualClock
    records = []
    d = Daemon(cfg, clock=clock or VirtualClock(), on_record=records.append, **kw)
    d.run()
    return d, records


def cli(*args, timeout=120, **kw):
    """Run ``spikeedge ARGS`` (the real command line) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "spikeedge.cli", *args], capture_output=True,
                          text=True, timeout=timeout, **kw)
