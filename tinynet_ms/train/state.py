"""Full training state in one .ckpt: network, EMA, optimizer slots, loss scale, epoch and best top-1.

Network weights keep their plain names, so ``create_model(checkpoint_path=last.ckpt)`` works; the rest
lives under ``ema.``, ``optimizer.`` and ``train_state.``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore import Tensor, nn

from tinynet_ms.weights import (ema_weights, load_arrays_into, network_weights, param_arrays, read_checkpoint,
                                  save_checkpoint_atomic)
from tinynet_ms.train.step import TrainStep


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    best_top1: float = -1.0
    best_epoch: int = -1
    best_is_ema: int = -1  # whose weights best.ckpt holds: 1 the EMA's, 0 the model's, -1 unknown (an older file)
    # What the numbers depend on besides the config and the data (0: not recorded): the C++ random crop/flip
    # draw per data worker, and CPU kernels split their sums by thread.
    data_workers: int = 0
    cpu_threads: int = 0
    global_batch: int = 0  # devices x batch_size: what lr_scaling linear scales the lr by


_CONDITIONS = {"data_workers": "data workers (the C++ crop/flip draws are per worker)",
               "cpu_threads": "CPU kernel threads (kernels split their sums by thread)",
               "global_batch": "global batch (devices x batch_size: the steps per epoch and, with lr_scaling "
                               "linear, the lr follow it)"}


def changed_conditions(saved: TrainState, now: TrainState) -> list[str]:
    """Where this process differs from the one that wrote ``saved`` in what bit-exact resumption needs."""
    return [f"{what}: {getattr(saved, key)} then, {getattr(now, key)} now" for key, what in _CONDITIONS.items()
            if getattr(saved, key) and getattr(now, key) and getattr(saved, key) != getattr(now, key)]


def _optimizer_slots(optimizer: nn.Optimizer, net: nn.Cell) -> dict:
    """Optimizer state (moments, mean squares, step) by structural name; the network's own parameters and
    the LR schedule (rebuilt from the config on resume, so --epochs can be extended) are left out."""
    own = {id(p) for p in net.get_parameters()}
    return {name: p for name, p in optimizer.parameters_and_names()
            if id(p) not in own and not name.startswith("learning_rate")}


def save_train_state(path: str | os.PathLike, net: nn.Cell, optimizer: nn.Optimizer, step: TrainStep,
                     state: TrainState, ema_net: nn.Cell | None = None,
                     class_names: Sequence[str] | None = None) -> Path:
    """Everything a run needs to continue exactly, plus ``class_names`` (what the outputs mean: the weights are
    usable on their own, by eval, export and predict)."""
    arrays = param_arrays(net)
    if ema_net is not None:
        arrays.update({f"ema.{k}": v for k, v in param_arrays(ema_net).items()})
    arrays.update({f"optimizer.{k}": p.asnumpy() for k, p in _optimizer_slots(optimizer, net).items()})
    arrays.update({f"train_state.{k}": p.asnumpy() for k, p in step.state_parameters().items()})
    arrays["train_state.epoch"] = np.array(state.epoch, np.int32)
    arrays["train_state.best_top1"] = np.array(state.best_top1, np.float32)
    arrays["train_state.best_epoch"] = np.array(state.best_epoch, np.int32)
    arrays["train_state.best_is_ema"] = np.array(state.best_is_ema, np.int32)
    for key in _CONDITIONS:
        arrays[f"train_state.{key}"] = np.array(getattr(state, key), np.int32)
    return save_checkpoint_atomic(arrays, path, class_names=class_names)


def load_train_state(path: str | os.PathLike, net: nn.Cell, optimizer: nn.Optimizer, step: TrainStep,
                     ema_net: nn.Cell | None = None) -> TrainState:
    """Restore everything ``save_train_state`` wrote; a missing piece is an error naming it."""
    arrays = read_checkpoint(path)
    if "train_state.epoch" not in arrays:
        raise ValueError(f"{path} holds weights only, not a training state; to start from these weights use "
                         f"--pretrained_checkpoint, to resume use a last.ckpt written by train.py")
    load_arrays_into(net, network_weights(arrays), str(path))
    if ema_net is not None:
        ema = ema_weights(arrays)
        # The run that wrote it had EMA off: start the average from the restored weights.
        load_arrays_into(ema_net, ema or network_weights(arrays), f"{path} (EMA)")
    for name, p in _optimizer_slots(optimizer, net).items():
        key = f"optimizer.{name}"
        if key not in arrays:
            raise ValueError(f"{path} has no optimizer slot {key}: it was written with another optimizer")
        p.set_data(Tensor(arrays[key].reshape(p.shape), p.dtype))
    for name, p in step.state_parameters().items():
        if f"train_state.{name}" in arrays:  # the checkpoint format stores a scalar as shape (1,): back to ()
            p.set_data(Tensor(arrays[f"train_state.{name}"].reshape(p.shape), p.dtype))

    def scalar(key: str, default=0):
        return arrays[key].reshape(-1)[0].item() if key in arrays else default

    return TrainState(epoch=int(scalar("train_state.epoch")), best_top1=float(scalar("train_state.best_top1")),
                      best_epoch=int(scalar("train_state.best_epoch")),
                      best_is_ema=int(scalar("train_state.best_is_ema", -1)),
                      **{key: int(scalar(f"train_state.{key}")) for key in _CONDITIONS})
