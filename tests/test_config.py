"""Config: YAML (with _base_) ← CLI overrides, typed; unknown keys are errors that name the key; the command
line of train/eval/export/predict (both argument forms, --help listing each command's own keys) and the generated
reference page docs/configuration.md."""
import re
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, SCRIPT_ENV
from src.config import (ENTRY_POINTS, GROUPS, KEYS, MARKDOWN_COMMAND, CommandLine, ConfigError,
                        configuration_markdown, keys_of, load_config, parse_overrides)
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
    with pytest.raises(ConfigError, match="config file .* does not exist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="config file .* is a folder, not a file"):  # said as such, not 'missing'
        load_config(str(ROOT / "configs"))


ALIASES = {"export.py": {"batch_size": "export_batch_size"}}  # as the entry points pass them to run_app


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help_lists_the_commands_own_keys_with_type_default_and_meaning(script):
    """Each entry point's --help lists the keys it reads (GROUPS: a key's commands) and no other; it accepts every
    key all the same (the shell scripts pass one set of overrides to several commands)."""
    if script == "train.py":  # the real process once; the parser itself for the others
        run = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=SCRIPT_ENV, capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr
        text = run.stdout
        assert "--file_format" not in text and "--result_file" not in text and "--topk" not in text
    else:
        text = CommandLine(script, aliases=ALIASES.get(script)).parser.format_help()
    out = " ".join(text.split())  # argparse wraps lines
    options = {flag for flag in CommandLine(script, aliases=ALIASES.get(script)).parser._option_string_actions}
    own = keys_of(script)
    for group, keys in GROUPS.items():
        assert (f"{group} keys:" in out) == any(name in own for name in keys), group
    for name, key in KEYS.items():
        if name in ALIASES.get(script, {}):
            assert f"--{name}" in options  # there --batch_size is the export batch
            continue
        assert (f"--{name}" in options) == (name in own), (script, name)
        if name in own:
            assert re.search(rf"--{name}( |, )", out), name
            assert " ".join(f"{key.help} (default:".split()) in out, name
    assert "Exit codes: 0 ok, 1 bad input file or failed run, 2 usage or config error" in out
    assert f"Listed: the keys {script} uses" in out
    if script == "export.py":
        assert "--export_batch_size INT, --batch_size INT" in out
    # keys it does not list are still accepted; unknown ones are still errors
    _, values = CommandLine(script).parse(["--epochs", "3", "--file_format=onnx"])
    assert values == {"epochs": 3, "file_format": "ONNX"}
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        CommandLine(script).parse(["--epoch", "3"])


def test_the_commands_keys():
    """What each command reads, as the brief of issue 31 and the code say (src/trainer.py, evaluation.py, ...)."""
    assert set(keys_of("export.py")) == {
        "model", "r", "w", "d", "num_classes", "image_size", "pretrained", "features_only", "out_indices",
        "device_target", "device_id", "mode", "crop_pct", "checkpoint_path", "use_ema", "file_name", "file_format",
        "export_batch_size", "dynamic_batch"}
    assert {"data_path", "batch_size", "num_parallel_workers", "crop_pct", "checkpoint_path", "use_ema",
            "result_file", "output_dir"} <= set(keys_of("eval.py"))
    assert not {"epochs", "lr", "file_format", "topk", "auto_augment", "amp_level"} & set(keys_of("eval.py"))
    assert not {"checkpoint_path", "use_ema", "result_file", "file_name", "file_format", "export_batch_size",
                "dynamic_batch", "features_only", "topk", "output", "model_path"} & set(keys_of("train.py"))
    assert {"topk", "output", "model_path", "checkpoint_path", "batch_size"} <= set(keys_of("predict.py"))
    for name, key in KEYS.items():  # every key is some command's, and only the entry points are named
        assert key.commands and set(key.commands) <= set(ENTRY_POINTS), name


def test_configuration_page_is_generated_from_the_schema(capsys):
    """docs/configuration.md is python -m src.config --markdown's output: a key added, renamed or re-described
    without regenerating the page fails here."""
    page = ROOT / "docs" / "configuration.md"
    assert page.is_file() and page.read_text() == configuration_markdown(), (
        f"docs/configuration.md is out of date with src/config.py: regenerate it with `{MARKDOWN_COMMAND}`")
    text = configuration_markdown()
    for name, key in KEYS.items():
        assert re.search(rf"^\| `{name}` \| {type(key.default).__name__} \|", text, re.M), name
    from src.config import main

    assert main(["--markdown"]) == 0 and capsys.readouterr().out == text  # what the regenerating command writes


def test_config_path_equals_form_and_unknown_keys_on_the_scripts(tmp_path, capsys):
    """eval.py / train.py's run_app in-process (tests/test_cli.py runs real processes)."""
    from src.app import run_app
    from src.evaluation import run_eval

    code = run_app(run_eval, [f"--config_path={ROOT}/configs/tinynet_e.yaml", "--device_target=CPU", f"--data_path={tmp_path}",
                              "--checkpoint_path=x.ckpt"], "eval", "eval.py")
    assert code == 1 and "'x.ckpt' does not exist" in capsys.readouterr().err  # config accepted; the file is missing
    code = run_app(run_eval, [f"--config_path={ROOT}/configs/tinynet_e.yaml", "--device_target=CPU",
                              f"--data_path={tmp_path}", f"--checkpoint_path={tmp_path}"], "eval", "eval.py")
    assert code == 1 and "is a folder, not a file" in capsys.readouterr().err
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
