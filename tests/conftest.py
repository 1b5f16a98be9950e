import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("spikeedge", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("spikeedge")
#: the bit-exact property tests run this many cases (1,000 in CI, as the issue asks)
BITEXACT_EXAMPLES = int(os.environ.get("SPIKEEDGE_BITEXACT_EXAMPLES",
                                       1000 if os.environ.get("CI") else 200))

REPO = pathlib.Path(__file__).resolve().parent.parent


def data_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("SPIKEEDGE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data():
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real recordings not found at {d} (set SPIKEEDGE_DATA)")
    return d
