"""The data-parallel step is timm's DDP step: the ranks' gradients averaged (not summed, not one rank's), the
optimizer applied once to that mean, every rank left with the same weights. RMSProp hides most of a gradient-scale
error in a learning curve (it divides by the gradients' own size), so this is checked on one step directly."""
import subprocess
import sys

import numpy as np
import pytest
from mindspore import Tensor

from helpers import ROOT, SCRIPT_ENV
from src.launch import Layout, free_port, msrun_command

sys.path.insert(0, str(ROOT / "tests"))
import dp_step_worker as worker  # noqa: E402


def _apply(init: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One step of create_rmsprop from ``init`` with ``grads``, in one process."""
    _, optimizer = worker.build()
    for p in optimizer.parameters:
        p.set_data(Tensor(init[p.name]))
    optimizer(tuple(Tensor(grads[p.name]) for p in optimizer.parameters))
    return {p.name: p.asnumpy() for p in optimizer.parameters}


def _rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray], init: dict[str, np.ndarray]) -> float:
    """Worst relative difference of two updates over the tensors."""
    return max(float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k] - init[k]), 1e-12)) for k in b)


@pytest.mark.slow
def test_a_data_parallel_step_applies_the_mean_of_the_ranks_gradients(tmp_path):
    cmd = msrun_command(Layout(ranks=2), free_port(), tmp_path / "logs",
                        [str(ROOT / "tests" / "dp_step_worker.py"), str(tmp_path)])
    run = subprocess.run(cmd, cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("worker_*.log"))
    assert run.returncode == 0, run.stdout[-2000:] + logs[-3000:]
    ranks = [np.load(tmp_path / f"rank_{r}.npz") for r in range(2)]
    part = {kind: [{k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(kind + "/")} for f in ranks]
            for kind in ("init", "grad", "after")}
    init, after = part["init"][0], part["after"][0]
    assert all(np.array_equal(part["init"][1][k], v) for k, v in init.items())  # the same start on both
    assert all(np.array_equal(part["after"][1][k], v) for k, v in after.items())  # and the same step
    grads = part["grad"]
    assert _rel(grads[0], grads[1], {k: 0 * v for k, v in grads[1].items()}) > 0.1  # the ranks' batches differ
    mean = _apply(init, {k: (grads[0][k] + grads[1][k]) / 2 for k in init})
    assert _rel(after, mean, init) < 1e-4  # float32 rounding (the loss scale 1024, the reduce order): 2e-6 measured
    # what the check tells apart: a summed gradient, or one rank's alone, moves the weights elsewhere
    assert _rel(after, _apply(init, {k: grads[0][k] + grads[1][k] for k in init}), init) > 0.1
    assert _rel(after, _apply(init, grads[0]), init) > 0.1
