"""INT8 post-training quantization (tinynet_ms.quantize): a real QDQ file, calibrated and scored, its sidecar kept."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from helpers import ROOT
from tinynet_ms import create_model
from tinynet_ms.data import scan_split
from tinynet_ms.export import export_network, load_exported, model_info, sidecar_path
from tinynet_ms.quantize import calibration_samples, main


@pytest.fixture(scope="module")
def mini_onnx(mini_run, tmp_path_factory):
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], w=0.25, d=0.35, num_classes=10,
                       cpu_kernels=False)
    return export_network(net, tmp_path_factory.mktemp("q") / "mini", "ONNX", batch_size=1, image_size=48,
                          dynamic_batch=True)


def test_quantize_writes_a_per_channel_qdq_model_and_scores_both(mini_run, mini_onnx, tmp_path, capsys):
    out = tmp_path / "mini_int8.onnx"
    assert main([str(mini_onnx), "--data", str(mini_run["data"]), "--num_calib", "8", "--output", str(out),
                 "--runs", "3", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "calibrating on 8 images" in printed and "| mini_int8.onnx |" in printed and "| mini.onnx |" in printed
    rows = json.loads(printed.strip().splitlines()[-1])
    assert [r["model"] for r in rows] == ["mini.onnx", "mini_int8.onnx"] and all(r["batch"] == 32 for r in rows)
    assert all(r["latency_ms"] > 0 and r["openvino_ms"] > 0 for r in rows)  # timed in both runtimes
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
    from tinynet_ms.data import load_eval_image
    x = np.stack([load_eval_image(s.path, 48) for s in scan_split(mini_run["data"] / "val").samples])
    f32, i8 = load_exported(mini_onnx)(x)[0], load_exported(out)(x)[0]
    assert np.corrcoef(f32.ravel(), i8.ravel())[0, 1] > 0.95
    assert not np.array_equal(f32, i8)


def test_calibration_images_are_a_fixed_sample_without_repeats(mini_run):
    train = scan_split(mini_run["data"] / "train").samples
    picked = calibration_samples(train, 6)
    assert len({s.path for s in picked}) == 6 and picked == calibration_samples(train, 6)
    assert len(calibration_samples(train, 512)) == len(train)  # fewer images than asked: all of them


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
