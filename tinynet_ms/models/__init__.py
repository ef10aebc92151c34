"""TinyNet models: the architecture table, the variant records, blocks, builder and ``create_model``."""
from tinynet_ms.models.arch import EFFICIENTNET_B0, FeatureLevel, StageSpec, TinyNetSpec
from tinynet_ms.models.factory import create_model
from tinynet_ms.models.tinynet import TinyNet, TinyNetFeatures, TinyNetTrunk
from tinynet_ms.models.variants import (DEFAULT_PREPROCESSING, GENERIC_NAME, IMAGENET_MEAN, IMAGENET_STD, VARIANTS,
                                        Preprocessing, Variant, known_model, list_models, model_spec,
                                        preprocessing_of)

__all__ = ["DEFAULT_PREPROCESSING", "EFFICIENTNET_B0", "FeatureLevel", "GENERIC_NAME", "IMAGENET_MEAN", "IMAGENET_STD", "VARIANTS",
           "Preprocessing", "StageSpec", "TinyNet", "TinyNetFeatures", "TinyNetSpec", "TinyNetTrunk", "Variant", "create_model", "known_model",
           "list_models", "model_spec", "preprocessing_of"]
