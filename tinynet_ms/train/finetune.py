"""Fine-tuning helpers: train the classifier alone on a frozen backbone (a linear probe)."""
from __future__ import annotations

from mindspore import nn

from tinynet_ms.models.layers import DropPath
from tinynet_ms.weights import named_params


def freeze_backbone(net: nn.Cell) -> list[str]:
    """Make everything but ``net``'s classifier (its ``classifier_names``) a fixed function: no gradients for its
    weights, its BatchNorms normalise with their moving statistics and never update them, and its drop-path is
    off, in training as in eval (the backbone behaves as a feature extractor in eval mode). Returns the names of
    the parameters left to train."""
    head = tuple(getattr(net, "classifier_names", ()))
    if not head:
        raise ValueError(f"{type(net).__name__} has no classifier to train on a frozen backbone")
    for name, param in named_params(net).items():
        if name not in head:
            param.requires_grad = False
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.use_batch_statistics = False  # read in construct: always the moving statistics, never updated
        elif isinstance(cell, DropPath):
            cell.p, cell.keep_prob = 0.0, 1.0
    return list(head)
