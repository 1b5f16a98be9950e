"""Model files: one versioned format, never pickle.

A model file is a ZIP archive written by ``numpy.savez`` (``.npz``): a member ``__header__`` holds
UTF-8 JSON (format name, format version, contract version, dt, names, scales, the physical
network's scalar parameters, user metadata) and the other members are the Program's integer
arrays (``prog/...``) and the physical network's float arrays (``net/...``). It loads with
``allow_pickle=False``; every array is checked for dtype, shape and range before an Engine may
use it, and any problem is a ModelFormatError that says what and where.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np

from . import contract as C
from .errors import ModelFormatError
from .network import STDP, Network, Population, Projection
from .program import (
    KIND_CSR,
    KIND_DENSE,
    PJ_CHANNEL,
    PJ_IDX_OFF,
    PJ_KIND,
    PJ_N_POST,
    PJ_N_PRE,
    PJ_NCOL,
    PJ_PLAST,
    PJ_PTR_OFF,
    PJ_SHIFT,
    PJ_SRC_GROUP,
    PJ_TGT_START,
    PJ_W_OFF,
    PL_ALPHA_POST,
    PL_ALPHA_PRE,
    PL_NCOL,
    PL_PROJ,
    PL_RULE,
    PL_W_MAX,
    PL_W_MIN,
    PL_XPOST_OFF,
    PL_XPRE_OFF,
    PROGRAM_ARRAYS,
    RULE_ADDITIVE,
    RULE_MULTIPLICATIVE,
    Program,
)

FORMAT_NAME = "spikeedge-model"
FORMAT_VERSION = 1

_POP_KEYS = ("name", "n", "tau_m", "tau_s", "v_th", "v_reset", "v_rest", "t_ref", "reset",
             "theta_plus", "tau_theta")
_STDP_KEYS = ("tau_pre", "tau_post", "a_pre", "a_post", "w_min", "w_max", "rule")


def _network_to_json(net: Network, arrays: dict) -> dict:
    pops = []
    for g, p in enumerate(net.populations):
        d = {k: getattr(p, k) for k in _POP_KEYS}
        d["tau_s"] = [float(t) for t in p.tau_s]
        arrays[f"net/pop{g}/bias"] = p.bias_array()
        arrays[f"net/pop{g}/v_init"] = p.v_init_array()
        pops.append(d)
    projs = []
    for i, pr in enumerate(net.projections):
        d = {"source": pr.source, "target": pr.target, "channel": pr.channel, "name": pr.name,
             "sparse": pr.sparse,
             "stdp": None if pr.stdp is None else {k: getattr(pr.stdp, k) for k in _STDP_KEYS}}
        arrays[f"net/proj{i}/weights"] = np.asarray(pr.weights, np.float64)
        if pr.sparse:
            arrays[f"net/proj{i}/indptr"] = np.asarray(pr.indptr, np.int64)
            arrays[f"net/proj{i}/indices"] = np.asarray(pr.indices, np.int64)
        projs.append(d)
    return {"name": net.name, "dt": net.dt, "n_inputs": net.n_inputs, "populations": pops,
            "projections": projs}


def save_model(path, program: Program, metadata: dict | None = None,
               extras: dict | None = None) -> None:
    """Write ``program`` (and the physical network it came from) to ``path`` atomically.

    ``metadata`` is any JSON-serialisable dict (encoder settings, labels, model card facts);
    ``extras`` maps names to numeric arrays that travel with the model (for example a trained
    readout); they come back as ``program.extras``. Both default to what ``program`` carries."""
    arrays = {f"prog/{k}": getattr(program, k) for k in PROGRAM_ARRAYS}
    if metadata is None:
        metadata = program.report.get("metadata", {})
    extras = program.extras if extras is None else extras
    for name, a in (extras or {}).items():
        a = np.asarray(a)
        if not isinstance(name, str) or not name or a.dtype.kind not in "biuf":
            raise ModelFormatError(f"extra {name!r}: needs a non-empty name and a numeric "
                                   f"array, got {a.dtype}")
        arrays[f"extra/{name}"] = a
    header = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "contract_version": C.CONTRACT_VERSION,
        "dt": program.dt, "n_in": program.n_in, "pop_names": list(program.pop_names),
        "proj_names": list(program.proj_names), "scales": [float(s) for s in program.scales],
        "v_rest": [float(v) for v in program.v_rest], "metadata": metadata or {},
        "network": None if program.network is None else _network_to_json(program.network,
                                                                          arrays),
    }
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fail(path, what):
    raise ModelFormatError(f"model file {path}: {what}")


def _get(path, z, key, dtype, ndim):
    if key not in z:
        _fail(path, f"missing array {key!r}")
    a = z[key]
    if a.dtype != np.dtype(dtype):
        _fail(path, f"array {key!r} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    if a.ndim != ndim:
        _fail(path, f"array {key!r} has {a.ndim} dimensions, expected {ndim}")
    return np.ascontiguousarray(a).copy()


def _network_from_json(path, d: dict, z) -> Network:
    try:
        pops = []
        for g, pd in enumerate(d["populations"]):
            kw = {k: pd[k] for k in _POP_KEYS}
            kw["tau_s"] = tuple(kw["tau_s"])
            pops.append(Population(bias=_get(path, z, f"net/pop{g}/bias", np.float64, 1),
                                   v_init=_get(path, z, f"net/pop{g}/v_init", np.float64, 1),
                                   **kw))
        projs = []
        for i, prd in enumerate(d["projections"]):
            sparse = bool(prd["sparse"])
            stdp = None if prd["stdp"] is None else STDP(**{k: prd["stdp"][k]
                                                            for k in _STDP_KEYS})
            w = _get(path, z, f"net/proj{i}/weights", np.float64, 1 if sparse else 2)
            projs.append(Projection(
                source=prd["source"], target=prd["target"], weights=w, channel=prd["channel"],
                name=prd["name"], stdp=stdp,
                indptr=_get(path, z, f"net/proj{i}/indptr", np.int64, 1) if sparse else None,
                indices=_get(path, z, f"net/proj{i}/indices", np.int64, 1) if sparse else None))
        net = Network(n_inputs=d["n_inputs"], populations=pops, projections=projs, dt=d["dt"],
                      name=d["name"])
    except (KeyError, TypeError) as exc:
        _fail(path, f"header 'network' is incomplete or malformed ({exc!r})")
    try:
        return net.validate()
    except ValueError as exc:
        _fail(path, f"the stored network is invalid: {exc}")


def _validate_program(path, prog: Program) -> None:
    N, K, n_in = prog.n_neurons, prog.n_channels, prog.n_in
    for name in ("bias", "theta", "v_reset", "reset_sub", "ref_steps", "v_init", "theta_plus",
                 "alpha_theta"):
        if getattr(prog, name).shape != (N,):
            _fail(path, f"array prog/{name} must have shape ({N},)")
    for name in ("alpha_s", "beta"):
        if getattr(prog, name).shape != (K, N):
            _fail(path, f"array prog/{name} must have shape ({K}, {N})")
    if not 1 <= K <= C.MAX_CHANNELS:
        _fail(path, f"{K} synapse channels; 1..{C.MAX_CHANNELS} allowed")
    for name in ("alpha_m", "alpha_s", "beta", "alpha_theta"):
        a = getattr(prog, name)
        if a.size and (a.min() < 0 or a.max() > C.DECAY_ONE):
            _fail(path, f"prog/{name} outside 0..2**{C.DECAY_FRAC_BITS}")
    if prog.reset_sub.size and prog.reset_sub.max() > 1:
        _fail(path, "prog/reset_sub must be 0 or 1")
    if prog.ref_steps.size and (prog.ref_steps.min() < 0 or prog.ref_steps.max() > C.REF_MAX):
        _fail(path, f"prog/ref_steps outside 0..{C.REF_MAX}")
    G = prog.pop_n.shape[0]
    if G != len(prog.pop_names) or prog.pop_start.shape != (G,) or G == 0:
        _fail(path, "pop_start/pop_n do not match pop_names")
    if np.any(prog.pop_n < 1) or prog.pop_start[0] != 0 or \
            np.any(prog.pop_start[1:] != np.cumsum(prog.pop_n)[:-1]) or prog.pop_n.sum() != N:
        _fail(path, "pop_start/pop_n do not tile the neurons")
    if prog.proj.ndim != 2 or prog.proj.shape[1] != PJ_NCOL:
        _fail(path, f"prog/proj must have shape [P, {PJ_NCOL}]")
    if prog.plast.ndim != 2 or prog.plast.shape[1] != PL_NCOL:
        _fail(path, f"prog/plast must have shape [L, {PL_NCOL}]")
    sizes = [n_in] + [int(n) for n in prog.pop_n]
    nw, nptr = prog.weights.shape[0], prog.csr_ptr.shape[0]
    for p, row in enumerate(prog.proj):
        where = f"projection {p}"
        kind, g, n_pre, tgt0, n_post = (int(row[c]) for c in (PJ_KIND, PJ_SRC_GROUP, PJ_N_PRE,
                                                               PJ_TGT_START, PJ_N_POST))
        if kind not in (KIND_DENSE, KIND_CSR) or not 0 <= g <= G or n_pre != sizes[g]:
            _fail(path, f"{where}: bad kind, source group or n_pre")
        if tgt0 not in set(int(s) for s in prog.pop_start) or \
                n_post != int(prog.pop_n[list(prog.pop_start).index(tgt0)]):
            _fail(path, f"{where}: target does not match a population")
        if not 0 <= row[PJ_CHANNEL] < K or not 0 <= row[PJ_SHIFT] <= C.W_SHIFT_MAX:
            _fail(path, f"{where}: channel or shift out of range")
        off = int(row[PJ_W_OFF])
        if kind == KIND_DENSE:
            if off < 0 or off + n_pre * n_post > nw:
                _fail(path, f"{where}: dense weights run past the weight array")
        else:
            po = int(row[PJ_PTR_OFF])
            if po < 0 or po + n_pre + 1 > nptr:
                _fail(path, f"{where}: CSR pointers run past csr_ptr")
            ptr = prog.csr_ptr[po:po + n_pre + 1]
            io = int(row[PJ_IDX_OFF])
            if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or off < 0 or off + int(ptr[-1]) > nw \
                    or io < 0 or io + int(ptr[-1]) > prog.csr_idx.shape[0]:
                _fail(path, f"{where}: CSR pointers are not monotonic or run past the arrays")
            idx = prog.csr_idx[io:io + int(ptr[-1])]
            if idx.size and (idx.min() < 0 or idx.max() >= n_post):
                _fail(path, f"{where}: CSR indices outside 0..{n_post - 1}")
        pl = int(row[PJ_PLAST])
        if pl != -1 and (not 0 <= pl < prog.plast.shape[0] or kind != KIND_DENSE):
            _fail(path, f"{where}: bad plasticity index {pl}")
    xpre = xpost = 0
    for i, lrow in enumerate(prog.plast):
        p = int(lrow[PL_PROJ])
        if not 0 <= p < prog.proj.shape[0] or int(prog.proj[p, PJ_PLAST]) != i:
            _fail(path, f"plasticity rule {i}: does not point back to its projection")
        if lrow[PL_XPRE_OFF] != xpre or lrow[PL_XPOST_OFF] != xpost:
            _fail(path, f"plasticity rule {i}: trace offsets are not contiguous")
        xpre += int(prog.proj[p, PJ_N_PRE])
        xpost += int(prog.proj[p, PJ_N_POST])
        for c in (PL_ALPHA_PRE, PL_ALPHA_POST):
            if not 0 <= lrow[c] <= C.DECAY_ONE:
                _fail(path, f"plasticity rule {i}: trace decay outside 0..2**24")
        if not C.INT16_MIN <= lrow[PL_W_MIN] < lrow[PL_W_MAX] <= C.INT16_MAX:
            _fail(path, f"plasticity rule {i}: needs int16 bounds with w_min < w_max")
        if lrow[PL_RULE] not in (RULE_ADDITIVE, RULE_MULTIPLICATIVE):
            _fail(path, f"plasticity rule {i}: unknown rule code {int(lrow[PL_RULE])}")


def load_model(path) -> Program:
    """Read and check a model file; returns a Program (with ``network`` when stored)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelFormatError(f"model file {path}: cannot read it ({exc.strerror})") from None
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        files = set(z.files)
        arrays = {k: z[k] for k in files}
    except Exception as exc:    # zipfile/zlib/numpy raise many types on a corrupt archive
        raise ModelFormatError(f"model file {path}: not a readable spikeedge model "
                               f"(truncated or corrupt archive: {exc})") from None
    for k in sorted(files):     # a member not stored as .npy comes back as raw bytes
        if not isinstance(arrays[k], np.ndarray):
            _fail(path, f"member {k!r} is not a .npy array")
    if not isinstance(arrays, dict) or "__header__" not in files:
        _fail(path, "no __header__ member (not a spikeedge model file)")
    hb = arrays["__header__"]
    if hb.dtype != np.uint8 or hb.ndim != 1:
        _fail(path, "__header__ must be UTF-8 JSON bytes")
    try:
        header = json.loads(hb.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(path, f"__header__ is not valid UTF-8 JSON ({exc})")
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        _fail(path, f"header 'format' must be {FORMAT_NAME!r}")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        _fail(path, f"header 'version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        _fail(path, f"format version {version} is newer than this spikeedge understands "
                    f"({FORMAT_VERSION}); upgrade spikeedge")
    if header.get("contract_version") != C.CONTRACT_VERSION:
        _fail(path, f"fixed-point contract version {header.get('contract_version')!r} "
                    f"differs from this build's {C.CONTRACT_VERSION}")
    try:
        dt = float(header["dt"])
        n_in = int(header["n_in"])
        pop_names = [str(s) for s in header["pop_names"]]
        proj_names = [str(s) for s in header["proj_names"]]
        scales = np.asarray(header["scales"], np.float64)
        v_rest = np.asarray(header["v_rest"], np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        _fail(path, f"header field missing or malformed ({exc!r})")
    if not (dt > 0 and np.isfinite(dt)) or n_in < 0:
        _fail(path, f"header dt must be positive and n_in >= 0 (dt={dt}, n_in={n_in})")
    ndim = {"alpha_s": 2, "beta": 2, "proj": 2, "plast": 2}
    prog_arrays = {k: _get(path, arrays, f"prog/{k}", dt_, ndim.get(k, 1))
                   for k, dt_ in PROGRAM_ARRAYS.items()}
    if len(scales) != len(pop_names) or len(v_rest) != len(pop_names) or \
            len(proj_names) != prog_arrays["proj"].shape[0]:
        _fail(path, "header names/scales do not match the arrays")
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        _fail(path, "header 'metadata' must be a JSON object")
    extras = {}
    for k in files:
        if k.startswith("extra/"):
            a = arrays[k]
            if a.dtype.kind not in "biuf":
                _fail(path, f"extra array {k!r} has non-numeric dtype {a.dtype}")
            extras[k[len("extra/"):]] = np.ascontiguousarray(a).copy()
    prog = Program(dt=dt, n_in=n_in, pop_names=pop_names, scales=scales, v_rest=v_rest,
                   proj_names=proj_names, report={"metadata": metadata}, extras=extras,
                   **prog_arrays)
    _validate_program(path, prog)
    if header.get("network") is not None:
        prog.network = _network_from_json(path, header["network"], arrays)
    return prog


def read_metadata(path) -> dict:
    return load_model(path).report.get("metadata", {})
