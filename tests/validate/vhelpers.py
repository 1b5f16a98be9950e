"""Shared helpers of the Brian2 validation tests (imported by name, like testutil)."""
import numpy as np

from spikeedge import Engine, quantize
from spikeedge.tools.validate import metrics
from spikeedge.tools.validate._brian import brian2
from spikeedge.tools.validate.integer_twin import IntegerTwin


def b2():
    return brian2("numpy")


def integer_mismatch(net_or_prog, inp, backend="auto", engine_prog=None, seg=None):
    """Run the engine (on ``engine_prog`` if given: a perturbed program) and the Brian2 integer
    twin of the (unperturbed) program over ``inp``; None when exact, else the first mismatch."""
    prog = net_or_prog if hasattr(net_or_prog, "alpha_m") else quantize(net_or_prog)
    eng = Engine(engine_prog if engine_prog is not None else prog, backend)
    twin = IntegerTwin(b2(), prog, inp)
    st = eng.initial_state()
    T = inp.shape[0]
    seg = seg or max(T, 1)
    for a in range(0, T, seg):
        chunk = inp[a:a + seg]
        s, st, rec = eng.run_chunk(chunk, st, record=True)
        b = twin.run(chunk.shape[0])
        for var, x, y in (("spikes", s, b["spikes"]), ("v", rec["v"], b["v"]),
                          ("i_syn", rec["i_syn"], b["i_syn"])):
            m = metrics.first_mismatch(var, x, y, a)
            if m:
                return m
        m = metrics.first_mismatch("theta_a", st.theta_a[None], twin.theta_a()[None], a)
        if m:
            return m
        if prog.plastic:
            m = metrics.first_mismatch("w", st.w[None], twin.weights()[None], a)
            if m:
                return m
            x_pre, x_post = twin.traces()
            m = (metrics.first_mismatch("x_pre", st.x_pre[None], x_pre[None], a)
                 or metrics.first_mismatch("x_post", st.x_post[None], x_post[None], a))
            if m:
                return m
    return None


def poisson(rng, T, n, p):
    return (rng.random((T, n)) < p).astype(np.uint8)
