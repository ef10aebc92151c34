"""One exit-code convention for every command line (tinynet_ms.cli): 0 ok, 1 bad input file or failed run,
2 usage or config error — each with one 'error:' line and no traceback. The entry points' main functions run
in-process (a MindSpore import per case would cost seconds); two cases check the real process's exit code."""
import importlib.util
import subprocess
import sys

import pytest

from helpers import DATA, ROOT, SCRIPT_ENV

MINI = str(DATA / "timm_tinynet_mini.safetensors")


def _script_main(name: str):
    """``main(argv)`` of a top-level script (preprocess.py, postprocess.py); train/eval go through run_app."""
    if name in ("train.py", "eval.py"):
        from src.app import run_app
        from src.evaluation import run_eval
        from src.trainer import run_training
        fn = run_training if name == "train.py" else run_eval
        return lambda argv: run_app(fn, argv, f"python {name} --config_path ...", name)
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _module_main(name: str):
    return importlib.import_module(f"tinynet_ms.{name}").main


CASES = [
    # (entry point, argv, exit code, message)
    ("profile", ["tinynet_x"], 2, "unknown model 'tinynet_x'"),
    ("profile", ["tinynet_e", "--image_size", "0"], 2, "expected a positive integer"),
    ("convert", ["a.pth", "b.ckpt", "--model", "tinynet_q"], 2, "unknown model 'tinynet_q'"),
    ("convert", ["missing.pth", "b.ckpt", "--model", "tinynet_e"], 1, "weights file not found"),
    ("convert", [MINI, "b.ckpt", "--model", "tinynet_e"], 1, "does not fit"),
    ("design", ["--macs", "lots"], 2, "cannot read MACs budget"),
    ("design", ["--macs", "40M", "--plot_range", "1:2"], 2, "expected first:last:points"),
    ("export", ["info", "missing.onnx"], 1, "model file not found"),
    ("export", ["info", "random.onnx"], 1, "random.onnx is not a readable ONNX model"),
    ("export", ["info", "random.mindir"], 1, "random.mindir is not a readable MINDIR model"),
    ("preprocess.py", ["--data_path", "nowhere", "--image_size", "32", "--model", "resnet"], 2, "unknown model"),
    ("preprocess.py", ["--data_path", "nowhere", "--image_size", "32", "--crop_pct", "1.5"], 2, "crop_pct must be in"),
    ("preprocess.py", ["--data_path", "nowhere", "--image_size", "32"], 1, "nowhere"),
    ("preprocess.py", ["--data_path", "nowhere"], 2, "give either --model_path"),
    ("postprocess.py", ["--label_file", "missing.json"], 1, "label file not found"),
    ("train.py", ["--config_path", "configs/demo.yaml", "--device_target", "TPU"], 2, "must be one of Ascend, GPU, CPU"),
    ("train.py", ["--config_path", "configs/nope.yaml"], 2, "configs/nope.yaml does not exist"),
    ("train.py", ["--config_path", "configs/demo.yaml", "--model", "tinynet_z", "--data_path", "nowhere"], 2,
     "config key 'model': unknown model 'tinynet_z'"),
    ("train.py", ["--config_path", "configs/demo.yaml", "--model", "tinynet", "--w", "0", "--data_path", "nowhere"], 2,
     "'w' (--w) must be in (0, 4]"),
    ("train.py", ["--config_path=configs/demo.yaml", "--epochs"], 2, "--epochs needs a value"),
    ("eval.py", ["--config_path", "configs/demo.yaml", "--data_path", "nowhere", "--checkpoint_path", MINI], 1,
     "dataset folder not found: nowhere/val"),
    ("eval.py", ["--config_path", "configs/demo.yaml", "--data_path", "nowhere"], 2, "pass --checkpoint_path"),
    ("train.py", [], 2, "python train.py --config_path"),
]


@pytest.mark.parametrize("entry,argv,code,message", CASES, ids=[f"{c[0]} {' '.join(c[1][:2])} -> {c[2]}" for c in CASES])
def test_exit_codes(entry, argv, code, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("random.onnx", "random.mindir"):  # what a failed download leaves
        (tmp_path / name).write_bytes(bytes(range(256)) * 8)
    argv = [str(ROOT / a) if a.startswith("configs/") else a.replace("=configs/", f"={ROOT}/configs/") for a in argv]
    main = _script_main(entry) if entry.endswith(".py") else _module_main(entry)
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    out = capsys.readouterr()
    assert got == code, out.out + out.err
    assert message in out.out + out.err and "Traceback" not in out.err, out.err


@pytest.mark.parametrize("args,code", [(["-m", "tinynet_ms.profile", "tinynet_x"], 2),
                                       # the ImageNet configs target Ascend; this MindSpore is CPU-only
                                       ([str(ROOT / "eval.py"), "--config_path", str(ROOT / "configs" / "tinynet_e.yaml"),
                                         "--data_path", "nowhere", "--checkpoint_path", MINI], 2),
                                       pytest.param([str(ROOT / "eval.py"), "--config_path",
                                                      str(ROOT / "configs" / "demo.yaml"), "--data_path", "nowhere",
                                                      "--checkpoint_path", MINI], 1, marks=pytest.mark.slow)])
def test_process_exit_codes(args, code, tmp_path):
    run = subprocess.run([sys.executable, *args], cwd=tmp_path, env={**SCRIPT_ENV, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == code and run.stderr.count("error: ") == 1 and "Traceback" not in run.stderr, run.stderr


def test_a_run_error_is_printed_once_and_logged_to_log_files(tmp_path, capsys):
    """run_app logs the reason for the run's log files, but setup_logging's handler writes to stderr, where
    run_main's `error:` line goes too: the console must show it once."""
    import logging

    from src.app import run_app
    from src.config import ConfigError
    from src.context import setup_logging

    log_file = logging.FileHandler(tmp_path / "run.log")

    def fn(cfg) -> None:
        setup_logging()
        logging.getLogger("tinynet").addHandler(log_file)
        raise ConfigError("data_sink on: MindSpore's data sink runs on Ascend and GPU only")

    try:
        code = run_app(fn, ["--config_path", str(ROOT / "configs" / "demo.yaml")], "doc", "train.py")
    finally:
        logging.getLogger("tinynet").removeHandler(log_file)
        log_file.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("data sink runs on Ascend") == 1, err
    assert "ConfigError: data_sink on" in (tmp_path / "run.log").read_text()


@pytest.mark.parametrize("args,code,message", [
    (["--no_such_key", "1"], 2, "unknown config key 'no_such_key'"),
    (["--epochs", "-3"], 2, "config key 'epochs' (--epochs) must be in [1, inf), got -3"),
    (["--model", "tinynet_z"], 2, "config key 'model': unknown model 'tinynet_z'"),
    (["--output_dir", "old"], 2, "output_dir 'old' holds another run's checkpoints (last.ckpt): pass --resume auto"),
    (["--output_dir", "old", "--resume", "auto"], 0, ""),
    (["--output_dir", "old", "--resume", "missing.ckpt"], 1, "--resume missing.ckpt: no such checkpoint"),
])
def test_the_scripts_pre_launch_check_refuses_what_train_py_refuses(args, code, message, tmp_path, capsys,
                                                                    monkeypatch):
    """`python -m src.app --entry train.py` (the scripts, before any rank starts): train.py's config loading and
    its output_dir check, relative paths in the caller's directory, one error line."""
    from src.app import main

    monkeypatch.chdir(ROOT)  # main enters --cwd: back to where the test started afterwards

    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    (tmp_path / "old" / "checkpoints" / "last.ckpt").write_bytes(b"")
    got = main(["--entry", "train.py", "--cwd", str(tmp_path), "--get", "output_dir", "--",
                "--config_path", str(ROOT / "configs" / "demo.yaml"), *args])
    out = capsys.readouterr()
    assert got == code, out.err
    if code:
        assert out.err.count("error: ") == 1 and message in out.err and not out.out, out.err
    else:
        assert out.out == "old\n" and not out.err
    assert (tmp_path / "old" / "checkpoints" / "last.ckpt").is_file()  # a check, never a deletion
