"""RMSProp as in the paper (TF-style: eps inside the sqrt, mean-square initialised to one), weight decay only
on conv/dense weights."""
from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn

_NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


def param_groups(net: nn.Cell, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in net.trainable_params():
        (no_decay if p.name.endswith(_NO_DECAY_SUFFIXES) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_rmsprop(net: nn.Cell, lr_per_step: np.ndarray, weight_decay: float = 1e-5, decay: float = 0.9,
                   momentum: float = 0.9, eps: float = 1e-3) -> nn.Optimizer:
    """MindSpore's ``nn.RMSProp`` is TF's RMSProp (timm's ``rmsproptf``): ms = ρ·ms + (1-ρ)·g²,
    mom = μ·mom + lr·g / sqrt(ms + ε), mean-square starts at 1."""
    return nn.RMSProp(param_groups(net, weight_decay), learning_rate=Tensor(lr_per_step), decay=decay,
                      momentum=momentum, epsilon=eps)
