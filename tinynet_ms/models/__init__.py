"""TinyNet models: the architecture table, blocks, builder and registry."""
from tinynet_ms.models.arch import EFFICIENTNET_B0, VARIANTS, StageSpec, TinyNetSpec
from tinynet_ms.models.registry import create_model, list_models, load_weights, model_spec
from tinynet_ms.models.tinynet import TinyNet

__all__ = ["EFFICIENTNET_B0", "VARIANTS", "StageSpec", "TinyNet", "TinyNetSpec", "create_model", "list_models",
           "load_weights", "model_spec"]
