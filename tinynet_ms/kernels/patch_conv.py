"""A k x k convolution over few input channels (the stem: 3 -> 32, k3 s2) as k*k strided slices + one 1x1 conv.
No custom kernel: MindSpore's own ops, arranged so its CPU backend takes its fast path.

MindSpore 2.10's CPU Conv2D takes ~0.7 s for TinyNet-E's stem at batch 32 (3 input channels miss its fast
path); the same arithmetic as a 1x1 conv over the k*k*C stacked patches runs ~7x faster and differs only by
float32 summation order. Same parameter (``weight``, (out, in, k, k)) as the ``nn.Conv2d`` it replaces.
"""
from __future__ import annotations

from mindspore import nn, ops


MAX_IN_CHANNELS = 4  # beyond a few channels the stacked patches cost more memory traffic than they save


class PatchConv2d(nn.Conv2d):
    """``nn.Conv2d`` (``pad_mode="pad"``, symmetric int padding, no bias, group 1) computed on stacked patches."""

    def construct(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        pad = self.padding  # an int: TinyNet pads symmetrically
        height, width = x.shape[2], x.shape[3]
        out_h = (height + 2 * pad - k) // s + 1
        out_w = (width + 2 * pad - k) // s + 1
        x = ops.pad(x, (pad, pad, pad, pad))
        # One strided slice per kernel tap; channel order (tap, in) matches the weight permuted below.
        taps = [x[:, :, t // k:t // k + s * (out_h - 1) + 1:s, t % k:t % k + s * (out_w - 1) + 1:s]
                for t in range(k * k)]
        weight = self.weight.transpose(0, 2, 3, 1).reshape(self.out_channels, k * k * self.in_channels, 1, 1)
        weight = weight.astype(x.dtype)  # AMP O2/O3 hands this cell float16 inputs and a float32 weight
        return ops.conv2d(ops.concat(taps, 1), weight)
