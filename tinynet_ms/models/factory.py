"""``create_model``, the factory: a named variant or the generic (r, w, d) builder, with its eval preprocessing, its
layer set (MindSpore's stock cells or the CPU kernels') and, optionally, weights."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tinynet_ms.kernels import resolve_cpu_kernels
from tinynet_ms.models.tinynet import TinyNet, TinyNetFeatures
from tinynet_ms.models.variants import VARIANTS, model_spec, preprocessing_of
from tinynet_ms.weights import load_weights


def _pretrained_path(name: str) -> Path:
    """The cached official weights of ``name``, downloaded and converted on first use (tinynet_ms.hub)."""
    # Imported here, not at the top: the package imports this module, and `python -m tinynet_ms.hub` must not find
    # the hub already imported (runpy warns and runs a second copy).
    from tinynet_ms.hub import pretrained_checkpoint
    return pretrained_checkpoint(name)


def create_model(name: str, num_classes: int = 1000, pretrained: bool = False,
                 checkpoint_path: str | os.PathLike | None = None, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0, cpu_kernels: bool | None = None, features_only: bool = False,
                 out_indices: Sequence[int] = (1, 2, 3, 4), **kwargs: float) -> TinyNet | TinyNetFeatures:
    """Build a TinyNet; optionally load weights (MindSpore ``.ckpt``, or timm ``.pth``/``.safetensors``).

    ``pretrained=True`` loads the converted official weights from ``$TINYNET_MS_HOME/<name>.ckpt``
    (default ``~/.cache/tinynet_ms``), downloading and converting them on first use (``tinynet_ms.hub``: an
    offline machine gets one line saying where to put the file). Weights of another class count (ImageNet's 1000 for
    ``num_classes=10``, or none at all) load with the classifier left freshly initialised, one log line saying so —
    fine-tuning, as timm's ``pretrained=True, num_classes=N``; every other tensor must fit. ``cpu_kernels``: auto
    (``None``), on or off, as ``tinynet_ms.kernels.resolve_cpu_kernels`` defines them.
    ``drop_path_rate`` defaults to 0 as in timm: training recipes (the configs) set it.
    ``features_only=True`` builds the backbone (``TinyNetFeatures``): a tuple of feature maps at ``out_indices``
    (levels 0..4 = reductions 2, 4, 8, 16, 32; default the last four), any input size; a classifier's weights
    load into it, its head left out with one log line. ``num_classes`` and ``drop_rate`` do not apply to it.
    """
    spec, kernels, preprocessing = model_spec(name, **kwargs), resolve_cpu_kernels(cpu_kernels), preprocessing_of(name)
    if features_only:
        net = TinyNetFeatures(spec, out_indices, drop_path_rate=drop_path_rate, cpu_kernels=kernels,
                              preprocessing=preprocessing)
    else:
        net = TinyNet(spec, num_classes=num_classes, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                      cpu_kernels=kernels, preprocessing=preprocessing)
    if pretrained and checkpoint_path is None:
        checkpoint_path = _pretrained_path(name)
    if checkpoint_path is not None:
        load_weights(net, checkpoint_path, new_head=True)
    return net
