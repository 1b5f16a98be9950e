"""NIR import and export: the Neuromorphic Intermediate Representation <-> our Network.

NIR (the ``nir`` package) describes networks as continuous-time equations; spikeedge runs a
discrete-time current-based LIF integrated exactly. This module converts between them with
**explicit** time-step conventions; ``docs/nir.md`` derives every formula used here.

    from_nir(graph_or_path, dt=1e-4) -> Network
    import_nir(graph_or_path, dt=1e-4) -> NIRImport (network, outputs, readouts, notes)
    to_nir(network) -> nir.NIRGraph
    read_nir(path) / write_nir(path, network_or_graph)

Conventions (all in ``docs/nir.md``):

- ``dt`` is the time step the *exporter* assumed when it turned its discrete model into NIR
  time constants; it is required (or read from the graph's ``metadata["dt"]``, which our own
  exports write). snnTorch 1.0 writes ``tau = 1e-4 / (1 - beta)`` whatever step you trained
  with, so import its graphs with ``dt=1e-4``.
- ``decay="exact"`` (default) keeps NIR's time constants and integrates them exactly,
  ``A = exp(-dt/tau)``; ``decay="euler"`` instead reproduces the exporter's forward-Euler step
  ``A = 1 - dt/tau`` (snnTorch's ``beta``) by choosing ``tau' = -dt / ln(1 - dt/tau)``.
- A node's input is a value held for one step (a "pulse" of length dt). For CubaLIF/CubaLI
  ``synapse_input="pulse"`` (snnTorch) lets a unit input raise the synaptic current by
  ``w_in * (1 - exp(-dt/tau_syn))``; ``"jump"`` (Norse's LIFCell) raises it by ``w_in``.
- LIF and LI have no synapse in NIR; spikeedge always has one, so they get a fast synapse
  ``tau_s = fast_synapse * dt`` (default dt/4) with the weight chosen so that the membrane
  follows the same decaying kick after the first step (the small residual current, a fraction
  ``exp(-1/fast_synapse)`` of it, lands one step later).

Errors: every problem is a :class:`NIRError` (a NetworkError, so ``spikeedge`` prints one line)
that names the node and says why.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .contract import coupling_exact
from .errors import NetworkError
from .network import INPUT, Network, Population, Projection

log = logging.getLogger(__name__)

DECAY_MODES = ("exact", "euler")
SYNAPSE_INPUTS = ("pulse", "jump")
#: node metadata keys spikeedge writes for what standard NIR cannot say (strict=False)
META = "spikeedge."
#: relative spread tolerated in a per-neuron parameter before it counts as heterogeneous
UNIFORM_RTOL = 1e-5

_NEURON_TYPES = ("LIF", "CubaLIF", "LI", "CubaLI")
_LINEAR_TYPES = ("Affine", "Linear", "Scale", "Flatten")
_WHY_NOT = {
    "IF": "IF is a pure integrator (no leak); spikeedge membranes need a finite tau_m because "
          "synaptic currents are measured in volts. Export it as an LIF with a long tau",
    "I": "I (pure integrator without threshold) has no finite membrane time constant",
    "Conv1d": "convolutions are not supported; export the layer as an Affine/Linear",
    "Conv2d": "convolutions are not supported; export the layer as an Affine/Linear",
    "SumPool2d": "pooling is not supported; fold it into the next Affine/Linear",
    "AvgPool2d": "pooling is not supported; fold it into the next Affine/Linear",
    "Delay": "axonal delays are not supported (spikeedge has a fixed one-step delay per layer)",
    "Threshold": "a bare Threshold node has no spikeedge equivalent (use LIF)",
}


class NIRError(NetworkError):
    """A NIR graph cannot be converted (unsupported node or parameter, malformed graph, bad
    file), or a Network cannot be written as NIR."""


def _nir():
    try:
        import nir
    except ModuleNotFoundError:
        raise NIRError("NIR support needs the 'nir' package: pip install 'spikeedge[nir]'") \
            from None
    return nir


@dataclass
class NIRImport:
    """What :func:`import_nir` produced: the network plus facts a caller needs."""

    network: Network
    outputs: list = field(default_factory=list)    # populations that feed an Output node
    readouts: list = field(default_factory=list)   # LI/CubaLI populations (never fire)
    notes: list = field(default_factory=list)      # conventions applied, approximations
    settings: dict = field(default_factory=dict)   # dt, decay, synapse_input, ... as used

    def metadata(self) -> dict:
        """JSON-serialisable summary for a model file's metadata."""
        return {"outputs": list(self.outputs), "readouts": list(self.readouts),
                "notes": list(self.notes), **self.settings}


# ---------------------------------------------------------------------------------------------
# reading


def read_nir(path):
    """Read a ``.nir`` (HDF5) file into a ``nir.NIRGraph``; any failure is a NIRError."""
    nir = _nir()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NIRError(f"NIR file {path}: no such file")
    try:
        graph = nir.read(path)
    except Exception as exc:  # h5py/nir raise OSError, KeyError, ValueError, AssertionError...
        raise NIRError(f"NIR file {path}: not a readable NIR graph "
                       f"({type(exc).__name__}: {exc})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"NIR file {path}: top level is a {type(graph).__name__}, "
                       f"not a NIRGraph")
    return graph


def _meta_get(meta, key, default=None):
    if not isinstance(meta, dict) or key not in meta:
        return default
    v = meta[key]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, np.generic):
        v = v.item()
    return v


def _flatten(graph, prefix: str, top: bool):
    """Dissolve nested NIRGraphs: returns (nodes {full key: node}, edges [(src, dst)],
    in_map {Input key: [inner keys it feeds]}, out_map {Output key: [inner keys feeding it]}).
    At the top level Input/Output nodes are kept as nodes."""
    nir = _nir()
    where = f"subgraph {prefix[:-1]!r}" if prefix else "graph"
    if not isinstance(graph.nodes, dict) or not graph.nodes:
        raise NIRError(f"{where}: has no nodes")
    nodes, edges, subs = {}, [], {}
    for key, node in graph.nodes.items():
        if not isinstance(key, str) or not key:
            raise NIRError(f"{where}: node keys must be non-empty strings, got {key!r}")
        full = prefix + key
        if isinstance(node, nir.NIRGraph):
            n2, e2, in_map, out_map = _flatten(node, full + ".", top=False)
            nodes.update(n2)
            edges += e2
            subs[key] = (in_map, out_map)
        elif not top and isinstance(node, (nir.Input, nir.Output)):
            continue
        else:
            nodes[full] = node

    def resolve(name, side):
        if not isinstance(name, str):
            raise NIRError(f"{where}: edge endpoint {name!r} is not a node key")
        if name in graph.nodes and name not in subs:
            return [prefix + name]
        head, _, rest = name.partition(".")
        if name in subs:
            head, rest = name, ""
        if head not in subs:
            raise NIRError(f"{where}: an edge refers to node {name!r}, which does not exist "
                           f"(nodes: {', '.join(map(str, graph.nodes))})")
        in_map, out_map = subs[head]
        m = out_map if side == "src" else in_map
        if not rest:
            if len(m) != 1:
                raise NIRError(f"{where}: subgraph {head!r} has {len(m)} "
                               f"{'outputs' if side == 'src' else 'inputs'}; an edge must "
                               f"name one as '{head}.<node>'")
            return list(next(iter(m.values())))
        if rest in m:
            return list(m[rest])
        inner = prefix + name
        if inner in nodes:
            return [inner]
        raise NIRError(f"{where}: an edge refers to {name!r}, which is not a node of "
                       f"subgraph {head!r}")

    in_map, out_map = {}, {}
    if not isinstance(graph.edges, (list, tuple)):
        raise NIRError(f"{where}: edges must be a list of (source, target) pairs")
    for edge in graph.edges:
        try:
            a, b = edge
        except (TypeError, ValueError):
            raise NIRError(f"{where}: edge {edge!r} is not a (source, target) pair") from None
        a_is_in = not top and a in graph.nodes and isinstance(graph.nodes[a], nir.Input)
        b_is_out = not top and b in graph.nodes and isinstance(graph.nodes[b], nir.Output)
        if a_is_in and b_is_out:
            raise NIRError(f"{where}: edge {a!r} -> {b!r} connects its Input straight to its "
                           f"Output; not supported")
        if a_is_in:
            in_map.setdefault(a, []).extend(resolve(b, "dst"))
            continue
        if b_is_out:
            out_map.setdefault(b, []).extend(resolve(a, "src"))
            continue
        for s in resolve(a, "src"):
            for d in resolve(b, "dst"):
                edges.append((s, d))
    if not top:
        for k, node in graph.nodes.items():
            if isinstance(node, nir.Input):
                in_map.setdefault(k, [])
            elif isinstance(node, nir.Output):
                out_map.setdefault(k, [])
    return nodes, edges, in_map, out_map


def _arr(node, attr, key):
    v = getattr(node, attr, None)
    if v is None:
        raise NIRError(f"node {key!r} ({type(node).__name__}): parameter {attr!r} is missing")
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise NIRError(f"node {key!r} ({type(node).__name__}): parameter {attr!r} is not "
                       f"numeric") from None
    if not np.all(np.isfinite(a)):
        raise NIRError(f"node {key!r} ({type(node).__name__}): parameter {attr!r} has "
                       f"non-finite values")
    return a


def _uniform(node, attr, key, n):
    """One value for the whole node: spikeedge populations share tau, v_leak, thresholds."""
    a = _arr(node, attr, key).ravel()
    if a.size not in (1, n):
        raise NIRError(f"node {key!r} ({type(node).__name__}): {attr} has {a.size} values for "
                       f"{n} neurons")
    span = float(a.max() - a.min())
    if span > UNIFORM_RTOL * max(float(np.abs(a).max()), 1e-300):
        raise NIRError(f"node {key!r} ({type(node).__name__}): {attr} differs between neurons "
                       f"({a.min():g} .. {a.max():g}); a spikeedge population shares one "
                       f"{attr}. Split the layer into groups with equal values")
    return float(a.mean())


def _per_neuron(node, attr, key, n):
    a = _arr(node, attr, key).ravel()
    if a.size == 1:
        return np.full(n, float(a[0]))
    if a.size != n:
        raise NIRError(f"node {key!r} ({type(node).__name__}): {attr} has {a.size} values for "
                       f"{n} neurons")
    return a


def _euler_tau(dt, tau, what, key):
    if not dt < tau:
        raise NIRError(f"node {key!r}: decay='euler' needs dt < {what} (dt={dt:g}, "
                       f"{what}={tau:g}); is dt the step the exporter used?")
    return -dt / math.log1p(-dt / tau)


def _node_size(key, node, in_size):
    """Number of neurons of a neuron node: from its parameters, else from its input."""
    sizes = set()
    for attr in ("tau", "tau_mem", "v_threshold", "r", "v_leak"):
        v = getattr(node, attr, None)
        if v is not None and np.ndim(v) > 0:
            sizes.add(int(np.size(v)))
    if len(sizes) > 1:
        raise NIRError(f"node {key!r} ({type(node).__name__}): parameters have different "
                       f"sizes {sorted(sizes)}")
    if sizes:
        return sizes.pop()
    if in_size is None:
        raise NIRError(f"node {key!r} ({type(node).__name__}): cannot tell its size (scalar "
                       f"parameters and no sized input)")
    return in_size


def import_nir(graph_or_path, dt: float | None = None, *, decay: str = "exact",
               synapse_input: str | None = None, reset: str | None = None,
               fast_synapse: float = 0.25, name: str | None = None) -> NIRImport:
    """Convert a NIR graph (a ``nir.NIRGraph`` or a ``.nir`` path) into a Network.

    ``dt`` (seconds): the exporter's time step; required unless the graph's metadata has
    ``dt``. ``decay``: "exact" or "euler" (see the module doc). ``synapse_input``: "pulse"
    (default, snnTorch) or "jump" (Norse's CubaLIF); the graph's metadata may set it.
    ``reset``: "zero" (NIR's meaning, default) or "subtract" for exporters that drop the
    reset mode (snnTorch's Leaky defaults to subtract but exports v_reset = 0).
    ``fast_synapse``: tau_s of LIF/LI neurons as a fraction of dt."""
    nir = _nir()
    src_name = None
    if isinstance(graph_or_path, (str, os.PathLike)):
        src_name = os.fspath(graph_or_path)
        graph = read_nir(graph_or_path)
    else:
        graph = graph_or_path
        if not isinstance(graph, nir.NIRGraph):
            raise NIRError(f"expected a nir.NIRGraph or a path, got {type(graph).__name__}")
    gmeta = graph.metadata if isinstance(graph.metadata, dict) else {}
    meta_dt = _meta_get(gmeta, "dt")
    notes = []
    if dt is None:
        if meta_dt is None:
            raise NIRError("dt is required: NIR is continuous-time and this graph does not "
                           "record the time step its exporter assumed (snnTorch 1.0 assumes "
                           "dt = 1e-4 s; pass dt=1e-4 / --dt 1e-4 for its graphs)")
        dt = meta_dt
        notes.append(f"dt = {float(dt):g} s read from the graph's metadata")
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise NIRError(f"dt must be a number of seconds, got {dt!r}") from None
    if not (dt > 0 and math.isfinite(dt)):
        raise NIRError(f"dt must be a positive number of seconds, got {dt!r}")
    if meta_dt is not None and not math.isclose(float(meta_dt), dt, rel_tol=1e-9):
        log.warning("NIR graph says dt = %g s, converting with dt = %g s as asked", meta_dt, dt)
        notes.append(f"graph metadata says dt = {float(meta_dt):g} s; converted with "
                     f"dt = {dt:g} s as asked")
    if decay not in DECAY_MODES:
        raise NIRError(f"decay must be one of {DECAY_MODES}, got {decay!r}")
    if synapse_input is None:
        synapse_input = _meta_get(gmeta, META + "synapse_input", "pulse")
    if synapse_input not in SYNAPSE_INPUTS:
        raise NIRError(f"synapse_input must be one of {SYNAPSE_INPUTS}, got {synapse_input!r}")
    if reset is not None and reset not in ("zero", "subtract"):
        raise NIRError(f"reset must be 'zero' or 'subtract', got {reset!r}")
    if not 0 < fast_synapse <= 1:
        raise NIRError(f"fast_synapse must be in (0, 1] (a fraction of dt), got {fast_synapse!r}")

    nodes, edges, _, _ = _flatten(graph, "", top=True)
    preds = {k: [] for k in nodes}
    seen = set()
    for a, b in edges:
        if (a, b) in seen:
            raise NIRError(f"graph: duplicate edge {a!r} -> {b!r}")
        seen.add((a, b))
        preds[b].append(a)

    # classify
    inputs, outputs, neurons, linears = [], [], [], []
    for k, node in nodes.items():
        t = type(node).__name__
        if isinstance(node, nir.Input):
            inputs.append(k)
        elif isinstance(node, nir.Output):
            outputs.append(k)
        elif t in _NEURON_TYPES:
            neurons.append(k)
        elif t in _LINEAR_TYPES:
            linears.append(k)
        elif t in _WHY_NOT:
            raise NIRError(f"node {k!r} ({t}): unsupported: {_WHY_NOT[t]}")
        else:
            raise NIRError(f"node {k!r} ({t}): unsupported NIR node type")
    if len(inputs) != 1:
        raise NIRError(f"graph: needs exactly one Input node, found {len(inputs)} "
                       f"({', '.join(inputs) or 'none'})")
    if not neurons:
        raise NIRError("graph: has no neuron node (LIF, CubaLIF, LI or CubaLI)")
    in_key = inputs[0]
    in_shape = nodes[in_key].input_type.get("input") if isinstance(
        nodes[in_key].input_type, dict) else None
    if in_shape is None:
        raise NIRError(f"Input node {in_key!r}: has no shape")
    n_in = int(np.prod(np.asarray(in_shape, dtype=np.int64)))
    if preds[in_key]:
        raise NIRError(f"Input node {in_key!r}: has incoming edges")

    # linear maps from sources (the Input, neuron nodes) to each node's output
    size = {in_key: n_in}
    memo = {}

    def out_map(k, stack):
        """Output of node k as {source: matrix [n_k, n_source]}, bias [n_k]."""
        if k in memo:
            return memo[k]
        node = nodes[k]
        if k == in_key or k in neurons:
            n = size[k] if k in size else None
            if n is None:
                raise NIRError(f"node {k!r}: size unknown")  # neurons are sized first
            memo[k] = ({k: np.eye(n)}, np.zeros(n))
            return memo[k]
        if k in outputs:
            raise NIRError(f"Output node {k!r}: has outgoing edges")
        if k in stack:
            raise NIRError(f"graph: cycle through linear nodes without a neuron: "
                           f"{' -> '.join(stack[stack.index(k):] + [k])}")
        if not preds[k]:
            raise NIRError(f"node {k!r} ({type(node).__name__}): has no input edge")
        acc, bias = {}, None
        for p in preds[k]:
            m, b = out_map(p, stack + [k])
            if bias is None:
                bias = b.copy()
            elif b.shape != bias.shape:
                raise NIRError(f"node {k!r}: inputs of different sizes ({bias.shape[0]} and "
                               f"{b.shape[0]})")
            else:
                bias = bias + b
            for s, M in m.items():
                acc[s] = acc[s] + M if s in acc else M.copy()
        n_in_k = bias.shape[0]
        t = type(node).__name__
        if t == "Flatten":
            A, c = None, None
        elif t == "Scale":
            sc = _arr(node, "scale", k).ravel()
            if sc.size not in (1, n_in_k):
                raise NIRError(f"node {k!r} (Scale): {sc.size} factors for {n_in_k} inputs")
            A, c = np.diag(np.broadcast_to(sc, (n_in_k,))), None
        else:
            W = _arr(node, "weight", k)
            if W.ndim != 2:
                raise NIRError(f"node {k!r} ({t}): weight must be a 2-D [out, in] matrix, got "
                               f"shape {W.shape} (batched/convolutional weights unsupported)")
            if W.shape[1] != n_in_k:
                raise NIRError(f"node {k!r} ({t}): weight has {W.shape[1]} inputs but receives "
                               f"{n_in_k}")
            A = W
            c = _arr(node, "bias", k).ravel() if t == "Affine" else None
            if c is not None and c.size not in (1, W.shape[0]):
                raise NIRError(f"node {k!r} (Affine): bias has {c.size} values for "
                               f"{W.shape[0]} outputs")
        if A is not None:
            acc = {s: A @ M for s, M in acc.items()}
            bias = A @ bias
        if c is not None:
            bias = bias + c
        memo[k] = (acc, bias)
        return memo[k]

    # size neuron nodes (parameters, else the rows of what feeds them)
    for k in neurons:
        in_size = None
        for p in preds[k]:
            node = nodes[p]
            if type(node).__name__ in ("Affine", "Linear"):
                w = np.asarray(node.weight)
                if w.ndim == 2:
                    in_size = int(w.shape[0])
            elif p == in_key:
                in_size = n_in
        size[k] = _node_size(k, nodes[k], in_size)

    pops, projs, readouts, notes_fast = [], [], [], False
    names = {k: k for k in neurons}
    if INPUT in names:
        names[INPUT] = INPUT + "_"
    for k in neurons:
        node = nodes[k]
        t = type(node).__name__
        n = size[k]
        cuba = t in ("CubaLIF", "CubaLI")
        spiking = t in ("LIF", "CubaLIF")
        meta = node.metadata if isinstance(node.metadata, dict) else {}
        tau = _uniform(node, "tau_mem" if cuba else "tau", k, n)
        v_leak = _uniform(node, "v_leak", k, n)
        r = _per_neuron(node, "r", k, n)
        if tau <= 0:
            raise NIRError(f"node {k!r} ({t}): time constant must be > 0, got {tau:g}")
        if dt >= tau / 2 and decay == "exact":
            notes.append(f"node {k!r}: dt = {dt:g} s is not small against tau = {tau:g} s; "
                         f"check that dt is the exporter's step")
        tau_m = _euler_tau(dt, tau, "tau", k) if decay == "euler" else tau
        a_m = math.exp(-dt / tau_m)
        if cuba:
            tau_syn = _uniform(node, "tau_syn", k, n)
            if tau_syn <= 0:
                raise NIRError(f"node {k!r} ({t}): tau_syn must be > 0, got {tau_syn:g}")
            w_in = _per_neuron(node, "w_in", k, n) if getattr(node, "w_in", None) is not None \
                else np.ones(n)
            tau_s = _euler_tau(dt, tau_syn, "tau_syn", k) if decay == "euler" else tau_syn
        else:
            tau_s = fast_synapse * dt
            notes_fast = True
            if not tau_s < tau_m:
                raise NIRError(f"node {k!r} ({t}): fast synapse {tau_s:g} s is not shorter "
                               f"than tau = {tau_m:g} s; use a smaller fast_synapse or dt")
        a_s = math.exp(-dt / tau_s)
        B = coupling_exact(dt, tau_m, tau_s)
        # per unit of NIR input: our weight (jump of the current, volts) and steady-state v
        if cuba:
            j = w_in * ((1.0 - a_s) if synapse_input == "pulse" else 1.0)
            wscale = r * j * ((1.0 - a_m) / B if decay == "euler" else 1.0)
            vss = r * w_in * (1.0 if synapse_input == "pulse" else 1.0 / (1.0 - a_s))
        else:
            kick = r * (1.0 - a_m)            # membrane kick of a one-step unit pulse
            wscale = kick * (a_m - a_s) / (B * a_m)
            vss = r
        acc, bias = {}, np.zeros(n)
        if preds[k]:
            for p in preds[k]:
                if p in outputs:
                    raise NIRError(f"Output node {p!r}: has outgoing edges")
                m, b = out_map(p, [k])
                if b.shape[0] != n:
                    raise NIRError(f"node {k!r} ({t}): receives {b.shape[0]} values but has "
                                   f"{n} neurons")
                bias = bias + b
                for s, M in m.items():
                    acc[s] = acc[s] + M if s in acc else M.copy()
        pop_bias = bias * vss
        for s, M in acc.items():
            w = (M * wscale[:, None]).T        # [n_pre, n_post]
            src = INPUT if s == in_key else names[s]
            via = [p for p in preds[k] if p == s or (p in linears and s in memo[p][0])]
            pname = via[0] if len(via) == 1 and via[0] in linears and \
                type(nodes[via[0]]).__name__ != "Flatten" else f"{src}->{names[k]}"
            projs.append(Projection(src, names[k], w, name=pname))
        pop_reset = reset or _meta_get(meta, META + "reset", "zero")
        if pop_reset not in ("zero", "subtract"):
            raise NIRError(f"node {k!r}: metadata reset {pop_reset!r} is not zero/subtract")
        kw = {}
        for attr in ("t_ref", "theta_plus", "tau_theta"):
            v = _meta_get(meta, META + attr)
            if v is not None:
                kw[attr] = float(v)
        v_init = _meta_get(meta, META + "v_init")
        if spiking:
            v_th = _uniform(node, "v_threshold", k, n)
            v_reset = _uniform(node, "v_reset", k, n) if getattr(node, "v_reset", None) \
                is not None else 0.0
            if reset == "subtract" and v_th > v_reset:
                # snnTorch subtracts (v_th - v_reset) one step after the spike, after that
                # step's decay; our engine subtracts at the spike and the amount then decays
                # by a_m: subtract (v_th - v_reset) / a_m so that both lose the same.
                v_reset = v_th - (v_th - v_reset) / a_m
        else:
            v_th, v_reset = None, v_leak
            readouts.append(names[k])
        pops.append(dict(name=names[k], n=n, tau_m=tau_m, tau_s=(tau_s,), v_rest=v_leak,
                         v_th=v_th, v_reset=v_reset, bias=pop_bias, reset=pop_reset,
                         v_init=None if v_init is None else np.asarray(v_init, np.float64),
                         _B=B, _as=a_s, _am=a_m, **kw))

    # readouts (LI, CubaLI) never fire: threshold above the largest reachable membrane
    for pd in pops:
        if pd["v_th"] is not None:
            continue
        bound = np.abs(pd["bias"]).copy()
        for pr in projs:
            if pr.target == pd["name"]:
                bound += np.abs(pr.weights).sum(0) * pd["_B"] / ((1 - pd["_as"]) *
                                                                  (1 - pd["_am"]))
        top = float(bound.max()) if bound.size else 0.0
        pd["v_th"] = pd["v_rest"] + (1.25 * top if top > 0 else 1.0)
    populations = []
    for pd in pops:
        for k in ("_B", "_as", "_am"):
            pd.pop(k)
        populations.append(Population(**pd))
    outs = []
    for o in outputs:
        for p in preds[o]:
            q = p
            while q in linears and type(nodes[q]).__name__ == "Flatten" and len(preds[q]) == 1:
                q = preds[q][0]
            if q not in neurons:
                raise NIRError(f"Output node {o!r}: fed by {q!r} ({type(nodes[q]).__name__}); "
                               f"spikeedge outputs are populations, end the graph on a neuron "
                               f"node (LI for a non-spiking readout)")
            outs.append(names[q])
    unused = [k for k in linears if k not in memo]
    if unused:
        raise NIRError(f"graph: linear node(s) {', '.join(map(repr, unused))} feed no "
                       f"neuron")
    if notes_fast:
        notes.append(f"LIF/LI nodes got a fast synapse tau_s = {fast_synapse:g} dt; "
                     f"a fraction {math.exp(-1 / fast_synapse):.3g} of each kick lands one "
                     f"step late")
    net = Network(n_inputs=n_in, populations=populations, projections=projs, dt=dt,
                  name=name or (os.path.splitext(os.path.basename(src_name))[0] if src_name
                                else "nir"))
    try:
        net.validate()
    except NetworkError as exc:
        raise NIRError(f"the converted network is invalid: {exc}") from None
    settings = {"dt": dt, "decay": decay, "synapse_input": synapse_input,
                "fast_synapse": fast_synapse, "reset": reset or "zero (NIR)"}
    if src_name:
        settings["source"] = os.path.basename(src_name)
    return NIRImport(network=net, outputs=outs, readouts=readouts, notes=notes,
                     settings=settings)


def from_nir(graph_or_path, dt: float | None = None, **kw) -> Network:
    """Convert a NIR graph or ``.nir`` file to a Network (see :func:`import_nir`)."""
    return import_nir(graph_or_path, dt, **kw).network


# ---------------------------------------------------------------------------------------------
# writing


def to_nir(network: Network, *, strict: bool = True, synapse_input: str = "pulse",
           outputs: list | None = None, readouts: list | None = None):
    """Describe ``network`` as a ``nir.NIRGraph``.

    Every population becomes a CubaLIF node (our model is a current-based LIF; an LIF imported
    with a fast synapse comes back as a CubaLIF with that tau_syn), or a CubaLI when listed in
    ``readouts``; every projection an Affine/Linear node. Parameters are chosen for
    ``synapse_input`` ("pulse": r = tau_mem/dt, w_in = tau_syn/dt, the snnTorch convention;
    "jump": r = w_in = 1, weights unchanged, Norse's). The graph's metadata records ``dt`` and
    the convention, so :func:`import_nir` reads it back exactly.

    What standard NIR cannot express (subtractive reset, refractory period, adaptive threshold,
    initial membrane values) is refused when ``strict``; otherwise it is stored in spikeedge
    metadata keys (other tools ignore them) and listed in ``metadata["spikeedge.not_in_nir"]``.
    STDP rules are never exported (the current weights are). Populations with more than one
    synapse channel or a non-decaying channel (tau_s = inf) cannot be exported."""
    nir = _nir()
    if not isinstance(network, Network):
        raise NIRError(f"to_nir needs a spikeedge Network, got {type(network).__name__}")
    try:
        network.validate()
    except NetworkError as exc:
        raise NIRError(f"cannot export an invalid network: {exc}") from None
    if synapse_input not in SYNAPSE_INPUTS:
        raise NIRError(f"synapse_input must be one of {SYNAPSE_INPUTS}, got {synapse_input!r}")
    dt = network.dt
    readouts = set(readouts or ())
    names = [p.name for p in network.populations]
    for r_ in readouts:
        if r_ not in names:
            raise NIRError(f"readout {r_!r} is not a population ({', '.join(names)})")
    lost = []
    used = {"input", "output"}
    keys = {}
    for p in network.populations:
        k = p.name
        while k in used:
            k = k + "_"
        used.add(k)
        keys[p.name] = k
    nodes = {"input": nir.Input(input_type=np.array([network.n_inputs]))}
    consts = {}
    for p in network.populations:
        where = f"population {p.name!r}"
        if len(p.tau_s) != 1:
            raise NIRError(f"{where}: has {len(p.tau_s)} synapse channels; a NIR CubaLIF has "
                           f"one tau_syn. Merge channels with equal time constants first")
        tau_s = p.tau_s[0]
        if math.isinf(tau_s):
            raise NIRError(f"{where}: its synaptic current never decays (tau_s = inf); NIR "
                           f"has no such synapse")
        extra = {}
        if p.reset == "subtract":
            extra[META + "reset"] = "subtract"
        if p.t_ref > 0:
            extra[META + "t_ref"] = float(p.t_ref)
        if p.theta_plus != 0:
            extra[META + "theta_plus"] = float(p.theta_plus)
            extra[META + "tau_theta"] = float(p.tau_theta)
        if p.v_init is not None and np.any(p.v_init_array() != p.v_rest):
            extra[META + "v_init"] = p.v_init_array()
        if extra:
            what = ", ".join(k[len(META):] for k in extra)
            if strict:
                raise NIRError(f"{where}: {what} cannot be expressed in NIR (strict export); "
                               f"use strict=False (--lossy) to store it in spikeedge metadata "
                               f"that other tools ignore")
            lost.append(f"{p.name}: {what}")
        n = p.n
        a_s = math.exp(-dt / tau_s)
        if synapse_input == "pulse":
            r = np.full(n, p.tau_m / dt)
            w_in = np.full(n, tau_s / dt)
            j = w_in * (1.0 - a_s)
            vss = r * w_in
        else:
            r, w_in = np.ones(n), np.ones(n)
            j = w_in
            vss = r * w_in / (1.0 - a_s)
        consts[p.name] = (r * j, vss)
        common = dict(tau_syn=np.full(n, tau_s), tau_mem=np.full(n, p.tau_m), r=r,
                      v_leak=np.full(n, p.v_rest), w_in=w_in)
        if p.name in readouts:
            node = nir.CubaLI(**common, metadata=extra)
        else:
            node = nir.CubaLIF(**common, v_threshold=np.full(n, p.v_th),
                               v_reset=np.full(n, p.v_reset), metadata=extra)
        nodes[keys[p.name]] = node
    edges = []
    bias_done = set()
    for i, pr in enumerate(network.projections):
        if pr.stdp is not None:
            if strict:
                raise NIRError(f"projection {pr.name or i!r}: has an STDP rule, which NIR "
                               f"cannot express (strict export); use strict=False to export "
                               f"its current weights only")
            lost.append(f"{pr.name or i}: STDP rule (weights exported as they are)")
        tgt = network.population(pr.target)
        n_pre = network.size_of(pr.source)
        w = pr.dense_weights(n_pre, tgt.n)
        wunit, vss = consts[pr.target]
        W = (w / wunit[None, :]).T                 # [n_post, n_pre]
        k = pr.name or f"w{i}_{pr.source}_{pr.target}"
        while k in used:
            k = k + "_"
        used.add(k)
        b = tgt.bias_array()
        if pr.target not in bias_done and np.any(b != 0):
            node = nir.Affine(weight=W, bias=b / vss)
            bias_done.add(pr.target)
        else:
            node = nir.Linear(weight=W)
        nodes[k] = node
        edges.append(("input" if pr.source == INPUT else keys[pr.source], k))
        edges.append((k, keys[pr.target]))
    for p in network.populations:
        if np.any(p.bias_array() != 0) and p.name not in bias_done:
            raise NIRError(f"population {p.name!r}: has a bias but no incoming projection to "
                           f"carry it (NIR puts biases on Affine nodes)")
    if outputs is None:
        feeds = {pr.source for pr in network.projections if pr.source != pr.target}
        outputs = [p.name for p in network.populations if p.name not in feeds] or [names[-1]]
    for o in outputs:
        if o not in names:
            raise NIRError(f"output {o!r} is not a population ({', '.join(names)})")
        ok = "output" if len(outputs) == 1 else f"output_{keys[o]}"
        while ok in nodes:
            ok = ok + "_"
        nodes[ok] = nir.Output(output_type=np.array([network.population(o).n]))
        edges.append((keys[o], ok))
    from . import __version__
    meta = {"dt": float(dt), META + "synapse_input": synapse_input,
            META + "version": __version__, META + "network": network.name}
    if lost:
        meta[META + "not_in_nir"] = "; ".join(lost)
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except (ValueError, AssertionError) as exc:
        raise NIRError(f"nir refused the exported graph: {exc}") from None


def write_nir(path, network_or_graph, **kw) -> None:
    """Write a Network (through :func:`to_nir` with ``kw``) or a NIRGraph to ``path``."""
    nir = _nir()
    g = network_or_graph if isinstance(network_or_graph, nir.NIRGraph) else \
        to_nir(network_or_graph, **kw)
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        nir.write(tmp, g)
        os.replace(tmp, path)
    except OSError as exc:
        raise NIRError(f"cannot write NIR file {path}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# command line: spikeedge nir import / export


def cmd_import(args) -> int:
    from .modelfile import save_model
    from .quantize import quantize
    res = import_nir(args.file, args.dt, decay=args.decay, synapse_input=args.synapse_input,
                     reset=args.reset, fast_synapse=args.fast_synapse)
    net = res.network
    report_text = None
    if args.calibrate:
        from .quantize import calibration_input, format_report, quantize_with_report
        calib = calibration_input(net.n_inputs, args.calibrate, rate=args.calibrate_rate)
        prog, report = quantize_with_report(net, calib, weight_bits=args.weight_bits,
                                            saturation_budget=args.saturation_budget)
        report_text = format_report(report)
    else:
        prog = quantize(net, weight_bits=args.weight_bits,
                        saturation_budget=args.saturation_budget)
    meta = {"nir": res.metadata()}
    save_model(args.output, prog, metadata=meta)
    print(f"imported {args.file}: {net.n_inputs} inputs, "
          + ", ".join(f"{p.name} ({p.n}, tau_m {p.tau_m:.4g} s, tau_s {p.tau_s[0]:.4g} s)"
                      for p in net.populations))
    if report_text:
        print(report_text)
    else:
        for name, rep in prog.report["projections"].items():
            print(f"  projection {name}: {rep['n_weights']} weights, shift {rep['shift']}, "
                  f"{rep['bits_used']} bits used, {rep['saturated']} saturated, "
                  f"{rep['zeroed']} rounded to zero")
    for note in res.notes:
        print(f"  note: {note}")
    if res.readouts:
        print(f"  readouts (never fire; read their membrane): {', '.join(res.readouts)}")
    print(f"wrote {args.output}")
    return 0


def cmd_export(args) -> int:
    from .eval import resolve_model
    from .modelfile import load_model
    path = resolve_model(args.model)
    prog = load_model(path)
    if prog.network is None:
        raise NIRError(f"model file {path}: stores no physical network to export")
    nmeta = prog.report.get("metadata", {}).get("nir", {})
    readouts = nmeta.get("readouts") if isinstance(nmeta, dict) else None
    outputs = nmeta.get("outputs") if isinstance(nmeta, dict) else None
    write_nir(args.output, prog.network, strict=not args.lossy,
              synapse_input=args.synapse_input, readouts=readouts or None,
              outputs=outputs or None)
    print(f"wrote {args.output} (dt = {prog.network.dt:g} s, synapse input "
          f"'{args.synapse_input}')")
    return 0


def register(subparsers) -> None:
    from .cli import _positive_float
    p = subparsers.add_parser("nir", help="import or export NIR graphs (snnTorch, Norse, ...)",
                              description="Convert between NIR (.nir) graphs and spikeedge "
                                          "model files. See docs/nir.md for the conventions.")
    sub = p.add_subparsers(dest="nir_cmd", required=True)
    q = sub.add_parser("import", help="NIR graph -> quantized spikeedge model file")
    q.add_argument("file", metavar="FILE.nir")
    q.add_argument("--dt", type=_positive_float, default=None,
                   help="time step (s) the exporter assumed; snnTorch 1.0 uses 1e-4 "
                        "(required unless the graph's metadata has dt)")
    q.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    q.add_argument("--decay", choices=DECAY_MODES, default="exact",
                   help="exact: A = exp(-dt/tau) (NIR's equations); euler: A = 1 - dt/tau "
                        "(the exporter's discrete step, e.g. snnTorch's beta)")
    q.add_argument("--synapse-input", choices=SYNAPSE_INPUTS, default=None,
                   help="how inputs enter a CubaLIF current: pulse (snnTorch, default) or "
                        "jump (Norse)")
    q.add_argument("--reset", choices=("zero", "subtract"), default=None,
                   help="override the reset mode (snnTorch's Leaky subtracts by default but "
                        "exports NIR's reset-to-v_reset)")
    q.add_argument("--fast-synapse", type=_positive_float, default=0.25,
                   help="synapse time constant of LIF/LI nodes, as a fraction of dt")
    q.add_argument("--weight-bits", type=int, default=16)
    q.add_argument("--saturation-budget", type=float, default=0.0)
    q.add_argument("--calibrate", type=int, default=0, metavar="STEPS",
                   help="also run STEPS steps of random input spikes through the float twin "
                        "and the fixed-point engine and report the activity change "
                        "(refuses a layer that goes silent or saturates)")
    q.add_argument("--calibrate-rate", type=float, default=0.05,
                   help="input spike probability per step for --calibrate")
    q.set_defaults(func=cmd_import)
    e = sub.add_parser("export", help="spikeedge model file -> NIR graph")
    e.add_argument("model", metavar="MODEL", help="model file (or shipped model name)")
    e.add_argument("-o", "--output", required=True, help="NIR file to write (.nir)")
    e.add_argument("--synapse-input", choices=SYNAPSE_INPUTS, default="pulse")
    e.add_argument("--lossy", action="store_true",
                   help="export what NIR cannot express (subtractive reset, refractory "
                        "period, STDP, ...) as spikeedge metadata instead of refusing")
    e.set_defaults(func=cmd_export)
