"""tinynet_ms: TinyNet (Han et al., NeurIPS 2020) for MindSpore — Ascend, GPU and CPU.

Importing sets no device and no execution mode; the application decides. The models (and MindSpore) load on first
use of a name below, so that the stdlib-only helpers (``tinynet_ms.atomic``, ``tinynet_ms.cli``) stay cheap to import
for processes that never run a network (the training launcher).
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["TinyNet", "TinyNetFeatures", "TinyNetSpec", "create_model", "list_models", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        from tinynet_ms import models

        return getattr(models, name)
    raise AttributeError(f"module 'tinynet_ms' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
