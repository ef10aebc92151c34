"""RMSProp as in the paper (TF-style: eps inside the sqrt, mean-square initialised to one), weight decay only
on conv/dense weights."""
from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn, ops

_NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


def param_groups(net: nn.Cell, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in net.trainable_params():
        (no_decay if p.name.endswith(_NO_DECAY_SUFFIXES) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class RMSPropTF(nn.Optimizer):
    """TF's RMSProp (timm's ``RMSpropTF``), written with plain ops:

        ms  ← ρ·ms + (1-ρ)·g²          (mean square, starts at 1)
        mom ← μ·mom + lr·g / sqrt(ms + ε)
        w   ← w - mom

    Not ``nn.RMSProp``: MindSpore 2.10's CPU ``ApplyRMSProp`` kernel computes ``g / (sqrt(ms) + ε)`` for tensors of
    8 or more elements (its vectorised path) and ``g / sqrt(ms + ε)`` for smaller ones. With the paper's ε = 1e-3 a
    weight whose mean square has decayed below ε then steps up to 30x further than in TF/timm, which made training
    learn slower than timm's and less stably. Slot names (``mean_square.*``, ``moment.*``) are ``nn.RMSProp``'s, so
    training checkpoints written before stay resumable.
    """

    def __init__(self, params, learning_rate, decay: float = 0.9, momentum: float = 0.9, epsilon: float = 1e-3,
                 weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, params, weight_decay)
        if not 0.0 <= decay < 1.0 or momentum < 0.0 or epsilon <= 0.0:
            raise ValueError(f"RMSProp needs 0 <= decay < 1, momentum >= 0 and epsilon > 0 "
                             f"(got {decay}, {momentum}, {epsilon})")
        self.decay, self.momentum, self.epsilon = decay, momentum, epsilon
        self.ms = self._parameters.clone(prefix="mean_square", init="ones")
        self.moment = self._parameters.clone(prefix="moment", init="zeros")

    def construct(self, gradients):
        gradients = self.decay_weight(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        done = True
        for i, (weight, mean_square, moment, grad) in enumerate(zip(self._parameters, self.ms, self.moment,
                                                                     gradients)):
            step_lr = lr[i] if self.is_group_lr else lr
            grad = grad.astype(mean_square.dtype)
            ms_new = mean_square * self.decay + grad * grad * (1.0 - self.decay)
            mom_new = moment * self.momentum + step_lr * grad / ops.sqrt(ms_new + self.epsilon)
            done = ops.depend(done, ops.assign(mean_square, ms_new))
            done = ops.depend(done, ops.assign(moment, mom_new))
            done = ops.depend(done, ops.assign(weight, weight - mom_new.astype(weight.dtype)))
        return done


def create_rmsprop(net: nn.Cell, lr_per_step: np.ndarray, weight_decay: float = 1e-5, decay: float = 0.9,
                   momentum: float = 0.9, eps: float = 1e-3) -> nn.Optimizer:
    """The paper's optimizer over ``net``: ``RMSPropTF`` with a per-step LR array (index = global step) and
    weight decay on conv/dense weights only."""
    return RMSPropTF(param_groups(net, weight_decay), learning_rate=Tensor(lr_per_step), decay=decay,
                     momentum=momentum, epsilon=eps)
