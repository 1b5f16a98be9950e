"""Electrode-shift (armband rotation) augmentation of myo-gestures
(``spikeedge.tools.myo_augment``): the channel rotation, where it sits in the emg-lif chain,
its checks, and the trainer's command line on bad input."""
import json
from pathlib import Path

import numpy as np
import pytest

from spikeedge.sensors import app_encoders  # noqa: F401  (registers emg-lif)
from spikeedge.sensors.errors import EncoderConfigError
from spikeedge.sensors.presets import make_encoder
from spikeedge.tools import myo_augment as ma
from spikeedge.train import TrainError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "myo-wrist-gestures"
MODEL = Path(__file__).resolve().parents[2] / "runtime" / "models" / "myo-gestures.npz"


def _emg(n=1200, seed=0):
    """Synthetic 8-channel EMG: noise bursts of different strength on each channel."""
    rng = np.random.default_rng(seed)
    amp = 2.0 + 20.0 * ((np.arange(n)[:, None] // 200 + np.arange(8)) % 4 == 0)
    return rng.normal(0.0, 1.0, (n, 8)) * amp


def test_rotation_by_whole_channels_is_a_circular_roll():
    x = np.arange(24.0).reshape(3, 8)
    np.testing.assert_array_equal(ma.ChannelRotate(200, 8, 0.0).process(x), x)
    np.testing.assert_array_equal(ma.ChannelRotate(200, 8, 1.0).process(x),
                                  np.roll(x, -1, axis=1))
    np.testing.assert_array_equal(ma.ChannelRotate(200, 8, -2.0).process(x),
                                  np.roll(x, 2, axis=1))


def test_fractional_rotation_interpolates_neighbours_around_the_ring():
    x = np.random.default_rng(1).random((5, 8))
    y = ma.ChannelRotate(200, 8, 0.25).process(x)
    np.testing.assert_allclose(y, 0.75 * x + 0.25 * np.roll(x, -1, axis=1))
    # channel 7 mixes with channel 0 (the ring closes)
    np.testing.assert_allclose(y[:, 7], 0.75 * x[:, 7] + 0.25 * x[:, 0])
    z = ma.ChannelRotate(200, 8, -0.5).process(x)
    np.testing.assert_allclose(z, 0.5 * x + 0.5 * np.roll(x, 1, axis=1))
    # a constant pattern is unchanged; energy is not created
    c = np.ones((2, 8)) * 3.0
    np.testing.assert_allclose(ma.ChannelRotate(200, 8, 0.3).process(c), c)


@pytest.mark.parametrize("bad", [8.0, -8.5, float("nan"), float("inf"), True, "0.5", None])
def test_rotation_rejects_bad_shifts(bad):
    with pytest.raises(EncoderConfigError, match="shift"):
        ma.ChannelRotate(200, 8, bad)


def test_rotation_checks_the_channel_count():
    with pytest.raises(EncoderConfigError):
        ma.ChannelRotate(200, 8, 0.5).process(np.zeros((4, 7)))


@pytest.mark.parametrize("preset", ["emg-lif", "emg-lif-sign"])
@pytest.mark.parametrize("stage", ma.STAGES)
def test_rotated_encoder_equals_the_preset_on_rolled_channels(stage, preset):
    """Every stage before the spike encoder works per channel, so a whole-channel rotation
    anywhere in the chain is the plain preset on rolled input: the augmentation changes
    where the electrodes sit and nothing else."""
    x = _emg()
    plain = make_encoder(preset, 200, 8, 200)
    rolled = plain.process(np.roll(x, -1, axis=1))
    rot = ma.rotated_encoder(preset, 200, 8, 1.0, stage, 200)
    np.testing.assert_array_equal(rot.process(x), rolled)
    assert rolled.sum() > 50          # the test signal does make spikes


def test_rotated_encoder_places_the_rotation_and_changes_fractional_spikes():
    env = ma.rotated_encoder("emg-lif", 200, 8, 0.5, "envelope", 200)
    names = [type(s).__name__ for s in env.stages]
    assert names.index("ChannelRotate") == names.index("Envelope") + 1
    raw = ma.rotated_encoder("emg-lif", 200, 8, 0.5, "raw", 200)
    assert type(raw.stages[0]).__name__ == "ChannelRotate"
    x = _emg(seed=2)
    a, b = env.process(x), make_encoder("emg-lif", 200, 8, 200).process(x)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_rotated_sign_preset_rotates_the_sign_branch_on_the_raw_emg():
    rot = ma.rotated_encoder("emg-lif-sign", 200, 8, 0.5, "envelope", 200)
    rates, sign = rot.branches
    names = [type(s).__name__ for s in rates.stages]
    assert names.index("ChannelRotate") == names.index("Envelope") + 1
    assert type(sign.stages[0]).__name__ == "ChannelRotate"
    assert type(sign.stages[-1]).__name__ == "ThresholdEncoder"
    x = _emg(seed=3)
    out = rot.process(x)
    # the rate branch is the emg-lif rotation at the envelope, the sign branch the raw one
    np.testing.assert_array_equal(
        out[:, :8], ma.rotated_encoder("emg-lif", 200, 8, 0.5, "envelope", 200).process(x))
    np.testing.assert_array_equal(
        out[:, 8:], ma.rotated_encoder("emg-lif-sign", 200, 8, 0.5, "raw", 200).process(x)[:, 8:])
    plain = make_encoder("emg-lif-sign", 200, 8, 200).process(x)
    assert not np.array_equal(out[:, 8:], plain[:, 8:])


def test_rotated_encoder_rejects_a_bad_stage_or_preset():
    with pytest.raises(EncoderConfigError, match="stage"):
        ma.rotated_encoder("emg-lif", 200, 8, 0.5, "middle")
    with pytest.raises(EncoderConfigError, match="envelope"):
        ma.rotated_encoder("emg-delta", 200, 8, 0.5, "envelope")


def test_fit_aug_uses_the_copies_and_rejects_missing_shifts():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    X0 = rng.normal(0, 1, (80, 4)) + y[:, None] * [2.0, 0, 0, 0]
    Xs = {0.0: X0, 0.5: X0[:, ::-1].copy()}
    train = np.ones(80, bool)
    fit = {"method": "ridge", "alpha": 1.0}
    W0, _ = ma.fit_aug(Xs, y, train, [], 2, fit)
    W1, _ = ma.fit_aug(Xs, y, train, [0.5], 2, fit)
    assert not np.allclose(W0, W1)
    # the copy moves weight onto the mirrored feature
    assert abs(W1[1, 3]) > 5 * abs(W0[1, 3])
    with pytest.raises(TrainError, match="shift"):
        ma.fit_aug(Xs, y, train, [0.25], 2, fit)
    # the logistic readout (the previous recipe) on the same copies
    Wl, bl = ma.fit_aug(Xs, y, train, [0.5], 2, {"method": "logistic", "l2": 1e-2})
    assert Wl.shape == (2, 4) and np.mean((X0 @ Wl.T + bl).argmax(1) == y) > 0.8


@pytest.mark.parametrize("argv, msg", [
    (["--data", "x", "--shifts", "a,b"], "comma-separated"),
    (["--data", "x", "--shifts", "0"], "non-zero"),
    (["--data", "x", "--shifts", "9"], "below 8"),
    (["--data", "x", "--stage", "middle"], "invalid choice"),
    (["--data", "x", "--jobs", "0"], "--jobs"),
    (["--data", "x", "--fit", "{nope"], "not JSON"),
    (["--data", "x", "--fit", "[1]"], "JSON object"),
    (["--data", "x", "--nested", "{}"], "--nested"),
    (["--data", "x", "--nested", '[{"shifts": [0.5]}]'], "--nested"),
    (["--data", "x", "--screen", "0.5;x"], "comma-separated"),
    (["--data", "x", "--set", "net.sign"], "expected SECTION.KEY=JSON"),
    (["--data", "x", "--set", "nope.sign=true"], "unknown section"),
    (["--data", "x", "--set", "net.sign=yes"], "not JSON"),
    ([], "--data"),
])
def test_cli_rejects_bad_options_cleanly(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        ma.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cli_reports_a_network_option_of_the_wrong_type(tmp_path, capsys):
    assert ma.main(["--data", str(tmp_path), "--no-save", "--set", "net.sign=1"]) == 2
    err = capsys.readouterr().err
    assert "sign must be true or false" in err and "Traceback" not in err


def test_cli_reports_a_missing_data_folder(tmp_path, capsys):
    assert ma.main(["--data", str(tmp_path / "absent"), "--no-save"]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err
    assert ma.main(["--data", str(tmp_path), "--no-save"]) == 2
    assert "Myo" in capsys.readouterr().err


def test_cli_reports_a_fit_with_a_bad_method(tmp_path, capsys):
    y = np.repeat(np.arange(8), 3)
    X = np.random.default_rng(0).random((24, 6)).astype(np.float32)
    ma.save_cache(tmp_path / "c.npz", {0.0: X}, y, np.array(["a-1"] * 12 + ["b-1"] * 12),
                  "envelope")
    rc = ma.main(["--from-cache", str(tmp_path / "c.npz"), "--screen", "",
                  "--fit", '{"method": "svm"}'])
    assert rc == 2
    assert "method" in capsys.readouterr().err


def test_screen_on_a_cache_scores_both_protocols(tmp_path):
    rng = np.random.default_rng(3)
    y = np.tile(np.arange(8), 20)
    groups = np.repeat(["a-1", "a-2", "b-1", "b-2"], 40)
    X = rng.normal(0, 1, (160, 12)) + np.eye(8, 12)[y] * 3.0
    Xs = {0.0: X, 0.25: X + rng.normal(0, 0.1, X.shape)}
    ma.save_cache(tmp_path / "c.npz", Xs, y, groups, "envelope")
    rep = tmp_path / "r.json"
    assert ma.main(["--from-cache", str(tmp_path / "c.npz"), "--screen", ";0.25",
                    "--fit", '{"method": "ridge", "alpha": 1}', "--report", str(rep)]) == 0
    r = json.loads(rep.read_text())
    assert [s["shifts"] for s in r["screen"]] == [[], [0.25]]
    for s in r["screen"]:
        assert s["leave_one_group_out"]["n"] == 160
        assert s["leave_one_group_out"]["accuracy"] > 0.9
        assert set(s["per_group_accuracy"]) == {"a-1", "a-2", "b-1", "b-2"}
        assert s["cross_participant"]["n"] == 160
    # a cache without a requested copy is an error, not a silent plain fit
    assert ma.main(["--from-cache", str(tmp_path / "c.npz"), "--screen", "0.5",
                    "--fit", '{"method": "ridge", "alpha": 1}']) == 2


def test_shipped_model_records_its_augmentation():
    from spikeedge import load_model
    prog = load_model(str(MODEL))
    tr = prog.report["metadata"]["training"]
    aug = tr["augment"]
    assert aug["stage"] in ma.STAGES
    assert sorted(aug["channel_rotation"]) == sorted(ma.DEFAULT_SHIFTS)
    assert tr["fit"] == ma.DEFAULT_FIT


@pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is absent (real Myo recordings)")
def test_rotated_copies_score_the_same_windows_on_a_real_recording():
    from spikeedge import quantize
    from spikeedge.apps.tasks import build_network, list_recordings
    from spikeedge.tools.train_apps import CONFIG, metadata
    cfg = CONFIG[ma.TASK]
    prog = quantize(build_network(ma.TASK, 0, **cfg["net"]))
    recs = list_recordings(ma.TASK, DATA)[:1]
    Xs, y, groups, cost = ma.collect(prog, metadata(ma.TASK, cfg), recs, [0.25, -1.0])
    assert set(Xs) == {0.0, 0.25, -1.0}
    assert len(y) > 100 and (groups == recs[0].group).all()
    assert all(X.shape == Xs[0.0].shape for X in Xs.values())
    assert not np.array_equal(Xs[0.25], Xs[0.0])
    assert cost["decisions"] >= len(y) and cost["events"] > 0


def test_nested_choice_and_diagnosis_on_a_cache(tmp_path):
    rng = np.random.default_rng(4)
    y = np.tile(np.arange(8), 20)
    groups = np.repeat(["a-1", "a-2", "b-1", "b-2"], 40)
    X = rng.normal(0, 1, (160, 12)) + np.eye(8, 12)[y] * 3.0
    Xs = {0.0: X, 0.25: np.roll(X, 1, axis=1), -0.25: X + 0.05}
    ma.save_cache(tmp_path / "c.npz", Xs, y, groups, "envelope")
    rep = tmp_path / "n.json"
    cands = [{"shifts": [], "fit": {"method": "ridge", "alpha": 1}},
             {"shifts": [0.25], "fit": {"method": "ridge", "alpha": 1}}]
    assert ma.main(["--from-cache", str(tmp_path / "c.npz"), "--nested", json.dumps(cands),
                    "--report", str(rep)]) == 0
    r = json.loads(rep.read_text())["nested"]
    assert set(r["chosen"]) == {"a-1", "a-2", "b-1", "b-2"}
    for c in r["chosen"].values():
        assert c["candidate"] in (0, 1) and len(c["inner_accuracy"]) == 2
        # the copy that moves every feature is a worse training set than none
        assert c["candidate"] == 0
    assert r["leave_one_group_out"]["n"] == 160
    assert ma.main(["--from-cache", str(tmp_path / "c.npz"), "--diagnose",
                    "--fit", '{"method": "ridge", "alpha": 1}', "--report", str(rep)]) == 0
    d = json.loads(rep.read_text())["diagnose"]
    assert set(d) == {"a-1", "a-2", "b-1", "b-2"}
    for accs in d.values():
        assert set(accs) == {"-0.25", "0.0", "0.25"}
        assert accs["0.0"] > 0.75 and accs["0.25"] < accs["0.0"] - 0.3
