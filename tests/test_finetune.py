"""Fine-tuning: weights of another class count load with a fresh classifier (create_model, train.py), every other
tensor strictly checked; the linear probe leaves the backbone bit-identical."""
import logging
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import ROOT, SCRIPT_ENV, as_timm_state
from tinynet_ms import create_model
from tinynet_ms.weights import (CheckpointMismatchError, load_weights, param_arrays,
                                read_checkpoint, save_checkpoint_atomic)

HEAD = ("classifier.weight", "classifier.bias")


@pytest.fixture(scope="module")
def imagenet_e(tmp_path_factory):
    """A 1000-class TinyNet-E timm file (random weights, BN statistics made non-trivial) and its arrays."""
    net = create_model("tinynet_e", cpu_kernels=False)
    rng = np.random.default_rng(0)
    arrays = {k: (v + rng.uniform(0.1, 0.5, v.shape).astype(np.float32) if k.endswith(("moving_mean",
              "moving_variance")) else v) for k, v in param_arrays(net).items()}
    path = tmp_path_factory.mktemp("imagenet") / "tinynet_e.safetensors"
    save_file(as_timm_state(arrays), str(path))
    return path, arrays


def test_another_class_count_gets_a_fresh_head_and_the_same_features(imagenet_e, caplog):
    path, arrays = imagenet_e
    with caplog.at_level(logging.INFO, logger="tinynet"):
        net = create_model("tinynet_e", num_classes=10, checkpoint_path=path, cpu_kernels=False)
    said = [r.getMessage() for r in caplog.records if "freshly initialised" in r.getMessage()]
    assert len(said) == 1 and "1000-class classifier" in said[0] and "10-class" in said[0], said
    full = create_model("tinynet_e", checkpoint_path=path, cpu_kernels=False)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((2, 3, 106, 106)).astype(np.float32))
    for n in (net, full):
        n.set_train(False)
    a, b = net.forward_features(x).asnumpy(), full.forward_features(x).asnumpy()
    assert np.linalg.norm(a - b) / np.linalg.norm(b) <= 1e-6
    got = param_arrays(net)
    assert all(np.array_equal(got[k], v) for k, v in arrays.items() if k not in HEAD)
    assert got["classifier.weight"].shape == (10, 1280) and not got["classifier.bias"].any()
    bound = 1 / np.sqrt(10)  # timm's init of the fresh head: U(±1/sqrt(out))
    assert np.abs(got["classifier.weight"]).max() <= bound and got["classifier.weight"].std() > bound / 3


def test_a_headless_checkpoint_and_a_training_checkpoint_load_with_a_fresh_head(imagenet_e, tmp_path):
    _, arrays = imagenet_e
    headless = save_checkpoint_atomic({k: v for k, v in arrays.items() if k not in HEAD}, tmp_path / "headless.ckpt")
    net = create_model("tinynet_e", num_classes=4, checkpoint_path=headless, cpu_kernels=False)
    assert param_arrays(net)["classifier.weight"].shape == (4, 1280)
    # last.ckpt of a 1000-class run: its optimizer slots and EMA copy of the old head are left out with the rest
    training = {**arrays, **{f"ema.{k}": v for k, v in arrays.items()},
                **{f"optimizer.moment.{k}": np.zeros_like(v) for k, v in arrays.items()},
                "train_state.epoch": np.array(3, np.int32)}
    last = save_checkpoint_atomic(training, tmp_path / "last.ckpt")
    net = create_model("tinynet_e", num_classes=4, checkpoint_path=last, cpu_kernels=False)
    assert np.array_equal(param_arrays(net)["conv_head.weight"], arrays["conv_head.weight"])


def test_a_wrong_variant_still_fails_with_the_full_mismatch_list(imagenet_e):
    path, _ = imagenet_e
    with pytest.raises(CheckpointMismatchError) as err:
        create_model("tinynet_c", num_classes=10, checkpoint_path=path, cpu_kernels=False)
    text = str(err.value)
    assert "with the wrong shape" in text and "classifier" not in text and "... and" in text, text


def test_without_new_head_another_class_count_is_a_mismatch(imagenet_e):
    """eval.py and export.py load strictly: a fresh head would score or export random logits."""
    path, _ = imagenet_e
    net = create_model("tinynet_e", num_classes=10, cpu_kernels=False)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch classifier.weight: network \(10, 1280\)"):
        load_weights(net, path)


def _train(out, data, *extra):
    cmd = [sys.executable, "train.py", "--config_path", "configs/finetune.yaml", "--data_path", str(data),
           "--device_target", "CPU", "--model", "tinynet_e", "--image_size", "32", "--num_classes", "4",
           "--batch_size", "8", "--num_parallel_workers", "1", "--epochs", "1", "--log_interval", "2",
           "--ema_decay", "0.9", "--output_dir", str(out), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a train.py process
def test_linear_probe_trains_the_head_and_leaves_every_backbone_tensor_bit_identical(imagenet_e, demo_data,
                                                                                     tmp_path):
    path, arrays = imagenet_e
    run = _train(tmp_path / "probe", demo_data, "--pretrained_checkpoint", str(path), "--freeze_backbone", "true",
                 "--drop_path_rate", "0.2")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert "1000-class classifier" in log and "freeze_backbone: training classifier.weight, classifier.bias" in log
    last = read_checkpoint(tmp_path / "probe" / "checkpoints" / "last.ckpt")
    for prefix in ("", "ema."):  # the model and its EMA copy (best.ckpt may be either)
        changed = [k for k, v in arrays.items() if k not in HEAD and not np.array_equal(last[prefix + k], v)]
        assert not changed, (prefix, changed[:5])
    assert last["classifier.weight"].shape == (4, 1280) and last["classifier.bias"].any()


@pytest.mark.slow  # a train.py process
def test_fine_tuning_a_1000_class_file_on_4_classes_trains_everything(imagenet_e, demo_data, tmp_path):
    path, arrays = imagenet_e
    run = _train(tmp_path / "ft", demo_data, "--pretrained_checkpoint", str(path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    last = read_checkpoint(tmp_path / "ft" / "checkpoints" / "last.ckpt")
    assert not np.array_equal(last["conv_head.weight"], arrays["conv_head.weight"])
    assert not np.array_equal(last["bn2.moving_mean"], arrays["bn2.moving_mean"])


def test_the_fresh_head_is_not_the_seeded_init_of_the_run_that_trained_the_weights(tmp_path):
    """Under one seed, the network's initial classifier is the same random draw (scaled) for any class count: the
    head a pretraining run started from, which its features align with. The fresh head is drawn apart from it, and
    is still reproducible under the seed."""
    ms.set_seed(42)
    pre = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    ckpt = save_checkpoint_atomic(pre, tmp_path / "pre.ckpt")
    heads = []
    for _ in range(2):
        ms.set_seed(42)
        heads.append(param_arrays(create_model("tinynet", w=0.25, d=0.35, num_classes=5, checkpoint_path=ckpt,
                                               cpu_kernels=False))["classifier.weight"])
    ms.set_seed(42)
    init = param_arrays(create_model("tinynet", w=0.25, d=0.35, num_classes=5, cpu_kernels=False))["classifier.weight"]
    old = param_arrays(pre)["classifier.weight"][:5]
    assert abs(np.corrcoef(init.ravel(), old.ravel())[0, 1]) > 0.99  # what a copy of the net's init would be
    assert abs(np.corrcoef(heads[0].ravel(), old.ravel())[0, 1]) < 0.1
    assert np.array_equal(heads[0], heads[1])
