"""Shared constants for the test suites (imported by name; conftest.py only holds fixtures)."""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
#: the bit-exact property tests run this many cases (1,000 in CI, as the foundation issue asks)
BITEXACT_EXAMPLES = int(os.environ.get("SPIKEEDGE_BITEXACT_EXAMPLES",
                                       1000 if os.environ.get("CI") else 200))


def data_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("SPIKEEDGE_DATA", REPO.parent / "shared" / "data"))
