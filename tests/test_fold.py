"""BatchNorm folding for inference graphs (eval.py and every export): same logits, no BatchNorm left."""
import mindspore as ms
import numpy as np
import pytest

from tinynet_ms import create_model
from tinynet_ms.models.fold import fold_batchnorm
from tinynet_ms.weights import param_arrays


def _net_with_real_statistics(cpu_kernels: bool):
    """A mini TinyNet whose BN statistics and affine terms are far from the init (folding them is then visible)."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=cpu_kernels)
    rng = np.random.default_rng(0)
    for name, p in net.parameters_and_names():
        if name.endswith(("moving_mean", "beta")):
            p.set_data(ms.Tensor(rng.normal(0, 0.3, p.shape).astype(np.float32)))
        elif name.endswith(("moving_variance", "gamma")):
            p.set_data(ms.Tensor(rng.uniform(0.3, 2.0, p.shape).astype(np.float32)))
    net.set_train(False)
    return net


@pytest.mark.parametrize("cpu_kernels", [True, False], ids=["kernels", "stock"])
def test_folded_network_gives_the_same_logits_without_batchnorm(graph_mode, cpu_kernels):
    net = _net_with_real_statistics(cpu_kernels)
    before = param_arrays(net)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((3, 3, 48, 48)).astype(np.float32))
    expected = net(x).asnumpy()
    folded = fold_batchnorm(net)
    got = folded(x).asnumpy()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert not [n for n, c in folded.cells_and_names() if isinstance(c, ms.nn.BatchNorm2d)]
    names = [n for n, _ in folded.parameters_and_names()]
    assert [p.name for p in folded.get_parameters()] == names  # structural and unique: a graph can hold them
    assert not [n for n in names if "moving_" in n or "gamma" in n]
    kinds = {type(c).__name__ for _, c in folded.cells_and_names()}
    fused = {"StemBiasSwish", "DepthwiseBiasSwishMean", "SqueezeExciteGate", "PointwiseBias", "PointwiseGated",
             "FusedDepthwiseSeparable", "FusedInvertedResidual", "FusedDense"}
    if cpu_kernels:  # the fused inference kernels ran: every conv with its BN (+ Swish), each block, the classifier
        assert "blocks.0.0.conv_dw.bias" in names and fused <= kinds
    else:
        assert "blocks.0.0.bn1.bias" in names and not fused & kinds
    assert all(np.array_equal(before[k], v) for k, v in param_arrays(net).items())  # the original is untouched
    np.testing.assert_array_equal(net(x).asnumpy(), expected)


def test_exported_graph_has_the_batchnorms_folded(tmp_path):
    import onnx

    from tinynet_ms.export import export_and_verify

    net = _net_with_real_statistics(cpu_kernels=True)
    result = export_and_verify(net, tmp_path / "m", "ONNX", 2, 48)  # checked against the unfolded network
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
