"""Regenerate the snnTorch NIR fixtures in tests/data/ (needs torch, snntorch and nirtorch).

    python -m spikeedge.tools.gen_nir_fixture [--out tests/data]

For each small network it writes, with a fixed seed:

- ``snntorch_<name>.nir``: the graph as snnTorch's own ``export_to_nir`` writes it;
- ``snntorch_<name>_io.npz``: the input spike raster it was run on (``inputs`` uint8
  [T, n_in]) and, for every spiking layer, the spikes snnTorch itself produced on it with its
  own Euler dynamics (``spikes/<nir node>`` uint8 [T, n]) for the zero-reset model that the
  file describes, and for the same weights with snnTorch's default subtractive reset
  (``spikes_subtract/<nir node>``), which its exporter does not record.

Networks: ``ff`` is Linear(8, 16) -> Leaky -> Linear(16, 4) -> Leaky; ``rec`` is
Linear(8, 12) -> RLeaky (all-to-all recurrent Linear) -> Linear(12, 4) -> Leaky. tests/test_nir.py
imports both and checks spike counts of our float twin against the stored ones.

snnTorch 1.0 exports scalar beta/threshold as 0-d arrays that nir 1.0's type inference
rejects, so the neurons here are given per-neuron (uniform) beta and threshold vectors.
"""
from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

T_STEPS = 400
N_IN = 8
SEED = 7
P_INPUT = 0.15          # input spike probability per step


def _leaky(snn, torch, n, beta, reset, **kw):
    return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True,
                     reset_mechanism=reset, **kw)


def build(name: str, reset: str):
    import snntorch as snn
    import torch
    torch.manual_seed(SEED)
    if name == "ff":
        net = torch.nn.Sequential(torch.nn.Linear(N_IN, 16), _leaky(snn, torch, 16, 0.9, reset),
                                  torch.nn.Linear(16, 4),
                                  _leaky(snn, torch, 4, 0.85, reset, output=True))
        gains = {0: 2.5, 2: 4.0}
    elif name == "rec":
        rl = snn.RLeaky(beta=torch.full((12,), 0.9), threshold=torch.ones(12),
                        linear_features=12, init_hidden=True, reset_mechanism=reset)
        net = torch.nn.Sequential(torch.nn.Linear(N_IN, 12), rl, torch.nn.Linear(12, 4),
                                  _leaky(snn, torch, 4, 0.85, reset, output=True))
        gains = {0: 2.5, 2: 4.0}
    else:
        raise ValueError(name)
    with torch.no_grad():
        for i, g in gains.items():
            net[i].weight.mul_(g)
            net[i].bias.mul_(0.2)
        if name == "rec":
            net[1].recurrent.weight.mul_(0.8)
            net[1].recurrent.bias.mul_(0.1)
    return net


def run_snntorch(net, inputs: np.ndarray) -> dict:
    """Run a freshly built ``net`` step by step on inputs [T, n_in]; returns
    {Sequential layer index: spikes uint8 [T, n]} for every Leaky/RLeaky layer."""
    import snntorch as snn
    import torch
    rec, hooks = {}, []        # a freshly built net starts from zero state
    for i, m in enumerate(net):
        if isinstance(m, (snn.Leaky, snn.RLeaky)):
            def hook(mod, inp, out, i=i):
                spk = out[0] if isinstance(out, tuple) else out
                rec.setdefault(i, []).append(spk.detach().numpy()[0].astype(np.uint8))
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        for t in range(inputs.shape[0]):
            net(torch.from_numpy(inputs[t:t + 1].astype(np.float32)))
    for h in hooks:
        h.remove()
    return {i: np.stack(v) for i, v in rec.items()}


def layer_node_names(graph, net) -> dict:
    """Sequential layer index -> the NIR node key of that neuron layer."""
    import nir
    out = {}
    for i, _ in enumerate(net):
        for k, node in graph.nodes.items():
            if k.split(".")[0] == str(i) and isinstance(node, (nir.LIF, nir.CubaLIF)):
                out[i] = k
    return out


def generate(out_dir: str) -> list:
    import nir
    import snntorch
    import torch
    from snntorch.export_nir import export_to_nir
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="nirtorch")
    rng = np.random.default_rng(SEED)
    inputs = (rng.random((T_STEPS, N_IN)) < P_INPUT).astype(np.uint8)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in ("ff", "rec"):
        net = build(name, "zero")
        graph = export_to_nir(net, torch.zeros(N_IN))
        path = os.path.join(out_dir, f"snntorch_{name}.nir")
        nir.write(path, graph, compression="gzip", compression_opts=9)
        layers = layer_node_names(graph, net)
        arrays = {"inputs": inputs, "snntorch_version": np.frombuffer(
            snntorch.__version__.encode(), np.uint8)}
        for reset, prefix in (("zero", "spikes"), ("subtract", "spikes_subtract")):
            spikes = run_snntorch(build(name, reset), inputs)
            for i, s in spikes.items():
                arrays[f"{prefix}/{layers[i]}"] = s
        io_path = os.path.join(out_dir, f"snntorch_{name}_io.npz")
        np.savez_compressed(io_path, **arrays)
        written += [path, io_path]
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("tests", "data"))
    args = ap.parse_args(argv)
    for p in generate(args.out):
        print(f"wrote {p} ({os.path.getsize(p)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
