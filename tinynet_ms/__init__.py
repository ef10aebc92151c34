"""tinynet_ms: TinyNet (Han et al., NeurIPS 2020) for MindSpore — Ascend, GPU and CPU.

Importing sets no device and no execution mode; the application decides.
"""
from tinynet_ms.models import TinyNet, TinyNetFeatures, TinyNetSpec, create_model, list_models

__version__ = "0.1.0"
__all__ = ["TinyNet", "TinyNetFeatures", "TinyNetSpec", "create_model", "list_models", "__version__"]
