"""``export.py``: the configured network with its checkpoint → MINDIR / ONNX / AIR (+ its preprocessing
sidecar), re-loaded and compared."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from src.builders import build_network, image_size, preprocessing, require_checkpoint
from src.context import setup_context, setup_logging
from tinynet_ms.classes import checkpoint_class_names
from tinynet_ms.atomic import lock_output_file
from tinynet_ms.export import DYNAMIC, ExportResult, export_and_verify, export_path, output_names

log = logging.getLogger("tinynet")


def run_export(cfg: SimpleNamespace) -> ExportResult:
    with lock_output_file(export_path(cfg.file_name, cfg.file_format), "export"):  # first: one writer per file
        return _export(cfg)


def _export(cfg: SimpleNamespace) -> ExportResult:
    ctx = setup_context(cfg)
    setup_logging(ctx)
    checkpoint = require_checkpoint(cfg)
    net = build_network(cfg, checkpoint, for_export=True)  # stock cells: standard ops only
    size = image_size(cfg, net)
    # the sidecar names the outputs (predict.py reads them); a backbone's outputs are feature maps, not classes
    names = None if cfg.features_only else checkpoint_class_names(checkpoint, net.num_classes)
    result = export_and_verify(net, cfg.file_name, cfg.file_format, cfg.export_batch_size, size,
                               preprocessing=preprocessing(cfg, net), dynamic_batch=cfg.dynamic_batch,
                               class_names=names)
    shape = "x".join("N" if d == DYNAMIC else str(d) for d in result.input_shape)
    outputs = ", ".join(output_names(net))
    if result.max_abs_diff is None:
        print(f"exported {result.path} (input {shape}, outputs {outputs}); AIR is compiled by ATC and cannot be "
              f"re-loaded here", flush=True)
    else:
        batches = f" at batch {' and '.join(map(str, result.checked_batches))}" if cfg.dynamic_batch else ""
        print(f"exported {result.path} (input {shape}, outputs {outputs}); re-loaded{batches}: max abs diff "
              f"{result.max_abs_diff:.3g} ({result.rel_diff:.3g} of the largest output)", flush=True)
    return result
