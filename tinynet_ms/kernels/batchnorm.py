"""BatchNorm (optionally followed by Swish) as MindSpore ``ops.Custom(func_type="aot")`` CPU kernels
(``batchnorm.cc``): ``FastBatchNorm2d`` and ``BatchNormSwish2d``, drop-in ``nn.BatchNorm2d`` subclasses.

Training mode is one kernel each way: batch statistics + normalise (+ Swish) forward, dgamma/dbeta/dx backward;
the moving statistics are updated as ``nn.BatchNorm2d`` does (momentum as MindSpore's, unbiased variance).
Inference mode is one affine pass with the moving statistics (+ one Swish pass). The same parameters, so
checkpoints, conversion and export are unchanged.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Tensor, nn, ops

from tinynet_ms.kernels.build import build_library
from tinynet_ms.kernels.channel import affine_op
from tinynet_ms.kernels.swish import swish_ops

_ops: dict[tuple[str, bool], ops.Custom] = {}


def _three(x, gamma, *rest):  # output shapes / dtypes: (like x, like gamma, like gamma)
    return x, gamma, gamma


def batchnorm_train_op(swish: bool) -> ops.Custom:
    """``y, mean, var = op(x, gamma, beta, eps)``: training BatchNorm (then Swish with ``swish``) of NCHW float32
    ``x`` with its batch statistics (``var`` biased), differentiable w.r.t. ``x``, ``gamma``, ``beta``."""
    lib = str(build_library())
    key = (lib, swish)
    if key not in _ops:
        name = "BatchNormSwishTrain" if swish else "BatchNormTrain"
        grad = ops.Custom(f"{lib}:{name}Grad", lambda dy, x, g, *rest: (x, g, g),
                          lambda dy, x, g, *rest: (x, g, g), "aot")

        def bprop(x, gamma, beta, eps, out, dout):
            dx, dgamma, dbeta = grad(dout[0], x, gamma, beta, out[1], out[2], eps)
            return dx, dgamma, dbeta, ops.zeros_like(eps)

        _ops[key] = ops.Custom(f"{lib}:{name}", _three, _three, "aot", bprop=bprop)
    return _ops[key]


class FastBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and updates) run by the custom kernels, in float32 (float16 inputs
    under AMP are cast and the result cast back). Batch statistics in training, moving ones in inference
    (``use_batch_statistics=None``, the only value the constructor takes); set to ``False`` afterwards, the moving
    statistics always (a frozen backbone: ``tinynet_ms.train.freeze_backbone``)."""

    swish = False  # BatchNormSwish2d: Swish applied to the output, in the same passes

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.use_batch_statistics is not None:
            raise ValueError("FastBatchNorm2d supports use_batch_statistics=None only")
        self.train_op = batchnorm_train_op(self.swish)
        self.affine = affine_op()
        self.swish_op = swish_ops()[0] if self.swish else None
        self.eps_tensor = Tensor([self.eps], ms.float32)

    def construct(self, x):
        # under AMP O3 every op input arrives float16, constants too: each is cast to what the kernel takes
        dtype = x.dtype
        x = ops.cast(x, ms.float32)
        gamma, beta = ops.cast(self.gamma, ms.float32), ops.cast(self.beta, ms.float32)
        if self.training and self.use_batch_statistics is None:
            y, mean, var = self.train_op(x, gamma, beta, ops.cast(self.eps_tensor, ms.float32))
            count = x.shape[0] * x.shape[2] * x.shape[3]
            unbiased = ops.stop_gradient(var) * (count / max(count - 1, 1))
            mean = ops.stop_gradient(mean)
            # nn.BatchNorm2d's update: moving += momentum * (batch - moving), its momentum being 1 - ours
            y = ops.depend(y, ops.assign_add(self.moving_mean, (mean - self.moving_mean) * self.momentum))
            y = ops.depend(y, ops.assign_add(self.moving_variance,
                                             (unbiased - self.moving_variance) * self.momentum))
        else:
            mean, var = ops.cast(self.moving_mean, ms.float32), ops.cast(self.moving_variance, ms.float32)
            scale = gamma / ops.sqrt(var + self.eps)
            y = self.affine(x, scale, beta - mean * scale)
            if self.swish_op is not None:
                y = self.swish_op(y)
        return y if dtype == ms.float32 else ops.cast(y, dtype)


class BatchNormSwish2d(FastBatchNorm2d):
    """``FastBatchNorm2d`` followed by Swish, fused: the model builder uses it for a BN whose output goes to
    Swish and nowhere else, and drops that Swish (the cell's ``act`` becomes ``nn.Identity``)."""

    swish = True
