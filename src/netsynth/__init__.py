"""netsynth: lightweight class-conditioned generative models of network flows, and the evidence of how good they are."""
from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet

__version__ = "0.1.0"
__all__ = ["FlowSet", "NetsynthError", "__version__"]
