"""predict.py and the class names behind it (tinynet_ms.classes / predict, src.predicting): the top-1 per image is
the network's argmax on load_eval_image, names come from the checkpoint, the sidecar or the ImageNet list, broken
files are skipped with a warning, CSV/JSON hold the right rows; train.py's and convert's checkpoints store names."""
import csv
import json
import shutil

import mindspore as ms
import numpy as np
import pytest

from helpers import BROKEN, ROOT, as_timm_state, write_odd_images
from src.app import run_app
from src.config import CommandLine, ConfigError
from src.predicting import run_predict
from tinynet_ms import create_model
from tinynet_ms.classes import (checkpoint_class_names, imagenet_class_names, read_class_names, resolve_class_names,
                                write_class_names)
from tinynet_ms.data import load_eval_image
from tinynet_ms.export import export_and_verify, sidecar_class_names
from tinynet_ms.models import DEFAULT_PREPROCESSING
from tinynet_ms.predict import (Classifier, Prediction, classify_files, find_images, network_classifier, softmax,
                                write_predictions)
from tinynet_ms.weights import param_arrays, read_checkpoint, save_checkpoint_atomic

MINI = dict(w=0.25, d=0.35, num_classes=10)
NAMES = [f"shape {i} é" for i in range(10)]  # spaces, a comma-free non-ASCII name: CSV/JSON must keep them


def _predict(argv: list[str]) -> int:
    return run_app(run_predict, argv, "predict", "predict.py", positional="IMAGE_OR_DIR")


@pytest.fixture(scope="module")
def images(mini_run, tmp_path_factory):
    """A folder: the mini val images in class sub-folders, odd readable images, and BROKEN files."""
    root = tmp_path_factory.mktemp("predict") / "images"
    shutil.copytree(mini_run["data"] / "val", root / "val")
    write_odd_images(root / "odd")
    return root


@pytest.fixture(scope="module")
def reference(mini_run, images):
    """The mini network's softmax on load_eval_image of every readable image, computed here (the folded, batched
    path of predict.py must agree)."""
    files, _ = find_images([images])
    readable = [f for f in files if f.name not in BROKEN]
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], cpu_kernels=False, **MINI)
    net.set_train(False)
    logits = net(ms.Tensor(np.stack([load_eval_image(f, 48) for f in readable]))).asnumpy()
    return {str(f): p for f, p in zip(readable, softmax(logits))}


def _check_rows(rows: dict[str, list], reference: dict[str, np.ndarray], names: list[str], tolerance: float) -> None:
    """rows: file -> [(name, index, prob)] in rank order. The fixture network's probabilities differ between
    images by up to 4e-5 (its logits hardly depend on the input), so ``tolerance`` well below that also tells
    whether each row is its own image's."""
    assert rows.keys() == reference.keys()
    for file, ranked in rows.items():
        probs = reference[file]
        assert ranked[0][1] == int(np.argmax(probs)), file
        assert [n for n, _, _ in ranked] == [names[i] for _, i, _ in ranked]
        assert [p for _, _, p in ranked] == pytest.approx([probs[i] for _, i, _ in ranked], abs=tolerance), file
        assert [p for _, _, p in ranked] == sorted((p for _, _, p in ranked), reverse=True)


def test_folder_csv_top1_is_the_networks_argmax_and_broken_files_are_skipped(mini_run, images, reference, tmp_path,
                                                                              capsys):
    out = tmp_path / "p.csv"
    code = _predict(["--config_path", str(mini_run["config"]), "--checkpoint_path", str(mini_run["weights"]),
                     "--topk", "3", "--output", str(out), "--batch_size", "16", str(images)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["file", "top1", "top2", "top3", "prob1", "prob2", "prob3", "index1", "index2", "index3"]
    rows = {r[0]: [(r[1 + i], int(r[7 + i]), float(r[4 + i])) for i in range(3)] for r in table[1:]}
    _check_rows(rows, reference, [f"class_{i}" for i in range(10)], 1.5e-6)  # timm file: no names stored; CSV: 6 digits
    for name in BROKEN:  # one warning each, and the count at the end
        assert sum(f"skipping {images / 'odd' / name}" in line for line in captured.err.splitlines()) == 1, name
    assert f"{len(reference)} images classified" in captured.err
    assert f"{len(BROKEN)} skipped (see the warnings above)" in captured.err
    assert "stores no class names: naming its 10 outputs class_0..class_9" in captured.err
    assert "/" + str(len(reference) + len(BROKEN)) + " images" in captured.err  # the folder's progress bar
    assert captured.out.splitlines()[0].split() == ["file", "rank", "prob", "index", "class"]
    assert len(captured.out.splitlines()) == 1 + 3 * len(reference)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_training_checkpoint_names_show_up_in_json(mini_run, images, reference, tmp_path, capsys):
    """Class names stored by save_checkpoint_atomic (what train.py writes) name the outputs; a glob and a single
    file as inputs; an input matching nothing is a warning."""
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], cpu_kernels=False, **MINI)
    ckpt = save_checkpoint_atomic(net, tmp_path / "best.ckpt", class_names=NAMES)
    out = tmp_path / "p.json"
    single = images / "odd" / "gray.jpg"
    code = _predict(["--config_path", str(mini_run["config"]), "--checkpoint_path", str(ckpt), "--output", str(out),
                     str(images / "val" / "**" / "*.jpg"), str(single), str(tmp_path / "missing.png")])
    err = capsys.readouterr().err
    assert code == 0, err
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got[-1]["file"] == str(single) and len(got) == 41
    assert all(len(p["topk"]) == 5 for p in got)
    rows = {p["file"]: [(t["class"], t["index"], t["prob"]) for t in p["topk"]] for p in got}
    _check_rows(rows, {f: reference[f] for f in rows}, NAMES, 1e-6)
    assert f"{tmp_path / 'missing.png'}: no such file" in err


def test_onnx_export_predicts_the_same_with_names_from_its_sidecar(mini_run, images, reference, tmp_path, capsys):
    """A fixed batch of 4 (the last batch padded); preprocessing and names from the sidecar, no config needed."""
    net = create_model("tinynet", checkpoint_path=mini_run["weights"], cpu_kernels=False, **MINI)
    result = export_and_verify(net, tmp_path / "mini", "ONNX", batch_size=4, image_size=48, class_names=NAMES)
    assert sidecar_class_names(result.path) == NAMES
    out = tmp_path / "p.json"
    code = _predict(["--device_target", "CPU", "--model_path", str(result.path), "--topk", "2", "--output", str(out),
                     str(images / "val")])
    assert code == 0, capsys.readouterr().err
    got = json.loads(out.read_text(encoding="utf-8"))
    rows = {p["file"]: [(t["class"], t["index"], t["prob"]) for t in p["topk"]] for p in got}
    assert len(rows) == 40
    _check_rows(rows, {f: reference[f] for f in rows}, NAMES, 1e-6)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_export_py_writes_the_checkpoints_class_names_into_the_sidecar(mini_run, tmp_path, capsys):
    """export.py (in-process) takes the names from the checkpoint; the sidecar still reads as before for
    run_infer_310.sh / preprocess.py (model_info)."""
    from src.exporting import run_export
    from tinynet_ms.export import model_info

    net = create_model("tinynet", checkpoint_path=mini_run["weights"], cpu_kernels=False, **MINI)
    ckpt = save_checkpoint_atomic(net, tmp_path / "named.ckpt", class_names=NAMES)
    code = run_app(run_export, ["--config_path", str(mini_run["config"]), "--checkpoint_path", str(ckpt),
                                "--file_name", str(tmp_path / "m"), "--file_format", "ONNX"], "export", "export.py")
    assert code == 0, capsys.readouterr().err
    assert sidecar_class_names(tmp_path / "m.onnx") == NAMES
    info = model_info(tmp_path / "m.onnx")
    assert info["preprocessing_source"] == f"{tmp_path / 'm.onnx'}.json" and info["input_shape"] == [1, 3, 48, 48]


def test_each_image_is_fed_as_its_load_eval_image_in_order_in_fixed_batches(images):
    """A classifier whose top-1 depends on where an image is bright: every prediction is the run of its own file's
    load_eval_image tensor; a fixed batch of 4 gets 4 rows every time (broken files drop out, the rest padded)."""
    shapes = []

    def bright_band(x: np.ndarray) -> np.ndarray:  # logit j: the mean of rows 4j..4j+3
        return x[:, :, :40].reshape(len(x), 3, 10, 4, 48).mean(axis=(1, 3, 4))

    def run(x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape)
        return bright_band(x)

    files = find_images([images / "odd", images / "val" / "star_filled"])[0]  # 7 readable + 4 broken, 4 stars
    predictions, skipped = classify_files(Classifier(run, 48, DEFAULT_PREPROCESSING, NAMES, fixed_batch=4), files,
                                          topk=10, workers=2)
    assert [f for f, _ in skipped] == [str(images / "odd" / b) for b in sorted(BROKEN)]
    assert [p.file for p in predictions] == [str(f) for f in files if f.name not in BROKEN]
    assert shapes == [(4, 3, 48, 48)] * 4  # 15 files in batches of 4
    assert len({p.indices[0] for p in predictions}) >= 4  # the top-1 does tell images apart
    for p in predictions:
        expected = softmax(bright_band(load_eval_image(p.file, 48)[None]))[0]
        assert p.indices == tuple(np.argsort(-expected, kind="stable")) and p.classes[0] == NAMES[p.indices[0]]
        assert p.probs == pytest.approx(expected[list(p.indices)], abs=1e-7)


def test_a_1000_class_network_without_names_gets_imagenets(tmp_path, caplog):
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=1000, cpu_kernels=False)
    ckpt = save_checkpoint_atomic(net, tmp_path / "random.ckpt")
    assert read_class_names(ckpt) is None
    with caplog.at_level("INFO", logger="tinynet"):
        names = checkpoint_class_names(ckpt, 1000)
    assert names == imagenet_class_names() and len(set(names)) == 999  # "crane" twice: the bird and the machine
    assert names[0] == "tench, Tinca tinca" and names[999] == "toilet tissue, toilet paper, bathroom tissue"
    assert "stores no class names: 1000 outputs, so the ImageNet-1k names" in caplog.text
    x = tmp_path / "x.png"
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(x)
    predictions, skipped = classify_files(network_classifier(net, 32, net.preprocessing, names), [x], topk=3)
    assert not skipped and predictions[0].classes[0] == names[predictions[0].indices[0]]


def test_convert_stores_imagenet_names_for_1000_classes(tmp_path):
    """A 1000-class timm file (written here from a random network under timm's names) converts with the names."""
    from safetensors.numpy import save_file

    from tinynet_ms.convert import convert

    arrays = param_arrays(create_model("tinynet_e", cpu_kernels=False))
    save_file(as_timm_state(arrays), str(tmp_path / "e.safetensors"))
    ckpt = convert(tmp_path / "e.safetensors", tmp_path / "e.ckpt", "tinynet_e")
    assert read_class_names(ckpt) == imagenet_class_names()
    assert read_checkpoint(ckpt).keys() == arrays.keys()  # the names entry is no tensor
    create_model("tinynet_e", checkpoint_path=ckpt, cpu_kernels=False)  # loads as before


def test_class_names_round_trip_and_errors(tmp_path):
    net = create_model("tinynet", cpu_kernels=False, **MINI)
    plain = save_checkpoint_atomic(net, tmp_path / "plain.ckpt")
    assert read_class_names(plain) is None
    write_class_names(plain, NAMES)
    assert read_class_names(plain) == NAMES
    np.testing.assert_array_equal(read_checkpoint(plain)["conv_stem.weight"], param_arrays(net)["conv_stem.weight"])
    with pytest.raises(ValueError, match="10-class classifier, 3 names given"):
        write_class_names(plain, ["a", "b", "c"])
    with pytest.raises(TypeError, match="class_names must be a sequence of strings"):
        save_checkpoint_atomic(net, tmp_path / "bad.ckpt", class_names="abc")
    with pytest.raises(ValueError, match="stores 10 class names but the network has 4 outputs"):
        resolve_class_names(NAMES, 4, str(plain))
    assert resolve_class_names(None, 3, "x") == ["class_0", "class_1", "class_2"]


def test_write_predictions_formats(tmp_path):
    p = [Prediction("a, b.jpg", ("crane", "crane"), (134, 517), (0.75, 0.25))]
    with write_predictions(p, tmp_path / "p.csv").open(newline="") as f:
        assert list(csv.reader(f))[1] == ["a, b.jpg", "crane", "crane", "0.750000", "0.250000", "134", "517"]
    assert json.loads(write_predictions(p, tmp_path / "p.json").read_text()) == [
        {"file": "a, b.jpg", "topk": [{"class": "crane", "index": 134, "prob": 0.75},
                                      {"class": "crane", "index": 517, "prob": 0.25}]}]
    with pytest.raises(ValueError, match="written as .csv or .json, not '.txt'"):
        write_predictions(p, tmp_path / "p.txt")


def test_positional_arguments_and_usage_errors(mini_run, images, tmp_path, capsys):
    words = CommandLine("predict.py", positional="IMAGE_OR_DIR").parse_all(
        ["a.jpg", "--topk", "3", "b", "--output=x.csv", "--", "--odd.jpg"])
    assert words == (None, {"topk": 3, "output": "x.csv"}, ["a.jpg", "b", "--odd.jpg"])
    with pytest.raises(ConfigError, match="expected --key value, got 'a.jpg'"):  # other commands take no words
        CommandLine("eval.py").parse(["a.jpg"])
    base = ["--config_path", str(mini_run["config"]), "--checkpoint_path", str(mini_run["weights"])]
    assert _predict(base) == 2 and "no images given" in capsys.readouterr().err
    assert _predict([*base, "--output", "p.txt", str(images)]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    assert _predict([*base, str(tmp_path / "nothing")]) == 1 and "no images found" in capsys.readouterr().err
    assert _predict([*base, *(str(images / "odd" / b) for b in BROKEN)]) == 1
    assert f"none of the {len(BROKEN)} images could be classified" in capsys.readouterr().err


@pytest.mark.slow  # one training epoch: 40 s here (graph compilation, 2 shared cores)
def test_train_py_checkpoints_store_the_dataset_class_names(demo_data, tmp_path):
    from src.config import load_config
    from src.trainer import run_training

    out = tmp_path / "out"
    cfg = load_config(ROOT / "configs" / "demo.yaml", [
        "--model", "tinynet", "--w", "0.25", "--d", "0.35", "--num_classes", "4", "--data_path", str(demo_data),
        "--batch_size", "8", "--epochs", "1", "--num_parallel_workers", "1", "--output_dir", str(out),
        "--auto_augment", "none", "--ema_decay", "0"])
    run_training(cfg)
    classes = sorted(p.name for p in (demo_data / "train").iterdir())
    for name in ("last.ckpt", "best.ckpt", "epoch_0001.ckpt"):
        assert read_class_names(out / "checkpoints" / name) == classes, name


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_converted_imagenet_weights_name_each_images_own_argmax(mini_run, tmp_path, capsys):
    """The acceptance path: a converted 1000-class timm file, predict.py on a folder of held-out images: ImageNet
    names, and each image's top-1 is the network's argmax on its load_eval_image. The classifier is scaled up so
    that the top-1 differs between images (with the fixture's near-constant logits any order would pass)."""
    from safetensors.numpy import save_file

    from tinynet_ms.convert import convert

    rwd = dict(w=0.25, d=0.35)
    arrays = param_arrays(create_model("tinynet", num_classes=1000, cpu_kernels=False, **rwd))
    arrays["classifier.weight"] = arrays["classifier.weight"] * 300
    save_file(as_timm_state(arrays), str(tmp_path / "imagenet.safetensors"))
    ckpt = convert(tmp_path / "imagenet.safetensors", tmp_path / "imagenet.ckpt", "tinynet", num_classes=1000, **rwd)
    out = tmp_path / "p.csv"
    code = _predict(["--config_path", str(mini_run["config"]), "--checkpoint_path", str(ckpt), "--num_classes",
                     "1000", "--output", str(out), str(mini_run["data"] / "val")])
    assert code == 0, capsys.readouterr().err
    with out.open(newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    net = create_model("tinynet", num_classes=1000, checkpoint_path=ckpt, cpu_kernels=False, **rwd)
    net.set_train(False)
    files = sorted(rows)
    top1 = net(ms.Tensor(np.stack([load_eval_image(f, 48) for f in files]))).asnumpy().argmax(1)
    names = imagenet_class_names()
    assert [int(rows[f]["index1"]) for f in files] == top1.tolist()
    assert [rows[f]["top1"] for f in files] == [names[i] for i in top1]
    assert len(set(top1.tolist())) >= 3, "too few distinct top-1 classes for the check to mean anything"


def test_nan_or_inf_scores_are_skipped_not_predicted(images, caplog):
    """A model giving NaN/inf logits for an image (a broken file) 'predicted' class 0 with probability nan, exit 0:
    such an image is now a logged skip like an unreadable one (none classified: predict.py exits 1)."""
    files = find_images([images / "val" / "star_filled"])[0][:3]

    def run(x: np.ndarray) -> np.ndarray:
        logits = np.tile(np.arange(10, dtype=np.float32), (len(x), 1))
        logits[1, 4], logits[2, 7] = np.nan, np.inf
        return logits

    predictions, skipped = classify_files(Classifier(run, 48, DEFAULT_PREPROCESSING, NAMES, fixed_batch=3), files)
    assert [p.file for p in predictions] == [str(files[0])] and predictions[0].indices[0] == 9
    assert skipped == [(str(f), "NaN/inf scores") for f in files[1:]]
    assert [r.getMessage() for r in caplog.records if "NaN/inf" in r.getMessage()] == [
        f"skipping {f}: the model gave NaN/inf scores for it (a broken model file?)" for f in files[1:]]
