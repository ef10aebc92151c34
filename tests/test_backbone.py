"""Backbone mode: ``create_model(..., features_only=True)`` gives timm's feature levels (channels, strides, values)
at any input size, loads a classifier's weights and exports (MindIR, ONNX: one output per level)."""
import json
import math
import mindspore as ms
import numpy as np
import pytest

from helpers import DATA, MINI_WEIGHTS
from tinynet_ms import create_model
from tinynet_ms.export import export_and_verify, load_exported, model_io_shapes, sidecar_path
from tinynet_ms.models import VARIANTS, model_spec
from tinynet_ms.weights import save_checkpoint_atomic

MINI = dict(w=0.25, d=0.35)  # how the timm fixture network was built
TIMM = np.load(DATA / "timm_tinynet_mini_features.npz")
ALL_LEVELS = (0, 1, 2, 3, 4)


def _features(net, x):
    net.set_train(False)
    return [f.asnumpy() for f in net(ms.Tensor(x))]


def _check_levels(name, size):
    net = create_model(name, features_only=True)
    spec = model_spec(name)
    stages = spec.stages
    want = [(stages[s].channels, r) for s, r in ((1, 4), (2, 8), (4, 16), (6, 32))]  # timm's stage ends
    assert [(lv.channels, lv.reduction) for lv in net.feature_info] == want
    out = _features(net, np.zeros((1, 3, size, size), np.float32))
    assert [f.shape for f in out] == [(1, c, math.ceil(size / r), math.ceil(size / r)) for c, r in want]


def test_levels_and_strides_of_tinynet_e_at_two_sizes(pynative_mode):
    for size in (224, 320):
        _check_levels("tinynet_e", size)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "tinynet_e"])
def test_levels_and_strides_of_every_variant_at_two_sizes(pynative_mode, name):
    for size in (224, 320):
        _check_levels(name, size)


@pytest.mark.parametrize("key", ["square", "odd"])
def test_timm_weights_give_timms_features(mode, key):
    """timm's features_only output of the same weights (fixture from make_timm_features.py), every level."""
    net = create_model("tinynet", checkpoint_path=MINI_WEIGHTS, features_only=True, out_indices=ALL_LEVELS, **MINI)
    assert [lv.channels for lv in net.feature_info] == TIMM["channels"].tolist()
    assert [lv.reduction for lv in net.feature_info] == TIMM["reductions"].tolist()
    for i, got in enumerate(_features(net, TIMM[f"{key}_input"])):
        ref = TIMM[f"{key}_feature{i}"]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max(), f"level {i}"


def test_features_are_the_classifiers_own_activations(pynative_mode, capfd):
    """Same weights, same input: each output is the classifier's activation at that stage end; the classifier's
    checkpoint loads with its head (and the stages past the last output) left out, said in one line."""
    import logging

    logging.basicConfig(level=logging.INFO, force=True)
    classifier = create_model("tinynet", checkpoint_path=MINI_WEIGHTS, num_classes=10, **MINI)
    classifier.set_train(False)
    x = np.random.default_rng(3).standard_normal((2, 3, 80, 80)).astype(np.float32)
    h, stage_ends = classifier.stem(ms.Tensor(x)), []
    for stage in classifier.blocks:
        for block in stage:
            h = block(h)
        stage_ends.append(h.asnumpy())
    net = create_model("tinynet", checkpoint_path=MINI_WEIGHTS, features_only=True, out_indices=(1, 2), **MINI)
    err = capfd.readouterr().err
    assert "left out (blocks.3, blocks.4, blocks.5, blocks.6, bn2, classifier, conv_head)" in err, err
    assert len(net.blocks) == 3  # nothing built past stage 2
    for got, stage in zip(_features(net, x), (1, 2)):
        np.testing.assert_allclose(got, stage_ends[stage], rtol=0, atol=1e-5 * np.abs(stage_ends[stage]).max())


def test_a_backbone_checkpoint_round_trips_and_a_wrong_one_is_named(tmp_path):
    net = create_model("tinynet", checkpoint_path=MINI_WEIGHTS, features_only=True, **MINI)
    path = save_checkpoint_atomic(net, tmp_path / "backbone.ckpt")
    again = create_model("tinynet", checkpoint_path=path, features_only=True, **MINI)
    x = np.ones((1, 3, 64, 64), np.float32)
    for a, b in zip(_features(net, x), _features(again, x)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"(?s)100 with the wrong shape.*shape mismatch blocks.1.0.conv_pwl.weight"):
        create_model("tinynet", checkpoint_path=MINI_WEIGHTS, features_only=True, w=0.5, d=0.35)


@pytest.mark.parametrize("bad", [(), (2, 1), (1, 1), (0, 5), (-1,)])
def test_out_indices_outside_the_levels_are_refused(bad):
    with pytest.raises(ValueError, match=r"out_indices must be increasing feature levels in 0..4 "
                                         r"\(reductions 2, 4, 8, 16, 32\)"):
        create_model("tinynet_e", features_only=True, out_indices=bad)


@pytest.mark.parametrize("file_format", ["ONNX", pytest.param("MINDIR", marks=pytest.mark.slow)])
def test_backbone_exports_one_output_per_level_and_re_loads_exactly(tmp_path, file_format):
    """Four named outputs (stride4..stride32) with a dynamic batch, re-load checked by export at batch 1 and 7,
    their shapes in the file and their levels in the sidecar; run here at batch 3, equal to the backbone's."""
    net = create_model("tinynet", checkpoint_path=MINI_WEIGHTS, features_only=True, **MINI)
    net.set_train(False)
    result = export_and_verify(net, tmp_path / "backbone", file_format, batch_size=1, image_size=96,
                               dynamic_batch=True)
    assert result.rel_diff <= 1e-4 and result.checked_batches == (1, 7)
    levels = net.feature_info
    assert model_io_shapes(result.path) == ([-1, 3, 96, 96],
                                            [[-1, lv.channels, 96 // lv.reduction, 96 // lv.reduction]
                                             for lv in levels])
    side = json.loads(sidecar_path(result.path).read_text())
    assert side["outputs"] == ["stride4", "stride8", "stride16", "stride32"]
    assert [(f["num_chs"], f["reduction"]) for f in side["feature_info"]] == [(lv.channels, lv.reduction)
                                                                             for lv in levels]
    x = np.random.default_rng(3).standard_normal((3, 3, 96, 96)).astype(np.float32)
    for got, want in zip(load_exported(result.path)(x), _features(net, x), strict=True):
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("extra,message", [
    ((), "config key 'out_indices' ('9') picks backbone levels and needs features_only true: add --features_only "
         "true to export the backbone, or drop out_indices to export the classifier"),
    (("--features_only", "true"), "config key 'out_indices' ('9'): out_indices must be increasing feature levels in "
                                  "0..4 (reductions 2, 4, 8, 16, 32), got (9,)"),
])
def test_export_out_indices_is_a_backbone_key(tmp_path, capsys, extra, message):
    """export.py --out_indices without --features_only was ignored (a classifier exported instead of the levels
    asked for); out of range with it: the same one-line config error (exit 2), nothing written either way."""
    from src.app import run_app
    from src.exporting import run_export

    argv = ["--model", "tinynet", "--w", "0.25", "--d", "0.35", "--num_classes", "10", "--image_size", "48",
            "--device_target", "CPU", "--checkpoint_path", str(MINI_WEIGHTS), "--file_format", "ONNX",
            "--file_name", str(tmp_path / "m"), "--out_indices", "9", *extra]
    assert run_app(run_export, argv, "export", "export.py", aliases={"batch_size": "export_batch_size"}) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error" in line] == [f"error: {message}"], err
    assert not list(tmp_path.glob("m*"))
