"""A k x k convolution over few input channels (the stem: 3 -> 32, k3 s2) as im2col + one 1x1 conv.
No custom kernel: MindSpore's own ops, arranged so its CPU backend takes its fast path.

MindSpore 2.10's CPU Conv2D takes ~0.6 s for TinyNet-E's stem at batch 32 in the training graph (3 input
channels miss its fast path); the same arithmetic as ``ops.unfold`` (Im2Col) + a 1x1 conv over the k*k*C patch
channels takes ~13 ms (k*k strided slices instead: ~120 ms) and differs only by float32 summation order. Same
parameter (``weight``, (out, in, k, k)) as the ``nn.Conv2d`` it replaces. Inference runs the patches too: on an
AVX-512 + AMX Intel Xeon, MindSpore's oneDNN (3.10.1) takes its reference convolution for the stock forward
(``jit_uni_ncsp:conv+ref:any``: 700-800 ms at batch 32, 11 ms for the patches); on an AMD EPYC the stock forward
was a little faster (5.5 vs 9.8 ms at batch 32), not enough to be worth a per-machine choice.
"""
from __future__ import annotations

from mindspore import nn, ops


MAX_IN_CHANNELS = 4  # beyond a few channels the stacked patches cost more memory traffic than they save


class PatchConv2d(nn.Conv2d):
    """``nn.Conv2d`` (``pad_mode="pad"``, symmetric int padding, no bias, group 1) computed on im2col patches."""

    def construct(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        pad = self.padding  # an int: TinyNet pads symmetrically
        out_h = (x.shape[2] + 2 * pad - k) // s + 1
        out_w = (x.shape[3] + 2 * pad - k) // s + 1
        # Im2Col's channel order (in, ky, kx) is the weight's own: a plain reshape makes it 1x1.
        cols = ops.unfold(x, k, 1, pad, s).reshape(x.shape[0], self.in_channels * k * k, out_h, out_w)
        weight = self.weight.reshape(self.out_channels, self.in_channels * k * k, 1, 1)
        return ops.conv2d(cols, weight.astype(x.dtype))  # AMP O2/O3 hands this cell float16 inputs
