"""TinyNet: EfficientNet-B0 scaled by (r, w, d), parameter names as in timm / huawei-noah checkpoints; as a
classifier (``TinyNet``) or as a backbone returning multi-scale feature maps (``TinyNetFeatures``)."""
from __future__ import annotations

from collections.abc import Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from tinynet_ms.models.arch import STEM_CHANNELS, FeatureLevel, StageSpec, TinyNetSpec
from tinynet_ms.models.variants import DEFAULT_PREPROCESSING, Preprocessing
from tinynet_ms.models.blocks import DepthwiseSeparable, InvertedResidual
from tinynet_ms.models.layers import Dropout, LayerSet, dense, dense_bound

_FRESH_HEAD_STREAM = 0x7E4D  # spawn key of fresh classifiers' random stream: never the network init's

# The classifier's tensors a backbone has no use for (its stages past the last output are added per network).
HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")


def _make_block(stage: StageSpec, in_ch: int, stride: int, drop_path_rate: float, layers: LayerSet) -> nn.Cell:
    if stage.block == "ds":
        return DepthwiseSeparable(in_ch, stage.channels, stage.kernel, stride, stage.se_ratio, drop_path_rate, layers)
    return InvertedResidual(in_ch, stage.channels, stage.kernel, stride, stage.expand, stage.se_ratio,
                            drop_path_rate, layers)


class TinyNetTrunk(nn.Cell):
    """conv_stem → bn1 → Swish → blocks.{stage}.{i}: what the classifier and the backbone share, under timm's names.

    ``num_stages``: build the first stages only (a backbone needs none past its last output); drop-path rates
    stay those of the whole network, so a truncated trunk computes what the full one does up to there.
    ``cpu_kernels``: built from tinynet_ms.kernels' CPU cells (``LayerSet``: the same parameters); ``create_model``
    decides it.
    ``preprocessing``: how images are turned into this network's input at eval time.
    """

    def __init__(self, spec: TinyNetSpec, drop_path_rate: float = 0.0, cpu_kernels: bool = False,
                 preprocessing: Preprocessing = DEFAULT_PREPROCESSING, num_stages: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.cpu_kernels = bool(cpu_kernels)
        self.layers = layers = LayerSet(self.cpu_kernels)
        self.preprocessing = preprocessing
        self.conv_stem = layers.conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = layers.norm_act(STEM_CHANNELS)

        stages = spec.stages
        total_blocks = sum(s.repeats for s in stages)
        in_ch, idx, block_stages = STEM_CHANNELS, 0, []
        for stage in stages[:num_stages]:
            blocks = []
            for i in range(stage.repeats):
                # Stochastic depth grows linearly with the global block index (timm).
                rate = drop_path_rate * idx / total_blocks
                blocks.append(_make_block(stage, in_ch, stage.stride if i == 0 else 1, rate, layers))
                in_ch, idx = stage.channels, idx + 1
            block_stages.append(nn.CellList(blocks))
        self.blocks = nn.CellList(block_stages)  # names blocks.{stage}.{i}.* as in timm
        self.num_blocks = idx
        self.trunk_channels = in_ch

    @nn.Cell.compile_phase.setter  # Cell's getter, this setter
    def compile_phase(self, value: str) -> None:
        # MindSpore sets the phase on every sub-cell at every graph-mode call: ~0.5 ms of Python per call for
        # TinyNet-E's 135 cells, 15% of its batch-1 inference. A graph already compiled for this phase is not parsed
        # again, so its sub-cells need nothing; a new phase (another input shape, training) still reaches them all.
        if value != self._compile_phase or value not in self.compile_cache:
            nn.Cell.compile_phase.fset(self, value)

    def stem(self, x):
        return self.bn1(self.conv_stem(x))

    def stage_outputs(self, x, noise=None):
        """Every built stage's output for images ``x`` (stage 0 first); ``noise`` column i drives block i's
        drop-path (see TinyNet.construct). The classifier takes the last, a backbone its levels."""
        x = self.stem(x)
        outputs = ()
        idx = 0
        for stage in self.blocks:
            for block in stage:
                x = block(x, None if noise is None else noise[:, idx])
                idx += 1
            outputs = outputs + (x,)
        return outputs


class TinyNet(TinyNetTrunk):
    """The classifier: the trunk → conv_head → bn2 → Swish → mean → dropout → classifier."""

    # What depends on the class count: weights of another one load with these left as initialised (fine-tuning)
    classifier_names = ("classifier.weight", "classifier.bias")

    def __init__(self, spec: TinyNetSpec, num_classes: int = 1000, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0, cpu_kernels: bool = False,
                 preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        super().__init__(spec, drop_path_rate, cpu_kernels, preprocessing)
        self.num_classes = num_classes
        self.num_features = spec.head_channels
        self.conv_head = self.layers.conv(self.trunk_channels, self.num_features, 1)
        self.bn2 = self.layers.norm_act(self.num_features)
        self.global_pool = self.layers.mean(False)
        self.dropout = Dropout(drop_rate)
        self.classifier = dense(self.num_features, num_classes)

    @property
    def noise_size(self) -> int:
        """Uniform noise values per sample that ``construct(x, noise)`` consumes in training."""
        return self.num_blocks + self.num_features

    @property
    def label(self) -> str:
        """Human-readable identity for messages, e.g. ``TinyNet(r=0.86, w=1.0, d=1.2, 1000 classes)``."""
        return f"TinyNet(r={self.spec.r}, w={self.spec.w}, d={self.spec.d}, {self.num_classes} classes)"

    def rebuilt(self, cpu_kernels: bool) -> TinyNet:
        """A new, untrained inference network of the same configuration, built with or without the CPU kernels."""
        return TinyNet(self.spec, self.num_classes, cpu_kernels=cpu_kernels, preprocessing=self.preprocessing)

    def fresh_classifier(self) -> dict[str, np.ndarray]:
        """``classifier_names`` drawn afresh with timm's init, for weights of another class count (fine-tuning).

        From a random stream of their own (seeded by MindSpore's global seed when one is set, so a run stays
        reproducible), not the stream this network's initial weights came from: under the same seed that stream
        also gave the initial head of the run that trained the weights being loaded, a head whose rows the trained
        features align with, so a copy of it (scaled to the new class count) starts far from neutral (a 5-class
        head from a 10-class run's seed gave logits 6x larger than a fresh one's, and a loss of 4.4 for ln 5)."""
        seed = ms.get_seed()
        rng = np.random.default_rng(None if seed is None else [seed, _FRESH_HEAD_STREAM])
        bound = dense_bound(self.num_classes)
        weight = rng.uniform(-bound, bound, (self.num_classes, self.num_features)).astype(np.float32)
        return dict(zip(self.classifier_names, (weight, np.zeros(self.num_classes, np.float32))))

    def forward_features(self, x, noise=None):
        return self.bn2(self.conv_head(self.stage_outputs(x, noise)[-1]))

    def construct(self, x, noise=None):
        """Logits for images ``x``. ``noise`` (B, noise_size) uniform in [0, 1), training only: column i
        drives block i's drop-path, the rest the head dropout; omitted, an on-device RNG is used."""
        x = self.global_pool(self.forward_features(x, noise))
        return self.classifier(self.dropout(x, None if noise is None else noise[:, self.num_blocks:]))


def select_levels(levels: Sequence[FeatureLevel], out_indices: Sequence[int]) -> tuple[FeatureLevel, ...]:
    """The feature levels ``out_indices`` names (increasing, each one of ``levels``), or a ValueError saying which
    are valid."""
    if not out_indices or list(out_indices) != sorted(set(out_indices)) or \
            not all(isinstance(i, int) and 0 <= i < len(levels) for i in out_indices):
        raise ValueError(f"out_indices must be increasing feature levels in 0..{len(levels) - 1} "
                         f"(reductions {', '.join(str(lv.reduction) for lv in levels)}), got {tuple(out_indices)}")
    return tuple(levels[i] for i in out_indices)


class TinyNetFeatures(TinyNetTrunk):
    """The backbone: the trunk's feature maps at ``out_indices`` (timm's ``features_only`` levels: 0..4 at
    reductions 2, 4, 8, 16, 32 — see ``TinyNetSpec.feature_levels``) as a tuple, for any input size. Stages past
    the last output are not built; there is no head. ``feature_info`` describes each output."""

    def __init__(self, spec: TinyNetSpec, out_indices: Sequence[int] = (1, 2, 3, 4), drop_path_rate: float = 0.0,
                 cpu_kernels: bool = False, preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> None:
        out_indices = tuple(out_indices)
        info = select_levels(spec.feature_levels, out_indices)
        super().__init__(spec, drop_path_rate, cpu_kernels, preprocessing, num_stages=info[-1].stage + 1)
        self.feature_info = info
        self.out_indices = out_indices
        self._out_stages = tuple(lv.stage for lv in self.feature_info)

    @property
    def noise_size(self) -> int:
        return self.num_blocks

    @property
    def label(self) -> str:
        return (f"TinyNetFeatures(r={self.spec.r}, w={self.spec.w}, d={self.spec.d}, "
                f"out_indices={self.out_indices})")

    @property
    def unused_weights(self) -> tuple[str, ...]:
        """Name prefixes of a classifier's tensors this backbone does not have (its head, later stages)."""
        built = len(self.blocks)
        return HEAD_PREFIXES + tuple(f"blocks.{s}." for s in range(built, len(self.spec.stages)))

    def rebuilt(self, cpu_kernels: bool) -> TinyNetFeatures:
        return TinyNetFeatures(self.spec, self.out_indices, cpu_kernels=cpu_kernels, preprocessing=self.preprocessing)

    def construct(self, x, noise=None):
        """Feature maps (B, C_i, H / r_i, W / r_i) for ``feature_info``; ``noise`` (B, noise_size) as TinyNet's."""
        stages = self.stage_outputs(x, noise)
        features = ()
        for s in self._out_stages:
            features = features + (stages[s],)
        return features
