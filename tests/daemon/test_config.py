"""Config files and flags: every malformed input is a ConfigError naming key, value and what is
allowed; the command line exits 2 without a traceback."""
from __future__ import annotations

import argparse

import pytest
from daemonutil import cli

from spikeedge.config import (
    SCHEMA,
    SINK_SCHEMA,
    ConfigError,
    add_flags,
    apply_overrides,
    flag_overrides,
    load_config,
    parse_sink_spec,
)

BAD = [
    # (toml text, fragments the message must contain)
    ("[source]\nblock_ms = -3\n", ["block_ms", "-3", "> 0"]),
    ("[source]\nblock_ms = 'ten'\n", ["block_ms", "'ten'", "number"]),
    ("[source]\nblok_ms = 10\n", ["blok_ms", "[source]", "block_ms"]),
    ("[sauce]\nurl = 'x'\n", ["[sauce]", "source"]),
    ("[source]\ndrop_policy = 'random'\n", ["drop_policy", "'random'", "drop-oldest",
                                             "drop-newest"]),
    ("[source]\nrealtime = 'yes'\n", ["realtime", "'yes'", "true or false"]),
    ("[source]\nqueue_blocks = 0\n", ["queue_blocks", "0", "> 0"]),
    ("[source]\nqueue_blocks = 1.5\n", ["queue_blocks", "1.5", "integer"]),
    ("[source]\nurl = ''\n", ["url", "empty"]),
    ("[source]\nmax_reconnects = -2\n", ["max_reconnects", "-2", ">= -1"]),
    ("[source]\nthreaded = true\n", ["threaded", "True", "auto, yes, no"]),
    ("[model]\nbackend = 'gpu'\n", ["backend", "'gpu'", "compiled", "reference"]),
    ("[decision]\npolicy = 'vote'\n", ["policy", "'vote'", "beat", "window"]),
    ("[decision]\nsmoothing = 1.0\n", ["smoothing", "1.0", "[0, 1)"]),
    ("[decision]\nmin_confidence = 2\n", ["min_confidence", "2", "[0, 1]"]),
    ("[decision]\nutterance = 'on'\n", ["utterance", "'on'", "live", "off"]),
    ("[decision]\nutterance_gap_ms = -1\n", ["utterance_gap_ms", "-1", ">= 0"]),
    ("[decision]\nutterance_min_dbfs = 3\n", ["utterance_min_dbfs", "3", "< 0"]),
    ("[decision]\nutterance_threshold_db = 'loud'\n", ["utterance_threshold_db", "'loud'"]),
    ("[learning]\nenabled = 1\n", ["enabled", "1", "true or false"]),
    ("[learning]\ncheckpoint_interval_s = 0\n", ["checkpoint_interval_s", "> 0"]),
    ("[health]\ninterval_s = nan\n", ["interval_s", "nan", "finite"]),
    ("[log]\nlevel = 'LOUD'\n", ["level", "'LOUD'", "DEBUG", "ERROR"]),
    ("source = 3\n", ["[source]", "table"]),
    ("[[sinks]]\ntype = 'kafka'\n", ["type", "'kafka'", "stdout", "mqtt"]),
    ("[[sinks]]\nport = 3\n", ["type", "None"]),
    ("[[sinks]]\ntype = 'file'\n", ["missing required key", "path"]),
    ("[[sinks]]\ntype = 'tcp'\nport = 70000\n", ["port", "70000", "0..65535"]),
    ("[[sinks]]\ntype = 'tcp'\nprot = 7\n", ["prot", "allowed", "port"]),
    ("[[sinks]]\ntype = 'mqtt'\nqos = 3\n", ["qos", "3", "0, 1 or 2"]),
    ("[[sinks]]\ntype = 'stdout'\nrecords = 'some'\n", ["records", "'some'", "decisions"]),
    ("[[sinks]]\ntype = 'unix'\npath = '/tmp/a.sock'\n[[sinks]]\ntype = 'unix'\n"
     "path = '/tmp/a.sock'\n", ["same address", "/tmp/a.sock"]),
    ("sinks = 'stdout'\n", ["sinks", "array of tables"]),
    ("[source\nurl = 1\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("text,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_malformed_config_is_refused_with_key_value_and_allowed(tmp_path, text, fragments):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_missing_file_and_defaults(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    cfg = load_config(None)
    assert cfg["source"]["block_ms"] == 10.0 and cfg["sinks"] == [
        {"type": "stdout", "records": "all"}]


def test_shipped_example_configs_are_valid():
    from importlib import resources
    data = resources.files("spikeedge") / "data"
    names = [p.name for p in data.iterdir() if p.name.endswith(".toml")]
    assert {"ecg.toml", "demo.toml"} <= set(names)
    for n in names:
        cfg = load_config(str(data / n))
        assert cfg["model"]["path"].startswith("builtin:")


def _parse(argv):
    ap = argparse.ArgumentParser()
    add_flags(ap)
    return flag_overrides(ap.parse_args(argv))


def test_every_key_is_a_flag_and_flags_override():
    ap = argparse.ArgumentParser()
    add_flags(ap)
    opts = {o for a in ap._actions for o in a.option_strings}
    for sec, keys in SCHEMA.items():
        for k in keys:
            assert f"--{sec}-{k}".replace("_", "-") in opts
    cfg = apply_overrides(load_config(None), _parse(
        ["--source-block-ms", "20", "--source-realtime", "yes", "--log-level", "debug",
         "--learning-checkpoint", "/tmp/x.ckpt", "--sink", "tcp:7701", "--sink", "stdout"]))
    assert cfg["source"]["block_ms"] == 20.0 and cfg["source"]["realtime"] is True
    assert cfg["log"]["level"] == "DEBUG"
    assert [s["type"] for s in cfg["sinks"]] == ["tcp", "stdout"]
    assert cfg["sinks"][0]["host"] == "127.0.0.1" and cfg["sinks"][0]["port"] == 7701


@pytest.mark.parametrize("argv,fragments", [
    (["--source-block-ms", "0"], ["--source-block-ms", "'0'", "> 0"]),
    (["--source-realtime", "maybe"], ["--source-realtime", "true or false"]),
    (["--source-drop-policy", "x"], ["drop-oldest"]),
    (["--sink", "kafka:x"], ["unknown sink", "mqtt://"]),
    (["--sink", "tcp:host:notaport"], ["port", "'notaport'", "integer"]),
    (["--sink", "mqtt://"], ["no broker host"]),
    (["--sink", "file:/tmp/x?max_bytes=-1"], ["max_bytes", ">= 0"]),
])
def test_bad_flags(argv, fragments):
    with pytest.raises(ConfigError) as e:
        apply_overrides(load_config(None), _parse(argv))
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_sink_specs():
    m = parse_sink_spec("mqtt://u%40x:p@broker:8883/fleet/b1?qos=2&tls=1")
    assert (m["host"], m["port"], m["topic"], m["qos"], m["tls"]) == \
        ("broker", 8883, "fleet/b1", 2, True)
    assert (m["username"], m["password"]) == ("u@x", "p")
    f = parse_sink_spec("file:/var/log/r.jsonl?max_bytes=100&backups=2")
    assert f["path"] == "/var/log/r.jsonl" and f["max_bytes"] == 100 and f["backups"] == 2
    assert parse_sink_spec("unix:/run/s.sock")["path"] == "/run/s.sock"
    t = parse_sink_spec("tcp:0.0.0.0:9000")
    assert (t["host"], t["port"]) == ("0.0.0.0", 9000)
    assert set(SINK_SCHEMA) == {"stdout", "file", "tcp", "unix", "mqtt"}


def test_cli_config_error_exits_2_without_traceback(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[source]\nblock_ms = -1\n")
    r = cli("run", "--config", str(p))
    assert r.returncode == 2
    assert "block_ms = -1" in r.stderr and "Traceback" not in r.stderr
    p.write_text("[source]\nblock_ms = 1\n")
    r = cli("run", "--config", str(p), "--source-block-ms", "5", "--check")
    assert r.returncode == 0, r.stderr
    r = cli("run", "--config", str(p), "--source-block-ms", "-5", "--check")
    assert r.returncode == 2 and "--source-block-ms" in r.stderr
    r = cli("run", "--model-path", "builtin:nope", "--source-url", "fake:ecg?duration=1")
    assert r.returncode == 2 and "builtin:ecg-demo" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", "--source-url", "nosuch:thing")
    assert r.returncode == 2 and "unknown scheme" in r.stderr and "Traceback" not in r.stderr


def test_docs_list_every_config_key():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "daemon.md").read_text()
    for sec, keys in SCHEMA.items():
        assert f"`[{sec}]`" in doc, sec
        for k in keys:
            assert f"| `{k}` |" in doc, (sec, k)
    for t, keys in SINK_SCHEMA.items():
        for k in keys:
            assert f"| `{k}` |" in doc, (t, k)
