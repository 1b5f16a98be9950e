"""Exception types of spikeedge. Every error a user can cause by bad input is one of these,
with a message that says what is wrong, where, and what to do."""


class SpikeEdgeError(Exception):
    """Base class of every error spikeedge raises on purpose."""


class NetworkError(SpikeEdgeError, ValueError):
    """A network description is inconsistent (unknown population, wrong shape, bad value)."""


class QuantizationError(SpikeEdgeError, ValueError):
    """Quantizing a network would break it (silent layer, saturation beyond budget)."""


class ModelFormatError(SpikeEdgeError, ValueError):
    """A model file is malformed, truncated, of a future version, or inconsistent."""


class BackendError(SpikeEdgeError, RuntimeError):
    """The requested kernel backend is not available."""


class InputError(SpikeEdgeError, ValueError):
    """Input given to the engine has the wrong shape, type or values."""
