"""Fixtures of the firmware and serial-link tests: repository paths, shared vectors and builds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
VECTORS = FIRMWARE / "test_vectors" / "protocol_vectors.json"
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


def _make(target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(FIRMWARE), target], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def host_firmware() -> Path:
    """Build the host target once per session; skip when there is no C toolchain."""
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C toolchain (make, cc): install build-essential to run firmware tests")
    result = _make("host")
    if result.returncode != 0:
        pytest.fail(f"make host failed:\n{result.stdout}\n{result.stderr}")
    return FIRMWARE / "build" / "host" / "spikeedge-fw-host"


@pytest.fixture(scope="session")
def arm_firmware() -> Path:
    """Build the Cortex-M target; skip when arm-none-eabi-gcc or qemu-system-arm is absent."""
    for tool, package in (
        ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
        ("qemu-system-arm", "qemu-system-arm"),
    ):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: apt-get install {package}")
    result = _make("arm")
    if result.returncode != 0:
        pytest.fail(f"make arm failed:\n{result.stdout}\n{result.stderr}")
    return FIRMWARE / "build" / "arm" / "spikeedge-fw-mps2.elf"
