"""``predict.py``: the configured network with its checkpoint (or an exported file) → top-k class names per image."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

from src.builders import eval_network, image_size, preprocessing, require_checkpoint
from src.config import ConfigError, not_a_file
from src.context import data_workers, setup_context, setup_logging
from tinynet_ms.classes import checkpoint_class_names, stored_class_names
from tinynet_ms.data.folder import IMAGE_EXTENSIONS
from tinynet_ms.predict import (OUTPUT_FORMATS, Classifier, Prediction, classify_files, exported_classifier,
                                find_images, format_predictions, network_classifier, write_predictions)

log = logging.getLogger("tinynet")


def build_classifier(cfg: SimpleNamespace) -> Classifier:
    """``model_path``: the exported file (its sidecar's preprocessing and class names; a checkpoint_path given too
    only lends its stored names to a sidecar without any). Else the configured network with ``checkpoint_path``,
    BatchNorm folded and preprocessed exactly as eval.py does, named by the checkpoint's stored class names."""
    if cfg.model_path:
        if not Path(cfg.model_path).is_file():
            raise FileNotFoundError(f"model_path '{cfg.model_path}' {not_a_file(cfg.model_path)}")
        log.info("predicting with %s (the exported file; the config's model keys are not used)", cfg.model_path)
        return exported_classifier(cfg.model_path, stored_class_names(cfg.checkpoint_path))
    checkpoint = require_checkpoint(cfg)
    net = eval_network(cfg, checkpoint)
    names = checkpoint_class_names(checkpoint, net.num_classes)
    return network_classifier(net, image_size(cfg, net), preprocessing(cfg, net), names)


def run_predict(cfg: SimpleNamespace) -> list[Prediction]:
    if not cfg.inputs:
        raise ConfigError("no images given: pass image files, folders or globs after the options")
    if cfg.output and Path(cfg.output).suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"config key 'output' ('{cfg.output}') must end in {' or '.join(OUTPUT_FORMATS)}")
    ctx = setup_context(cfg)
    setup_logging(ctx)
    files, unmatched = find_images(cfg.inputs)
    for item in unmatched:
        log.warning("%s: no such file, or no images in it (%s)", item, " ".join(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(cfg.inputs)}")
    classifier = build_classifier(cfg)
    log.info("classifying %d images at %d px (crop_pct %g), top %d of %d classes", len(files),
             classifier.image_size, classifier.preprocessing.crop_pct, min(cfg.topk, len(classifier.class_names)),
             len(classifier.class_names))
    start = time.time()
    progress = any(Path(item).is_dir() or not Path(item).exists() for item in cfg.inputs)  # folders and globs
    predictions, skipped = classify_files(classifier, files, cfg.topk, cfg.batch_size, data_workers(cfg, ctx),
                                          progress=progress)
    if not predictions:
        raise ValueError(f"none of the {len(files)} images could be classified (see the warnings above)")
    print(format_predictions(predictions), flush=True)
    if cfg.output:
        log.info("predictions written to %s", write_predictions(predictions, cfg.output))
    log.info("%d images classified in %.1f s%s", len(predictions), time.time() - start,
             f"; {len(skipped)} skipped (see the warnings above)" if skipped else "")
    return predictions
