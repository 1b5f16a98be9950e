"""Fixtures of the reliability tests: the firmware host build (skip without a C toolchain)."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def fw_binary():
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C toolchain (make, cc): install build-essential to run these tests")
    from spikeedge.faults import firmware_binary
    binary = firmware_binary()
    if binary is None:
        pytest.skip("firmware sources not found (not a source checkout)")
    return binary
