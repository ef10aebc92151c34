"""INT8 post-training quantization (tinynet_ms.quantize): a real QDQ file, calibrated and scored, its sidecar kept;
activation ranges from per-batch statistics of a chosen calibration batch, whatever batch the file was exported with,
one range per activation tensor (what OpenVINO runs on its fast int8 kernels); float32 and INT8 timed in the C++
harness itself (the one speed figure), and benchmarks/bench_int8.py built on the same measurement."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers import ROOT, SCRIPT_ENV, write_tiny_onnx
from tinynet_ms import create_model
from tinynet_ms.data import scan_split
from tinynet_ms.export import export_network, load_exported, model_info, sidecar_path
from tinynet_ms.data import load_eval_image
from tinynet_ms.models import DEFAULT_PREPROCESSING
from tinynet_ms.quantize import CALIB_BATCH, calibration_samples, main, paired_ci95, quantize_model

HARNESS_DIR = ROOT / "ascend310_infer"


@pytest.fixture(scope="module")
def harness() -> Path:
    """The C++ harness, built once (as test_infer_310.py does); without cmake/OpenCV/OpenVINO the tests that time
    through it skip, unless TINYNET_REQUIRE_HARNESS=1 (CI) makes it a failure."""
    build = subprocess.run(["bash", str(HARNESS_DIR / "build.sh")], capture_output=True, text=True, env=SCRIPT_ENV)
    if build.returncode != 0 or "openvino backend:" not in build.stdout:
        message = f"harness with OpenVINO not built:\n{build.stdout[-3000:]}{build.stderr[-3000:]}"
        if os.environ.get("TINYNET_REQUIRE_HARNESS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return HARNESS_DIR / "out" / "main"


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
def test_quantize_writes_a_per_channel_qdq_model_and_scores_both(mini_run, mini_onnx, harness, tmp_path, capsys):
    out = tmp_path / "mini_int8.onnx"
    assert main([str(mini_onnx), "--data", str(mini_run["data"]), "--num_calib", "8", "--output", str(out),
                 "--runs", "3", "--rounds", "2", "--harness", str(harness), "--json"]) == 0
    printed = capsys.readouterr().out
    assert f"calibrating on 8 images of {mini_run['data'] / 'train'} at 48px in batches of {CALIB_BATCH}" in printed
    assert "| mini_int8.onnx |" in printed and "| mini.onnx |" in printed and "paired 95% interval" in printed
    report = json.loads(printed.strip().splitlines()[-1])
    rows = report["models"]
    assert [r["model"] for r in rows] == ["mini.onnx", "mini_int8.onnx"] and all(r["batch"] == 32 for r in rows)
    assert all(r["onnxruntime_ms"] > 0 for r in rows)
    # the speed figure is the harness's own: both files at batch 1 and 32 (a dynamic-batch file), in 2 rounds, the
    # INT8 one run as int8 (the harness's log line), one stream at batch 1 (latency)
    speed = report["speed"]
    assert [s["batch"] for s in speed] == [1, 32] and all(s["rounds"] == 2 for s in speed)
    assert all(s["float32_ms"] > 0 and s["int8_ms"] > 0 and s["speedup"] > 0 for s in speed)
    assert all(s["runtime"].startswith("OpenVINO ") and "f32 + int8" in s["runtime"] for s in speed)
    assert speed[0]["runtime"].split(", ")[2] == "1 stream"  # on a CPU with AMX, ", oneDNN ISA <cap>" follows
    assert "INT8 speed-up in the C++ harness: x" in printed and "| 32 | " in printed
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
    # activations: one range (scale, zero point) per tensor, the depthwise convolutions' inputs too
    activation = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert len(activation) > 10 and all(int(np.prod(inits[n.input[1]].dims)) == 1 for n in activation)
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
    (["{onnx}", "--data", "{data}", "--harness", "{tmp}/no_harness"], "no_harness is not a file: build the harness"),
    (["{onnx}", "--data", "{data}", "--rounds", "-1"], "expected 0 or a positive integer, got -1"),
    (["{onnx}", "--data", "{data}", "--batches", "1,x"], "expected positive integers separated by commas, got '1,x'"),
])
def test_bad_input_is_one_line(mini_run, mini_onnx, tmp_path, args, expect):
    mindir = tmp_path / "m.mindir"
    mindir.write_bytes(b"x")
    argv = [a.format(mindir=mindir, data=mini_run["data"], onnx=mini_onnx, tmp=tmp_path) for a in args]
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


def _runtime_convolutions(model: Path) -> list[tuple[bool, str, str]]:
    """(depthwise, kernel, input precision) of each convolution OpenVINO compiled for ``model`` (f32 hint, batch
    1), as the harness compiles it; depthwise: grouped weights (G, 1, 1, k, k)."""
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(str(model))
    shape = graph.input().get_partial_shape()
    shape[0] = 1
    graph.reshape(shape)
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [(op.inputs()[1].get_partial_shape().rank.get_length() == 5, op.get_rt_info()["primitiveType"].astype(str),
             op.get_rt_info()["runtimePrecision"].astype(str))
            for op in compiled.get_runtime_model().get_ordered_ops()
            if op.get_rt_info()["layerType"].astype(str) == "Convolution"]


@pytest.mark.slow  # compiles two models in OpenVINO
def test_openvino_runs_every_quantized_convolution_in_int8_on_its_fast_kernels(mini_run, mini_onnx, tmp_path):
    """What costs INT8 its speed-up: a convolution the file quantizes but OpenVINO runs in float (behind reorders),
    or per-channel activation zero points, which OpenVINO runs on its legacy kernels (on AVX-512 the depthwise ones
    'jit_avx512_I8', slower than float32; per-tensor zero points get oneDNN's brgemm kernels)."""
    calib = calibration_samples(scan_split(mini_run["data"] / "train").samples, 8)
    out = quantize_model(mini_onnx, tmp_path / "q.onnx", calib, 48, DEFAULT_PREPROCESSING)
    graph = onnx.load(str(out)).graph
    inits = {i.name: i for i in graph.initializer}
    int8_weights = sum(1 for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                       and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4)
    convs = _runtime_convolutions(out)
    int8 = [c for c in convs if c[2] in ("u8", "i8")]
    assert int8_weights > 10 and len(int8) == int8_weights, convs  # every quantized conv runs int8, no other
    assert all(c[2] == "f32" for c in convs if c not in int8)  # the rest (the SE's 1x1 convs) float
    assert any(c[0] for c in int8)  # the depthwise ones among them
    if any("avx512" in c[1] for c in convs):  # brgemm kernels exist on AVX-512 CPUs
        assert all(c[1].startswith("brgconv") for c in int8), int8


def test_a_fixed_batch_file_is_timed_at_its_own_batch_only(tmp_path, capsys):
    model = write_tiny_onnx(tmp_path / "m.onnx")  # batch 1
    assert main([str(model), "--data", str(tmp_path / "no_data"), "--batches", "1,32"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {model} has a fixed batch of 1: --batches can only be 1 (export with --dynamic_batch true to time "
        f"other batches)"]


@pytest.mark.perf  # exports and quantizes TinyNet-E@106, then times it in the harness
def test_bench_int8_measures_both_figures_for_each_batch(harness):
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_int8 import KEYS, format_rows, measure

    rows = measure(models=("tinynet_e",), batches=(1, 2), rounds=1, runs=3, num_calib=4, harness=harness)
    assert [(r["model"], r["size"], r["batch"]) for r in rows] == [("tinynet_e", 106, 1), ("tinynet_e", 106, 2)]
    for r in rows:
        assert set(KEYS) <= r.keys() and "f32 + int8" in r["runtime"]
        assert r["ratio"] == pytest.approx(r["float32_ms"] / r["int8_ms"])  # one round: its ratio
        assert r["report_ratio"] == pytest.approx(r["report_float32_ms"] / r["report_int8_ms"])
    assert "tinynet_e | 106 | 2 |" in format_rows(rows)
