import os
from pathlib import Path

# The suite runs on the CPU, as CI does, also on a machine with a GPU: its tests hand CPU tensors to models and
# compare results that CUDA kernels round or order otherwise. The GPU's own tests (marked cuda) run where it is
# visible: NETSYNTH_TEST_CUDA=1 pytest -m cuda
if os.environ.get("NETSYNTH_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = Path(os.environ.get("NETSYNTH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
requires_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                     reason=f"real data folder {SHARED_DATA} is absent (CI has it beside the clone)")


def requires_cuda(test):
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(),
                                               reason="needs a CUDA GPU and NETSYNTH_TEST_CUDA=1")(test))


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory):
    """The machine measurements that netsynth keeps (precision.cache_file) go to a folder of the session, not the
    user's cache."""
    os.environ["NETSYNTH_CACHE_DIR"] = str(tmp_path_factory.mktemp("netsynth-cache"))


@pytest.fixture(scope="session")
def iot_flows():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    from netsynth.ingest import ingest
    flows, _ = ingest([SHARED_DATA / "iot-sentinel"])
    return flows


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    from netsynth.demo import write_demo_data
    out = tmp_path_factory.mktemp("demo") / "data"
    write_demo_data(out, flows_per_class=24, files_per_class=4, seed=0)
    return out


@pytest.fixture(scope="session")
def demo_flows(demo_dir):
    from netsynth.ingest import ingest
    flows, _ = ingest([demo_dir], workers=1)
    return flows


@pytest.fixture(scope="session")
def small_train(request):
    """A small real subset (IoT Sentinel, 4 classes, at most 30 flows each); the demo corpus without ../shared."""
    if SHARED_DATA.is_dir():
        flows = request.getfixturevalue("iot_flows").select(["Aria", "HueBridge", "D-LinkCam", "WeMoLink"])
    else:
        flows = request.getfixturevalue("demo_flows")
    keep = np.concatenate([np.flatnonzero(flows.codes == c)[:30] for c in range(len(flows.classes))])
    return flows.take(keep)
