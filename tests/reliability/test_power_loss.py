"""Power loss: SIGKILL a learning daemon at random moments (during learning and during
checkpoint writes). Every restart restores a valid checkpoint, at most one checkpoint interval
of learning is lost, and a checkpoint with flipped bytes is detected and the previous used."""
from __future__ import annotations

import pytest

from spikeedge.soak import powerloss_phase


def check(r, kills):
    assert r["kills"] == kills and r["crashes"] == 0, r
    assert r["no_valid_checkpoint"] == 0 and not r["restore_mismatch"], r
    assert r["over_interval"] == 0, r
    assert r["corrupted"] >= 1 and r["corrupt_detected"] == r["corrupted"], r
    assert r["restored_ok"] >= kills - 1, r
    assert r["steps_learned"] > 0
    assert r["records_lost"] == 0, r


def test_sigkill_during_learning_and_checkpointing(tmp_path):
    check(powerloss_phase(tmp_path, cycles=5, corrupt_every=2, seed=1), 5)


@pytest.mark.slow
def test_twenty_sigkills(tmp_path):
    check(powerloss_phase(tmp_path, cycles=20, corrupt_every=5, seed=2), 20)
