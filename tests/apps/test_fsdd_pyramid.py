"""The temporal-pyramid option of the ``utterance`` policy (``decision.segments`` a list of
part counts, e.g. ``[1, 2, 4]``): its features, its checks, and that a plain integer keeps the
features of before."""
import copy

import numpy as np
import pytest

from spikeedge.apps.stream import (
    AppModelError,
    AppReadout,
    LiveUtteranceFeaturizer,
    UtteranceFeaturizer,
    utterance_features,
    utterance_segments,
)
from spikeedge.daemon import load_program


@pytest.fixture(scope="module")
def prog():
    p, _, _ = load_program("builtin:fsdd-digits")
    return p


def with_segments(prog, segments, drop_weights=True):
    p = copy.deepcopy(prog)
    p.report["metadata"]["decision"] = {"policy": "utterance", "segments": segments}
    if drop_weights:
        p.extras.pop("readout_w", None)
        p.extras.pop("readout_b", None)
    return p


def raster(steps=300, n=1024, seed=0):
    rng = np.random.default_rng(seed)
    s = (rng.random((steps, n)) < 0.02).astype(np.uint8)
    s[:17] = 0                    # silence before the first and after the last spike
    s[-5:] = 0
    return s


def by_hand(s, k, transform=np.sqrt):
    """The definition: first to last spike, k equal parts (rounded edges), rate per part."""
    act = np.flatnonzero(s.any(1))
    s = s[act[0]:act[-1] + 1]
    e = np.linspace(0, len(s), k + 1).round().astype(int)
    return transform(np.concatenate([s[e[i]:e[i + 1]].sum(0) / (e[i + 1] - e[i])
                                     for i in range(k)]))


def test_segments_parsing():
    assert utterance_segments({"segments": 4}) == (4,)
    assert utterance_segments({}) == (1,)
    assert utterance_segments({"segments": [1, 2, 4]}) == (1, 2, 4)
    assert utterance_segments({"segments": (3,)}) == (3,)


@pytest.mark.parametrize("bad", [0, 65, -1, 2.5, 4.0, "4", True, None, [], [1, 0], [1, "2"],
                                 [1, 2.0], [True], list(range(1, 10)), {"k": 4}])
def test_malformed_segments_are_model_errors(prog, bad):
    with pytest.raises(AppModelError, match="decision.segments"):
        utterance_segments({"segments": bad})
    with pytest.raises(AppModelError, match="decision.segments"):
        AppReadout.from_program(with_segments(prog, bad), need_weights=False)


def test_pyramid_features_are_the_levels_concatenated(prog):
    r = AppReadout.from_program(with_segments(prog, [1, 2, 4]), need_weights=False)
    assert r.n_features(1000.0) == 7 * 1024
    s = raster()
    f = utterance_features(r, s, (1, 2, 4))
    assert f.shape == (7 * 1024,)
    np.testing.assert_array_equal(f, np.concatenate([by_hand(s, 1), by_hand(s, 2),
                                                     by_hand(s, 4)]))
    # the same as one level at a time, also for short utterances (empty parts)
    for steps in (1, 2, 3, 7, 40):
        short = raster(steps + 22, seed=steps)
        short[17:17 + steps] = 0
        short[17, :3] = 1
        short[17 + steps - 1, 5] = 1
        for k in ((1, 2, 4), (8, 3), (64,)):
            np.testing.assert_array_equal(
                utterance_features(r, short, k),
                np.concatenate([utterance_features(r, short, j) for j in k]))
    empty = np.zeros((50, 1024), np.uint8)
    np.testing.assert_array_equal(utterance_features(r, empty, (1, 2)), np.zeros(3 * 1024))
    # 2 and 4 parts of an utterance: the 4-part rates average to the 2-part ones
    halves = f[1024:3 * 1024].reshape(2, 1024) ** 2
    quarters = f[3 * 1024:].reshape(4, 1024) ** 2
    act = np.flatnonzero(s.any(1))
    n = act[-1] + 1 - act[0]
    e = np.linspace(0, n, 5).round().astype(int)
    w = np.diff(e).astype(float)
    np.testing.assert_allclose(halves[0], (quarters[0] * w[0] + quarters[1] * w[1])
                               / (w[0] + w[1]))


def test_integer_segments_keep_the_features_of_before(prog):
    r = AppReadout.from_program(prog)          # the shipped model
    s = raster(seed=3)
    k = utterance_segments(r.decision)
    f = utterance_features(r, s, k if len(k) > 1 else k[0])
    np.testing.assert_allclose(f, np.concatenate([by_hand(s, j) for j in k]))
    r4 = AppReadout.from_program(with_segments(prog, 4), need_weights=False)
    np.testing.assert_array_equal(utterance_features(r4, s, 4), by_hand(s, 4))
    assert UtteranceFeaturizer(r4, 8000.0, 1000.0).k == 4


@pytest.mark.parametrize("make", [
    lambda r: UtteranceFeaturizer(r, 8000.0, 1000.0),
    lambda r: LiveUtteranceFeaturizer(r, 8000.0, 1000.0, {"gap_s": 0.1}),
])
def test_featurizers_give_pyramid_features(prog, make):
    r = AppReadout.from_program(with_segments(prog, [1, 3]), need_weights=False)
    f = make(r)
    s = raster(400, seed=5)
    x = np.zeros(400 * 8)
    x[17 * 8:395 * 8] = 0.2 * np.sin(np.arange(378 * 8) * 0.3)     # voiced where it spikes
    out = []
    for a in range(0, 400, 50):
        out += f.feed(x[a * 8:(a + 50) * 8], s[a:a + 50])
    out += f.feed(np.zeros(8000), np.zeros((1000, 1024), np.uint8)) + f.flush()
    assert len(out) == 1
    assert out[0]["features"].shape == (4 * 1024,)
    # the voiced span is the spiking span, so both featurizers cut the same utterance
    np.testing.assert_allclose(out[0]["features"], np.concatenate([by_hand(s, 1),
                                                                   by_hand(s, 3)]))
