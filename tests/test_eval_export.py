"""eval.py / run_eval.sh, export.py (re-load + compare), preprocess.py / postprocess.py — on CPU."""
import json
import re
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest

from helpers import ROOT, SCRIPT_ENV
from tinynet_ms import create_model
from tinynet_ms.data import load_eval_image, sample_names, scan_split
from tinynet_ms.export import export_and_verify, load_exported, model_info, model_io_shapes
from tinynet_ms.models import DEFAULT_PREPROCESSING
from tinynet_ms.weights import load_weights, param_arrays, save_checkpoint_atomic
from tinynet_ms.train.metrics import topk_correct

MINI = dict(w=0.25, d=0.35, num_classes=10)


def _run(cmd: list[str], cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=SCRIPT_ENV, capture_output=True, text=True, timeout=timeout)


def _scores(stdout: str) -> tuple[float, float]:
    match = re.search(r"^top1: ([0-9.]+) top5: ([0-9.]+)$", stdout, re.M)
    assert match, stdout
    return float(match[1]), float(match[2])


def _val_images(mini_run) -> tuple[np.ndarray, np.ndarray]:
    folder = scan_split(mini_run["data"] / "val")
    return (np.stack([load_eval_image(s.path, 48) for s in folder.samples]),
            np.array([s.label for s in folder.samples]))


@pytest.fixture(scope="module")
def mini_logits(mini_run) -> np.ndarray:
    """The network's logits on every val image, computed in-process: what every other path must give."""
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], **MINI)
    net.set_train(False)
    logits = net(ms.Tensor(_val_images(mini_run)[0])).asnumpy()
    ms.set_context(mode=previous)
    return logits


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_run_eval_prints_scores_and_writes_result_file(mini_run, mini_logits, tmp_path):
    result = tmp_path / "eval.json"
    run = _run(["bash", "scripts/run_eval.sh", str(mini_run["data"]), str(mini_run["weights"]),
                str(mini_run["config"]), "--result_file", str(result)])
    assert run.returncode == 0, run.stdout + run.stderr
    top1, top5 = _scores(run.stdout)
    labels = _val_images(mini_run)[1]
    expected = np.array(topk_correct(mini_logits, labels)) / len(labels)
    assert (top1, top5) == pytest.approx(tuple(expected), abs=1e-6)
    saved = json.loads(result.read_text())
    assert saved["num_samples"] == 40 and saved["top1"] == pytest.approx(top1, abs=1e-6)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_eval_reports_bad_input_in_one_line(mini_run, tmp_path):
    run = _run(["bash", "scripts/run_eval.sh", str(mini_run["data"]), str(mini_run["weights"]),
                str(mini_run["config"]), "--num_classes", "7"])
    assert run.returncode == 1 and "has 10 classes but num_classes is 7" in run.stdout  # the script tees the log
    run = _run(["bash", "scripts/run_eval.sh", str(mini_run["data"]), str(tmp_path / "nope.ckpt"),
                str(mini_run["config"])])
    assert run.returncode == 2 and "does not exist" in run.stderr
    run = _run(["bash", "scripts/run_eval.sh"])
    assert run.returncode == 2 and "usage" in run.stderr


def test_use_ema_loads_the_training_checkpoints_ema_weights(pynative_mode, tmp_path):
    net, ema = create_model("tinynet", **MINI), create_model("tinynet", **MINI)
    ema_arrays = {k: v + 1.0 for k, v in param_arrays(ema).items()}
    path = save_checkpoint_atomic({**param_arrays(net), **{f"ema.{k}": v for k, v in ema_arrays.items()}},
                                  tmp_path / "last.ckpt")
    target = create_model("tinynet", **MINI)
    load_weights(target, path, use_ema=True)
    np.testing.assert_array_equal(param_arrays(target)["conv_stem.weight"], ema_arrays["conv_stem.weight"])
    load_weights(target, path)
    np.testing.assert_array_equal(param_arrays(target)["conv_stem.weight"], param_arrays(net)["conv_stem.weight"])
    plain = save_checkpoint_atomic(net, tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="holds no EMA weights"):
        load_weights(target, plain, use_ema=True)


@pytest.mark.parametrize("file_format,batch_flag", [pytest.param("MINDIR", ["--batch_size", "3"], marks=pytest.mark.slow),
                                                    ("ONNX", ["--batch_size=3"])])
@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_export_script_reloads_and_reports_diff(mini_run, file_format, batch_flag, tmp_path):
    """export.py's batch is its own key (--batch_size an alias there), in both argument forms; the sidecar
    carries the model record's preprocessing, with the config's crop_pct when it sets one."""
    run = _run([sys.executable, "export.py", f"--config_path={mini_run['config']}", "--checkpoint_path",
                str(mini_run["weights"]), "--file_name", str(tmp_path / "mini"), f"--file_format={file_format}",
                "--crop_pct=0.9", *batch_flag])
    assert run.returncode == 0, run.stdout + run.stderr
    path = tmp_path / f"mini.{file_format.lower()}"
    assert re.search(r"re-loaded: max abs diff [0-9.e+-]+ \(", run.stdout), run.stdout
    assert model_io_shapes(path) == ([3, 3, 48, 48], [[3, 10]])
    info = model_info(path)
    assert info["preprocessing"] == {**DEFAULT_PREPROCESSING.to_dict(), "crop_pct": 0.9}
    assert info["preprocessing_source"] == f"{path}.json" and info["input_shape"] == [3, 3, 48, 48]


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("file_format", [pytest.param("MINDIR", marks=pytest.mark.slow), "ONNX"])
def test_dynamic_batch_export_runs_batch_1_and_7(graph_mode, mini_run, mini_logits, tmp_path, file_format):
    """export.py --dynamic_batch true: a symbolic batch in and out, re-load checked at two batches by export.py,
    then the file run here (onnxruntime / GraphCell) at batch 1 and 7 against the network's logits."""
    run = _run([sys.executable, "export.py", f"--config_path={mini_run['config']}", "--checkpoint_path",
                str(mini_run["weights"]), "--file_name", str(tmp_path / "dyn"), f"--file_format={file_format}",
                "--dynamic_batch", "true"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "re-loaded at batch 1 and 7" in run.stdout, run.stdout
    path = tmp_path / f"dyn.{file_format.lower()}"
    assert model_io_shapes(path) == ([-1, 3, 48, 48], [[-1, 10]])
    assert model_info(path)["input_shape"] == [-1, 3, 48, 48]
    images = _val_images(mini_run)[0][:8]
    run_file = load_exported(path)
    for batch in (1, 7):
        got = run_file(images[:batch])[0]
        assert got.shape == (batch, 10)
        assert np.abs(got - mini_logits[:batch]).max() <= 1e-4 * np.abs(mini_logits).max(), batch


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_exported_files_give_the_networks_logits_on_real_images(graph_mode, mini_run, mini_logits, tmp_path):
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], **MINI)
    images = _val_images(mini_run)[0][:4]
    outputs = {}
    for fmt in ("MINDIR", "ONNX"):
        result = export_and_verify(net, tmp_path / "mini", fmt, batch_size=4, image_size=48)
        assert result.rel_diff <= 1e-4
        outputs[fmt] = load_exported(result.path)(images)[0]
    scale = np.abs(mini_logits).max()
    assert np.abs(outputs["MINDIR"] - mini_logits[:4]).max() <= 1e-5 * scale  # batch 4 vs 40: same kernels
    assert np.abs(outputs["ONNX"] - outputs["MINDIR"]).max() <= 1e-4 * scale  # onnxruntime vs MindSpore


def test_export_errors_are_one_line(mini_run, tmp_path, capsys):
    """export.py's main (run_app with its --batch_size alias), in-process: one line each, the exit-code convention."""
    from src.app import run_app
    from src.exporting import run_export

    def run(*extra):
        argv = ["--config_path", str(mini_run["config"]), "--file_name", str(tmp_path / "m"), *extra]
        code = run_app(run_export, argv, "export", "export.py", aliases={"batch_size": "export_batch_size"})
        return code, capsys.readouterr().err

    code, err = run("--checkpoint_path", str(mini_run["weights"]), "--file_format", "AIR")
    assert code == 1 and "AIR export needs an Ascend device" in err
    code, err = run()
    assert code == 2 and "pass --checkpoint_path" in err
    code, err = run("--checkpoint_path", str(tmp_path / "gone.ckpt"))
    assert code == 1 and "gone.ckpt" in err
    code, err = run("--checkpoint_path", str(mini_run["weights"]), "--batch_size", "0")
    assert code == 2 and "'export_batch_size' (--batch_size) must be in [1, inf), got 0" in err
    code, err = run("--checkpoint_path", str(mini_run["weights"]), "--file_format", "TFLITE")
    assert code == 2 and "'file_format' (--file_format) must be one of MINDIR, ONNX, AIR" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_preprocess_writes_exact_eval_tensors_and_postprocess_scores_them(mini_run, mini_logits, tmp_path):
    val = mini_run["data"] / "val"
    run = _run([sys.executable, str(ROOT / "preprocess.py"), "--data_path", str(val), "--output_path", "pre",
                "--image_size", "48"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    folder = scan_split(val)
    names = sample_names(folder.samples)
    labels = json.loads((tmp_path / "pre" / "label.json").read_text())
    assert labels == {n: s.label for n, s in zip(names, folder.samples)}
    for name, sample in zip(names, folder.samples):
        tensor = np.fromfile(tmp_path / "pre" / "img_data" / f"{name}.bin", np.float32).reshape(3, 48, 48)
        np.testing.assert_array_equal(tensor, load_eval_image(sample.path, 48))  # bit-identical input
    # Result files as the harness writes them: the network's logits, one float32 file per image.
    (tmp_path / "result_Files").mkdir()
    for name, row in zip(names[:-1], mini_logits[:-1]):  # one image without a result: reported, not counted
        row.astype(np.float32).tofile(tmp_path / "result_Files" / f"{name}_0.bin")
    run = _run([sys.executable, str(ROOT / "postprocess.py"), "--result_path", "result_Files", "--label_file",
                "pre/label.json"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    expected = np.array(topk_correct(mini_logits[:-1], np.array(list(labels.values()))[:-1])) / 39
    assert _scores(run.stdout) == pytest.approx(tuple(expected), abs=1e-6)
    assert "1 of 40 labelled images have no result file" in run.stderr
    assert "num_samples: 39" in (tmp_path / "acc.log").read_text()


def _postprocess(tmp_path, rows: dict[str, np.ndarray | bytes], labels: dict[str, int], capsys) -> tuple[int, str]:
    """postprocess.py's main, in-process, on result files holding ``rows`` (arrays as float32, bytes as they are)."""
    from postprocess import main

    (tmp_path / "result_Files").mkdir(exist_ok=True)
    for name, row in rows.items():
        data = row if isinstance(row, bytes) else np.asarray(row, np.float32).tobytes()
        (tmp_path / "result_Files" / f"{name}_0.bin").write_bytes(data)
    (tmp_path / "label.json").write_text(json.dumps(labels))
    code = main(["--result_path", str(tmp_path / "result_Files"), "--label_file", str(tmp_path / "label.json"),
                 "--output", str(tmp_path / "acc.log")])
    return code, capsys.readouterr().err


def test_postprocess_refuses_non_finite_logits(tmp_path, capsys):
    """argmax(NaN) is class 0: a NaN/inf result file is an error naming it, not a correct class-0 prediction."""
    rows = {"a": [3.0, 1.0, 0.0], "b": [0.0, 2.0, 1.0], "c": [np.nan] * 3, "d": [np.inf, 0.0, 0.0]}
    code, err = _postprocess(tmp_path, rows, {"a": 0, "b": 1, "c": 0, "d": 0}, capsys)
    assert code == 1 and err.splitlines() == [
        f"error: 2 of 4 result files in '{tmp_path / 'result_Files'}' hold NaN/inf logits (first: c_0.bin): the model "
        f"or its inputs are broken; check them, then run the harness again"], err
    assert not (tmp_path / "acc.log").exists()


def test_postprocess_checks_result_sizes_and_the_class_count(tmp_path, capsys):
    """A result file that is no float32 vector, and labels beyond the model's logits (data of more classes than
    the model), are one-line errors instead of a truncated read or a silent 0 for those images."""
    code, err = _postprocess(tmp_path, {"a": [3.0, 1.0], "b": b"\0" * 11}, {"a": 0, "b": 1}, capsys)
    assert code == 1 and err.splitlines() == [
        f"error: {tmp_path / 'result_Files' / 'b_0.bin'}: 11 bytes is not a float32 logits vector; run the harness "
        f"again (run_infer_310.sh)"], err
    code, err = _postprocess(tmp_path, {"b": [0.0, 1.0]}, {"a": 0, "b": 3}, capsys)
    assert code == 1 and err.splitlines() == [
        f"error: {tmp_path / 'label.json'} has class index 3 but the result files in '{tmp_path / 'result_Files'}' "
        f"hold 2 logits: the data has more classes than the model; score it on its own dataset"], err
    assert not (tmp_path / "acc.log").exists()


def test_offline_inference_names_must_be_unique(tmp_path, mini_run):
    image = next((mini_run["data"] / "val").rglob("*.jpg")).read_bytes()
    for cls in ("a", "b"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        (tmp_path / "val" / cls / "same.jpg").write_bytes(image)
    run = _run([sys.executable, str(ROOT / "preprocess.py"), "--data_path", str(tmp_path / "val"),
                "--image_size", "48", "--output_path", str(tmp_path / "pre")])
    assert run.returncode == 1 and "two images are both named 'same'" in run.stderr


@pytest.mark.slow
def test_export_to_a_name_with_spaces_and_non_ascii(graph_mode, tmp_path):
    """MindSpore's exporter rejects such paths; ours writes via a plain temporary and copies atomically."""
    net = create_model("tinynet", cpu_kernels=False, **MINI)
    for fmt in ("MINDIR", "ONNX"):
        result = export_and_verify(net, tmp_path / "my models" / "tïnynet e", fmt, batch_size=1, image_size=32)
        assert result.path.name == f"tïnynet e.{fmt.lower()}" and result.max_abs_diff <= 1e-5
    assert sorted(p.name for p in (tmp_path / "my models").iterdir()) == [
        "tïnynet e.mindir", "tïnynet e.mindir.json", "tïnynet e.onnx", "tïnynet e.onnx.json"]  # no temporaries


@pytest.mark.slow
def test_scripts_resolve_relative_paths_against_the_callers_directory(mini_run, tmp_path):
    """run_eval.sh --output_dir o --result_file r.json from tmp_path writes there, not into the repository."""
    run = _run(["bash", str(ROOT / "scripts" / "run_eval.sh"), str(mini_run["data"]), str(mini_run["weights"]),
                str(mini_run["config"]), "--output_dir", "o", "--result_file", "r.json"], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "r.json").is_file() and (tmp_path / "o" / "logs" / "eval.log").is_file()
    assert not (ROOT / "o").exists() and not (ROOT / "r.json").exists()


def _op_types(path) -> set[str]:
    """The operator types of an exported file (MindIR's ``REF::Custom:25`` read as ``Custom``)."""
    if str(path).endswith(".onnx"):
        import onnx
        return {node.op_type for node in onnx.load(str(path)).graph.node}
    from mindspore.train import mind_ir_pb2
    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    return {n.op_type.removeprefix("REF::").split(":")[0] for n in nodes}


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
@pytest.mark.parametrize("kind", ["classifier", "backbone", "folded"])
def test_library_export_of_a_default_network_is_portable(tmp_path, kind):
    """create_model's default on CPU builds the fast kernels' custom ops (a .so of this host's cache); whatever is
    handed to export_and_verify — that network, its backbone, or the folded network eval runs — the written files
    hold stock operators only, so they run on any machine and runtime."""
    from tinynet_ms.models.fold import fold_batchnorm

    net = create_model("tinynet", features_only=kind == "backbone", **({} if kind == "backbone" else MINI),
                       **({"w": 0.25, "d": 0.35} if kind == "backbone" else {}))
    assert net.cpu_kernels, "the default network on CPU should be the fast one (kernels did not compile?)"
    if kind == "folded":
        net = fold_batchnorm(net)
        assert "Custom" in _op_types(_raw_mindir(net, tmp_path)), "the folded fast network itself holds custom ops"
    for fmt in ("MINDIR", "ONNX"):
        result = export_and_verify(net, tmp_path / f"{kind}", fmt, batch_size=1, image_size=32)
        ops = _op_types(result.path)
        assert ops and "Custom" not in ops and not any(op.startswith("Im2Col") for op in ops), (fmt, sorted(ops))


def _raw_mindir(net, tmp_path):
    """``net`` exported by MindSpore as it is (no stock twin): what export_and_verify must not write."""
    net.set_train(False)
    ms.export(net, ms.Tensor(np.zeros((1, 3, 32, 32), np.float32)), file_name=str(tmp_path / "raw"),
              file_format="MINDIR")
    return tmp_path / "raw.mindir"
