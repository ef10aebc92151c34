"""``export.py``: the configured network with its checkpoint → MINDIR / ONNX / AIR (+ its preprocessing
sidecar), re-loaded and compared."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from src.builders import build_network, image_size, preprocessing, require_checkpoint
from src.context import setup_context, setup_logging
from tinynet_ms.export import ExportResult, export_and_verify

log = logging.getLogger("tinynet")


def run_export(cfg: SimpleNamespace) -> ExportResult:
    ctx = setup_context(cfg)
    setup_logging(ctx)
    net = build_network(cfg, require_checkpoint(cfg), for_export=True)  # stock cells: standard ops only
    size = image_size(cfg, net)
    result = export_and_verify(net, cfg.file_name, cfg.file_format, cfg.export_batch_size, size,
                               preprocessing=preprocessing(cfg, net))
    shape = "x".join(map(str, result.input_shape))
    if result.max_abs_diff is None:
        print(f"exported {result.path} (input {shape}); AIR is compiled by ATC and cannot be re-loaded here",
              flush=True)
    else:
        print(f"exported {result.path} (input {shape}); re-loaded: max abs diff {result.max_abs_diff:.3g} "
              f"({result.rel_diff:.3g} of the largest logit)", flush=True)
    return result
