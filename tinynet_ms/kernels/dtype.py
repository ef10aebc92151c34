"""The kernels compute in float32; under AMP they receive float16 activations (and weights, for O3)."""
from __future__ import annotations

import mindspore as ms
from mindspore import ops


def in_float32(op, x, *args):
    """``op(x, *args)`` computed in float32 and returned in ``x``'s dtype (casts of float32 tensors are no-ops
    that MindSpore's graph compiler removes)."""
    out = op(ops.cast(x, ms.float32), *[ops.cast(a, ms.float32) for a in args])
    return out if x.dtype == ms.float32 else ops.cast(out, x.dtype)
