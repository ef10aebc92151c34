"""timm weights → MindSpore: reference logits reproduced; every mismatch reported clearly."""
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from helpers import DATA, ROOT
from tinynet_ms import create_model
from tinynet_ms.weights import CheckpointMismatchError, read_checkpoint, save_checkpoint_atomic
from tinynet_ms.convert import convert
from tinynet_ms.weights import read_torch_weights

MINI = dict(w=0.25, d=0.35, num_classes=10)  # how the fixture was built in timm
SAFETENSORS = DATA / "timm_tinynet_mini.safetensors"
REFERENCE = np.load(DATA / "timm_tinynet_mini.npz")


def _rel_err(net) -> float:
    net.set_train(False)
    out = net(ms.Tensor(REFERENCE["input"])).asnumpy()
    ref = REFERENCE["logits"]
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def test_safetensors_reproduces_timm_logits(mode):
    net = create_model("tinynet", checkpoint_path=SAFETENSORS, **MINI)
    assert _rel_err(net) <= 1e-4


def test_converted_ckpt_reproduces_timm_logits(tmp_path):
    dst = convert(SAFETENSORS, tmp_path / "mini.ckpt", "tinynet", num_classes=10, w=0.25, d=0.35)
    ckpt = read_checkpoint(dst)
    assert "bn1.moving_variance" in ckpt and not any("num_batches_tracked" in k for k in ckpt)
    net = create_model("tinynet", checkpoint_path=dst, **MINI)
    assert _rel_err(net) <= 1e-4
    # The rename kept the statistics: running_var became moving_variance, not a fresh 1.
    state = load_file(str(SAFETENSORS))
    np.testing.assert_array_equal(ckpt["blocks.3.0.bn2.moving_variance"], state["blocks.3.0.bn2.running_var"])


def _write_pth(state: dict, path, wrap: str | None = None):
    torch = pytest.importorskip("torch")
    sd = {k: torch.from_numpy(np.array(v)) for k, v in state.items()}
    torch.save({wrap: sd, "epoch": 3} if wrap else sd, path)
    return path


@pytest.mark.parametrize("wrap", [None, "state_dict"])
def test_pth_reproduces_timm_logits(tmp_path, wrap):
    pth = _write_pth(load_file(str(SAFETENSORS)), tmp_path / "mini.pth", wrap)
    net = create_model("tinynet", checkpoint_path=pth, **MINI)
    assert _rel_err(net) <= 1e-4


def test_pth_with_pickled_code_is_refused(tmp_path):
    pytest.importorskip("torch")
    import pickle
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(subprocess.Popen))  # a global torch's weights-only loader must reject
    with pytest.raises(ValueError, match="not a weights-only PyTorch checkpoint"):
        read_torch_weights(path)


def test_pth_without_torch_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(ImportError, match="needs PyTorch"):
        read_torch_weights(tmp_path / "w.pth")


def _mutated(tmp_path, edit) -> str:
    state = load_file(str(SAFETENSORS))
    edit(state)
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path))
    return str(path)


def test_missing_key(tmp_path):
    src = _mutated(tmp_path, lambda s: s.pop("blocks.2.0.se.conv_expand.bias"))
    with pytest.raises(CheckpointMismatchError, match=r"missing from weights: blocks\.2\.0\.se\.conv_expand\.bias \(48,\)"):
        convert(src, tmp_path / "o.ckpt", "tinynet", num_classes=10, w=0.25, d=0.35)
    assert not (tmp_path / "o.ckpt").exists()


def test_extra_key(tmp_path):
    src = _mutated(tmp_path, lambda s: s.update({"head.fc.weight": np.zeros((3, 3), np.float32)}))
    with pytest.raises(CheckpointMismatchError, match=r"not in network: head\.fc\.weight \(3, 3\)"):
        convert(src, tmp_path / "o.ckpt", "tinynet", num_classes=10, w=0.25, d=0.35)


def test_wrong_shape(tmp_path):
    src = _mutated(tmp_path, lambda s: s.update({"conv_head.weight": s["conv_head.weight"][:, :4]}))
    with pytest.raises(CheckpointMismatchError,
                       match=r"edited\.safetensors .* does not fit TinyNet\(r=1.0, w=0.25, d=0.35, 10 classes\)(.|\n)*"
                             r"shape mismatch conv_head\.weight: network \(1280, 80, 1, 1\), weights \(1280, 4, 1, 1\)"):
        convert(src, tmp_path / "o.ckpt", "tinynet", num_classes=10, w=0.25, d=0.35)


def test_wrong_variant_and_classes(tmp_path):
    with pytest.raises(CheckpointMismatchError) as info:
        convert(SAFETENSORS, tmp_path / "o.ckpt", "tinynet_e", num_classes=10)
    msg = str(info.value)
    assert "does not fit TinyNet(r=0.475, w=0.51, d=0.6, 10 classes)" in msg
    assert "shape mismatch blocks.1.0.conv_pwl.weight: network (16, 48, 1, 1), weights (8, 48, 1, 1)" in msg
    assert "missing from weights: blocks.3.1.conv_pw.weight (240, 40, 1, 1)" in msg
    with pytest.raises(CheckpointMismatchError, match=r"classifier\.weight: network \(1000, 1280\), weights \(10, 1280\)"):
        convert(SAFETENSORS, tmp_path / "o.ckpt", "tinynet", num_classes=1000, w=0.25, d=0.35)


@pytest.mark.slow  # two processes; tests/test_cli.py holds the exit codes in-process
def test_convert_cli(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "tinynet_ms.convert", str(SAFETENSORS), str(tmp_path / "m.ckpt"),
                         "--model", "tinynet_e"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 1
    assert "does not fit" in ok.stderr and "Traceback" not in ok.stderr
    missing = subprocess.run([sys.executable, "-m", "tinynet_ms.convert", str(tmp_path / "nope.pth"),
                              str(tmp_path / "m.ckpt"), "--model", "tinynet_e"], cwd=ROOT, capture_output=True,
                             text=True)
    assert missing.returncode == 1 and "weights file not found" in missing.stderr


def test_convert_real_variant_roundtrip(tmp_path):
    """A full-size variant: our own weights exported in timm's layout convert back bit-exactly."""
    net = create_model("tinynet_c")
    inverse = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    state = {}
    for p in net.get_parameters():
        module, _, leaf = p.name.rpartition(".")
        state[f"{module}.{inverse.get(leaf, leaf)}"] = p.asnumpy() + np.float32(0.01)
    save_file(state, str(tmp_path / "c.safetensors"))
    dst = convert(tmp_path / "c.safetensors", tmp_path / "c.ckpt", "tinynet_c")
    loaded = create_model("tinynet_c", checkpoint_path=dst)
    for p in loaded.get_parameters():
        module, _, leaf = p.name.rpartition(".")
        np.testing.assert_array_equal(p.asnumpy(), state[f"{module}.{inverse.get(leaf, leaf)}"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        create_model("tinynet_e", checkpoint_path=tmp_path / "none.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable MindSpore checkpoint"):
        create_model("tinynet_e", checkpoint_path=bad)
    other = save_checkpoint_atomic(create_model("tinynet_d"), tmp_path / "d.ckpt")
    with pytest.raises(CheckpointMismatchError, match="does not fit"):
        create_model("tinynet_e", checkpoint_path=other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt", "d.ckpt"]  # no temp files left


def test_pretrained_without_cache_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_MS_HOME", str(tmp_path))
    monkeypatch.setenv("TINYNET_MS_WEIGHTS_URL", "http://127.0.0.1:9")  # offline: nothing listens (test_download.py)
    with pytest.raises(OSError, match=r"tinynet_b\.pth.*python -m tinynet_ms\.convert"):
        create_model("tinynet_b", pretrained=True)
    save_checkpoint_atomic(create_model("tinynet_b"), tmp_path / "tinynet_b.ckpt")
    assert create_model("tinynet_b", pretrained=True).num_classes == 1000


def test_uppercase_suffix_and_truncated_safetensors(tmp_path):
    upper = tmp_path / "W.SAFETENSORS"
    upper.write_bytes(SAFETENSORS.read_bytes())
    create_model("tinynet", w=0.25, d=0.35, num_classes=10, checkpoint_path=upper)  # not "needs PyTorch"
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes(SAFETENSORS.read_bytes()[:1000])
    with pytest.raises(ValueError, match="torn.safetensors is not a readable safetensors file"):
        create_model("tinynet", w=0.25, d=0.35, num_classes=10, checkpoint_path=torn)
