"""One data-parallel step under msrun, for test_data_parallel.py: train.py's context, then each rank takes its
own batch's gradient alone and the trainer's step (TrainStep with ``world``); writes the initial weights, that
gradient and the weights after the step to OUT/rank_R.npz."""
import sys
from pathlib import Path
from types import SimpleNamespace

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.context import setup_context  # noqa: E402
from tinynet_ms import create_model  # noqa: E402
from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop  # noqa: E402

BATCH, SIZE, CLASSES, LR = 8, 32, 10, 0.01


def build() -> tuple[nn.Cell, nn.Optimizer]:
    """The network and optimizer of the step (the test builds the same to apply the expected update)."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=CLASSES, drop_rate=0.2, cpu_kernels=True)
    return net, create_rmsprop(net, np.full(4, LR, np.float32))


def main(out: Path) -> None:
    ctx = setup_context(SimpleNamespace(device_target="CPU", data_sink="auto", mode="graph", deterministic=False,
                                        seed=0, amp_level="O0", loss_scale_mode="auto", device_id=0))  # as train.py
    rank, world = ctx.rank, ctx.world
    net, optimizer = build()
    net.set_train(True)
    rng = np.random.default_rng(0)  # every rank draws the whole global batch and takes its share
    images = rng.standard_normal((world, BATCH, 3, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (world, BATCH)).astype(np.int32)
    noise = rng.random((world, BATCH, net.noise_size)).astype(np.float32)
    batch = Tensor(images[rank]), Tensor(labels[rank]), Tensor(noise[rank])
    loss_net = WithLoss(net, nn.CrossEntropyLoss(label_smoothing=0.1))
    saved = {f"init/{p.name}": p.asnumpy().copy() for p in optimizer.parameters}  # (asnumpy may share memory)
    grads = ms.grad(loss_net, None, optimizer.parameters)(*batch)
    saved.update({f"grad/{p.name}": g.asnumpy() for p, g in zip(optimizer.parameters, grads)})
    step = TrainStep(loss_net, optimizer, 1024.0, world=world)
    step(*batch)
    saved.update({f"after/{p.name}": p.asnumpy() for p in optimizer.parameters})
    np.savez(out / f"rank_{rank}.npz", **saved)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
