"""Fixtures of the daemon tests: configs, an in-process daemon on virtual time, the broker."""
from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest

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


@pytest.fixture
def mqtt_port():
    port = os.environ.get("SPIKEEDGE_MQTT_PORT")
    if not port:
        pytest.skip("no Mosquitto broker: SPIKEEDGE_MQTT_PORT is not set (.ci/run starts one; "
                    "locally: mosquitto -p PORT and export SPIKEEDGE_MQTT_PORT=PORT)")
    return int(port)


@pytest.fixture(scope="session")
def host_firmware():
    """Skip unless the firmware host build can be made (C toolchain and firmware sources)."""
    import shutil
    from pathlib import Path
    fw = Path(__file__).resolve().parents[2] / "firmware"
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C toolchain (make, cc): install build-essential to run firmware tests")
    if not (fw / "boards" / "posix" / "host_main.c").is_file():
        pytest.skip("firmware sources not found")
    return fw
