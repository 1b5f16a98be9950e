"""Checkpoints: atomic writes, checksum, previous kept, corruption detected, kill -9 safe, and
learned state restored by the daemon on start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from daemonutil import make_cfg, run_daemon

from spikeedge.checkpoint import Checkpointer, CheckpointError, read_checkpoint, write_checkpoint


def test_write_read_keeps_previous(tmp_path):
    p = str(tmp_path / "s.ckpt")
    write_checkpoint(p, {"w": np.arange(5, dtype=np.int16)}, {"model_id": "m", "step": 1})
    write_checkpoint(p, {"w": np.arange(5, dtype=np.int16) * 2}, {"model_id": "m", "step": 2})
    a, meta = read_checkpoint(p)
    assert meta["step"] == 2 and np.array_equal(a["w"], np.arange(5) * 2)
    b, meta = read_checkpoint(p + ".prev")
    assert meta["step"] == 1 and np.array_equal(b["w"], np.arange(5))
    assert not os.path.exists(p + ".tmp")


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_corrupt_checkpoint_is_detected_and_previous_used(tmp_path, damage):
    p = str(tmp_path / "s.ckpt")
    for step in (1, 2):
        write_checkpoint(p, {"w": np.full(100, step, np.int16)}, {"model_id": "m",
                                                                   "step": step})
    data = bytearray(open(p, "rb").read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = b""
    else:
        data = b"not a checkpoint at all" * 3
    open(p, "wb").write(bytes(data))
    with pytest.raises(CheckpointError):
        read_checkpoint(p)
    ck = Checkpointer(p, "m")
    arrays, meta, which = ck.load()
    assert which == p + ".prev" and meta["step"] == 1 and ck.corrupt_found == 1


def test_other_models_checkpoint_is_not_restored(tmp_path):
    p = str(tmp_path / "s.ckpt")
    write_checkpoint(p, {"w": np.zeros(3, np.int16)}, {"model_id": "other"})
    assert Checkpointer(p, "mine").load() is None


def test_kill_9_during_checkpointing_never_leaves_no_intact_checkpoint(tmp_path):
    p = str(tmp_path / "s.ckpt")
    code = textwrap.dedent(f"""
        import numpy as np
        from spikeedge.checkpoint import write_checkpoint
        i = 0
        while True:
            write_checkpoint({p!r}, {{"w": np.full(200000, i % 30000, np.int16)}},
                             {{"model_id": "m", "step": i}})
            i += 1
            if i == 3:
                print("go", flush=True)
    """)
    for delay in (0.05, 0.13, 0.21):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"go"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        arrays, meta, which = Checkpointer(p, "m").load()
        assert np.all(arrays["w"] == meta["step"] % 30000)


def _plastic_program():
    from spikeedge import INPUT, STDP, Network, Population, Projection, quantize
    rng = np.random.default_rng(3)
    net = Network(n_inputs=2, dt=1e-3, populations=[Population("out", 8, tau_m=10e-3)],
                  projections=[Projection(INPUT, "out", rng.uniform(0.3, 0.9, (2, 8)),
                                          stdp=STDP(a_pre=0.05, a_post=-0.04))])
    prog = quantize(net)
    prog.report["metadata"] = {"encoder": {"preset": "ecg-delta"},
                               "decision": {"policy": "window", "window_s": 1.0}}
    return prog


def test_learning_on_off_checkpoint_and_restore(tmp_path):
    ck = str(tmp_path / "learn.ckpt")
    url = "fake:ecg?seed=4&duration=10"
    prog = _plastic_program()
    w0 = prog.weights.copy()
    # learning off: the weights do not move
    d, recs = run_daemon(make_cfg(url), program=prog, model_id="plastic")
    assert np.array_equal(d.c.state.w, w0)
    # learning on: they do, checkpoints are written periodically and at the end
    cfg = make_cfg(url, source={"realtime": True},
                   learning={"enabled": True, "checkpoint": ck, "checkpoint_interval_s": 2.0})
    d, recs = run_daemon(cfg, program=_plastic_program(), model_id="plastic")
    learned = d.c.state.w.copy()
    assert not np.array_equal(learned, w0)
    assert d.c.checkpointer.saves == 5            # at 2, 4, 6, 8 s (clock) ... and at exit
    health = [r for r in recs if r["type"] == "health"][-1]
    assert health["learning"]["enabled"] and health["learning"]["weight_change"] > 0
    # a fresh start restores what was learned
    cfg2 = make_cfg("fake:ecg?seed=4&duration=0.1", learning={"checkpoint": ck})
    d2 = __import__("spikeedge.daemon", fromlist=["Daemon"]).Daemon(
        cfg2, program=_plastic_program(), model_id="plastic")
    assert d2.c.restored_from == ck and np.array_equal(d2.c.state.w, learned)
    d2.shutdown("test")
    # a corrupt latest checkpoint: the previous one is used
    open(ck, "r+b").write(b"XXXXXXXX")
    d3 = __import__("spikeedge.daemon", fromlist=["Daemon"]).Daemon(
        cfg2, program=_plastic_program(), model_id="plastic")
    assert d3.c.restored_from == ck + ".prev" and d3.c.checkpointer.corrupt_found == 1
    d3.shutdown("test")
