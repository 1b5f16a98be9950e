"""The trainer's command line: malformed arguments end in a usage error (exit 2) that names the
problem, before any recording is read."""
import pytest

from spikeedge.tools import train_apps


@pytest.mark.parametrize("spec, message", [
    ("net.relay", "expected SECTION.KEY=JSON"),
    ("netrelay=1", "expected SECTION.KEY=JSON"),
    ("net.=1", "expected SECTION.KEY=JSON"),
    ("nosuch.x=1", "unknown section 'nosuch'"),
    ("net.relay=banana", "the value is not JSON"),
    ("fit.l2=0.1x", "the value is not JSON"),
    ("net.relay=3", "net option relay must be true or false"),
])
def test_malformed_set_is_a_usage_error(tmp_path, capsys, spec, message):
    with pytest.raises(SystemExit) as e:
        train_apps.main(["myo-gestures", "--data", str(tmp_path), "--no-save", "--no-cv",
                         "--set", spec])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_folder_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_apps.main(["myo-gestures", "--data", str(tmp_path / "absent"), "--no-save"])
    assert e.value.code == 2
    assert "--data:" in capsys.readouterr().err


def test_override_reaches_the_config():
    import argparse
    cfg = {"fit": {"l2": 1.0}, "task": "x"}
    train_apps.apply_override(argparse.ArgumentParser(), cfg, 'fit.l2=0.25')
    train_apps.apply_override(argparse.ArgumentParser(), cfg, 'fit.name="a=b"')
    assert cfg["fit"] == {"l2": 0.25, "name": "a=b"}


@pytest.mark.parametrize("task, tool", sorted(train_apps.RECIPES.items()))
def test_plain_recipe_never_overwrites_an_augmented_shipped_model(tmp_path, capsys, task, tool):
    with pytest.raises(SystemExit) as e:
        train_apps.main([task, "--data", str(tmp_path)])
    assert e.value.code == 2
    assert tool in capsys.readouterr().err
