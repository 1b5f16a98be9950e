"""Surrogate-gradient training (spikeedge.sgtrain): it learns, its fixed-point forward is the
Engine's bit for bit, and quantization-aware training recovers what plain quantization loses."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the 'train' extra) is not installed")

from spikeedge import Engine, save_model  # noqa: E402
from spikeedge.float_twin import FloatTwin  # noqa: E402
from spikeedge.sgtrain import (  # noqa: E402
    LayerSpec,
    SGNet,
    SGTrainError,
    engine_logits,
    evaluate_engine,
    evaluate_torch,
    fit,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def groups_task(n, seed, n_in=12, T=30, C=3):
    """Class c: inputs 4c..4c+3 spike with probability 0.25 per step, the others 0.03."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    p = np.full((C, n_in), 0.03)
    for c in range(C):
        p[c, 4 * c:4 * c + 4] = 0.25
    return [(rng.random((T, n_in)) < p[c]).astype(np.uint8) for c in y], y


def proto_task(n, seed, n_in=20, T=30, C=4):
    """Class c: each input spikes with its own random probability (fixed prototypes)."""
    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(123).random((C, n_in)) * 0.25
    y = rng.integers(0, C, n)
    return [(rng.random((T, n_in)) < proto[c]).astype(np.uint8) for c in y], y


def quant_spikes(net, x):
    with torch.no_grad():
        out = net.forward(np.asarray(x, float)[None], quant=True, record=True)
    return np.concatenate([s[0].numpy() for s in out["spikes"]], 1).astype(np.uint8), out


def test_synthetic_task_trains_to_high_accuracy_float_and_fixed():
    Xtr, ytr = groups_task(96, 0)
    Xte, yte = groups_task(96, 1)
    net = SGNet(12, [LayerSpec(16)], readout="linear", n_classes=3, seed=0)
    hist = fit(net, Xtr, ytr, epochs=6, lr=1e-2, batch_size=16, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    acc_float = evaluate_torch(net, Xte, yte)["accuracy"]
    acc_fixed = evaluate_engine(net, net.to_program(), Xte, yte)["accuracy"]
    assert acc_float >= 0.9, acc_float
    assert acc_fixed >= 0.9, acc_fixed


@pytest.mark.parametrize("layers,bits", [
    ([LayerSpec(20, recurrent=True), LayerSpec(5)], 16),
    ([LayerSpec(20, density=0.4, reset="subtract", t_ref=3e-3), LayerSpec(5, recurrent=True,
                                                                         rec_density=0.5)], 16),
    ([LayerSpec(20, bias=True, tau_s=3e-3), LayerSpec(8, tau_m=10e-3, t_ref=2e-3)], 5),
])
def test_engine_matches_the_quantized_torch_forward_spike_for_spike(layers, bits):
    net = SGNet(12, layers, readout="counts", weight_bits=bits, seed=3, gain=4.0)
    if net.bias[0] is not None:
        with torch.no_grad():
            net.bias[0].copy_(torch.linspace(-0.5, 0.8, net.bias[0].numel()))
    prog = net.to_program()
    eng = Engine(prog)
    X, _ = groups_task(6, 7, T=80)
    total = np.zeros(len(layers), np.int64)
    for x in X:
        ts, _ = quant_spikes(net, x)
        es, _, _ = eng.run_chunk(x, eng.initial_state())
        np.testing.assert_array_equal(ts, es)
        for i, s in enumerate(net.layers):
            total[i] += es[:, prog.pop_slice(s.name)].sum()
    assert np.all(total > 0), total          # every layer was active: the match means something
    if any(s.density < 1 for s in net.layers):
        assert any(pr.sparse for pr in prog.network.projections)


def test_membrane_readout_matches_engine_membrane():
    net = SGNet(12, [LayerSpec(16), LayerSpec(3)], readout="membrane", seed=1)
    assert net.layers[-1].v_th > 100       # the readout layer never spikes
    prog = net.to_program()
    x = groups_task(1, 2, T=50)[0][0]
    _, out = quant_spikes(net, x)
    eng = Engine(prog)
    _, _, rec = eng.run_chunk(x, eng.initial_state(), record=True)
    sl = prog.pop_slice(net.layers[-1].name)
    v_engine = rec["v"][:, sl] / prog.scales[-1]
    np.testing.assert_array_equal(out["v_last"][0].numpy(), v_engine)
    np.testing.assert_allclose(out["logits"][0].numpy(), engine_logits(net, prog, x))


def test_float_forward_is_the_float_twin():
    """The float mode integrates exactly like FloatTwin; both sum in float64 but in a different
    order, so a membrane within ~1e-15 of threshold could in principle flip a spike: allow one
    flip in a thousand (none happen on this input)."""
    net = SGNet(12, [LayerSpec(20, recurrent=True, t_ref=2e-3), LayerSpec(5)],
                readout="counts", seed=4, gain=1.5)
    twin = FloatTwin(net.to_network())
    X, _ = groups_task(4, 9, T=80)
    diff = total = 0
    for x in X:
        with torch.no_grad():
            out = net.forward(x[None].astype(float))
        ts = np.concatenate([s[0].numpy() for s in out["spikes"]], 1) > 0
        twin.reset()
        fs, _ = twin.run(x)
        diff += int((ts != fs).sum())
        total += int(fs.sum())
    assert total > 100 and diff <= total / 1000


@pytest.mark.slow
def test_qat_recovers_what_post_training_quantization_loses():
    """3-bit weights: plain quantization of the float-trained network loses accuracy; a few
    epochs of quantization-aware training on the fixed-point forward win it back."""
    Xtr, ytr = proto_task(128, 0)
    Xte, yte = proto_task(128, 1)
    net = SGNet(20, [LayerSpec(24)], readout="linear", n_classes=4, weight_bits=3, seed=1)
    fit(net, Xtr, ytr, epochs=5, lr=1e-2, batch_size=16, progress=False, seed=1)
    acc_float = evaluate_torch(net, Xte, yte)["accuracy"]
    acc_ptq = evaluate_engine(net, net.to_program(), Xte, yte)["accuracy"]
    fit(net, Xtr, ytr, epochs=3, lr=3e-3, batch_size=16, quant=True, progress=False, seed=1)
    prog = net.to_program()
    acc_qat = evaluate_engine(net, prog, Xte, yte)["accuracy"]
    # QAT's own (torch) fixed-point forward is what the Engine ran
    assert evaluate_torch(net, Xte, yte, quant=True)["accuracy"] == acc_qat
    assert prog.report["projections"]["input->l0"]["bits_used"] <= 3
    assert acc_ptq <= acc_float - 0.05, (acc_float, acc_ptq)     # PTQ hurts here
    assert acc_qat >= acc_ptq + 0.05, (acc_ptq, acc_qat)
    assert acc_qat >= acc_float - 0.1, (acc_float, acc_qat)


def test_export_is_an_application_model_the_streaming_featurizer_reads(tmp_path):
    """A 'linear' readout exports as readout_w/readout_b over the utterance featurizer's
    features: spikeedge.apps.stream computes the same scores as the trainer's numpy path."""
    from spikeedge import load_model
    from spikeedge.apps.stream import AppReadout, make_featurizer
    net = SGNet(12, [LayerSpec(16, recurrent=True)], readout="linear", n_classes=3,
                segments=3, transform="sqrt", seed=0, gain=1.5)
    prog = net.to_program()
    w, b = net.readout_arrays()
    meta = {"task": "fsdd-digits", "labels": ["a", "b", "c"],
            "encoder": {"preset": "audio-delta"},
            "readout": {"population": "l0", "feature": "counts", "transform": "sqrt"},
            "decision": {"policy": "utterance", "segments": 3}}
    save_model(tmp_path / "m.npz", prog, metadata=meta, extras={"readout_w": w, "readout_b": b})
    p2 = load_model(tmp_path / "m.npz")
    r = AppReadout.from_program(p2)
    eng = Engine(p2)
    for x in groups_task(5, 4, T=60)[0]:
        spikes, _, _ = eng.run_chunk(x, eng.initial_state())
        f = make_featurizer(r, 8000.0, 1000.0)
        f.feed(None, spikes[:25])
        f.feed(None, spikes[25:])
        d = f.flush()[0]
        _, scores = r.classify(d["features"])
        np.testing.assert_allclose(scores, engine_logits(net, prog, x), rtol=1e-6, atol=1e-6)


def test_bad_options_and_data_are_refused():
    with pytest.raises(SGTrainError, match="readout"):
        SGNet(4, [LayerSpec(3)], readout="softmax")
    with pytest.raises(SGTrainError, match="n_classes"):
        SGNet(4, [LayerSpec(3)], readout="linear")
    with pytest.raises(SGTrainError, match="one neuron per class"):
        SGNet(4, [LayerSpec(1)], readout="counts")
    with pytest.raises(SGTrainError, match="density"):
        SGNet(4, [LayerSpec(3, density=0.0)])
    with pytest.raises(SGTrainError, match="weight_bits"):
        SGNet(4, [LayerSpec(3)], weight_bits=17)
    net = SGNet(4, [LayerSpec(3)])
    with pytest.raises(SGTrainError, match=r"\[steps >= 1, 4\]"):
        fit(net, [np.zeros((5, 3), np.uint8)], [0], progress=False)
    with pytest.raises(SGTrainError, match="labels"):
        fit(net, [np.zeros((5, 4), np.uint8)], [7], progress=False)
    with pytest.raises(SGTrainError, match="as many labels"):
        fit(net, [np.zeros((5, 4), np.uint8)], [0, 1], progress=False)


@pytest.mark.slow
def test_cli_trains_on_a_spike_file_and_reports_float_and_fixed(tmp_path, capsys):
    from spikeedge.cli import main
    X, y = groups_task(60, 0, T=25)
    test = np.zeros(60, bool)
    test[:20] = True
    np.savez(tmp_path / "s.npz", x=np.stack(X), y=y, test=test)
    rc = main(["train-sg", "--spikes", str(tmp_path / "s.npz"), "--hidden", "12", "--dt",
               "1e-3", "--segments", "1", "--epochs", "3", "--qat-epochs", "1", "--lr", "1e-2",
               "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "m.npz"),
               "--report", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "float" in out and "fixed (QAT)" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    res = rep["results"]["holdout"]
    assert res["n_test"] == 20 and {"float", "fixed_ptq", "fixed_qat"} <= set(res)
    assert (tmp_path / "m.npz").exists()
    # bad input: one line, status 2
    rc = main(["train-sg", "--spikes", str(tmp_path / "nope.npz"), "--no-progress"])
    assert rc == 2 and "not a spike file" in capsys.readouterr().err
