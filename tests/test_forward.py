"""Forward pass in both execution modes; stochastic layers only act in training."""
import mindspore as ms
import numpy as np
import pytest

from tinynet_ms import create_model
from tinynet_ms.models import VARIANTS
from tinynet_ms.models.layers import Dropout, DropPath


@pytest.mark.slow
@pytest.mark.parametrize("name,mode", [  # a variant's graph compile takes 10-13 s: CI compiles one, `long` the rest
    *(pytest.param(name, ms.PYNATIVE_MODE, id=f"pynative-{name}") for name in sorted(VARIANTS)),
    *(pytest.param(name, ms.GRAPH_MODE, id=f"graph-{name}", marks=() if name == "tinynet_a" else pytest.mark.long)
      for name in sorted(VARIANTS))], indirect=["mode"])
def test_forward_shapes(name, mode):
    net = create_model(name)
    net.set_train(False)
    size = VARIANTS[name].image_size
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32))
    out = net(x).asnumpy()
    assert out.shape == (2, 1000)
    assert np.isfinite(out).all()
    assert net.forward_features(x).shape == (2, 1280, (size + 31) // 32, (size + 31) // 32)


def _two_outputs(net, train: bool):
    net.set_train(train)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((4, 3, 64, 64)).astype(np.float32))
    return net(x).asnumpy(), net(x).asnumpy()


@pytest.mark.parametrize("mode", [pytest.param(ms.GRAPH_MODE, id="graph", marks=pytest.mark.slow),
                                  pytest.param(ms.PYNATIVE_MODE, id="pynative")], indirect=True)
@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_dropout_and_drop_path_only_in_training(mode):
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, drop_rate=0.5, drop_path_rate=0.5)
    a, b = _two_outputs(net, train=True)
    assert not np.allclose(a, b), "dropout/drop-path inactive in training mode"
    a, b = _two_outputs(net, train=False)
    np.testing.assert_array_equal(a, b)
    # Without stochastic layers, training mode (batch-stat BN) is deterministic: the difference above came
    # from dropout / drop-path, not from BN.
    plain = create_model("tinynet", w=0.25, d=0.35, num_classes=10, drop_rate=0.0, drop_path_rate=0.0)
    a, b = _two_outputs(plain, train=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_drop_path_zeroes_whole_samples():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    cell = DropPath(0.5)
    x = ms.Tensor(np.ones((256, 2, 3, 3), np.float32))
    cell.set_train(True)
    y = cell(x).asnumpy()
    per_sample = y.reshape(256, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}  # kept samples are scaled by 1 / keep_prob
    assert (per_sample.min(1) == per_sample.max(1)).all()  # the mask is per sample, not per element
    assert 0.3 < (per_sample[:, 0] == 0).mean() < 0.7
    cell.set_train(False)
    np.testing.assert_array_equal(cell(x).asnumpy(), x.asnumpy())


def test_dropout_without_noise_draws_its_own_without_deprecated_ops(mode, monkeypatch):
    """Outside the trainer (no noise passed) the layer draws U[0, 1) itself: the kept fraction is keep_prob, kept
    values are scaled by 1 / keep_prob, and building or running it warns nothing (MindSpore 2.10 deprecates
    UniformReal, and ops.rand / ops.uniform build it)."""
    from mindspore.common import _decorator

    warned = []
    monkeypatch.setattr(_decorator, "DEPRECATE_SET", set())  # a deprecated op warns again, whatever ran before
    monkeypatch.setattr(_decorator.log, "warning", lambda msg, *a: warned.append(msg))
    cell = Dropout(0.3)
    cell.set_train(True)
    y = cell(ms.Tensor(np.ones((400, 250), np.float32))).asnumpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01  # 100,000 draws: the standard error is 0.0015
    assert not warned, warned


def test_drop_path_rate_grows_with_block_index():
    net = create_model("tinynet_e", drop_path_rate=0.2)
    rates = [blk.drop_path.p for stage in net.blocks for blk in stage]
    assert rates[0] == 0.0 and rates == sorted(rates)
    assert rates[-1] == pytest.approx(0.2 * (len(rates) - 1) / len(rates))


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_a_compiled_graph_is_called_without_re_walking_its_cells_and_a_new_phase_reaches_them(graph_mode):
    net = create_model("tinynet", r=0.2, w=0.25, d=0.2, num_classes=4)
    net.set_train(False)
    leaf = net.blocks[0][0].conv_dw

    def call(size):
        net(ms.Tensor(np.zeros((1, 3, size, size), np.float32))).asnumpy()

    call(32)
    assert leaf.compile_phase == net.compile_phase
    leaf.compile_phase = "marker"
    call(32)  # compiled for this phase: the call leaves the sub-cells alone
    assert leaf.compile_phase == "marker"
    call(48)  # a new input shape compiles a new phase, which every sub-cell must carry while it is parsed
    assert leaf.compile_phase == net.compile_phase != "marker"
    net.set_train(True)
    call(48)
    assert leaf.compile_phase == net.compile_phase and "train" in net.compile_phase
