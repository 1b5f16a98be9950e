"""Shared fixtures for the sensors tests: where the real recordings are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """``$SPIKEEDGE_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("SPIKEEDGE_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def need(sub: str) -> Path:
    path = data_dir() / sub
    if not path.exists():
        pytest.skip(f"real recordings not found at {path} (set SPIKEEDGE_DATA to the shared "
                    "data folder to run this test)")
    return path


@pytest.fixture
def mitbih() -> Path:
    return need("mitbih")


@pytest.fixture
def myo() -> Path:
    return need("myo-wrist-gestures")


@pytest.fixture
def fsdd() -> Path:
    return need("fsdd/recordings")
