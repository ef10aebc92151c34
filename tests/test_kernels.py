"""Fast CPU cells (tinynet_ms.kernels: custom depthwise and Swish kernels, im2col stem, MatMul pooling): equal to the
stock cells forward and backward, per shape and in a whole TinyNet (logits, loss gradients, train steps), with
unchanged parameter names; create_model's cpu_kernels choice and the library build."""
import shutil
import subprocess

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from tinynet_ms import create_model, kernels
from tinynet_ms.weights import load_arrays_into, named_params, param_arrays

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the kernels are compiled with g++")

MINI = dict(w=0.25, d=0.35, num_classes=10)
FWD_RTOL, GRAD_RTOL = 1e-5, 1e-4


def _rel(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest difference relative to the reference's largest magnitude."""
    return float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-30))


class _Grads(nn.Cell):
    """Gradients of ``net`` for an output sensitivity (its last argument): w.r.t. every input, and with
    ``weights`` as a second tuple w.r.t. its trainable parameters."""

    def __init__(self, net, weights: bool = False):
        super().__init__()
        self.net = net
        self.weights = ms.ParameterTuple(net.trainable_params()) if weights else None
        self.grad = ops.GradOperation(get_all=True, get_by_list=weights, sens_param=True)

    def construct(self, *args):
        if self.weights is None:
            return self.grad(self.net)(*args)
        return self.grad(self.net, self.weights)(*args)


def _pair(channels, kernel, stride):
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d, padding_for

    pad = padding_for(kernel, stride)
    ref = nn.Conv2d(channels, channels, kernel, stride=stride, pad_mode="pad", padding=pad, group=channels)
    ours = DepthwiseConv2d(channels, channels, kernel, stride=stride, pad_mode="pad", padding=pad, group=channels)
    ours.weight.set_data(ref.weight.data.copy())
    return ref, ours


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("kernel,stride", [(3, 1), *(pytest.param(k, s, marks=pytest.mark.slow) for k, s in ((3, 2), (5, 1), (5, 2)))])
def test_matches_conv2d(graph_mode, kernel, stride):
    rng = np.random.default_rng(kernel * 10 + stride)
    # odd, even, non-square and degenerate sizes; 3 channels stays single-threaded, 16 x 53 x 53 uses the pool
    for (h, w), channels in [((7, 7), 16), ((13, 9), 3), ((53, 53), 16), ((2, 3), 3), ((1, 1), 3), ((12, 12), 8)]:
        ref, ours = _pair(channels, kernel, stride)
        x = ms.Tensor(rng.standard_normal((2, channels, h, w)).astype(np.float32))
        y_ref, y = ref(x).asnumpy(), ours(x).asnumpy()
        assert y.shape == y_ref.shape
        assert _rel(y_ref, y) < FWD_RTOL, (h, w, channels)
        sens = ms.Tensor(rng.standard_normal(y.shape).astype(np.float32))
        (dx_ref,), (dw_ref,) = _Grads(ref, weights=True)(x, sens)
        (dx,), (dw,) = _Grads(ours, weights=True)(x, sens)
        assert _rel(dx_ref.asnumpy(), dx.asnumpy()) < GRAD_RTOL, ("grad input", h, w, channels)
        assert _rel(dw_ref.asnumpy(), dw.asnumpy()) < GRAD_RTOL, ("grad weight", h, w, channels)


def test_pynative_and_mindspore_grad(pynative_mode):
    """PyNative mode, through mindspore.grad (the functional API)."""
    rng = np.random.default_rng(1)
    for kernel, stride in [(3, 2), (5, 1)]:
        ref, ours = _pair(8, kernel, stride)
        x = ms.Tensor(rng.standard_normal((3, 8, 11, 11)).astype(np.float32))
        assert _rel(ref(x).asnumpy(), ours(x).asnumpy()) < FWD_RTOL

        def loss(net):
            return lambda inp: (net(inp) ** 2).sum()

        gx_ref, (gw_ref,) = ms.grad(loss(ref), grad_position=0, weights=ref.trainable_params())(x)
        gx, (gw,) = ms.grad(loss(ours), grad_position=0, weights=ours.trainable_params())(x)
        assert _rel(gx_ref.asnumpy(), gx.asnumpy()) < GRAD_RTOL
        assert _rel(gw_ref.asnumpy(), gw.asnumpy()) < GRAD_RTOL


def test_float16_input_is_computed_in_float32():
    ref, ours = _pair(4, 3, 1)
    x = np.random.default_rng(2).standard_normal((1, 4, 9, 9)).astype(np.float16)
    y = ours(ms.Tensor(x))
    assert y.dtype == ms.float16
    expected = ref(ms.Tensor(x.astype(np.float32))).asnumpy()
    np.testing.assert_allclose(y.asnumpy().astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_rejects_what_the_kernel_does_not_implement():
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d

    with pytest.raises(ValueError, match="group"):
        DepthwiseConv2d(8, 16, 3, 1, padding=1, group=8)
    with pytest.raises(ValueError, match="kernel_size"):
        DepthwiseConv2d(8, 8, 7, 1, padding=3, group=8)
    with pytest.raises(ValueError, match="padding"):
        DepthwiseConv2d(8, 8, 3, 1, padding=0, group=8)
    with pytest.raises(ValueError, match="bias"):
        DepthwiseConv2d(8, 8, 3, 1, padding=1, group=8, has_bias=True)


@pytest.mark.slow  # compiles the library afresh
def test_library_build_is_cached(tmp_path, monkeypatch):
    from tinynet_ms.kernels import build

    monkeypatch.setenv("TINYNET_MS_HOME", str(tmp_path))
    monkeypatch.setattr(build, "_library", None)
    path = build.build_library()
    assert path.parent == tmp_path / "kernels" and path.name.startswith("kernels-") and path.suffix == ".so"
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(build, "_library", None)
    assert build.build_library() == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary files left behind
    flags = build.compile_flags()
    assert "-O3" in flags and "-march=native" not in flags
    assert ("-mavx2" in flags) == ({"avx2", "fma"} <= build._cpu_flags())
    monkeypatch.setattr(build, "_library", None)  # later tests rebuild in the default cache


def test_missing_compiler_is_a_clear_error(monkeypatch):
    from tinynet_ms.kernels import build

    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    monkeypatch.setattr(build, "_library", None)
    with pytest.raises(RuntimeError, match="no-such-compiler-xyz.*not found"):
        build.build_library()


def test_auto_falls_back_to_stock_cells_without_a_compiler(monkeypatch, caplog):
    """cpu_kernels=None (auto) on CPU without g++: the stock cells and one warning; True: the error."""
    from tinynet_ms.kernels import build

    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    monkeypatch.setattr(build, "_library", None)
    monkeypatch.setattr(kernels, "_told", set())  # this process's first network
    with caplog.at_level("INFO", logger="tinynet_ms"):
        net = create_model("tinynet", **MINI)
        create_model("tinynet", **MINI)  # the next network: the same choice, not said again
    assert not net.cpu_kernels and not _fast_cells(net)
    warnings = [r for r in caplog.records if r.name == "tinynet_ms"]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING" and "CPU kernels unavailable" in warnings[0].message
    with pytest.raises(RuntimeError, match="no-such-compiler-xyz"):
        create_model("tinynet", cpu_kernels=True, **MINI)
    monkeypatch.setattr(build, "_library", None)  # later tests build with the real compiler again


def test_auto_on_cpu_logs_the_choice_and_other_targets_never_get_them(caplog, monkeypatch):
    """One line per process: a training run builds the model and its EMA copy, and says it once."""
    monkeypatch.setattr(kernels, "_told", set())
    with caplog.at_level("INFO", logger="tinynet_ms"):
        net = create_model("tinynet", **MINI)
        assert create_model("tinynet", **MINI).cpu_kernels
    assert net.cpu_kernels and _fast_cells(net)
    assert [r.message for r in caplog.records if r.name == "tinynet_ms"] == [
        "CPU kernels: on (device target CPU; cpu_kernels=False builds MindSpore's stock cells)"]
    assert not create_model("tinynet", cpu_kernels=False, **MINI).cpu_kernels
    real = ms.get_context
    monkeypatch.setattr(ms, "get_context", lambda key: "Ascend" if key == "device_target" else real(key))
    assert not create_model("tinynet", **MINI).cpu_kernels
    with pytest.raises(ValueError, match="needs the CPU device target"):
        create_model("tinynet", cpu_kernels=True, **MINI)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("size,kernel,stride", [(106, 3, 2), (37, 3, 2), (20, 5, 1)])
def test_patch_conv_matches_conv2d(graph_mode, size, kernel, stride):
    """The stem as stacked patches + a 1x1 conv: nn.Conv2d's output and gradients, odd sizes included."""
    from tinynet_ms.kernels.patch_conv import PatchConv2d

    pad = ((stride - 1) + (kernel - 1)) // 2
    ref = nn.Conv2d(3, 16, kernel, stride=stride, pad_mode="pad", padding=pad)
    ours = PatchConv2d(3, 16, kernel, stride=stride, pad_mode="pad", padding=pad)
    ours.weight.set_data(ref.weight.data.copy())
    rng = np.random.default_rng(size)
    x = ms.Tensor(rng.standard_normal((2, 3, size, size)).astype(np.float32))
    y_ref, y_ours = ref(x).asnumpy(), ours(x).asnumpy()
    assert y_ref.shape == y_ours.shape and _rel(y_ref, y_ours) <= FWD_RTOL
    sens = ms.Tensor(rng.standard_normal(y_ref.shape).astype(np.float32))
    (dx_ref,), (dw_ref,) = _Grads(ref, weights=True)(x, sens)
    (dx_ours,), (dw_ours,) = _Grads(ours, weights=True)(x, sens)
    assert _rel(dx_ref.asnumpy(), dx_ours.asnumpy()) <= GRAD_RTOL
    assert _rel(dw_ref.asnumpy(), dw_ours.asnumpy()) <= GRAD_RTOL


@pytest.mark.parametrize("shape", [(9,), (3, 5, 1, 1), (2, 16, 33, 33)])  # a vector tail; tiny; threaded
def test_swish_matches_float64(graph_mode, shape):
    from tinynet_ms.kernels.swish import Swish

    rng = np.random.default_rng(len(shape))
    x = (6 * rng.standard_normal(shape)).astype(np.float32)
    x.flat[:9] = [-200, -88, -87.5, -20, 0, 1e-8, 20, 88, 200][:x.size]  # both clamps of exp, and 0
    sens = rng.standard_normal(shape).astype(np.float32)
    x64 = x.astype(np.float64)
    sig = 1 / (1 + np.exp(-x64))
    y_ref, dx_ref = x64 * sig, sens * sig * (1 + x64 * (1 - sig))
    ours = Swish()
    y = ours(ms.Tensor(x)).asnumpy()
    (dx,) = _Grads(ours)(ms.Tensor(x), ms.Tensor(sens))
    dx = dx.asnumpy()
    assert np.abs(y - y_ref).max() <= 4e-7 * np.abs(y_ref).max()
    assert np.abs(dx - dx_ref).max() <= 4e-7 * np.abs(dx_ref).max()
    # float16 (AMP) goes through float32 and comes back float16
    y16 = ours(ms.Tensor(x.astype(np.float16)))
    assert y16.dtype == ms.float16
    np.testing.assert_allclose(y16.asnumpy().astype(np.float32), nn.SiLU()(ms.Tensor(x)).asnumpy(),
                               rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("keep_dims", [False, True])
def test_matmul_mean_matches_reduce_mean(graph_mode, keep_dims):
    from tinynet_ms.kernels.pooling import MatMulMean, ReduceMean

    rng = np.random.default_rng(int(keep_dims))
    x = ms.Tensor(rng.standard_normal((3, 7, 5, 6)).astype(np.float32))
    ref, ours = ReduceMean(keep_dims), MatMulMean(keep_dims)
    y_ref, y = ref(x).asnumpy(), ours(x).asnumpy()
    assert y.shape == y_ref.shape == ((3, 7, 1, 1) if keep_dims else (3, 7)) and _rel(y_ref, y) <= FWD_RTOL
    sens = ms.Tensor(rng.standard_normal(y.shape).astype(np.float32))
    assert _rel(_Grads(ref)(x, sens)[0].asnumpy(), _Grads(ours)(x, sens)[0].asnumpy()) <= FWD_RTOL


def test_channel_scale_matches_broadcast_mul(graph_mode):
    from tinynet_ms.kernels.channel import ChannelMul, ChannelScale

    rng = np.random.default_rng(7)
    x = ms.Tensor(rng.standard_normal((3, 5, 9, 11)).astype(np.float32))  # 99 per plane: a vector tail
    g = ms.Tensor(rng.random((3, 5, 1, 1)).astype(np.float32))
    sens = ms.Tensor(rng.standard_normal((3, 5, 9, 11)).astype(np.float32))
    ref, ours = ChannelMul(), ChannelScale()
    assert _rel(ref(x, g).asnumpy(), ours(x, g).asnumpy()) <= FWD_RTOL
    for a, b in zip(_Grads(ref)(x, g, sens), _Grads(ours)(x, g, sens)):
        assert a.shape == b.shape and _rel(a.asnumpy(), b.asnumpy()) <= FWD_RTOL


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("kernel,stride", [(3, 1), pytest.param(5, 2, marks=pytest.mark.slow)])
def test_fused_inference_depthwise_bias_swish_matches_stock(graph_mode, kernel, stride):
    from tinynet_ms.models.fold import DepthwiseBiasSwish

    rng = np.random.default_rng(kernel + stride)
    for (h, w), channels, batch in [((13, 9), 3, 1), ((53, 53), 16, 2), ((1, 1), 3, 1), ((12, 12), 8, 3)]:
        ref, ours = _pair(channels, kernel, stride)
        bias = rng.standard_normal(channels).astype(np.float32)
        fused = DepthwiseBiasSwish(ours, bias)
        x = ms.Tensor(rng.standard_normal((batch, channels, h, w)).astype(np.float32))
        expected = nn.SiLU()(ref(x) + ms.Tensor(bias).reshape(1, -1, 1, 1)).asnumpy()
        got = fused(x).asnumpy()
        assert got.shape == expected.shape and _rel(expected, got) < FWD_RTOL, (h, w, channels)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("kernel,stride", [(3, 2), pytest.param(5, 1, marks=pytest.mark.slow)])
def test_fused_inference_stem_matches_stock(graph_mode, kernel, stride):
    """The stem's conv over 3 channels + folded BN bias + Swish in one kernel: nn.Conv2d's, odd sizes, batch 1-3, a
    partial group of output channels (12 = 8 + 4) and a single channel."""
    from tinynet_ms.kernels.patch_conv import PatchConv2d
    from tinynet_ms.models.fold import StemBiasSwish

    rng = np.random.default_rng(kernel * stride)
    pad = ((stride - 1) + (kernel - 1)) // 2
    for (h, w), (c_in, c_out), batch in [((106, 106), (3, 32), 2), ((13, 9), (3, 12), 1), ((37, 40), (1, 8), 3),
                                         ((2, 2), (3, 5), 1)]:
        ref = nn.Conv2d(c_in, c_out, kernel, stride=stride, pad_mode="pad", padding=pad)
        conv = PatchConv2d(c_in, c_out, kernel, stride=stride, pad_mode="pad", padding=pad)
        conv.weight.set_data(ref.weight.data.copy())
        bias = rng.standard_normal(c_out).astype(np.float32)
        fused = StemBiasSwish(conv, bias)
        x = ms.Tensor(rng.standard_normal((batch, c_in, h, w)).astype(np.float32))
        expected = nn.SiLU()(ref(x) + ms.Tensor(bias).reshape(1, -1, 1, 1)).asnumpy()
        got = fused(x).asnumpy()
        assert got.shape == expected.shape and _rel(expected, got) < FWD_RTOL, (h, w, c_in, c_out)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("kernel,stride", [(3, 1), (5, 2)])
def test_fused_inference_depthwise_pools_for_the_squeeze_excite_gate(graph_mode, kernel, stride):
    """DepthwiseBiasSwishMean: DepthwiseBiasSwish's output and its plane means (ragged rows, one pixel, batch > 1);
    SqueezeExciteGate on those means: the stock SqueezeExcite's gate, sigmoid(w2 swish(w1 m + b1) + b2)."""
    from tinynet_ms.models.fold import DepthwiseBiasSwish, DepthwiseBiasSwishMean, SqueezeExciteGate
    from tinynet_ms.models.layers import SqueezeExcite

    def swish(v):
        return v / (1 + np.exp(-v))

    rng = np.random.default_rng(11 + kernel)
    for (batch, channels, h, w), reduced in [((1, 16, 7, 7), 4), ((2, 24, 53, 53), 6), ((3, 5, 9, 11), 1),
                                             ((1, 8, 1, 1), 2)]:
        ref, ours = _pair(channels, kernel, stride)
        bias = rng.standard_normal(channels).astype(np.float32)
        x = ms.Tensor(rng.standard_normal((batch, channels, h, w)).astype(np.float32))
        y, m = DepthwiseBiasSwishMean(DepthwiseBiasSwish(ours, bias))(x)
        expected = nn.SiLU()(ref(x) + ms.Tensor(bias).reshape(1, -1, 1, 1)).asnumpy()
        assert y.shape == expected.shape and _rel(expected, y.asnumpy()) < FWD_RTOL, (h, w)
        means = expected.astype(np.float64).mean(axis=(2, 3))
        assert m.shape == (batch, channels) and _rel(means, m.asnumpy()) < FWD_RTOL, (h, w)

        se = SqueezeExcite(channels, reduced)
        for p in se.get_parameters():  # non-zero biases: the init has them zero
            p.set_data(ms.Tensor(rng.standard_normal(p.shape).astype(np.float32)))
        w1, b1 = se.conv_reduce.weight.asnumpy()[:, :, 0, 0], se.conv_reduce.bias.asnumpy()
        w2, b2 = se.conv_expand.weight.asnumpy()[:, :, 0, 0], se.conv_expand.bias.asnumpy()
        gate = 1 / (1 + np.exp(-(swish(means @ w1.T + b1) @ w2.T + b2)))
        got = SqueezeExciteGate(se)(m).asnumpy()
        assert got.shape == gate.shape and _rel(gate, got) < FWD_RTOL, (h, w)


class _Then(nn.Cell):
    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def construct(self, x):
        return self.second(self.first(x))


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("swish", [False, True], ids=["bn", "bn+swish"])
@pytest.mark.parametrize("shape", [(4, 6, 9, 11), (2, 3, 1, 1), (1, 5, 3, 2)], ids=["tail", "1x1", "n1"])
def test_fast_batch_norm_matches_batch_norm(graph_mode, swish, shape):
    """FastBatchNorm2d / BatchNormSwish2d = nn.BatchNorm2d (then nn.SiLU): training output, gradients w.r.t. x,
    gamma and beta, moving-statistics updates (each call: the forward and the gradient's forward), inference output.
    The input's mean is far from 0 relative to its spread: the statistics must not cancel."""
    from tinynet_ms.kernels.batchnorm import BatchNormSwish2d, FastBatchNorm2d

    rng = np.random.default_rng(8)
    channels = shape[1]
    ref = _Then(nn.BatchNorm2d(channels, eps=1e-5, momentum=0.9), nn.SiLU() if swish else nn.Identity())
    ours = _Then((BatchNormSwish2d if swish else FastBatchNorm2d)(channels, eps=1e-5, momentum=0.9), nn.Identity())
    stats = {n: rng.random(channels).astype(np.float32) + 0.5
             for n in ("gamma", "beta", "moving_mean", "moving_variance")}
    for cell in (ref, ours):
        for n, v in stats.items():
            getattr(cell.first, n).set_data(ms.Tensor(v))
    x = ms.Tensor((rng.standard_normal(shape) * 0.5 + 40.0).astype(np.float32))
    sens = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    for cell in (ref, ours):
        cell.set_train(True)
    assert _rel(ref(x).asnumpy(), ours(x).asnumpy()) <= 1e-4  # normalised from |x| ~ 40: float32 rounding of x
    (dx_ref,), (dg_ref, db_ref) = _Grads(ref, weights=True)(x, sens)
    (dx, ), (dg, db) = _Grads(ours, weights=True)(x, sens)
    for a, b in ((dx_ref, dx), (dg_ref, dg), (db_ref, db)):
        assert _rel(a.asnumpy(), b.asnumpy()) <= 1e-3
    for n in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(ours.first, n).asnumpy(), getattr(ref.first, n).asnumpy(), rtol=1e-5)
    for cell in (ref, ours):
        cell.set_train(False)
    assert _rel(ref(x).asnumpy(), ours(x).asnumpy()) <= FWD_RTOL


@pytest.mark.parametrize("amp", [None, "O3"])
@pytest.mark.parametrize("training", [True, False])
def test_fast_batch_norm_under_float16(graph_mode, amp, training):
    """AMP hands the BN float16 (O3: every op input, the eps constant too): computed in float32, returned in
    float16, in training and in inference."""
    from tinynet_ms.kernels.batchnorm import BatchNormSwish2d

    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    ref, ours = _Then(nn.BatchNorm2d(4), nn.SiLU()), BatchNormSwish2d(4)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.random(4).astype(np.float32) + 0.5
    for bn in (ref.first, ours):  # moving statistics away from 0 / 1, so inference uses them
        bn.moving_mean.set_data(ms.Tensor(mean))
        bn.moving_variance.set_data(ms.Tensor(var))
    for cell in (ref, ours):
        cell.set_train(training)
    run = ms.amp.auto_mixed_precision(ours, amp) if amp else ours
    y16 = run(ms.Tensor(x, ms.float16))
    assert y16.dtype == (ms.float32 if amp else ms.float16)  # auto_mixed_precision returns float32
    np.testing.assert_allclose(y16.asnumpy().astype(np.float32), ref(ms.Tensor(x)).asnumpy(), atol=5e-3)


def _fast_cells(net) -> list[str]:
    from tinynet_ms.kernels.batchnorm import FastBatchNorm2d
    from tinynet_ms.kernels.channel import ChannelScale
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d
    from tinynet_ms.kernels.patch_conv import PatchConv2d
    from tinynet_ms.kernels.pooling import MatMulMean
    from tinynet_ms.kernels.swish import Swish

    fast = (DepthwiseConv2d, Swish, MatMulMean, PatchConv2d, FastBatchNorm2d, ChannelScale)
    return [n for n, c in net.cells_and_names() if isinstance(c, fast)]


def test_choice_swaps_cells_and_keeps_names():
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d

    ms.set_seed(3)
    off = create_model("tinynet", cpu_kernels=False, **MINI)
    ms.set_seed(3)
    on = create_model("tinynet", cpu_kernels=True, **MINI)
    assert not off.cpu_kernels and on.cpu_kernels
    assert not any(isinstance(c, DepthwiseConv2d) for _, c in off.cells_and_names())
    swapped = {n for n, c in on.cells_and_names() if isinstance(c, DepthwiseConv2d)}
    assert swapped == {n for n, _ in off.cells_and_names() if n.endswith("conv_dw")} and swapped
    from tinynet_ms.kernels.patch_conv import PatchConv2d
    from tinynet_ms.kernels.pooling import MatMulMean
    from tinynet_ms.kernels.swish import Swish
    assert [n for n, c in on.cells_and_names() if isinstance(c, PatchConv2d)] == ["conv_stem"]
    # Swish after a conv (the SE's) stays a cell of its own; a BN followed by Swish is one cell either way:
    # BatchNormAct2d (its SiLU a child) or, with the kernels, BatchNormSwish2d (the Swish in its kernels)
    from tinynet_ms.models.layers import BatchNormAct2d
    silu = {n for n, c in off.cells_and_names() if type(c) is nn.SiLU}
    se_silu = {n for n in silu if ".se." in n}
    assert se_silu and se_silu == {n for n, c in on.cells_and_names() if isinstance(c, Swish)}
    off_all = dict(off.cells_and_names())
    assert all(isinstance(off_all[n.rsplit(".", 1)[0]], BatchNormAct2d) for n in silu - se_silu)
    assert not any(isinstance(c, nn.Identity) for _, c in on.cells_and_names())
    assert len([c for _, c in on.cells_and_names() if isinstance(c, MatMulMean)]) == 1 + len(
        [c for _, c in on.cells_and_names() if type(c).__name__ == "SqueezeExcite"])
    from tinynet_ms.kernels.batchnorm import BatchNormSwish2d, FastBatchNorm2d
    from tinynet_ms.kernels.channel import ChannelScale
    assert {n for n, c in off.cells_and_names() if isinstance(c, nn.BatchNorm2d)} == {
        n for n, c in on.cells_and_names() if isinstance(c, FastBatchNorm2d)}
    # the BNs with the Swish: every BN but a block's last (its output goes to the residual add)
    from tinynet_ms.models.blocks import DepthwiseSeparable
    off_cells = dict(off.cells_and_names())
    last = {n for n, c in off_cells.items() if n.endswith(".bn3") or (
        n.endswith(".bn2") and isinstance(off_cells[n.rsplit(".", 1)[0]], DepthwiseSeparable))}
    assert last and {n for n, c in on.cells_and_names() if isinstance(c, BatchNormSwish2d)} == {
        n for n, c in off_cells.items() if isinstance(c, nn.BatchNorm2d)} - last == {
        n for n, c in off_cells.items() if isinstance(c, BatchNormAct2d)}
    assert {n for n, c in on.cells_and_names() if isinstance(c, ChannelScale)} == {
        n + ".scale" for n, c in off.cells_and_names() if type(c).__name__ == "SqueezeExcite"}
    assert not _fast_cells(off)
    a, b = param_arrays(off), param_arrays(on)
    assert list(a) == list(b)  # same names, same order (checkpoints interchangeable)
    assert all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)  # same init draws


def _twin_models(**kwargs):
    """The same TinyNet built with the kernels off and on, with identical weights."""
    off = create_model("tinynet", cpu_kernels=False, **MINI, **kwargs)
    on = create_model("tinynet", cpu_kernels=True, **MINI, **kwargs)
    load_arrays_into(on, param_arrays(off), "kernels-off twin")
    assert list(named_params(on)) == list(named_params(off))
    return off, on


class _LossGrads(nn.Cell):
    """(cross-entropy loss, its gradients w.r.t. every trainable parameter) as one graph."""

    def __init__(self, net):
        super().__init__()
        self.net, self.loss_fn = net, nn.CrossEntropyLoss()
        self.weights = ms.ParameterTuple(net.trainable_params())
        self.grad = ops.GradOperation(get_by_list=True)

    def loss(self, x, y):
        return self.loss_fn(self.net(x), y)

    def construct(self, x, y):
        return self.loss(x, y), self.grad(self.loss, self.weights)(x, y)


@pytest.mark.slow
def test_tinynet_logits_and_gradients(graph_mode):
    off, on = _twin_models(drop_rate=0.0)
    rng = np.random.default_rng(4)
    x = ms.Tensor(rng.standard_normal((4, 3, 64, 64)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 10, 4).astype(np.int32))
    off.set_train(False)
    on.set_train(False)
    assert _rel(off(x).asnumpy(), on(x).asnumpy()) < 1e-5

    off.set_train(True)
    on.set_train(True)

    def grads(net):
        loss, g = _LossGrads(net)(x, y)
        return float(loss.asnumpy()), [t.asnumpy() for t in g]

    loss_off, g_off = grads(off)
    loss_on, g_on = grads(on)
    assert loss_on == pytest.approx(loss_off, rel=1e-5)
    # Per tensor, relative to its own scale; tensors whose gradient is zero in exact arithmetic (BN shifts
    # followed by another BN: ~1e-6 of rounding noise) are measured against 1% of the largest gradient.
    scale = max(np.abs(g).max() for g in g_off)
    names = [p.name for p in off.trainable_params()]
    for name, a, b in zip(names, g_off, g_on):
        assert np.abs(a - b).max() <= GRAD_RTOL * max(np.abs(a).max(), 1e-2 * scale), name


@pytest.mark.slow
def test_train_steps_match(graph_mode):
    """TrainStep (loss scale, GradOperation, RMSprop) over a few steps: same losses and weights either way."""
    from tinynet_ms.train import TrainStep, WithLoss, create_rmsprop

    off, on = _twin_models(drop_rate=0.0)
    rng = np.random.default_rng(5)
    x = ms.Tensor(rng.standard_normal((4, 3, 48, 48)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 10, 4).astype(np.int32))
    noise = ms.Tensor(rng.random((4, off.noise_size), dtype=np.float32))
    losses = {}
    for label, net in (("off", off), ("on", on)):
        step = TrainStep(WithLoss(net, nn.CrossEntropyLoss()), create_rmsprop(net, np.full(4, 1e-3, np.float32)),
                         128.0)
        step.set_train(True)
        losses[label] = [float(step(x, y, noise).asnumpy()) for _ in range(3)]
    np.testing.assert_allclose(losses["on"], losses["off"], rtol=1e-4)
    a, b = param_arrays(off), param_arrays(on)
    worst = max(_rel(a[k], b[k]) for k in a if k.endswith("conv_dw.weight"))
    assert worst < 1e-4


class _Tiny(nn.Cell):
    """1x1 conv → depthwise k3 s2 → BN → spatial mean: 8 logits, built from the model's layer set."""

    def __init__(self, cpu_kernels: bool):
        super().__init__()
        from tinynet_ms.models.layers import LayerSet

        layers = LayerSet(cpu_kernels)
        self.conv_pw = layers.conv(3, 8, 1)
        self.conv_dw = layers.conv(8, 8, 3, stride=2, groups=8)
        self.bn = layers.norm(8)

    def construct(self, x):
        return ops.mean(self.bn(self.conv_dw(self.conv_pw(x))), (2, 3))


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_amp_o2(graph_mode):
    """Under AMP O2 the cell receives float16 activations: the kernel computes in float32, returns float16,
    and loss and gradients stay close to MindSpore's float16 conv."""
    from tinynet_ms.kernels.depthwise import DepthwiseConv2d

    off, on = _Tiny(cpu_kernels=False), _Tiny(cpu_kernels=True)
    assert isinstance(on.conv_dw, DepthwiseConv2d) and not isinstance(off.conv_dw, DepthwiseConv2d)
    load_arrays_into(on, param_arrays(off), "kernels-off twin")
    rng = np.random.default_rng(6)
    x = ms.Tensor(rng.standard_normal((4, 3, 17, 17)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 8, 4).astype(np.int32))
    results = []
    for net in (off, on):
        net.set_train(True)
        loss, grads = _LossGrads(ms.amp.auto_mixed_precision(net, "O2"))(x, y)
        results.append((float(loss.asnumpy()), [g.asnumpy().astype(np.float32) for g in grads]))
    (loss_off, g_off), (loss_on, g_on) = results
    assert loss_on == pytest.approx(loss_off, rel=1e-2)
    for a, b in zip(g_off, g_on):
        assert np.abs(a - b).max() <= 2e-2 * max(np.abs(a).max(), 1e-3)


@pytest.mark.slow
def test_tinynet_amp_o2(graph_mode):
    """A whole TinyNet under AMP O2 (float16 activations into every fast cell): training loss and gradients,
    and inference logits, stay close to the stock cells under O2."""
    off, on = _twin_models(drop_rate=0.0)
    rng = np.random.default_rng(9)
    x = ms.Tensor(rng.standard_normal((4, 3, 48, 48)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 10, 4).astype(np.int32))
    results = []
    for net in (off, on):
        amp = ms.amp.auto_mixed_precision(net, "O2")
        net.set_train(True)
        loss, grads = _LossGrads(amp)(x, y)
        net.set_train(False)
        results.append((float(loss.asnumpy()), [g.asnumpy().astype(np.float32) for g in grads],
                        amp(x).asnumpy().astype(np.float32)))
    (loss_off, g_off, logits_off), (loss_on, g_on, logits_on) = results
    assert loss_on == pytest.approx(loss_off, rel=1e-2)
    assert np.abs(logits_off - logits_on).max() <= 2e-2 * np.abs(logits_off).max()
    scale = max(np.abs(g).max() for g in g_off)
    for a, b in zip(g_off, g_on):
        assert np.abs(a - b).max() <= 5e-2 * max(np.abs(a).max(), 1e-2 * scale)


def _pointwise_cases(fold, rng):
    """(fused cell, its inputs, expected) for the folded 1x1 convs (bias, bias + Swish, gated by a squeeze-excite,
    gated with the residual) and the classifier: batch 1-3, planes wider than one column block (53x53), fewer rows
    than a row block, a 1x1 plane."""
    for (h, w), (k, m), batch, kind in [((53, 53), (16, 96), 2, "swish"), ((7, 7), (40, 240), 1, "bias"),
                                        ((4, 4), (160, 1280), 3, "swish"), ((3, 5), (5, 3), 1, "bias"),
                                        ((1, 1), (8, 8), 2, "swish"), ((53, 53), (96, 24), 2, "gated"),
                                        ((7, 7), (480, 80), 3, "gated+skip"), ((3, 5), (5, 3), 1, "gated+skip"),
                                        ((12, 12), (240, 40), 1, "gated")]:
        conv = nn.Conv2d(k, m, 1, has_bias=False)
        bias = rng.standard_normal(m).astype(np.float32)
        x = ms.Tensor(rng.standard_normal((batch, k, h, w)).astype(np.float32))
        cell = fold.PointwiseBias(conv, bias, kind == "swish")
        if kind.startswith("gated"):
            g = ms.Tensor(rng.uniform(0, 1, (batch, k)).astype(np.float32))
            skip = ms.Tensor(rng.standard_normal((batch, m, h, w)).astype(np.float32))
            y = conv(x * g.reshape(batch, k, 1, 1)) + ms.Tensor(bias).reshape(1, -1, 1, 1)
            args = (x, g, skip) if kind == "gated+skip" else (x, g)
            yield f"{kind} pointwise {k}->{m} at {h}x{w}", fold.PointwiseGated(cell), args, \
                (y + skip if kind == "gated+skip" else y).asnumpy()
            continue
        y = conv(x) + ms.Tensor(bias).reshape(1, -1, 1, 1)
        yield f"{kind} pointwise {k}->{m} at {h}x{w}", cell, (x,), (nn.SiLU()(y) if kind == "swish" else y).asnumpy()
    for batch, (k, m) in [(1, (1280, 1000)), (5, (64, 10)), (2, (7, 3))]:
        dense = nn.Dense(k, m)
        dense.bias.set_data(ms.Tensor(rng.standard_normal(m).astype(np.float32)))
        x = ms.Tensor(rng.standard_normal((batch, k)).astype(np.float32))
        yield f"linear {k}->{m}, batch {batch}", fold.FusedDense(dense), (x,), dense(x).asnumpy()


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_fused_inference_pointwise_and_classifier_match_stock(graph_mode):
    from tinynet_ms.models import fold

    for case, cell, args, expected in _pointwise_cases(fold, np.random.default_rng(5)):
        got = cell(*args).asnumpy()
        assert got.shape == expected.shape and _rel(expected, got) < FWD_RTOL, case


@pytest.mark.slow  # compiles the library afresh
def test_pointwise_kernels_without_onednn(tmp_path, monkeypatch, graph_mode):
    """A MindSpore without libdnnl: the library builds without it and the same ops give the same numbers."""
    from tinynet_ms.kernels import build, pointwise
    from tinynet_ms.models import fold

    monkeypatch.setenv("TINYNET_MS_HOME", str(tmp_path))
    monkeypatch.setattr(build, "_library", None)
    monkeypatch.setattr(build, "_mindspore_lib", lambda: None)
    assert "-DTINYNET_DNNL" not in build.compile_flags() and not build.link_flags()
    path = build.build_library()
    assert path.parent == tmp_path / "kernels" and "libdnnl" not in subprocess.run(
        ["ldd", str(path)], capture_output=True, text=True).stdout
    for case, cell, args, expected in _pointwise_cases(fold, np.random.default_rng(6)):
        assert str(path) in cell.op.func, case  # this build's kernels ran, not the cached oneDNN ones
        got = cell(*args).asnumpy()
        assert got.shape == expected.shape and _rel(expected, got) < FWD_RTOL, case
    monkeypatch.setattr(build, "_library", None)  # later tests rebuild in the default cache
    pointwise._ops.clear()
