"""The daemon serves the shipped application models (spikeedge.apps readout convention)."""
import json
import subprocess
import sys

import pytest
from daemonutil import make_cfg, run_daemon


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spikeedge.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def decisions(stdout):
    recs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [r for r in recs if r.get("type") == "decision"]


def test_daemon_classifies_beats_with_the_shipped_ecg_model():
    r = run("run", "--model-path", "builtin:mitbih-beats", "--source-url",
            "fake:ecg?seed=3&duration=40", "--daemon-duration-s", "40")
    assert r.returncode == 0, r.stderr
    ds = decisions(r.stdout)
    assert len(ds) >= 30                                  # about one per beat after warm-up
    assert {d["class"] for d in ds} <= {"N", "S", "V", "F", "Q"}
    assert all(d["policy"] == "beat" and d["model"].startswith("mitbih-beats@") for d in ds)
    assert all(0 <= d["beat_sample"] <= 40 * 360 for d in ds)


def test_daemon_classifies_windows_with_the_shipped_emg_model():
    r = run("run", "--model-path", "builtin:myo-gestures", "--source-url",
            "fake:emg?seed=1&duration=5", "--daemon-duration-s", "5")
    if r.returncode == 2 and "inputs" in r.stderr:
        pytest.skip(f"fake:emg does not match the model's input layout: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    ds = decisions(r.stdout)
    assert len(ds) >= 10 and all(d["policy"] == "window" for d in ds)


# ---------------------------------------------------------------------------- utterances live
def _write_wav(path, x, rate=8000):
    import wave

    import numpy as np
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16).tobytes())


def test_daemon_decides_each_utterance_live_with_bounded_memory(tmp_path):
    """A WAV of five tone bursts between silences: one ``utterance`` decision per burst, at
    its end, and the featurizer holds at most max_s + gap_s of spikes."""
    import numpy as np

    rate, rng = 8000, np.random.default_rng(0)
    parts, edges, t = [], [], 0.0
    for sil, dur in [(0.5, 0.4), (0.6, 0.3), (0.4, 0.7), (0.8, 0.5), (0.5, 0.35)]:
        parts.append(np.zeros(int(sil * rate)))
        tt = np.arange(int(dur * rate)) / rate
        parts.append(0.3 * np.sin(2 * np.pi * 350 * tt))
        edges.append((t + sil, t + sil + dur))
        t += sil + dur
    parts.append(np.zeros(int(0.7 * rate)))
    x = np.concatenate(parts)
    x = x + 5e-4 * rng.standard_normal(len(x))
    _write_wav(tmp_path / "bursts.wav", x, rate)
    cfg = make_cfg(f"wav:{tmp_path / 'bursts.wav'}", source={"block_ms": 10.0},
                   model={"path": "builtin:fsdd-digits"})
    from spikeedge.daemon import Daemon
    from spikeedge.sensors import VirtualClock
    held, recs = [], []
    d = Daemon(cfg, clock=VirtualClock(), on_record=recs.append,
               on_block=lambda *a: held.append(d.c.decider.buffered_steps))
    d.run()
    ds = [r for r in recs if r["type"] == "decision"]
    assert len(ds) == len(edges)
    for rec, (t0, t1) in zip(ds, edges, strict=True):
        assert rec["policy"] == "utterance" and rec["class"] in list("0123456789")
        assert abs(rec["window_start"] - t0) <= 0.011 and abs(rec["sensor_time"] - t1) <= 0.011
        assert rec["decided_at"] >= rec["sensor_time"] + 0.29        # after the 0.3 s gap
    assert len(held) == d.blocks and max(held) <= (2.0 + 0.3 + 0.05) * 1000
    assert max(held) >= 700                    # the longest burst was held while it lasted
    health = [r for r in recs if r["type"] == "health"]
    assert health[-1]["utterance"] == {"live": True, "buffered_steps": 0, "dropped": 0}


def _bursts_wav(tmp_path):
    import numpy as np
    rate, rng = 8000, np.random.default_rng(1)
    parts = []
    for sil, dur in [(0.5, 0.4), (0.6, 0.3), (0.4, 0.7)]:
        parts += [np.zeros(int(sil * rate)),
                  0.3 * np.sin(2 * np.pi * 350 * np.arange(int(dur * rate)) / rate)]
    x = np.concatenate(parts + [np.zeros(int(0.7 * rate))])
    _write_wav(tmp_path / "b.wav", x + 5e-4 * rng.standard_normal(len(x)), rate)
    return f"wav:{tmp_path / 'b.wav'}"


@pytest.mark.parametrize("decision,n", [
    ({}, 3),                                         # the model's options: one per burst
    ({"utterance": "off"}, 1),                       # the whole stream, decided at its end
    ({"utterance_gap_ms": 800.0}, 2),                # pauses no longer end one: 2.4 s of
                                                     # bursts, cut once at max_s (2 s)
    ({"utterance_threshold_db": 90.0}, 0),           # nothing is loud enough to be voiced
    ({"utterance_min_dbfs": -5.0}, 0),               # the bursts peak near -10 dBFS
    ({"utterance_max_s": 0.35}, 5),                  # 0.4 and 0.7 s bursts cut in two
])
def test_config_overrides_the_models_utterance_detector(tmp_path, decision, n):
    cfg = make_cfg(_bursts_wav(tmp_path), source={"block_ms": 10.0},
                   model={"path": "builtin:fsdd-digits"}, decision=decision)
    _, recs = run_daemon(cfg)
    assert len([r for r in recs if r["type"] == "decision"]) == n


def test_config_sets_the_end_threshold_of_the_utterance_detector(tmp_path):
    """Two loud tones joined by 0.4 s at 9 dB above the room (longer than gap_s): one
    utterance with the model's hysteresis (end_threshold_db 6), two with it at 12 dB."""
    import numpy as np
    rate, rng = 8000, np.random.default_rng(2)
    tone = lambda d, a: a * np.sin(2 * np.pi * 350 * np.arange(int(d * rate)) / rate)  # noqa
    room = 1e-3
    x = np.concatenate([np.zeros(int(0.5 * rate)), tone(0.3, 0.3),
                        tone(0.4, room * 10 ** (9 / 20) * np.sqrt(2)), tone(0.3, 0.3),
                        np.zeros(int(0.7 * rate))])
    _write_wav(tmp_path / "t.wav", x + room * rng.standard_normal(len(x)), rate)
    counts = []
    for decision in ({}, {"utterance_end_threshold_db": 12.0}):
        cfg = make_cfg(f"wav:{tmp_path / 't.wav'}", source={"block_ms": 10.0},
                       model={"path": "builtin:fsdd-digits"}, decision=decision)
        _, recs = run_daemon(cfg)
        counts.append(len([r for r in recs if r["type"] == "decision"]))
    assert counts == [1, 2]


def test_bad_utterance_config_is_a_config_error_naming_the_option(tmp_path):
    from spikeedge.config import ConfigError
    from spikeedge.daemon import Daemon, utterance_options
    cfg = make_cfg(_bursts_wav(tmp_path), model={"path": "builtin:fsdd-digits"},
                   decision={"utterance_gap_ms": 5.0})           # shorter than a 10 ms frame
    with pytest.raises(ConfigError, match="gap_s"):
        Daemon(cfg)
    dec = {"policy": "utterance", "live": False}
    cfg["decision"]["utterance_gap_ms"] = 500.0
    with pytest.raises(ConfigError, match="utterance = 'live'"):
        utterance_options(cfg, dec)                               # the model has it off
    cfg["decision"]["utterance"] = "live"
    assert utterance_options(cfg, dec) == {"gap_s": 0.5}
    assert utterance_options(cfg, {"policy": "window"}) is None   # not an utterance model
    cfg["decision"]["utterance"] = "off"
    assert utterance_options(cfg, {"policy": "utterance", "live": {"gap_s": 0.2}}) is False


def test_daemon_on_real_utterances_matches_eval_per_file(tmp_path):
    """Twelve FSDD recordings in one stream, 0.5 s of quiet noise between them: one decision
    per recording, mostly the class ``eval`` gives each file."""
    import numpy as np

    from spikeedge.apps.stream import AppReadout, run_stream
    from spikeedge.daemon import load_program
    from testutil import data_dir

    folder = data_dir() / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"FSDD recordings not found in {folder} (set SPIKEEDGE_DATA)")
    files = sorted(folder.glob("*_george_[0-4].wav"))[::4][:6] + \
        sorted(folder.glob("*_nicolas_[0-4].wav"))[1::4][:6]
    if len(files) < 8:
        pytest.skip(f"too few FSDD recordings in {folder}")
    import wave
    rng, parts = np.random.default_rng(1), []
    for p in files:
        with wave.open(str(p)) as w:
            assert w.getframerate() == 8000
            parts.append(rng.standard_normal(4000) * 1e-3)
            parts.append(np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0)
    parts.append(rng.standard_normal(4000) * 1e-3)
    _write_wav(tmp_path / "digits.wav", np.concatenate(parts))
    prog, _, _ = load_program("builtin:fsdd-digits")
    r = AppReadout.from_program(prog)
    per_file = [str(run_stream(prog, f"wav:{p}", r)["decisions"][0]["class_index"])
                for p in files]
    cfg = make_cfg(f"wav:{tmp_path / 'digits.wav'}", source={"block_ms": 10.0},
                   model={"path": "builtin:fsdd-digits"})
    _, recs = run_daemon(cfg)
    got = [x["class"] for x in recs if x["type"] == "decision"]
    assert len(got) == len(files), (got, per_file)
    assert np.mean(np.array(got) == np.array(per_file)) >= 0.75, (got, per_file)


# ---------------------------------------------------------------------------- the stream path
def test_daemon_stream_gives_the_spikes_of_run_chunk_while_learning():
    """The daemon's hot loop (Engine.stream, bound once) computes exactly what run_chunk over
    the same encoded input computes, with plasticity on."""
    import numpy as np
    from test_checkpoint import _plastic_program

    from spikeedge import Engine

    seen_in, seen_out = [], []
    cfg = make_cfg("fake:ecg?seed=4&duration=6", source={"block_ms": 10.0},
                   learning={"enabled": True})
    prog = _plastic_program()
    w0 = prog.weights.copy()
    d, _ = run_daemon(cfg, program=prog, model_id="plastic",
                      on_block=lambda b, si, s: (seen_in.append(si.copy()),
                                                 seen_out.append(s.copy())))
    assert d.c.stream.state is d.c.state and d.c.stream.engine is d.c.engine
    inp = np.concatenate(seen_in)
    fresh = _plastic_program()
    np.testing.assert_array_equal(fresh.weights, w0)
    eng = Engine(fresh)
    spikes, state, _ = eng.run(inp, chunk=7)
    np.testing.assert_array_equal(np.concatenate(seen_out), spikes)
    np.testing.assert_array_equal(state.w, d.c.state.w)
    assert spikes.any() and (state.w != w0).any()      # it did learn


def test_reload_to_another_model_makes_a_new_stream(tmp_path):

    from spikeedge.daemon import Daemon
    from spikeedge.sensors import VirtualClock

    cfg = make_cfg("fake:ecg?seed=2&duration=3", source={"block_ms": 10.0})
    new = make_cfg("fake:ecg?seed=2&duration=3", source={"block_ms": 10.0},
                   model={"path": "builtin:mitbih-beats"})
    d = Daemon(cfg, clock=VirtualClock(), loader=lambda: new, on_record=lambda r: None)
    old = d.c.stream
    assert d.reload()
    assert d.c.stream is not old and d.c.stream.state is d.c.state
    assert d.c.stream.engine is d.c.engine and d.c.engine.program is d.c.program
    assert d.run() == "end of stream" and d.steps > 0
