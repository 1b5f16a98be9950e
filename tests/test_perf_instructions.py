"""Instruction-count regression check: the kernels' callgrind counts per simulated second must
not grow more than 10 % over the stored baseline (``tools/perf_baseline.json``, written by
``python -m spikeedge.tools.callgrind --update tools/perf_baseline.json``). Needs valgrind
(Debian/Ubuntu package ``valgrind``); counts belong to one build environment, so the test skips
when the compiler or flags differ from the baseline's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from spikeedge.kernels import AVAILABLE
from spikeedge.tools import callgrind

BASELINE = Path(__file__).resolve().parents[1] / "tools" / "perf_baseline.json"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not callgrind.available(), reason="valgrind not installed"),
              pytest.mark.skipif(not AVAILABLE, reason="compiled kernels not built")]


@pytest.fixture(scope="module")
def baseline():
    if not BASELINE.exists():
        pytest.skip(f"no baseline {BASELINE}")
    base = json.loads(BASELINE.read_text())
    env = callgrind.environment()
    for key in ("machine", "compiler", "compile_args"):
        if base["environment"].get(key) != env.get(key):
            pytest.skip(f"baseline made with {key} = {base['environment'].get(key)!r}, "
                        f"this build has {env.get(key)!r}")
    return base


@pytest.mark.parametrize("net", list(callgrind.SIM_SECONDS))
def test_instruction_count_within_10_percent_of_baseline(net, baseline):
    got = callgrind.count(net)
    assert callgrind.compare({net: got}, baseline) == []


def test_compare_flags_growth_only():
    base = {"nets": {"kws": {"instructions_per_sim_s": 1000}}}
    assert callgrind.compare({"kws": {"instructions_per_sim_s": 1099}}, base) == []
    assert callgrind.compare({"kws": {"instructions_per_sim_s": 500}}, base) == []
    assert len(callgrind.compare({"kws": {"instructions_per_sim_s": 1101}}, base)) == 1


def test_spike_free_count_is_the_part_spikes_do_not_drive():
    """--spike-free feeds kws an all-zero input: nothing spikes, and the step costs less than
    with the standard input, but not nothing (the neuron passes still run)."""
    free = callgrind.count("kws", T=0.5, spike_free=True)
    real = callgrind.count("kws", T=0.5)
    assert free["spikes"] == 0 and real["spikes"] > 0
    assert 0.2 * real["instructions_per_step"] < free["instructions_per_step"] \
        < real["instructions_per_step"]


def test_spike_free_is_not_a_baseline(capsys):
    with pytest.raises(SystemExit) as e:
        callgrind.main(["--spike-free", "--update", "x.json"])
    assert e.value.code == 2
    assert "not baselines" in capsys.readouterr().err
