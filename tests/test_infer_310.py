"""The C++ harness (ascend310_infer/, cpu backend) and run_infer_310.sh, checked against eval.py's numbers."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from helpers import BROKEN, ROOT, SCRIPT_ENV, write_odd_images, write_tiny_onnx
from tinynet_ms import create_model
from tinynet_ms.data import load_eval_image, sample_names, scan_split
from tinynet_ms.export import export_network
from tinynet_ms.models import DEFAULT_PREPROCESSING, Preprocessing

pytestmark = pytest.mark.slow  # builds the harness

HARNESS_DIR = ROOT / "ascend310_infer"
MAIN = HARNESS_DIR / "out" / "main"


def _pre_flags(pre: Preprocessing = DEFAULT_PREPROCESSING) -> list[str]:
    """The harness's preprocessing flags, as run_infer_310.sh writes them from a model's sidecar."""
    return [f"--crop_pct={pre.crop_pct}", f"--interpolation={pre.interpolation}",
            f"--mean={','.join(map(str, pre.mean))}", f"--std={','.join(map(str, pre.std))}"]


@pytest.fixture(scope="module")
def harness() -> Path:
    """Build once; without cmake/OpenCV the tests skip, unless TINYNET_REQUIRE_HARNESS=1 (CI) makes it a failure."""
    build = subprocess.run(["bash", str(HARNESS_DIR / "build.sh")], capture_output=True, text=True, env=SCRIPT_ENV)
    if build.returncode != 0:
        message = f"harness build failed (needs cmake, g++, libopencv-dev):\n{build.stdout[-3000:]}{build.stderr[-3000:]}"
        if os.environ.get("TINYNET_REQUIRE_HARNESS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return MAIN


@pytest.fixture(scope="module")
def mini_onnx(mini_run, tmp_path_factory) -> Path:
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], w=0.25, d=0.35, num_classes=10,
                       cpu_kernels=False)
    return export_network(net, tmp_path_factory.mktemp("onnx") / "mini", "ONNX", batch_size=1, image_size=48)


def _main(*flags: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAIN), *flags], cwd=cwd, capture_output=True, text=True, timeout=300)


def _infer_script(model: Path, data: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "run_infer_310.sh"), str(model), str(data), *args], cwd=cwd,
                          env=SCRIPT_ENV, capture_output=True, text=True, timeout=600)


def test_fresh_build_uses_werror_and_system_headers(harness, tmp_path):
    build = tmp_path / "build"
    run = subprocess.run(["cmake", "-S", str(HARNESS_DIR), "-B", str(build), "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
                          f"-DCMAKE_RUNTIME_OUTPUT_DIRECTORY={tmp_path / 'out'}"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    commands = json.loads((build / "compile_commands.json").read_text())
    assert commands and all("-Wall" in c["command"] and "-Werror" in c["command"] and "-std=c++17" in c["command"]
                            for c in commands)
    assert all("-isystem" in c["command"] for c in commands)  # OpenCV (and MindSpore) headers as system headers
    run = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "out" / "main").is_file()


def test_bin_path_matches_eval(harness, mini_run, mini_onnx, tmp_path):
    """run_infer_310.sh (cpu, .bin) gives eval.py's top-1/top-5 and the network's logits."""
    run = _infer_script(mini_onnx, mini_run["data"] / "val", tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"preprocessing ({mini_onnx}.json): crop_pct 0.875, bicubic" in run.stdout
    harness_scores = re.findall(r"^top1: ([0-9.]+) top5: ([0-9.]+)$", run.stdout, re.M)[-1]
    ev = subprocess.run(["bash", "scripts/run_eval.sh", str(mini_run["data"]), str(mini_run["weights"]),
                         str(mini_run["config"])], cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True)
    assert ev.returncode == 0, ev.stdout
    assert harness_scores == re.findall(r"^top1: ([0-9.]+) top5: ([0-9.]+)$", ev.stdout, re.M)[-1]
    # Logits, file by file, against the MindSpore network on the same (Python-preprocessed) tensors.
    folder = scan_split(mini_run["data"] / "val")
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], w=0.25, d=0.35, num_classes=10)
    net.set_train(False)
    expected = net(ms.Tensor(np.stack([load_eval_image(s.path, 48) for s in folder.samples]))).asnumpy()
    got = np.stack([np.fromfile(tmp_path / "result_Files" / f"{n}_0.bin", np.float32)
                    for n in sample_names(folder.samples)])
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    timing = (tmp_path / "time_Result" / "test_perform_static.txt").read_text()
    assert re.search(r"NN inference cost average time: [0-9.]+ ms of infer_count 39", timing)
    assert re.search(r"NN inference cost median time: [0-9.]+ ms", timing)
    assert "top1:" in (tmp_path / "acc.log").read_text()


def test_infer_script_runs_a_dynamic_batch_model_at_its_batch_size(harness, mini_run, mini_onnx, tmp_path):
    """run_infer_310.sh's BATCH_SIZE: a dynamic-batch ONNX at 7 gives the network's logits (39 images: the last
    batch partial); a fixed-batch model asked for another batch is refused before anything runs."""
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], w=0.25, d=0.35, num_classes=10,
                       cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "dyn", "ONNX", 1, 48, dynamic_batch=True)
    run = _infer_script(model, mini_run["data"] / "val", tmp_path, "0", "cpu", "bin", "7")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "batch (dynamic, run at) 7" in run.stdout
    folder = scan_split(mini_run["data"] / "val")
    expected = net(ms.Tensor(np.stack([load_eval_image(s.path, 48) for s in folder.samples]))).asnumpy()
    got = np.stack([np.fromfile(tmp_path / "result_Files" / f"{n}_0.bin", np.float32)
                    for n in sample_names(folder.samples)])
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    refused = _infer_script(mini_onnx, mini_run["data"] / "val", tmp_path, "0", "cpu", "bin", "3")
    assert refused.returncode != 0 and "has a fixed batch of 1, not 3" in refused.stderr + refused.stdout

@pytest.mark.parametrize("backend", ["openvino", "opencv"])
@pytest.mark.parametrize("batch", [1, 4, 16])
def test_cpu_backends_give_the_networks_logits(harness, graph_mode, tmp_path, backend, batch):
    """OpenVINO (the cpu default; f32 forced, a batch > 1 split into requests of a few images on its throughput
    streams) and the OpenCV DNN fallback both give the MindSpore network's logits on the same tensors, whether the
    inputs are read all at once and run back to back (the default chunk) or one batch at a time
    (--input_chunk_mb=0); batch 16 is one padded batch of the 10 inputs."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", batch, 48)
    x = np.random.default_rng(batch).standard_normal((10, 3, 48, 48)).astype(np.float32)
    (tmp_path / "bins").mkdir()
    for i, row in enumerate(x):
        row.tofile(tmp_path / "bins" / f"x{i}.bin")
    expected = net(ms.Tensor(x)).asnumpy()
    for chunk in ("64", "0"):
        out = f"out{chunk}"
        run = _main(f"--model_path={model}", f"--backend={backend}", "--input_type=bin", f"--batch_size={batch}",
                    f"--input_path={tmp_path / 'bins'}", "--image_size=48", f"--output_dir={out}",
                    f"--input_chunk_mb={chunk}", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert ("OpenVINO" in run.stdout and "f32" in run.stdout) if backend == "openvino" else \
            "OpenCV DNN" in run.stdout
        if backend == "openvino" and batch == 16:  # at most 4 images per request: 4 or more requests
            assert int(re.search(r" x (\d+) requests", run.stdout)[1]) >= 4, run.stdout
        got = np.stack([np.fromfile(tmp_path / out / "result_Files" / f"x{i}_0.bin", np.float32) for i in range(10)])
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), chunk


@pytest.mark.parametrize("backend", ["openvino", "opencv"])
def test_a_dynamic_batch_onnx_runs_at_the_harness_batch_size(harness, graph_mode, tmp_path, backend):
    """One file with a symbolic batch axis, run at batch 1 and at batch 7 (the last batch of 9 inputs partial)."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", 1, 48, dynamic_batch=True)
    x = np.random.default_rng(7).standard_normal((9, 3, 48, 48)).astype(np.float32)
    (tmp_path / "bins").mkdir()
    for i, row in enumerate(x):
        row.tofile(tmp_path / "bins" / f"x{i}.bin")
    expected = net(ms.Tensor(x)).asnumpy()
    for batch in (1, 7):
        out = f"out{batch}"
        run = _main(f"--model_path={model}", f"--backend={backend}", "--input_type=bin", f"--batch_size={batch}",
                    f"--input_path={tmp_path / 'bins'}", "--image_size=48", f"--output_dir={out}", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        got = np.stack([np.fromfile(tmp_path / out / "result_Files" / f"x{i}_0.bin", np.float32) for i in range(9)])
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), (backend, batch)


def test_repeat_runs_every_batch_again_and_times_all_but_the_first_run(harness, graph_mode, tmp_path):
    """--repeat=4 on 3 inputs at batch 2 (the last batch padded): 8 runs, 7 timed (the first is warm-up), the
    network's logits written once per input; --repeat=0 is a usage error."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", 2, 48)
    x = np.random.default_rng(4).standard_normal((3, 3, 48, 48)).astype(np.float32)
    (tmp_path / "bins").mkdir()
    for i, row in enumerate(x):
        row.tofile(tmp_path / "bins" / f"x{i}.bin")
    flags = [f"--model_path={model}", "--backend=openvino", "--input_type=bin", "--batch_size=2", "--image_size=48",
             f"--input_path={tmp_path / 'bins'}", "--output_dir=out"]
    run = _main(*flags, "--repeat=4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    timing = (tmp_path / "out" / "time_Result" / "test_perform_static.txt").read_text()
    assert re.search(r"average time: [0-9.]+ ms of infer_count 7\n", timing), timing
    throughput = float(re.search(r"throughput: ([0-9.]+) images/s", timing)[1])
    average_ms = float(re.search(r"average time: ([0-9.]+) ms", timing)[1])
    # 7 timed runs holding 2, 1, 2, 1, 2, 1, 2... real images: 3 passes of both batches + the last pass's second one
    assert throughput == pytest.approx(1000 * (3 * 3 + 1) / (7 * average_ms), rel=2e-3)
    got = np.stack([np.fromfile(tmp_path / "out" / "result_Files" / f"x{i}_0.bin", np.float32) for i in range(3)])
    expected = net(ms.Tensor(x)).asnumpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert sorted(p.name for p in (tmp_path / "out" / "result_Files").iterdir()) == [f"x{i}_0.bin" for i in range(3)]
    run = _main(*flags, "--repeat=0", cwd=tmp_path)
    assert run.returncode == 2 and "--repeat must be positive" in run.stderr


def test_openvino_bf16_is_an_explicit_choice(harness, graph_mode, tmp_path):
    """--precision=bf16 runs (bf16 where the CPU has it, f32 elsewhere) and keeps the ranking of the logits."""
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", 1, 48)
    (tmp_path / "bins").mkdir()
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 48)).astype(np.float32)
    x[0].tofile(tmp_path / "bins" / "x.bin")
    flags = [f"--model_path={model}", "--backend=openvino", "--input_type=bin", "--image_size=48",
             f"--input_path={tmp_path / 'bins'}", "--output_dir=out"]
    run = _main(*flags, "--precision=bf16", cwd=tmp_path)
    assert run.returncode == 0 and re.search(r"OpenVINO [0-9.]+, (bf16|f32)", run.stdout), run.stdout + run.stderr
    got = np.fromfile(tmp_path / "out" / "result_Files" / "x_0.bin", np.float32)
    expected = net(ms.Tensor(x)).asnumpy()[0]
    assert np.abs(got - expected).max() <= 0.1 * np.abs(expected).max() and got.argmax() == expected.argmax()
    run = _main(*flags, "--precision=fp8", cwd=tmp_path)
    assert run.returncode == 2 and "--precision must be f32 or bf16" in run.stderr


def test_image_path_agrees_with_bin_path(harness, mini_run, mini_onnx, tmp_path):
    for input_type in ("bin", "image"):
        (tmp_path / input_type).mkdir()
        run = _infer_script(mini_onnx, mini_run["data"] / "val", tmp_path / input_type, "0", "cpu", input_type)
        assert run.returncode == 0, run.stdout + run.stderr
    names = [p.name for p in (tmp_path / "bin" / "result_Files").iterdir()]
    top = {t: np.array([np.fromfile(tmp_path / t / "result_Files" / n, np.float32).argmax() for n in names])
           for t in ("bin", "image")}
    assert len(names) == 40 and (top["bin"] == top["image"]).mean() >= 0.95


def _odd_and_large_images(folder: Path) -> dict[str, Path]:
    files = write_odd_images(folder)
    for name in (*BROKEN, "palette.gif"):  # broken: an error by design (tested below); GIF: OpenCV 4.6 lacks it
        files.pop(name).unlink()
    rng = np.random.default_rng(3)
    for name, size in (("wide.png", (640, 301)), ("tall.jpg", (211, 517)), ("exact.png", (54, 54))):
        # Smooth content with edges: what resampling kernels differ on.
        y, x = np.mgrid[0:size[1], 0:size[0]]
        img = np.stack([(x * 255 // size[0]), (y * 255 // size[1]), rng.integers(0, 256, size[::-1])], -1)
        Image.fromarray(img.astype(np.uint8)).save(folder / name)
        files[name] = folder / name
    return files


@pytest.mark.parametrize("pre", [DEFAULT_PREPROCESSING, Preprocessing(crop_pct=0.95, interpolation="bilinear",
                                                                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))],
                         ids=["timm", "bilinear"])
def test_cpp_preprocessing_equals_load_eval_image(harness, graph_mode, tmp_path, pre):
    files = _odd_and_large_images(tmp_path / "images")
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    for size in (48, 106):
        model = export_network(net, tmp_path / f"m{size}", "ONNX", 1, size)
        dump = tmp_path / f"dump{size}"
        run = _main(f"--model_path={model}", f"--input_path={tmp_path / 'images'}", "--input_type=image",
                    f"--image_size={size}", f"--save_input_dir={dump}", "--backend=cpu", "--output_dir=out",
                    *_pre_flags(pre), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        step = 1 / 255 / min(pre.std)
        for name, path in files.items():
            cpp = np.fromfile(dump / f"{Path(name).stem}.bin", np.float32).reshape(3, size, size)
            diff = np.abs(cpp - load_eval_image(path, size, preprocessing=pre)).max()
            # Lossless formats: bit-exact. JPEG: Debian's libjpeg-turbo vs Pillow's bundled one may round a
            # pixel differently (one step). CMYK→RGB is done differently by OpenCV and Pillow; 16-bit gray is x >> 8 in both.
            limit = {"cmyk.jpg": 3 * step}.get(name, 1.0001 * step if name.endswith(".jpg") else 0)
            assert diff <= limit, f"{name} @ {size}: max diff {diff}"


def test_bad_input_is_a_clear_error(harness, mini_onnx, tmp_path):
    images = tmp_path / "images"
    odd = write_odd_images(images)
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(odd["rgb.jpg"], good / "a.jpg")
    base = [f"--model_path={mini_onnx}", "--backend=cpu", "--image_size=48", "--output_dir=out", *_pre_flags()]
    run = _main(*base, f"--input_path={images}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 1 and re.search(r"(corrupt|empty|notes|truncated)\.(jpg|png)", run.stderr), run.stderr
    run = _main(f"--model_path={tmp_path / 'missing.onnx'}", "--backend=cpu", "--image_size=48", *_pre_flags(),
                f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 1 and "missing.onnx" in run.stderr
    bins = tmp_path / "bins"
    bins.mkdir()
    np.zeros((3, 40, 40), np.float32).tofile(bins / "small.bin")
    run = _main(*base, f"--input_path={bins}", "--input_type=bin", cwd=tmp_path)
    assert run.returncode == 1 and "small.bin" in run.stderr
    run = _main(*base, "--batch_size=3", f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 1 and "--batch_size" in run.stderr  # the model was exported with batch 1
    run = _main(*base, "--backend=ascend", f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 2 and "ascend backend not built" in run.stderr
    run = _main("--bogus=1", cwd=tmp_path)
    assert run.returncode == 2
    run = _main(*base, "--input_chunk_mb=-1", f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 2 and "--input_chunk_mb must not be negative" in run.stderr
    no_pre = [f for f in base if not f.startswith(("--crop_pct", "--interpolation"))]
    run = _main(*no_pre, f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 2 and "--crop_pct is required for image inputs" in run.stderr
    run = _main(*base, "--mean=0.5,0.5", f"--input_path={good}", "--input_type=image", cwd=tmp_path)
    assert run.returncode == 2 and "--mean needs 3 comma-separated numbers" in run.stderr
    run = _infer_script(tmp_path / "model.tflite", good, tmp_path)
    assert run.returncode == 2 and "does not exist" in run.stderr


@pytest.mark.parametrize("backend", ["openvino", "opencv"])
def test_non_finite_inputs_and_logits_are_errors_not_predictions(harness, tmp_path, backend):
    """A .bin holding NaN or inf, or a model giving NaN logits for a finite input: one error line naming the file
    (exit 1), instead of NaN logits that postprocess would score as class 0."""
    bins = tmp_path / "bins"
    bins.mkdir()
    x = np.random.default_rng(0).standard_normal((3, 48, 48)).astype(np.float32)
    x.tofile(bins / "a_ok.bin")
    model, nan_model = write_tiny_onnx(tmp_path / "m.onnx"), write_tiny_onnx(tmp_path / "nan.onnx", weight=np.nan)
    flags = [f"--backend={backend}", "--image_size=48", "--input_type=bin", f"--input_path={bins}", "--output_dir=o"]
    assert _main(f"--model_path={model}", *flags, cwd=tmp_path).returncode == 0
    for bad in (np.nan, np.inf):
        x[1, 2, 3] = bad
        x.tofile(bins / "b_bad.bin")
        run = _main(f"--model_path={model}", *flags, cwd=tmp_path)
        assert run.returncode == 1 and run.stderr.splitlines() == [
            f"error: {bins / 'b_bad.bin'}: 1 of 6912 values are NaN or inf: write the inputs again with "
            f"preprocess.py"], run.stderr
    (bins / "b_bad.bin").unlink()
    run = _main(f"--model_path={nan_model}", *flags, cwd=tmp_path)
    assert run.returncode == 1 and run.stderr.splitlines() == [
        f"error: {bins / 'a_ok.bin'}: the model gave NaN/inf logits for this finite input: check the model file "
        f"(export it again)"], run.stderr


def test_listing_skips_link_loops_and_broken_links_as_the_python_scan_does(harness, mini_onnx, tmp_path):
    """A class folder with a link back up (a loop), a link to a sibling folder, a dangling and a self-referencing
    image link: the harness lists exactly the images scan_split lists, each skipped link in one short line; .bin
    inputs alike."""
    data = tmp_path / "data"
    odd = write_odd_images(tmp_path / "odd")
    for cls, name in (("a", "rgb.jpg"), ("b", "gray.jpg")):
        (data / cls / "sub").mkdir(parents=True)
        shutil.copy(odd[name], data / cls / "sub" / f"{cls}.jpg")
    (data / "a" / "loop").symlink_to("..")
    (data / "a" / "alias").symlink_to("sub")
    (data / "b" / "gone.jpg").symlink_to("missing.jpg")
    (data / "b" / "self.jpg").symlink_to("self.jpg")
    run = _main(f"--model_path={mini_onnx}", "--backend=cpu", "--image_size=48", *_pre_flags(), "--input_type=image",
                f"--input_path={data}", "--output_dir=out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    expected = sorted(f"{n}_0.bin" for n in sample_names(scan_split(data).samples))
    assert expected == ["a_0.bin", "b_0.bin"]
    assert sorted(p.name for p in (tmp_path / "out" / "result_Files").iterdir()) == expected
    assert sorted(run.stderr.splitlines()) == [f"skipping {data / 'b' / name}: not a readable file (a broken link?)"
                                               for name in ("gone.jpg", "self.jpg")]
    bins = tmp_path / "bins"  # the same for .bin inputs: a looping or dangling link is a logged skip, not an error
    bins.mkdir()
    np.zeros((3, 48, 48), np.float32).tofile(bins / "ok.bin")
    (bins / "self.bin").symlink_to("self.bin")
    (bins / "gone.bin").symlink_to("missing.bin")
    run = _main(f"--model_path={mini_onnx}", "--backend=cpu", "--image_size=48", "--input_type=bin",
                f"--input_path={bins}", "--output_dir=out_bin", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [p.name for p in (tmp_path / "out_bin" / "result_Files").iterdir()] == ["ok_0.bin"]
    assert sorted(run.stderr.splitlines()) == [f"skipping {bins / name}: not a readable file (a broken link?)"
                                               for name in ("gone.bin", "self.bin")]


def test_infer_script_refuses_a_one_level_backbone(tmp_path, demo_data):
    """A backbone export with one level has one output too, a feature map: it was run and its values scored as
    logits (top-1 0 over 320 'classes'); now one line before anything is built or run (exit 2)."""
    model = write_tiny_onnx(tmp_path / "backbone.onnx", backbone=True)
    run = _infer_script(model, demo_data / "val", tmp_path, "0", "cpu")
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and errors == [
        f"error: {model} outputs (1,3,1,1), not one (N, classes) logits (a backbone, export.py --features_only true): "
        f"the harness scores classifiers; export without --features_only"], run.stderr
    assert not (tmp_path / "result_Files").exists()


def test_a_model_file_that_is_not_one_is_one_line(tmp_path, demo_data):
    """Random bytes named .onnx / .mindir: one error line naming the file (exit 1), before anything is built."""
    for name, backend in (("random.onnx", "cpu"), ("random.mindir", "ascend")):
        model = tmp_path / name
        model.write_bytes(np.random.default_rng(0).bytes(5000))
        run = subprocess.run(["bash", "scripts/run_infer_310.sh", str(model), str(demo_data / "val"), "0", backend],
                             cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=120)
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert run.returncode == 1 and len(errors) == 1 and str(model) in errors[0], run.stderr
        assert "Traceback" not in run.stderr


@pytest.mark.perf  # downloads the 168 MB mindspore-lite wheel
def test_ascend_backend_compiles_and_links_against_the_real_mindspore_lite_api(tmp_path):
    """check_ascend_api.sh builds the ascend backend against the PyPI mindspore-lite 2.0.0 wheel (headers + library,
    cached): both flavours must build, and a misuse of the API (a method Lite does not have) must fail the check."""
    script = HARNESS_DIR / "check_ascend_api.sh"
    run = subprocess.run(["bash", str(script), str(tmp_path / "good")], env=SCRIPT_ENV, capture_output=True,
                         text=True, timeout=900)
    if run.returncode != 0 and "pip" in run.stderr and "download" in run.stderr.lower() \
            and os.environ.get("TINYNET_REQUIRE_HARNESS") != "1":
        pytest.skip(f"mindspore-lite 2.0.0 not downloadable here: {run.stderr[-500:]}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "good" / "lite" / "out" / "main").is_file()
    assert "ascend backend: MindSpore Lite" in (tmp_path / "good" / "lite.log").read_text()

    broken = tmp_path / "broken"
    shutil.copytree(HARNESS_DIR, broken, ignore=shutil.ignore_patterns("build", "out"))
    source = broken / "src" / "ascend_backend.cc"
    source.write_text(source.read_text().replace("model_.Predict(", "model_.PredictBatch("))
    run = subprocess.run(["bash", str(broken / "check_ascend_api.sh"), str(tmp_path / "b")], env=SCRIPT_ENV,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode != 0 and "PredictBatch" in run.stdout + run.stderr
