"""Checkpoints of learned state (STDP weights, adaptive thresholds) of a learning process.

A subprocess trains the unsupervised network and checkpoints after every presentation with the
daemon's checkpointer (``spikeedge.checkpoint``: atomic, versioned, checksummed). Before each
write it logs (fsynced) a hash of the state it is about to write, and after the write a "done"
line. The test SIGKILLs it several times, at random moments and right while a checkpoint file
is being written, and checks after every kill that

* a valid checkpoint loads (magic, checksum, model id),
* its weights and thresholds are exactly a state the process had started to write,
* it is not older than the last checkpoint the process reported done (at most one checkpoint
  interval of learning is lost),
* the restarted process resumes from it,

and at the end, that the interrupted training ends with exactly the weights of an
uninterrupted run (the schedule is deterministic, so nothing was lost or applied twice).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from spikeedge.checkpoint import Checkpointer, read_checkpoint, write_checkpoint
from spikeedge.unsupervised import DCConfig, DCNetwork, synthetic_task

CFG = dict(n_neurons=200, present_s=0.04, seed=3, theta_plus=0.02, norm=0.2)
SIDE = 16
EPOCHS = 4
PER_CLASS = 15

CHILD = textwrap.dedent("""
    import hashlib, json, os, sys
    from spikeedge.checkpoint import Checkpointer
    from spikeedge.unsupervised import DCConfig, DCNetwork, synthetic_task

    path, log_path, cfg, side, epochs, per_class = sys.argv[1:7]
    cfg = DCConfig(**json.loads(cfg))
    x, _ = synthetic_task(4, int(side), int(per_class), 0.1, seed=1)
    net = DCNetwork(x.shape[1], cfg)
    log = open(log_path, "a")

    def note(**kw):
        log.write(json.dumps(kw) + "\\n")
        log.flush()
        os.fsync(log.fileno())

    def digest(state):
        return hashlib.sha256(state.w.tobytes() + state.theta_a.tobytes()).hexdigest()

    class Logged(Checkpointer):
        def save(self, state, extra=None):
            note(event="intent", presented=extra["presented"], hash=digest(state))
            ok = super().save(state, extra)
            note(event="done", presented=extra["presented"], ok=ok)
            return ok

    ck = Logged(path, net.model_id())
    which = net.restore(ck)
    note(event="start", presented=net.presented, hash=digest(net.state), pid=os.getpid(),
         which=which)
    net.train(x, int(epochs), checkpointer=ck, checkpoint_every=1)
    note(event="finished", presented=net.presented, hash=digest(net.state))
""")


def _digest(w, theta) -> str:
    return hashlib.sha256(np.asarray(w).tobytes() + np.asarray(theta).tobytes()).hexdigest()


def _events(log_path) -> list[dict]:
    out = []
    with open(log_path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by the kill
                pass
    return out


def _reference_run():
    x, _ = synthetic_task(4, SIDE, PER_CLASS, 0.1, seed=1)
    net = DCNetwork(x.shape[1], DCConfig(**CFG))
    net.train(x, EPOCHS)
    return net


def test_checkpoint_roundtrip_and_exact_resume(tmp_path):
    """In process: stop half-way, checkpoint, restore into a fresh network, finish: the
    result equals the uninterrupted run bit for bit; the file is the daemon's format."""
    x, _ = synthetic_task(4, 8, 10, 0.1, seed=1)
    cfg = DCConfig(n_neurons=30, present_s=0.05, seed=2)
    full = DCNetwork(x.shape[1], cfg)
    full.train(x, 2)
    part = DCNetwork(x.shape[1], cfg)
    part.train(x, 1)
    ck = Checkpointer(str(tmp_path / "learn.ckpt"), part.model_id())
    assert part.save_checkpoint(ck)
    arrays, meta = read_checkpoint(ck.path)
    assert meta["version"] == 1 and meta["presented"] == len(x)
    assert np.array_equal(arrays["w"], part.state.w)
    resumed = DCNetwork(x.shape[1], cfg)
    assert resumed.restore(ck) == ck.path
    assert resumed.presented == len(x)
    resumed.train(x, 2)
    assert np.array_equal(resumed.state.w, full.state.w)
    assert np.array_equal(resumed.state.theta_a, full.state.theta_a)
    assert not np.array_equal(full.state.w, DCNetwork(x.shape[1], cfg).state.w)  # it learned


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path):
    x, _ = synthetic_task(4, 8, 5, 0.1, seed=1)
    cfg = DCConfig(n_neurons=10, present_s=0.05)
    net = DCNetwork(x.shape[1], cfg)
    ck = Checkpointer(str(tmp_path / "learn.ckpt"), net.model_id())
    net.train(x, 1)
    net.save_checkpoint(ck)
    first = net.state.w.copy()
    net.train(x, 2)
    net.save_checkpoint(ck)
    with open(ck.path, "r+b") as f:          # flip a byte of the newest checkpoint
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    fresh = DCNetwork(x.shape[1], cfg)
    assert fresh.restore(ck) == ck.path + ".prev"
    assert np.array_equal(fresh.state.w, first) and fresh.presented == len(x)
    # another model's checkpoint is not restored
    other = DCNetwork(x.shape[1], DCConfig(n_neurons=10, present_s=0.05, seed=9))
    assert other.restore(Checkpointer(ck.path, other.model_id())) is None
    # a file that is not a model is a clear error for DCNetwork.load
    write_checkpoint(str(tmp_path / "x.ckpt"), {"w": first}, {"model_id": "x"})
    from spikeedge.unsupervised import UnsupervisedError
    with pytest.raises(UnsupervisedError):
        DCNetwork.load(str(tmp_path / "x.ckpt"))


@pytest.mark.slow
def test_sigkill_during_learning_checkpoints(tmp_path):
    path = str(tmp_path / "learn.ckpt")
    log_path = str(tmp_path / "log.jsonl")
    script = tmp_path / "learner.py"
    script.write_text(CHILD)
    argv = [sys.executable, str(script), path, log_path, json.dumps(CFG), str(SIDE),
            str(EPOCHS), str(PER_CLASS)]
    x, _ = synthetic_task(4, SIDE, PER_CLASS, 0.1, seed=1)
    total = EPOCHS * len(x)
    model_id = DCNetwork(x.shape[1], DCConfig(**CFG)).model_id()
    rnd = random.Random(20261129)
    kills = mid_write = 0
    n_kills = 8           # at least this many kills, and more (up to max_kills) until two
    max_kills = 30        # of them landed while a checkpoint file was being written
    finished = False
    restarts = 0
    expect_start = (0, None)
    while not finished:
        restarts += 1
        assert restarts < 40, "the learner made no progress"
        n_before = len(_events(log_path)) if os.path.exists(log_path) else 0
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if kills < n_kills or (mid_write < 2 and kills < max_kills):
                # wait until this run has written at least two checkpoints
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None:
                    ev = _events(log_path)[n_before:] if os.path.exists(log_path) else []
                    if sum(e["event"] == "done" for e in ev) >= 2:
                        break
                    time.sleep(0.002)
                if proc.poll() is None:
                    if kills % 2 == 0:   # right while a checkpoint file is being written
                        t_end = time.monotonic() + 5
                        while not os.path.exists(path + ".tmp") and time.monotonic() < t_end:
                            pass
                        if rnd.random() < 0.5:
                            time.sleep(rnd.uniform(0, 0.0005))
                    else:                # at a random moment
                        time.sleep(rnd.uniform(0, 0.05))
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=30)
                    kills += 1
                    mid_write += os.path.exists(path + ".tmp")
            if proc.poll() is None:
                proc.wait(timeout=300)
            err = proc.stderr.read().decode(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ev = _events(log_path)
        start = [e for e in ev[n_before:] if e["event"] == "start"][0]
        assert start["presented"] == expect_start[0], "the restart did not resume"
        assert expect_start[1] in (None, start["hash"]), "the restart loaded other weights"
        if proc.returncode == 0:
            finished = True
            assert ev[-1]["event"] == "finished", err
            continue
        assert proc.returncode == -signal.SIGKILL, err
        # a valid checkpoint loads and holds a state the process had written
        got = Checkpointer(path, model_id).load()
        assert got is not None, "no valid checkpoint after the kill"
        arrays, meta, which = got
        intents = {(e["presented"], e["hash"]) for e in ev if e["event"] == "intent"}
        h = _digest(arrays["w"], arrays["theta_a"])
        assert (meta["presented"], h) in intents, f"{which}: weights never written"
        done = [e["presented"] for e in ev if e["event"] == "done" and e["ok"]]
        assert meta["presented"] >= max(done), \
            f"lost more than one interval: loaded {meta['presented']}, done {max(done)}"
        assert meta["presented"] <= total
        expect_start = (meta["presented"], h)
    assert kills >= n_kills
    assert mid_write >= 2, f"only {mid_write} of {kills} kills landed during a checkpoint write"
    # every restart resumed from the checkpoint that was on disk
    starts = [e for e in _events(log_path) if e["event"] == "start"]
    assert len(starts) == kills + 1 and starts[0]["presented"] == 0
    assert all(s["presented"] > 0 for s in starts[1:])
    final = [e for e in _events(log_path) if e["event"] == "finished"][-1]
    assert final["presented"] == total
    ref = _reference_run()
    assert final["hash"] == _digest(ref.state.w, ref.state.theta_a), \
        "interrupted training does not end with the uninterrupted run's weights"
    print(f"{kills} SIGKILLs, {mid_write} during a checkpoint write, {restarts} runs")
