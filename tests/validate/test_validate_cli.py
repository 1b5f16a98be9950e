"""``spikeedge validate`` on the command line: JSON, table, report, exit status."""
import json

import numpy as np
import pytest

from spikeedge import quantize, save_model
from spikeedge.cli import main
from spikeedge.nets import standard

pytestmark = pytest.mark.brian2


def test_validate_kws_json_passes(capsys):
    assert main(["validate", "--net", "kws", "--duration", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] and doc["integer_twin"]["exact"]
    assert doc["float_twin"]["gamma_min"] >= 0.95
    assert doc["float_twin"]["rate_error_max"] <= 0.02
    assert {c["name"] for c in doc["checks"]} >= {"integer twin exact"}
    assert doc["steps"] == 1000 and doc["wall_s"]["total"] > 0


def test_exceeded_tolerance_exits_1_and_says_which(capsys):
    assert main(["validate", "--net", "kws", "--duration", "0.3", "--gamma-min", "1.5"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] float twin gamma" in out and out.rstrip().endswith("FAILED")


def test_model_file_with_report(tmp_path, capsys):
    net, _, _ = standard("shd", 0.2)
    path = tmp_path / "shd.npz"
    save_model(path, quantize(net))
    inp = (np.random.default_rng(0).random((200, 700)) < 0.01).astype(np.uint8)
    np.save(tmp_path / "inp.npy", inp)
    rep = tmp_path / "report"
    code = main(["validate", "--model", str(path), "--input", str(tmp_path / "inp.npy"),
                 "--report", str(rep)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "divergence" in out                      # shd is recurrent
    names = {p.name for p in rep.iterdir()}
    assert {"index.html", "raster.png", "membrane.png", "spike_time_diff.png"} <= names
    html = (rep / "index.html").read_text()
    assert "raster.png" in html and "PASSED" in html


def test_stdp_report_has_weight_figures(tmp_path, capsys):
    rep = tmp_path / "r"
    main(["validate", "--net", "stdp", "--duration", "0.5", "--skip-float", "--report",
          str(rep), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["stdp"]["window"]["sign_ok"]
    names = {p.name for p in rep.iterdir()}
    assert {"stdp_weight_error.png", "stdp_window.png", "stdp_dt.png"} <= names


def test_bad_input_file_is_a_clean_error(tmp_path, capsys):
    net, _, _ = standard("kws", 0.1)
    path = tmp_path / "kws.npz"
    save_model(path, quantize(net))
    np.save(tmp_path / "bad.npy", np.zeros((10, 3), np.uint8))
    code = main(["validate", "--model", str(path), "--input", str(tmp_path / "bad.npy")])
    assert code == 2
    assert "input must have shape" in capsys.readouterr().err
