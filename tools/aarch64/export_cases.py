"""Write golden cases for the C harness (``tools/aarch64/harness.c``): the golden vectors of
``tests/golden``, short runs of the standard networks (their populations are wide enough
to run the SIMD loops over full vectors), and one population of 37 neurons per variant of the
fused pass (1 or 2 channels, both reset modes, with and without refractoriness, a bias of
either sign and input gains that need the membrane clamp) started from membranes and currents
at the int32 extremes, so that the clamp acts; each case as one flat binary file.

    python tools/aarch64/export_cases.py OUT_DIR
    python tools/aarch64/export_cases.py --long OUT_DIR    # only the standard networks, longer

``--long`` writes the four standard networks only, over 5 s (kws), 2 s (shd), 1 s (stdp)
and 0.05 s (cuba), for timing the step loop with the harness (``REPS``, see harness.c).

File format (little endian): repeated records ``u32 name length, name, u8 dtype code (b int8,
h int16, i int32, B uint8), u32 count, data``; the harness finds arrays by name. Expected
outputs come from the golden NumPy reference (``spikeedge.reference``).
"""
from __future__ import annotations

import pathlib
import struct
import sys

import numpy as np

from spikeedge import Engine, quantize
from spikeedge.modelfile import load_model
from spikeedge.nets import clamp_case, standard

CODES = {np.dtype(np.int16): b"h", np.dtype(np.int32): b"i", np.dtype(np.uint8): b"B"}
PROGRAM = ["alpha_m", "alpha_s", "beta", "bias", "theta", "v_reset", "reset_sub", "ref_steps",
           "theta_plus", "alpha_theta", "proj", "weights", "csr_ptr", "csr_idx", "plast",
           "pop_start", "pop_n"]


def write_case(path: pathlib.Path, prog, inp: np.ndarray, state=None) -> None:
    state = prog.initial_state() if state is None else state
    spikes, final, _ = Engine(prog, "reference").run_chunk(inp, state.copy())
    n_pre, n_post = prog.trace_sizes()
    arrays = {k: getattr(prog, k) for k in PROGRAM}
    arrays["dims"] = np.array([prog.n_in, prog.n_neurons, prog.n_channels,
                               prog.pop_n.shape[0], prog.proj.shape[0], prog.plast.shape[0],
                               inp.shape[0], n_pre, n_post], np.int32)
    arrays["inp"] = inp
    arrays["v_init"] = state.v
    arrays["i_init"] = state.i_syn
    arrays["ref_init"] = state.ref
    arrays["spikes"] = spikes
    for k, v in final.arrays().items():
        arrays["final_" + k] = v
    with open(path, "wb") as f:
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            if a.dtype not in CODES:
                a = a.astype(np.int32)
            f.write(struct.pack("<I", len(name)) + name.encode())
            f.write(CODES[a.dtype] + struct.pack("<I", a.size))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    long = "--long" in argv
    argv = [a for a in argv if a != "--long"]
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: export_cases.py [--long] OUT_DIR", file=sys.stderr)
        return 2
    out = pathlib.Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    if long:
        for name, T in (("kws", 5.0), ("shd", 2.0), ("stdp", 1.0), ("cuba", 0.05)):
            net, inp, _ = standard(name, T)
            write_case(out / f"net_{name}.case", quantize(net), inp)
            print(f"net_{name}")
        return 0
    golden = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden"
    for model in sorted(golden.glob("*.model.npz")):
        name = model.name.split(".")[0]
        inp = np.load(golden / f"{name}.expected.npz")["inp"]
        write_case(out / f"golden_{name}.case", load_model(model), inp)
        print(f"golden_{name}")
    for name, T in (("kws", 0.5), ("shd", 0.2), ("cuba", 0.02), ("stdp", 0.2)):
        net, inp, _ = standard(name, T)
        write_case(out / f"net_{name}.case", quantize(net), inp)
        print(f"net_{name}")
    for K in (1, 2):
        for reset in ("zero", "subtract"):
            for t_ref in (0.0, 2e-3):
                for bias in (0.05, -0.3):
                    name = f"clamp_k{K}_{reset}_ref{int(t_ref > 0)}_b{'p' if bias > 0 else 'n'}"
                    prog, inp, state = clamp_case(K, reset, t_ref, bias)
                    write_case(out / f"{name}.case", prog, inp, state)
                    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
