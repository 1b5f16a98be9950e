"""Fixtures of the daemon tests: the broker and the firmware's host build. The plain helpers
(configs, an in-process daemon on virtual time, the command line) are in ``daemonutil``: a
module named after its folder, so that running several test folders in one pytest call does
not pick up another folder's ``conftest``."""
from __future__ import annotations

import os

import pytest


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
