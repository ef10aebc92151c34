import os

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings drown pytest output

from pathlib import Path  # noqa: E402

import mindspore as ms  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent

ms.set_device("CPU")


@pytest.fixture(params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request):
    previous = ms.get_context("mode")
    ms.set_context(mode=request.param)
    yield request.param
    ms.set_context(mode=previous)
