"""netsynth: lightweight class-conditioned generative models of network flows, and the evidence of how good they are."""
import logging

# torchao (imported by transformers and diffusers when installed) logs a warning for each CUDA-only kernel
# library it cannot load on a CPU machine, and torch warns about its enum registration; neither matters here.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

from netsynth.errors import NetsynthError  # noqa: E402
from netsynth.flows import FlowSet  # noqa: E402
from netsynth.models.base import create, load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["FlowSet", "NetsynthError", "create", "load", "__version__"]
