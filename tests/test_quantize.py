"""INT8 post-training quantization (tinynet_ms.quantize): a real QDQ file, calibrated and scored, its sidecar kept;
activation ranges from per-batch statistics of a chosen calibration batch, whatever batch the file was exported with."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers import ROOT, write_tiny_onnx
from tinynet_ms import create_model
from tinynet_ms.data import scan_split
from tinynet_ms.export import export_network, load_exported, model_info, sidecar_path
from tinynet_ms.data import load_eval_image
from tinynet_ms.models import DEFAULT_PREPROCESSING
from tinynet_ms.quantize import CALIB_BATCH, calibration_samples, main, paired_ci95, quantize_model


def _mini_net(mini_run):
    return create_model("tinynet", checkpoint_path=mini_run["weights"], w=0.25, d=0.35, num_classes=10,
                        cpu_kernels=False)


@pytest.fixture(scope="module")
def mini_onnx(mini_run, tmp_path_factory):
    return export_network(_mini_net(mini_run), tmp_path_factory.mktemp("q") / "mini", "ONNX", batch_size=1,
                          image_size=48, dynamic_batch=True)


def _activation_scales(path) -> dict[str, float]:
    """Scale of each per-tensor activation quantizer in a QDQ file (its range is 255 scales)."""
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits and inits[n.input[1]].size == 1}


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_quantize_writes_a_per_channel_qdq_model_and_scores_both(mini_run, mini_onnx, tmp_path, capsys):
    out = tmp_path / "mini_int8.onnx"
    assert main([str(mini_onnx), "--data", str(mini_run["data"]), "--num_calib", "8", "--output", str(out),
                 "--runs", "3", "--json"]) == 0
    printed = capsys.readouterr().out
    assert f"calibrating on 8 images of {mini_run['data'] / 'train'} at 48px in batches of {CALIB_BATCH}" in printed
    assert "| mini_int8.onnx |" in printed and "| mini.onnx |" in printed and "paired 95% interval" in printed
    rows = json.loads(printed.strip().splitlines()[-1])
    assert [r["model"] for r in rows] == ["mini.onnx", "mini_int8.onnx"] and all(r["batch"] == 32 for r in rows)
    assert all(r["latency_ms"] > 0 and r["openvino_ms"] > 0 for r in rows)  # timed in both runtimes
    # agreement is with the float model; a top-1 difference can only come from images whose top-1 class changed
    assert rows[0]["agreement"] == 1.0 and rows[0]["top1_ci95"] == 0.0
    assert 0 <= rows[1]["agreement"] <= 1 and rows[1]["top1_ci95"] >= 0
    assert abs(rows[1]["top1"] - rows[0]["top1"]) <= 1 - rows[1]["agreement"] + 1e-9
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10 and "Conv" in ops
    # per-channel weights: a weight's DequantizeLinear scale holds one value per output channel
    inits = {i.name: i for i in graph.initializer}
    scales = [inits[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
              and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert scales and max(int(np.prod(s.dims)) for s in scales) > 1
    assert sidecar_path(out).read_text() == sidecar_path(mini_onnx).read_text()
    assert model_info(out)["input_shape"] == [-1, 3, 48, 48]
    # the INT8 model approximates the float one (the same ranking on most inputs)
    x = np.stack([load_eval_image(s.path, 48) for s in scan_split(mini_run["data"] / "val").samples])
    f32, i8 = load_exported(mini_onnx)(x)[0], load_exported(out)(x)[0]
    assert np.corrcoef(f32.ravel(), i8.ravel())[0, 1] > 0.95
    assert not np.array_equal(f32, i8)


def test_calibration_images_are_a_fixed_shuffled_sample_without_repeats(mini_run):
    train = scan_split(mini_run["data"] / "train").samples
    picked = calibration_samples(train, 6)
    assert len({s.path for s in picked}) == 6 and picked == calibration_samples(train, 6)
    every = calibration_samples(train, 512)
    assert sorted(s.path for s in every) == sorted(s.path for s in train)  # fewer images than asked: all of them
    # shuffled, so that calibration batches mix classes instead of following the sorted class folders
    assert [s.label for s in every] != sorted(s.label for s in every)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_activation_ranges_follow_the_calibration_batch_not_the_files_batch(mini_run, tmp_path):
    """A fixed batch-1 file is calibrated in batches of ``calib_batch`` (and keeps its batch 1): one batch of all 8
    images gives each activation the min/max over all of them, batches of 1 the mean of per-image min/max, which
    is narrower. A breakage (statistics per image whatever the batch, or the file's own batch used) shows here."""
    fixed = export_network(_mini_net(mini_run), tmp_path / "mini_b1", "ONNX", batch_size=1, image_size=48)
    calib = calibration_samples(scan_split(mini_run["data"] / "train").samples, 8)
    per_image = quantize_model(fixed, tmp_path / "per_image.onnx", calib, 48, DEFAULT_PREPROCESSING, calib_batch=1)
    one_batch = quantize_model(fixed, tmp_path / "one_batch.onnx", calib, 48, DEFAULT_PREPROCESSING, calib_batch=8)
    narrow, wide = _activation_scales(per_image), _activation_scales(one_batch)
    assert narrow.keys() == wide.keys() and len(narrow) > 10
    ratio = np.array([wide[k] / narrow[k] for k in narrow])
    assert ratio.min() >= 1 - 1e-5  # a batch's extreme is at least the mean of its images' extremes
    assert (ratio > 1.1).sum() >= len(ratio) / 4 and np.exp(np.log(ratio).mean()) > 1.05  # and clearly wider
    for out in (per_image, one_batch):
        assert model_info(out)["input_shape"] == [1, 3, 48, 48] and model_info(out)["output_shape"] == [1, 10]
        x = load_eval_image(calib[0].path, 48)[None]
        assert load_exported(out)(x)[0].shape == (1, 10)


def test_paired_interval_of_a_top1_difference():
    same = np.array([1, 0, 1, 1, 0], bool)
    assert paired_ci95(same, same) == 0.0  # the same per-image outcomes: no uncertainty about the difference
    flipped = np.array([1] * 50 + [0] * 50, bool)
    other = np.array([1] * 40 + [0] * 10 + [1] * 10 + [0] * 40, bool)  # 10 gained, 10 lost of 100
    assert paired_ci95(other, flipped) == pytest.approx(1.959964 * np.std([1] * 10 + [-1] * 10 + [0] * 80, ddof=1)
                                                        / 10)


@pytest.mark.parametrize("args,expect", [
    (["nope.onnx", "--data", "d"], "model file not found: nope.onnx"),
    (["{mindir}", "--data", "{data}"], "quantization takes the ONNX export"),
    (["{onnx}", "--data", "{data}", "--num_calib", "0"], "expected a positive integer"),
])
def test_bad_input_is_one_line(mini_run, mini_onnx, tmp_path, args, expect):
    mindir = tmp_path / "m.mindir"
    mindir.write_bytes(b"x")
    argv = [a.format(mindir=mindir, data=mini_run["data"], onnx=mini_onnx) for a in args]
    run = subprocess.run([sys.executable, "-m", "tinynet_ms.quantize", *argv], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode != 0 and expect in run.stderr.strip().splitlines()[-1], run.stderr  # one line says it


def _spellings(model):
    """Other names of ``model``'s file: a symlink, a detour through its folder, a relative path, a hard link."""
    (model.parent / "link.onnx").symlink_to(model.name)
    (model.parent / "hard.onnx").hardlink_to(model)
    return [model, model.parent / "link.onnx", model.parent / ".." / model.parent.name / model.name,
            Path(os.path.relpath(model)), model.parent / "hard.onnx", sidecar_path(model)]


def test_output_that_is_the_model_itself_is_refused_before_any_work(tmp_path, capsys):
    """--output naming the float model (or its sidecar) under any spelling would replace it and score INT8 against
    itself: exit 2, one line, before the data is read (there is none here) and with the model untouched."""
    model = write_tiny_onnx(tmp_path / "m.onnx")
    sidecar_path(model).write_text("{}")
    before = model.read_bytes(), sidecar_path(model).read_bytes()
    for output in _spellings(model):
        assert main([str(model), "--data", str(tmp_path / "no_data"), "--output", str(output)]) == 2, output
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: --output {output} is ") and "itself" in err[0], err
    assert (model.read_bytes(), sidecar_path(model).read_bytes()) == before


def test_a_backbone_export_is_refused_before_anything_is_written(tmp_path, demo_data, capsys):
    """A one-level backbone file (one feature-map output, as export.py --features_only true --out_indices 4 writes)
    passed the old 'one output' check, got quantized, then failed in numpy: now one line naming what is supported."""
    model = write_tiny_onnx(tmp_path / "backbone.onnx", backbone=True)
    assert main([str(model), "--data", str(demo_data), "--num_calib", "4"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {model} outputs (1,3,1,1): quantize takes a classifier export (one (N, classes) logits "
                   f"output); a backbone (export.py --features_only true) cannot be scored on DATA/val"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone.onnx"]


def test_a_model_of_other_classes_than_the_data_is_named(tmp_path, demo_data, capsys):
    """A 10-class model on 4-class data scored a meaningless top-1 (0.0000): one line naming both counts, exit 1,
    nothing written."""
    model = write_tiny_onnx(tmp_path / "ten.onnx", num_classes=10)
    assert main([str(model), "--data", str(demo_data), "--num_calib", "4", "--runs", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {model} has 10 classes but {demo_data / 'train'} has 4 class folders: quantize with the "
                   f"dataset the model was trained on"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ten.onnx"]
