import pytest
from hypothesis import HealthCheck, settings

from testutil import data_dir

settings.register_profile("spikeedge", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("spikeedge")


@pytest.fixture
def shared_data():
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real recordings not found at {d} (set SPIKEEDGE_DATA)")
    return d
