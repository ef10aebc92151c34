"""1x1 convolutions and the classifier of folded inference graphs as MindSpore ``ops.Custom(func_type="aot")`` CPU
kernels (``pointwise.cc``): oneDNN's sgemm on blocks of the output, each block's folded-BatchNorm bias (and Swish)
applied while it is in cache. No gradients: training graphs keep MindSpore's Conv2D and Dense."""
from __future__ import annotations

from mindspore import ops

from tinynet_ms.kernels.build import build_library

_ops: dict[tuple[str, str], ops.Custom] = {}


def _op(entry: str, out_shape) -> ops.Custom:
    lib = str(build_library())
    if (lib, entry) not in _ops:
        _ops[lib, entry] = ops.Custom(f"{lib}:{entry}", out_shape, lambda x, *rest: x, "aot")
    return _ops[lib, entry]


def pointwise_op(swish: bool) -> ops.Custom:
    """``y = op(x, w, b)``: ``w @ x[n] + b`` per sample (then Swish with ``swish``) for NCHW float32 ``x``,
    ``w`` (M, K, 1, 1) and ``b`` (M,): a 1x1 conv with its folded BatchNorm, one pass."""
    return _op("PointwiseBiasSwish" if swish else "PointwiseBias", lambda x, w, b: (x[0], w[0], x[2], x[3]))


def gated_pointwise_op(residual: bool) -> ops.Custom:
    """``y = op(x, g, w, b)`` (``op(x, g, w, b, s)`` with ``residual``): ``(w * g[n]) @ x[n] + b`` (``+ s[n]``) per
    sample for NCHW float32 ``x``, a squeeze-excite's gate ``g`` (N, K), ``w`` (M, K, 1, 1) and ``b`` (M,): the gated
    input of a block's 1x1 projection never written, the skip added in the bias pass."""
    return _op("PointwiseGatedAdd" if residual else "PointwiseGated",
               lambda x, g, w, *rest: (x[0], w[0], x[2], x[3]))


def linear_op() -> ops.Custom:
    """``y = op(x, w, b)``: ``x @ w.T + b`` for float32 ``x`` (N, K), ``w`` (M, K), ``b`` (M,) — ``nn.Dense``."""
    return _op("Linear", lambda x, w, b: (x[0], w[0]))
