"""netsynth: lightweight class-conditioned generative models of network flows, and the evidence of how good they are."""
import logging
import os

# OpenMP threads that wait by spinning hold their core: two netsynth processes on 2 cores ran at 0.23-0.31 of their
# speed alone, waiting passively at 0.65-0.68. But a thread that sleeps at once must be woken for every parallel
# region, and the operations of a sampler step come microseconds apart: a short spin first (GOMP_SPINCOUNT, read by
# libgomp, the OpenMP of torch's Linux wheels) sampled llama 1.4x faster in batches than sleeping at once, and two
# processes still ran at 0.55 (BENCHMARKS.md, benchmarks/concurrency.py). Set before torch is imported; the user's
# own settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from netsynth.machine import keep_freed_memory  # noqa: E402

keep_freed_memory()

# torchao (imported by transformers and diffusers when installed) logs a warning for each CUDA-only kernel
# library it cannot load on a CPU machine, torch warns about its enum registration, diffusers about
# torchao tensor types it would need only to load torchao-serialized checkpoints, and transformers about mamba's
# CUDA kernels on a CPU too (from hub_kernels in recent releases, modeling_mamba in older ones; on a GPU netsynth
# says it in one line: models/mamba.py); none matters here.
for name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer",
             "transformers.integrations.hub_kernels", "transformers.models.mamba.modeling_mamba"):
    logging.getLogger(name).setLevel(logging.ERROR)

from netsynth.errors import NetsynthError  # noqa: E402
from netsynth.flows import FlowSet  # noqa: E402
from netsynth.models.base import create, load  # noqa: E402

__version__ = "0.1.0"
__all__ = ["FlowSet", "NetsynthError", "create", "load", "__version__"]
