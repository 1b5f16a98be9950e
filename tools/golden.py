"""Regenerate the golden test vectors (``python -m spikeedge.tools.golden [--out DIR]``).

Each case is a small fixed network (a model file, ``<case>.model.npz``) with a fixed input and
the golden reference's output (``<case>.expected.npz``: input, spikes, recorded v and i_syn,
final state). The test suite checks every backend against these files, so a change to the
contract shows up as a diff here; never edit them by hand.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

from .. import INPUT, STDP, Engine, Network, Population, Projection, quantize, save_model
from ..network import lateral_inhibition


def cases() -> dict:
    rng = np.random.default_rng(7)
    out = {}
    # two layers, dense, one channel, reset to zero, refractory
    net = Network(6, [Population("h", 8, t_ref=3e-3), Population("o", 3, reset="subtract")],
                  [Projection(INPUT, "h", rng.normal(0.4, 0.5, (6, 8)), name="in"),
                   Projection("h", "o", rng.normal(0.3, 0.4, (8, 3)), name="out")], name="ff")
    out["ff"] = (net, (rng.random((200, 6)) < 0.2).astype(np.uint8))
    # recurrent sparse with two channels, rest/threshold/reset offsets, bias, dt 0.1 ms
    mask = rng.random((10, 10)) < 0.4
    indptr = np.concatenate([[0], np.cumsum(mask.sum(1))])
    net = Network(0, [Population("r", 10, tau_s=(5e-3, 10e-3), v_th=-50e-3, v_reset=-60e-3,
                                 v_rest=-49e-3, t_ref=2e-3,
                                 v_init=-60e-3 + rng.random(10) * 10e-3)],
                  [Projection("r", "r", np.where(rng.random(mask.sum()) < 0.8, 1.6e-3, -9e-3),
                              indptr=indptr, indices=np.nonzero(mask)[1], name="rec")],
                  dt=1e-4, name="cuba-like")
    out["rec"] = (net, np.zeros((2000, 0), np.uint8))
    # saturation: huge weights drive currents and membranes to the int32 rails
    net = Network(2, [Population("s", 4, bias=np.array([0, 40.0, -40.0, 0]), t_ref=2e-3)],
                  [Projection(INPUT, "s", np.array([[3000.0, -3000, 50, 1], [-50, 50, 3000,
                                                                            -3000]]))],
                  name="saturation")
    inp = np.zeros((80, 2), np.uint8)
    inp[[1, 2, 3, 40, 41]] = 1
    out["sat"] = (net, inp)
    # STDP
    rule = STDP(tau_pre=15e-3, tau_post=25e-3, a_pre=0.02, a_post=-0.021, w_min=0.0, w_max=0.5)
    net = Network(12, [Population("o", 4)],
                  [Projection(INPUT, "o", rng.uniform(0, 0.5, (12, 4)), stdp=rule)], name="stdp")
    out["stdp"] = (net, (rng.random((300, 12)) < 0.1).astype(np.uint8))
    # Diehl-and-Cook style: multiplicative STDP, adaptive thresholds, lateral inhibition
    rule = STDP(tau_pre=20e-3, tau_post=20e-3, a_pre=0.05, a_post=-0.04, w_min=0.0, w_max=0.6,
                rule="multiplicative")
    exc = Population("e", 6, theta_plus=0.2, tau_theta=50e-3, t_ref=2e-3)
    net = Network(16, [exc], [Projection(INPUT, "e", rng.uniform(0, 0.6, (16, 6)), stdp=rule),
                              lateral_inhibition(exc, 0.8)], name="homeostasis")
    out["wta"] = (net, (rng.random((400, 16)) < 0.15).astype(np.uint8))
    return out


def expected(prog, inp) -> dict:
    spikes, state, rec = Engine(prog, "reference").run_chunk(inp, record=True)
    d = {"inp": inp, "spikes": spikes, "v": rec["v"], "i_syn": rec["i_syn"]}
    d.update({f"final_{k}": v for k, v in state.arrays().items()})
    return d


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[argv.index("--out") + 1]) if "--out" in argv else \
        pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"
    out.mkdir(parents=True, exist_ok=True)
    for name, (net, inp) in cases().items():
        prog = quantize(net)
        save_model(out / f"{name}.model.npz", prog, metadata={"golden": name})
        with open(out / f"{name}.expected.npz", "wb") as f:
            np.savez_compressed(f, **expected(prog, inp))
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
