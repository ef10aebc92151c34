"""A run never loses another run's work: a fresh run refuses an output_dir that holds checkpoints unless told."""
from types import SimpleNamespace

import pytest

from src.config import ConfigError
from src.context import RunContext
from src.trainer import check_output_dir


def _cfg(out, **kw):
    return SimpleNamespace(output_dir=str(out), resume=kw.get("resume", ""), overwrite=kw.get("overwrite", False))


def _old_run(out):
    (out / "checkpoints").mkdir(parents=True)
    for name in ("best.ckpt", "last.ckpt", "epoch_0002.ckpt", "epoch_0003.ckpt"):
        (out / "checkpoints" / name).write_bytes(b"old")
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')


def test_fresh_run_over_checkpoints_is_refused_naming_the_ways_out(tmp_path):
    _old_run(tmp_path / "out")
    with pytest.raises(ConfigError, match="holds another run's checkpoints .*--resume auto.*--overwrite true"):
        check_output_dir(_cfg(tmp_path / "out"), RunContext("CPU"))
    assert (tmp_path / "out" / "checkpoints" / "best.ckpt").read_bytes() == b"old"  # untouched


def test_resume_auto_continues_and_overwrite_removes_every_old_file(tmp_path):
    out = tmp_path / "out"
    _old_run(out)
    check_output_dir(_cfg(out, resume="auto"), RunContext("CPU"))  # last.ckpt is there: continue it
    assert (out / "checkpoints" / "last.ckpt").exists()
    check_output_dir(_cfg(out, overwrite=True), RunContext("CPU", rank=1, world=2))  # only rank 0 deletes
    assert (out / "checkpoints" / "last.ckpt").exists()
    check_output_dir(_cfg(out, overwrite=True), RunContext("CPU", rank=0, world=2))
    assert not list((out / "checkpoints").iterdir()) and not (out / "metrics.jsonl").exists()


def test_empty_or_new_output_dir_is_fine_and_a_file_is_an_error(tmp_path):
    check_output_dir(_cfg(tmp_path / "new"), RunContext("CPU"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(_cfg(tmp_path / "f"), RunContext("CPU"))
