"""Tests marked ``brian2`` skip, with the reason, when Brian2 is not installed (CI installs it
through the test extra). The modules import without Brian2: the validator imports it lazily."""
import importlib.util

import pytest

HAVE_BRIAN2 = importlib.util.find_spec("brian2") is not None


def pytest_collection_modifyitems(config, items):
    if HAVE_BRIAN2:
        return
    skip = pytest.mark.skip(reason="brian2 is not installed: pip install 'spikeedge[validate]' "
                                   "(the test extra includes it)")
    for item in items:
        if "brian2" in item.keywords:
            item.add_marker(skip)
