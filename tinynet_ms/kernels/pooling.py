"""Global average pooling as one MatMul against a 1/(H*W) column. No custom kernel: MindSpore's own ops, arranged
so its CPU backend takes its fast path (its ReduceMean and the gradient's Tile + RealDiv are slow at the head)."""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops


class MatMulMean(nn.Cell):
    """``ops.mean(x, (2, 3), keep_dims)`` for NCHW ``x``; equal up to float32 summation order."""

    def __init__(self, keep_dims: bool = False) -> None:
        super().__init__()
        self.keep_dims = keep_dims

    def construct(self, x):
        n, c, h, w = x.shape
        column = (ops.ones((h * w, 1), ms.float32) / (h * w)).astype(x.dtype)  # float16 under AMP O2
        mean = ops.matmul(x.reshape(n * c, h * w), column)
        return mean.reshape(n, c, 1, 1) if self.keep_dims else mean.reshape(n, c)


class ReduceMean(nn.Cell):
    """``ops.mean(x, (2, 3), keep_dims)``: the plain form, for every target and for export."""

    def __init__(self, keep_dims: bool = False) -> None:
        super().__init__()
        self.keep_dims = keep_dims

    def construct(self, x):
        return ops.mean(x, (2, 3), keep_dims=self.keep_dims)
