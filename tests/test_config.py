"""Config: YAML ← CLI overrides, typed; unknown keys are errors that name the key."""
import subprocess
import sys

import pytest

from conftest import ROOT
from src.config import ConfigError, load_config, parse_overrides


def test_yaml_then_overrides(tmp_path):
    cfg = load_config(ROOT / "configs" / "tinynet_c.yaml", ["--epochs", "3", "--lr=0.1", "--device_target", "CPU"])
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.device_target) == ("tinynet_c", 3, 0.1, "CPU")
    assert cfg.batch_size == 128 and cfg.auto_augment == "rand-m9-mstd0.5" and cfg.ema_decay == 0.9999


@pytest.mark.parametrize("name", ["tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e", "demo"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.model.startswith("tinynet")


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'lr_max' \\(--lr_max\\)"):
        load_config(None, ["--lr_max", "1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tinynet_a\nbatchsize: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'batchsize' \(.*bad.yaml\)"):
        load_config(bad)


def test_type_errors_and_malformed_args():
    with pytest.raises(ConfigError, match="'epochs' .* expects int, got '3.5'"):
        load_config(None, ["--epochs", "3.5"])
    with pytest.raises(ConfigError, match="--lr needs a value"):
        parse_overrides(["--lr"])
    with pytest.raises(ConfigError, match="expected --key value, got 'oops'"):
        parse_overrides(["oops"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("nope.yaml")


def test_get_for_shell_scripts():
    run = subprocess.run([sys.executable, "-m", "src.config", "configs/demo.yaml", "--output_dir", "x/y",
                          "--get", "output_dir"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "x/y"
    run = subprocess.run([sys.executable, "-m", "src.config", "configs/demo.yaml", "--epoch", "3", "--get", "lr"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "unknown config key 'epoch'" in run.stderr
