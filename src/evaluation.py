"""Top-1/top-5 over DATA/val: ``eval.py`` and the trainer's per-epoch validation share this."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from types import SimpleNamespace

from src.builders import dataset_classes, eval_network, image_size, preprocessing, require_checkpoint, scan_dataset
from src.context import (RunContext, all_reduce_sum, before_first_call, data_workers, setup_context,
                         setup_logging)
from tinynet_ms import TinyNet
from tinynet_ms.atomic import write_text_atomic
from tinynet_ms.data import Sample, create_eval_dataset
from tinynet_ms.train import evaluate

log = logging.getLogger("tinynet")


def evaluate_samples(net: TinyNet, samples: Sequence[Sample], size: int, cfg: SimpleNamespace,
                     ctx: RunContext, workers: int) -> tuple[float, float, int]:
    """(top1, top5, count) over ``samples`` with the network's eval preprocessing; under data parallelism each
    rank takes an exact, unpadded share and the counts are summed, so every image counts once."""
    shard = samples[ctx.rank::ctx.world]
    data = create_eval_dataset(shard, size, cfg.batch_size, preprocessing(cfg, net), workers)
    before_first_call(net, "the network for evaluation", "a few seconds", ctx)
    totals = all_reduce_sum(evaluate(net, data.create_tuple_iterator(num_epochs=1)), ctx)
    if totals[2] == 0:
        raise RuntimeError(f"none of the {len(samples)} val images could be read (see the warnings above)")
    return totals[0] / totals[2], totals[1] / totals[2], int(totals[2])


def run_eval(cfg: SimpleNamespace) -> dict:
    ctx = setup_context(cfg)
    setup_logging(ctx)
    checkpoint = require_checkpoint(cfg)
    val = scan_dataset(cfg, "val", dataset_classes(cfg))
    net = eval_network(cfg, checkpoint)
    size = image_size(cfg, net)
    log.info("evaluating %s@%d (%s%s) on %d images", cfg.model, size, checkpoint, ", EMA weights" if cfg.use_ema
             else "", len(val))
    start = time.time()
    top1, top5, count = evaluate_samples(net, val.samples, size, cfg, ctx, data_workers(cfg, ctx))
    seconds = time.time() - start
    result = {"top1": top1, "top5": top5, "num_samples": count, "model": cfg.model, "image_size": size,
              "crop_pct": preprocessing(cfg, net).crop_pct,
              "checkpoint": str(checkpoint), "use_ema": cfg.use_ema, "seconds": round(seconds, 2)}
    if ctx.is_main:
        log.info("%d images in %.1f s (%.1f img/s)", count, seconds, count / max(seconds, 1e-9))
        print(f"top1: {top1:.6f} top5: {top5:.6f}", flush=True)
        if cfg.result_file:
            write_text_atomic(cfg.result_file, json.dumps(result, indent=1) + "\n")
    return result
