"""Data: ImageNet-style folders, timm-exact eval preprocessing, training pipelines, the demo dataset."""
from tinynet_ms.data.folder import ImageFolder, Sample, list_classes, sample_names, scan_split
from tinynet_ms.data.images import IMAGENET_MEAN, IMAGENET_STD, eval_transform, load_eval_image, open_rgb
from tinynet_ms.data.pipeline import create_eval_dataset, create_train_dataset

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageFolder", "Sample", "create_eval_dataset", "create_train_dataset",
           "eval_transform", "list_classes", "load_eval_image", "open_rgb", "sample_names", "scan_split"]
