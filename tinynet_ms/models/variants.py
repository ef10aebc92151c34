"""One record per published TinyNet: its cube point, eval preprocessing, official weights and measured numbers.

Every other place takes these facts from here: ``create_model`` and the profiler (the (r, w, d) point), the
config defaults (``image_size: 0`` / ``crop_pct: 0`` = the model's own), ``load_eval_image`` and the eval
pipeline, ``preprocess.py`` and the C++ harness (through the sidecar ``export.py`` writes beside a model file),
the README's variant table and the tests (which check the measured numbers against the built networks).
Like timm's ``pretrained_cfg`` and torchvision's ``Weights`` records.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tinynet_ms.models.arch import TinyNetSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear")  # PIL's antialiased filters, both implemented by the C++ harness too
GENERIC_NAME = "tinynet"  # create_model("tinynet", r=..., w=..., d=...): any point of the cube
_WEIGHTS_URL = "https://github.com/huawei-noah/CV-Backbones/releases/download/v1.2.0/{name}.pth"


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input at eval time (timm's eval transform): resize the shorter side
    to ``floor(image_size / crop_pct)`` with ``interpolation``, center-crop, /255, normalise by mean/std."""

    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation '{self.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values each, std positive; got {self.mean} / {self.std}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


DEFAULT_PREPROCESSING = Preprocessing()  # every published TinyNet's, and the generic builder's


@dataclass(frozen=True)
class Variant:
    """A published TinyNet. ``params``/``macs`` are counted on the built network (1000 classes, at
    ``image_size``; tests re-count them), ``top1`` is the released weights' ImageNet-1k val accuracy (%)."""

    name: str
    spec: TinyNetSpec
    params: int
    macs: int
    top1: float
    preprocessing: Preprocessing = field(default=DEFAULT_PREPROCESSING)
    num_classes: int = 1000  # the released weights' classifier (ImageNet-1k): tinynet_ms.hub converts for it
    sha256: str | None = None  # of the file at ``url``, checked by tinynet_ms.hub when known (not recorded yet)

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def url(self) -> str:
        """The official PyTorch weights (huawei-noah's release, the ones timm uses)."""
        return _WEIGHTS_URL.format(name=self.name)


def _variant(name: str, r: float, w: float, d: float, params: int, macs: int, top1: float) -> Variant:
    return Variant(name, TinyNetSpec(r=r, w=w, d=d), params, macs, top1)


# Han et al. 2020, Table 3; timm's tinynet_a..e.
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    _variant("tinynet_a", 0.86, 1.0, 1.2, params=6_187_972, macs=336_867_712, top1=77.67),
    _variant("tinynet_b", 0.84, 0.75, 1.1, params=3_730_562, macs=200_709_360, top1=74.95),
    _variant("tinynet_c", 0.825, 0.54, 0.85, params=2_457_234, macs=99_536_432, top1=71.21),
    _variant("tinynet_d", 0.68, 0.54, 0.695, params=2_338_446, macs=51_580_656, top1=66.94),
    _variant("tinynet_e", 0.475, 0.51, 0.60, params=2_042_972, macs=24_356_848, top1=59.87),
)}


def list_models() -> list[str]:
    return sorted(VARIANTS)


def known_model(name: str) -> str:
    """``name`` when it names a model (a variant, or the generic builder), else a ValueError listing them."""
    if name != GENERIC_NAME and name not in VARIANTS:
        raise ValueError(f"unknown model '{name}'; choose one of {list_models()} or '{GENERIC_NAME}' with r/w/d")
    return name


def model_spec(name: str, **rwd: float) -> TinyNetSpec:
    """The (r, w, d) spec of a named variant, or of ``tinynet`` with explicit ``r``, ``w``, ``d``."""
    if known_model(name) == GENERIC_NAME:
        unknown = set(rwd) - {"r", "w", "d"}
        if unknown:
            raise TypeError(f"unknown argument(s) for {GENERIC_NAME}: {sorted(unknown)}; expected r, w, d")
        return TinyNetSpec(**rwd)
    if rwd:
        raise TypeError(f"{name} is a fixed variant; r/w/d ({sorted(rwd)}) only go with '{GENERIC_NAME}'")
    return VARIANTS[name].spec


def preprocessing_of(name: str) -> Preprocessing:
    """The eval preprocessing of model ``name`` (the generic ``tinynet`` gets the published variants')."""
    return DEFAULT_PREPROCESSING if known_model(name) == GENERIC_NAME else VARIANTS[name].preprocessing
