"""The myo-gestures network with sign inputs (``net.sign``, encoder ``emg-lif-sign``): after
quantization the relay neurons repeat every input one step later and each coincidence neuron
fires exactly when its two sign inputs spiked in the same step, so the readout's counts are the
co-occurrence counts the model card describes; and its options are checked."""
import numpy as np
import pytest

from spikeedge import quantize
from spikeedge.apps.tasks import DataError, build_network
from spikeedge.engine import Engine


def _net(**kw):
    return build_network("myo-gestures", 0, n_in=8, n_hid=256, relay=True, sign=True, **kw)


def _spikes(net, x):
    s, _, _ = Engine(quantize(net)).run(x)
    edges = np.cumsum([0] + [p.n for p in net.populations])
    return {p.name: s[:, a:b] for p, a, b in zip(net.populations, edges[:-1], edges[1:],
                                                       strict=True)}


def test_relay_and_coincidence_neurons_count_exactly():
    net = _net()
    assert [(p.name, p.n) for p in net.populations] == [("hid", 256), ("relay", 24),
                                                        ("pair", 112)]
    rng = np.random.default_rng(0)
    T = 3000
    x = np.zeros((T, 24), np.uint8)
    x[:, :8] = rng.random((T, 8)) < 0.2
    on = rng.random((T, 8)) < 0.3
    x[:, 8:16] = on
    x[:, 16:] = ~on & (rng.random((T, 8)) < 0.3)      # an electrode is ON or OFF, not both
    out = _spikes(net, x)
    np.testing.assert_array_equal(out["relay"][1:], x[:-1])
    sign = x[:, 8:].astype(bool)
    pairs = [(a, b) for a in range(16) for b in range(a + 1, 16) if a % 8 != b % 8]
    want = np.stack([sign[:, a] & sign[:, b] for a, b in pairs], axis=1)
    np.testing.assert_array_equal(out["pair"][1:], want[:-1])
    assert out["pair"].sum() > 1000 and out["pair"][0].sum() == 0


def test_sign_inputs_do_not_reach_the_reservoir():
    """The reservoir is the one without sign inputs: the same weights from the rate inputs,
    none from the sign inputs, so the reservoir's spikes ignore them."""
    plain = build_network("myo-gestures", 0, n_in=8, n_hid=256, relay=True)
    signed = _net()
    w0 = plain.projections[0].dense_weights(8, 256)
    w1 = signed.projections[0].dense_weights(24, 256)
    np.testing.assert_array_equal(w1[:8], w0)
    assert not w1[8:].any()
    rng = np.random.default_rng(1)
    x = np.zeros((500, 24), np.uint8)
    x[:, :8] = rng.random((500, 8)) < 0.3
    y = x.copy()
    y[:, 8:] = rng.random((500, 16)) < 0.5
    np.testing.assert_array_equal(_spikes(signed, x)["hid"], _spikes(signed, y)["hid"])


def test_sign_projections_are_sparse():
    """One synaptic event per real synapse: a sign spike reaches its relay neuron and the 14
    coincidence neurons it belongs to, not all 112."""
    net = _net()
    by_target = {p.target: p for p in net.projections}
    for name in ("relay", "pair"):
        assert by_target[name].sparse
    counts = np.diff(by_target["pair"].indptr)
    assert (counts[:8] == 0).all() and (counts[8:] == 14).all()


@pytest.mark.parametrize("bad", [1, "true", None, [True]])
def test_malformed_sign_option_is_a_data_error(bad):
    with pytest.raises(DataError, match="sign must be true or false"):
        build_network("myo-gestures", 0, n_in=8, sign=bad)


def test_synaptic_events_count_each_sparse_projection_with_its_own_row_lengths():
    """Three CSR projections from the inputs (reservoir, relay, coincidence): the events a run
    reports are the spikes times each projection's own row lengths, counted from the Network
    here. (Eval used to read the row pointers at the index offset, which is only right for a
    program's first CSR projection.)"""
    from spikeedge.apps.stream import synaptic_events
    net = _net()
    prog = quantize(net)
    rng = np.random.default_rng(2)
    counts_in = rng.integers(0, 50, 24)
    counts_n = rng.integers(0, 5, sum(p.n for p in net.populations))
    want = 0
    for p in net.projections:
        assert p.source == "input"
        fan = np.diff(p.indptr) if p.sparse else np.full(24, p.weights.shape[1])
        want += int(counts_in @ fan)
    assert synaptic_events(prog, counts_in, counts_n) == want
    assert want < counts_in.sum() * (256 + 24 + 112) / 4
