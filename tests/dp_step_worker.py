"""One data-parallel step under msrun, for test_data_parallel.py: each rank takes its own batch's gradient alone,
then the trainer's step (TrainStep with ``world``); writes the initial weights, that gradient and the weights after
the step to OUT/rank_R.npz."""
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn
from mindspore.communication import get_group_size, get_rank, init

from tinynet_ms import create_model
from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop

BATCH, SIZE, CLASSES, LR = 8, 32, 10, 0.01


def main(out: Path) -> None:
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    init()
    rank, world = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=world)
    ms.set_seed(0)
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=CLASSES, drop_rate=0.2, cpu_kernels=True)
    net.set_train(True)
    rng = np.random.default_rng(0)  # every rank draws the whole global batch and takes its share
    images = rng.standard_normal((world, BATCH, 3, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (world, BATCH)).astype(np.int32)
    noise = rng.random((world, BATCH, net.noise_size)).astype(np.float32)
    batch = Tensor(images[rank]), Tensor(labels[rank]), Tensor(noise[rank])
    loss_net = WithLoss(net, nn.CrossEntropyLoss(label_smoothing=0.1))
    optimizer = create_rmsprop(net, np.full(4, LR, np.float32))
    saved = {f"init/{p.name}": p.asnumpy().copy() for p in optimizer.parameters}  # (asnumpy may share memory)
    grads = ms.grad(loss_net, None, optimizer.parameters)(*batch)
    saved.update({f"grad/{p.name}": g.asnumpy() for p, g in zip(optimizer.parameters, grads)})
    step = TrainStep(loss_net, optimizer, 1024.0, world=world)
    step(*batch)
    saved.update({f"after/{p.name}": p.asnumpy() for p in optimizer.parameters})
    np.savez(out / f"rank_{rank}.npz", **saved)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
