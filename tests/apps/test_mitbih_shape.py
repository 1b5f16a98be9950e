"""The beat-shape and rhythm-irregularity features of the mitbih-beats readout
(``decision.shape``, ``decision.rr_irregularity``): loader checks, streaming = batch, causality,
and what the features measure on synthetic beats."""
import numpy as np
import pytest

from spikeedge import INPUT, Network, Population, Projection, quantize
from spikeedge.apps.beatshape import PARTS, SHAPE_FEATURES, BeatShape, shape_options
from spikeedge.apps.stream import RR_IRR_FEATURES, AppModelError, AppReadout, make_featurizer

RATE = 360.0


def _prog():
    return quantize(Network(n_inputs=2, dt=1 / RATE, populations=[Population("a", 3)],
                            projections=[Projection(INPUT, "a", np.ones((2, 3)))]))


def _meta(**dec):
    d = {"policy": "beat", "pre_s": 0.25, "post_s": 0.45, "bin_s": 0.1, "rr": True,
         "rr_set": "log-ratio", **dec}
    return {"task": "t", "labels": ["x", "y"], "encoder": {"preset": "ecg-delta"},
            "readout": {"population": "a"}, "decision": d}


@pytest.mark.parametrize("dec, word", [
    ({"shape": "yes"}, "shape"),
    ({"shape": 3}, "shape"),
    ({"shape": {"window": 0}}, "window"),
    ({"shape": {"window": 2.5}}, "window"),
    ({"shape": {"window": True}}, "window"),
    ({"shape": {"floor_mv": -1}}, "floor_mv"),
    ({"shape": {"floor_mv": float("nan")}}, "floor_mv"),
    ({"shape": {"floor_mv": "0.1"}}, "floor_mv"),
    ({"shape": {"parts": []}}, "parts"),
    ({"shape": {"parts": ["morph", "morph"]}}, "parts"),
    ({"shape": {"parts": ["morph", None]}}, "parts"),
    ({"shape": {"parts": ["qrs"]}}, "parts"),
    ({"shape": {"parts": "width"}}, "parts"),
    ({"shape": {"bogus": 1}}, "bogus"),
    ({"shape": True, "post_s": 0.3}, "post_s"),
    ({"rr_irregularity": "yes"}, "rr_irregularity"),
    ({"rr_irregularity": True, "rr_set": "seconds"}, "rr_irregularity"),
    ({"rr_irregularity": True, "rr": False}, "rr_irregularity"),
])
def test_malformed_shape_options_are_clear_errors(dec, word):
    prog = _prog()
    prog.report["metadata"] = _meta(**dec)
    with pytest.raises(AppModelError, match=word):
        AppReadout.from_program(prog, need_weights=False)


def test_feature_count_follows_the_options_and_weights_must_fit():
    prog = _prog()
    base = 7 * 3 + 8                # 7 bins x 3 neurons + 8 RR features
    for dec, extra in [({}, 0), ({"shape": True}, len(SHAPE_FEATURES)),
                       ({"shape": {"parts": ["template", "width"]}},
                        len(PARTS["template"]) + len(PARTS["width"])),
                       ({"rr_irregularity": True}, len(RR_IRR_FEATURES)),
                       ({"rr_irregularity": True, "shape": {"parts": ["width"]}},
                        len(RR_IRR_FEATURES) + len(PARTS["width"]))]:
        prog.report["metadata"] = _meta(**dec)
        r = AppReadout.from_program(prog, need_weights=False)
        assert r.n_features(RATE) == base + extra
        prog.extras["readout_w"] = np.zeros((2, base + extra - 1), np.float32)
        prog.extras["readout_b"] = np.zeros(2, np.float32)
        with pytest.raises(AppModelError, match="do not fit"):
            AppReadout.from_program(prog)
        prog.extras["readout_w"] = np.zeros((2, base + extra), np.float32)
        assert AppReadout.from_program(prog).w.shape == (2, base + extra)
        del prog.extras["readout_w"], prog.extras["readout_b"]


def _beat(kind: str, n: int) -> np.ndarray:
    """One synthetic beat (mV) of ``n`` samples with its R peak at n // 2."""
    t = (np.arange(n) - n // 2) / RATE
    p = 0.15 * np.exp(-((t + 0.18) / 0.025) ** 2)
    if kind == "normal":
        qrs = 1.2 * np.exp(-(t / 0.012) ** 2)
        tw = 0.3 * np.exp(-((t - 0.25) / 0.05) ** 2)
        return p + qrs + tw
    # ventricular: no P wave, wide, inverted, discordant T
    return -1.0 * np.exp(-(t / 0.045) ** 2) + 0.4 * np.exp(-((t - 0.3) / 0.06) ** 2)


def _ecg(kinds, rr_s=0.8):
    n = int(rr_s * RATE)
    x = np.concatenate([_beat(k, n) for k in kinds])
    peaks = np.arange(len(kinds)) * n + n // 2
    return x, peaks


def test_streaming_shape_features_equal_batch_and_are_causal():
    kinds = ["normal"] * 12 + ["ventricular"] + ["normal"] * 5
    x, peaks = _ecg(kinds)
    rng = np.random.default_rng(0)
    x = x + rng.normal(0, 0.02, len(x))
    post = BeatShape(RATE).post
    # streaming in odd blocks, each beat asked for as soon as its segment is complete
    s, out, k = BeatShape(RATE), [], 0
    for a in range(0, len(x), 37):
        s.feed(x[a:a + 37])
        while k < len(peaks) and peaks[k] + post < s.n:
            if s.available(int(peaks[k])):
                out.append(s.features(int(peaks[k])))
            k += 1
    ref = BeatShape(RATE, history_s=60)       # the whole signal at once
    ref.feed(x)
    want = [ref.features(int(p)) for p in peaks if ref.available(int(p))]
    assert len(out) == len(want) >= 15
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-9)
    # a different future changes nothing up to the beat being decided
    y = x.copy()
    y[peaks[8] + post + 1:] += 5.0
    alt = BeatShape(RATE, history_s=60)
    alt.feed(y)
    got = [alt.features(int(p)) for p in peaks[:9] if alt.available(int(p))]
    np.testing.assert_allclose(got, want[:len(got)], rtol=0, atol=1e-9)


def test_template_and_width_single_out_a_ventricular_beat():
    kinds = ["normal"] * 20 + ["ventricular"] + ["normal"] * 3
    x, peaks = _ecg(kinds)
    s = BeatShape(RATE, history_s=60)
    s.feed(x)
    ok = [i for i, p in enumerate(peaks) if s.available(int(p))]
    assert ok == list(range(len(peaks) - 1))       # the last beat's T wave is not in yet
    f = np.array([s.features(int(peaks[i])) for i in ok])
    name = list(SHAPE_FEATURES)
    corr, width, ratio = (f[:, name.index(k)] for k in ("corr", "qrs width",
                                                         "log width ratio"))
    pcorr = f[:, name.index("p corr")]
    v = kinds.index("ventricular")
    assert np.all(corr[3:v] > 0.99) and corr[v] < 0.5
    assert np.all(np.abs(ratio[3:v]) < 0.05) and ratio[v] > 0.5
    assert width[v] > 1.5 * np.median(width[:v])
    assert np.median(pcorr[3:v]) > 0.9 and pcorr[v] < 0.5
    morph = f[:, :len(PARTS["morph"])]
    assert np.abs(morph[3:v]).max() < 0.5 and np.abs(morph[v]).max() > 5
    # the ventricular beat did not become the template: the next normal beats look normal
    assert np.all(corr[v + 1:] > 0.99)


def test_shape_options_defaults_and_parts_select_columns():
    o = shape_options(True, 0.45)
    assert o["window"] == 64 and o["parts"] == ["morph", "template", "pwave", "width"]
    x, peaks = _ecg(["normal"] * 6)
    full, part = BeatShape(RATE), BeatShape(RATE, parts=["width", "template"])
    full.feed(x)
    part.feed(x)
    names = list(SHAPE_FEATURES)
    cols = [names.index(k) for k in PARTS["template"] + PARTS["width"]]
    for p in peaks[1:-1]:
        a, b = full.features(int(p)), part.features(int(p))
        assert b.shape == (part.n_features,) == (len(cols),)
        np.testing.assert_array_equal(a[cols], b)


def _readout(**dec):
    prog = _prog()
    prog.report["metadata"] = _meta(**dec)
    return AppReadout.from_program(prog, need_weights=False)


def _run_featurizer(r, x):
    f = make_featurizer(r, RATE, RATE)
    out = []
    for a in range(0, len(x), 36):
        blk = x[a:a + 36]
        out += f.feed(blk, np.zeros((len(blk), 3), np.uint8))
    return out + f.flush()


def test_irregularity_is_zero_in_regular_rhythm_and_high_in_irregular():
    rng = np.random.default_rng(3)
    n_beats = 60
    regular = np.full(n_beats, 0.8)
    irregular = rng.uniform(0.45, 1.2, n_beats)
    r = _readout(rr_irregularity=True)
    vals = {}
    for name, rrs in (("regular", regular), ("irregular", irregular)):
        x = np.concatenate([_beat("normal", int(rr * RATE)) for rr in rrs])
        out = _run_featurizer(r, x)
        assert len(out) > 40
        F = np.array([d["features"] for d in out[15:]])
        irr = F[:, 21 + 8]
        vals[name] = float(np.median(irr))
        if name == "regular":
            # regular rhythm: the weighted ratios equal the plain ones
            np.testing.assert_allclose(F[:, 21 + 9:21 + 15], F[:, 21:27], atol=0.02)
    assert vals["regular"] < 0.02 and vals["irregular"] > 0.1


def test_beat_featurizer_with_shape_concatenates_counts_rr_irregularity_shape():
    r = _readout(rr_irregularity=True, shape={"parts": ["template", "width"]})
    x = np.concatenate([_beat("normal", int(0.8 * RATE)) for _ in range(20)])
    out = _run_featurizer(r, x)
    assert len(out) >= 15
    for d in out:
        assert d["features"].shape == (r.n_features(RATE),)
        assert np.all(np.isfinite(d["features"]))
    corr = np.array([d["features"][21 + 15] for d in out[3:-2]])
    assert np.all(corr > 0.99)
