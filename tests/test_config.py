"""Config: YAML (with _base_) ← CLI overrides, typed; unknown keys are errors that name the key; the command
line of train/eval/export (both argument forms, --help listing every key)."""
import re
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, SCRIPT_ENV
from src.config import GROUPS, KEYS, CommandLine, ConfigError, load_config, parse_overrides
from tinynet_ms.models import VARIANTS


def test_yaml_then_overrides(tmp_path):
    cfg = load_config(ROOT / "configs" / "tinynet_c.yaml", ["--epochs", "3", "--lr=0.1", "--device_target", "CPU"])
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.device_target) == ("tinynet_c", 3, 0.1, "CPU")
    assert cfg.batch_size == 128 and cfg.auto_augment == "rand-m9-mstd0.5" and cfg.ema_decay == 0.9999


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_configs_are_the_recipe_for_their_own_variant(name):
    """Each variant file builds *its* variant (a copy-paste slip would load the wrong one), with the model's own
    resolution and crop and the paper's recipe from base.yaml."""
    path = ROOT / "configs" / f"{name}.yaml"
    cfg = load_config(path)
    assert (cfg.model, cfg.output_dir) == (name, f"output/{name}")
    assert (cfg.image_size, cfg.crop_pct) == (0, 0)  # 0 = the record's
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.drop_path_rate, cfg.ema_decay, cfg.re_prob) == (
        0.048, 128, 450, 0.2, 0.9999, 0.2)
    assert (cfg.lr_scaling, cfg.lr_reference_batch) == ("linear", 1024)  # 0.048 is the paper's lr for 8 x 128
    own = yaml.safe_load(path.read_text())
    assert own.pop("_base_") == "base.yaml" and set(own) == {"model", "output_dir"}  # the rest is shared


def test_demo_config_loads():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert (cfg.model, cfg.device_target, cfg.num_classes) == ("tinynet_e", "CPU", 10)


def test_base_files_chain_and_report_their_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 0.5\nepochs: 7\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("_base_: ../a.yaml\nepochs: 9\n")
    cfg = load_config(tmp_path / "sub" / "b.yaml", ["--epochs=11"])
    assert (cfg.lr, cfg.epochs) == (0.5, 11)
    assert load_config(tmp_path / "sub" / "b.yaml").epochs == 9
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "c.yaml").write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml.*the _base_ of"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "a.yaml").write_text("lr: fast\n")
    with pytest.raises(ConfigError, match=r"'lr' \(.*a.yaml\) expects float"):
        load_config(tmp_path / "sub" / "b.yaml")


@pytest.mark.parametrize("arg,bounds", [("--lr=-1", "(0, inf)"), ("--lr=nan", "(0, inf)"), ("--lr=inf", "(0, inf)"),
                                        ("--re_prob=1.5", "[0, 1]"), ("--momentum=1", "[0, 1)"),
                                        ("--crop_pct=1.2", "[0, 1]"), ("--eval_interval=0", "[1, inf)"),
                                        ("--w=0", "(0, 4]"), ("--ema_decay=1", "[0, 1)")])
def test_values_outside_their_range_are_config_errors(arg, bounds, tmp_path):
    name = arg[2:].split("=")[0]
    with pytest.raises(ConfigError, match=rf"'{name}' \(--{name}\) must be in {re.escape(bounds)}"):
        load_config(None, [arg])
    (tmp_path / "c.yaml").write_text(f"{name}: {arg.split('=')[1]}\n")  # the same check for YAML values
    with pytest.raises(ConfigError, match=rf"'{name}' \(.*c.yaml\) must be in"):
        load_config(tmp_path / "c.yaml")


def test_choices_minimums_and_both_argument_forms():
    config_path, values = CommandLine("x").parse(["--config_path=c.yaml", "--lr", "0.1", "--device_target=cpu",
                                                  "--use_ema=true", "--warmup_lr", "1e-6"])
    assert config_path == "c.yaml"
    assert values == {"lr": 0.1, "device_target": "CPU", "use_ema": True, "warmup_lr": 1e-6}
    with pytest.raises(ConfigError, match=r"'lr' \(--lr\) must be in"):  # "-1e-6" is a value, not an option
        CommandLine("x").parse(["--lr", "-1e-6"])
    with pytest.raises(ConfigError, match="'file_format' \\(--file_format\\) must be one of MINDIR, ONNX, AIR"):
        load_config(None, ["--file_format", "tflite"])
    with pytest.raises(ConfigError, match="'batch_size' \\(--batch_size\\) must be in \\[1, inf\\), got 0"):
        load_config(None, ["--batch_size=0"])
    _, values = CommandLine("export.py", aliases={"batch_size": "export_batch_size"}).parse(["--batch_size=3"])
    assert values == {"export_batch_size": 3}


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


@pytest.mark.parametrize("script", ["train.py", "eval.py", "export.py"])
def test_help_lists_every_key_with_type_default_and_meaning(script):
    if script == "train.py":  # the real process once; the parser itself for the others
        run = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=SCRIPT_ENV, capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr
        text = run.stdout
    else:
        aliases = {"batch_size": "export_batch_size"} if script == "export.py" else None
        text = CommandLine(script, aliases=aliases).parser.format_help()
    out = " ".join(text.split())  # argparse wraps lines
    for group in GROUPS:
        assert f"{group} keys:" in out
    for name, key in KEYS.items():
        if script == "export.py" and name == "batch_size":
            continue  # there --batch_size is the export batch
        assert re.search(rf"--{name}( |, )", out), name
        assert " ".join(f"{key.help} (default:".split()) in out, name
    assert "Exit codes: 0 ok, 1 bad input file or failed run, 2 usage or config error" in out
    if script == "export.py":
        assert "--export_batch_size INT, --batch_size INT" in out


def test_config_path_equals_form_and_unknown_keys_on_the_scripts(tmp_path, capsys):
    """eval.py / train.py's run_app in-process (tests/test_cli.py runs real processes)."""
    from src.cli import run_app
    from src.evaluation import run_eval

    code = run_app(run_eval, [f"--config_path={ROOT}/configs/tinynet_e.yaml", "--device_target=CPU", f"--data_path={tmp_path}",
                              "--checkpoint_path=x.ckpt"], "eval", "eval.py")
    assert code == 1 and "'x.ckpt' does not exist" in capsys.readouterr().err  # config accepted; the file is missing
    code = run_app(run_eval, [f"--config_path={ROOT}/configs/demo.yaml", "--epoch=3"], "train", "train.py")
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key 'epoch'" in err and "did you mean epochs" in err


def test_get_for_shell_scripts(capsys):
    run = subprocess.run([sys.executable, "-m", "src.config", "configs/demo.yaml", "--output_dir", "x/y",
                          "--get", "output_dir"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "x/y"
    from src.config import main

    assert main([str(ROOT / "configs" / "demo.yaml"), "--epoch", "3", "--get", "lr"]) == 2
    assert "unknown config key 'epoch'" in capsys.readouterr().err
