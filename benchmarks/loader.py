"""The training loader: netsynth's WholeBatches (a batch per read) beside a plain TensorDataset (a flow per read,
then a stack), the reference, over what llama trains on (its token ids) of IoT Sentinel's training split.

    python benchmarks/loader.py [--train train.parquet] [--batches 256,4096,16384]

Prints the time of one epoch's reading and the flows per second it allows, and checks that both give the same
batches in the same order.
"""
import argparse
import time

import netsynth  # before torch: its OpenMP settings apply only then
import torch
from common import iot_train, prepared
from netsynth.train import WholeBatches, _as_read

parser = argparse.ArgumentParser()
parser.add_argument("--train", help="a FlowSet instead of the IoT Sentinel training split")
parser.add_argument("--batches", default="256,4096,16384")
args = parser.parse_args()
train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
tensors = prepared("llama", train)._tensors(train)
print(f"{len(train)} flows, tensors {[tuple(t.shape) for t in tensors]}")


def epoch_seconds(loader, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in loader:
            pass
        best = min(best, time.perf_counter() - t0)
    return best


for batch in map(int, args.batches.split(",")):
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=batch, shuffle=True,
                                        generator=torch.Generator().manual_seed(0))
    whole = torch.utils.data.DataLoader(WholeBatches(*tensors), batch_size=batch, shuffle=True,
                                        generator=torch.Generator().manual_seed(0), collate_fn=_as_read)
    same = all(all(torch.equal(a, b) for a, b in zip(x, y)) for x, y in zip(plain, whole, strict=True))
    slow, fast = epoch_seconds(plain), epoch_seconds(whole)
    print(f"batch {batch:6d}: flow by flow {1000 * slow:6.1f} ms an epoch ({len(train) / slow:9.0f} flows/s), "
          f"whole batches {1000 * fast:5.2f} ms ({len(train) / fast:10.0f} flows/s), {slow / fast:5.1f}x; "
          f"same batches: {same}")
