"""spikeedge: an embedded real-time spiking neural network runtime.

Describe a network in physical units (``Network``, ``Population``, ``Projection``), quantize it
to the fixed-point contract (``quantize``), and run it (``Engine``) on the compiled kernels or the
golden NumPy reference. ``spikeedge info`` tells which backend is active.
"""
from .contract import CONTRACT_VERSION
from .engine import Engine
from .errors import (
                     BackendError,
                     InputError,
                     ModelFormatError,
                     NetworkError,
                     QuantizationError,
                     SpikeEdgeError,
)
from .modelfile import load_model, save_model
from .network import INPUT, STDP, Network, Population, Projection
from .program import Program, State
from .quantize import quantize

__version__ = "0.1.0"

__all__ = [
    "CONTRACT_VERSION", "Engine", "BackendError", "InputError", "ModelFormatError",
    "NetworkError", "QuantizationError", "SpikeEdgeError", "load_model", "save_model", "INPUT",
    "STDP", "Network", "Population", "Projection", "Program", "State", "quantize", "__version__",
]
