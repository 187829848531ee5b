"""netsynth: lightweight class-conditioned generative models of network flows, and the evidence of how good they are."""
import logging
import os

# OpenMP threads that wait by spinning hold their core: two netsynth processes on 2 cores ran at 0.31 of their
# speed alone; waiting passively, at 0.65, for about 6 % alone (BENCHMARKS.md, benchmarks/concurrency.py).
# Set before torch is imported; the user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# torchao (imported by transformers and diffusers when installed) logs a warning for each CUDA-only kernel
# library it cannot load on a CPU machine, torch warns about its enum registration, and diffusers about
# torchao tensor types it would need only to load torchao-serialized checkpoints; none matters here.
for name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer"):
    logging.getLogger(name).setLevel(logging.ERROR)

from netsynth.errors import NetsynthError  # noqa: E402
from netsynth.flows import FlowSet  # noqa: E402
from netsynth.models.base import create, load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["FlowSet", "NetsynthError", "create", "load", "__version__"]
