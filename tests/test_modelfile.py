import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeedge import Engine, ModelFormatError, load_model, quantize, save_model
from spikeedge.nets import standard


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("kws", "cuba", "stdp"):
        net, inp, _ = standard(name, 0.05)
        prog = quantize(net)
        p = d / f"{name}.npz"
        save_model(p, prog, metadata={"task": name})
        out[name] = (prog, p, inp)
    return out


@pytest.mark.parametrize("name", ["kws", "cuba", "stdp"])
def test_round_trip_is_exact(models, name):
    prog, path, inp = models[name]
    back = load_model(path)
    from spikeedge.program import PROGRAM_ARRAYS
    for k in PROGRAM_ARRAYS:
        a, b = getattr(prog, k), getattr(back, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert back.pop_names == prog.pop_names and back.proj_names == prog.proj_names
    assert np.array_equal(back.scales, prog.scales) and back.dt == prog.dt
    assert back.report["metadata"] == {"task": name}
    # the physical network survives too, so the float twin can be rebuilt from a file
    for pa, pb in zip(prog.network.projections, back.network.projections, strict=True):
        assert np.array_equal(pa.weights, pb.weights)
        assert (pa.stdp is None) == (pb.stdp is None)
    s1, _, _ = Engine(prog).run_chunk(inp)
    s2, _, _ = Engine(back).run_chunk(inp)
    assert np.array_equal(s1, s2)
    # and saving what was loaded gives the same archive members, byte for byte
    p2 = path.with_name(name + "-again.npz")
    save_model(p2, back, metadata={"task": name})
    with zipfile.ZipFile(path) as za, zipfile.ZipFile(p2) as zb:
        assert sorted(za.namelist()) == sorted(zb.namelist())
        for m in za.namelist():
            assert za.read(m) == zb.read(m), m


def test_metadata_and_extras_travel_with_the_model(models, tmp_path):
    prog, _, _ = models["kws"]
    p = tmp_path / "x.npz"
    ro = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_model(p, prog, metadata={"labels": ["a", "b", "c"]}, extras={"readout": ro})
    back = load_model(p)
    assert back.report["metadata"]["labels"] == ["a", "b", "c"]
    assert np.array_equal(back.extras["readout"], ro) and back.extras["readout"].dtype == ro.dtype
    save_model(tmp_path / "y.npz", back)            # defaults: what the program carries
    assert np.array_equal(load_model(tmp_path / "y.npz").extras["readout"], ro)
    with pytest.raises(ModelFormatError, match="numeric"):
        save_model(tmp_path / "z.npz", prog, extras={"bad": np.array(["x"])})


def rewrite(src, dst, edit):
    """Copy a model archive, letting ``edit(members: dict[str, ndarray])`` change it."""
    with np.load(src, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    edit(members)
    with open(dst, "wb") as f:
        np.savez(f, **members)


def header_edit(fn):
    def edit(m):
        h = json.loads(m["__header__"].tobytes())
        fn(h)
        m["__header__"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    return edit


BAD_EDITS = {
    "future version": (header_edit(lambda h: h.update(version=99)), "newer"),
    "wrong format": (header_edit(lambda h: h.update(format="other")), "format"),
    "contract": (header_edit(lambda h: h.update(contract_version=0)), "contract"),
    "bad dt": (header_edit(lambda h: h.update(dt=-1)), "dt"),
    "no header": (lambda m: m.pop("__header__"), "__header__"),
    "bad json": (lambda m: m.update(__header__=np.frombuffer(b"{nope", np.uint8)), "JSON"),
    "missing array": (lambda m: m.pop("prog/theta"), "theta"),
    "wrong dtype": (lambda m: m.update({"prog/weights": m["prog/weights"].astype(np.int32)}),
                    "dtype"),
    "wrong shape": (lambda m: m.update({"prog/theta": m["prog/theta"][:-1]}), "shape"),
    "decay range": (lambda m: m.update({"prog/alpha_m": m["prog/alpha_m"] * 0 + 2**25}),
                    "alpha_m"),
    "weights short": (lambda m: m.update({"prog/weights": m["prog/weights"][:10]}), "past"),
    "bad channel": (lambda m: m["prog/proj"].__setitem__((0, 5), 7), "channel"),
    "bad names": (header_edit(lambda h: h.update(pop_names=[])), "pop_names|names"),
    "bad network": (header_edit(lambda h: h["network"]["populations"][0].pop("tau_m")),
                    "network"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_malformed_model_is_refused_with_reason(models, tmp_path, case):
    edit, msg = BAD_EDITS[case]
    _, path, _ = models["kws"]
    bad = tmp_path / "bad.npz"
    rewrite(path, bad, edit)
    with pytest.raises(ModelFormatError, match=msg) as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def test_truncated_garbage_missing_and_pickled_files(models, tmp_path):
    _, path, _ = models["kws"]
    data = path.read_bytes()
    for n in (0, 10, len(data) // 2, len(data) - 5):
        p = tmp_path / f"trunc{n}.npz"
        p.write_bytes(data[:n])
        with pytest.raises(ModelFormatError):
            load_model(p)
    p = tmp_path / "garbage.npz"
    p.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelFormatError):
        load_model(p)
    with pytest.raises(ModelFormatError, match="cannot read"):
        load_model(tmp_path / "missing.npz")
    # an object array would need pickle: refused, never unpickled
    p = tmp_path / "pickled.npz"
    with open(p, "wb") as f:
        np.savez(f, __header__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFormatError):
        load_model(p)
    p = tmp_path / "plain.npy"
    np.save(p, np.arange(3))
    with pytest.raises(ModelFormatError):
        load_model(p)


@settings(max_examples=150)
@given(pos=st.integers(0, 10**9), val=st.integers(0, 255))
def test_flipped_byte_is_refused_or_loads_consistently(models, tmp_path_factory, pos, val):
    """A corrupted file never crashes the loader with anything but ModelFormatError."""
    _, path, _ = models["kws"]
    data = bytearray(path.read_bytes())
    data[pos % len(data)] = val
    try:
        prog = load_model(_write(tmp_path_factory, data))
    except ModelFormatError:
        return
    assert prog.n_neurons == 138


def _write(factory, data):
    p = factory.mktemp("flip") / "m.npz"
    p.write_bytes(bytes(data))
    return p
