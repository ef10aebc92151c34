"""benchmarks/compare_timm.py's statistics, report and CLI (no training), and timm_reference.py's DDP mode when a timm
environment is present."""
from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import compare_timm  # noqa: E402


def _run(losses: list[float], top1: list[float]) -> list[dict]:
    return [{"epoch": e + 1, "train_loss": loss, "val_top1": t} for e, (loss, t) in enumerate(zip(losses, top1))]


def test_mean_interval_is_the_t_interval():
    mean, lo, hi = compare_timm.mean_interval([1.0, 2.0, 3.0])
    # sd 1, n 3: t(0.975, 2) = 4.3027, half-width 4.3027 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6) and mean - lo == hi - mean
    assert math.isnan(compare_timm.mean_interval([1.0])[1])  # one run: no interval


def test_run_interval_is_where_one_more_run_lands():
    lo, hi = compare_timm.run_interval([1.0, 2.0, 3.0])
    # sd 1, n 3: half-width t(0.975, 2) * sqrt(1 + 1/3), wider than the mean's by sqrt(n + 1)
    assert (lo + hi) / 2 == 2.0 and hi - 2.0 == pytest.approx(4.302653 * math.sqrt(4 / 3), rel=1e-6)
    assert all(math.isnan(v) for v in compare_timm.run_interval([1.0]))
    # unlike the interval of the mean it does not shrink toward 0 with more runs (the scatter of these stays 0.1)
    many = 0.7 + 0.1 * np.random.default_rng(0).standard_normal(400)
    lo, hi = compare_timm.run_interval(many)
    assert 0.17 < (hi - lo) / 2 < 0.23 and compare_timm.mean_interval(many)[2] - many.mean() < 0.012


def test_difference_interval_is_welchs():
    x, y = [5.0, 6.0, 7.0, 8.0], [1.0, 1.5, 2.0]
    diff, lo, hi = compare_timm.difference_interval(x, y)
    vx, vy = np.var(x, ddof=1) / 4, np.var(y, ddof=1) / 3
    df = (vx + vy) ** 2 / (vx ** 2 / 3 + vy ** 2 / 2)  # Welch-Satterthwaite: 4.08, fractional
    assert diff == 5.0 and hi - diff == pytest.approx(compare_timm.t_quantile(df) * math.sqrt(vx + vy))
    assert diff - lo == pytest.approx(hi - diff) and 2.57 < compare_timm.t_quantile(df) < 2.776  # t(5) .. t(4)
    assert compare_timm.difference_interval([1.0, 1.0], [1.0, 1.0]) == (0.0, 0.0, 0.0)


def test_rows_flag_a_difference_and_an_overlap():
    ours = [_run([2.0, 1.00], [0.5, 0.80]), _run([2.2, 1.02], [0.6, 0.82]), _run([1.8, 1.01], [0.4, 0.81])]
    timm = [_run([2.1, 0.70], [0.5, 0.90]), _run([1.9, 0.71], [0.6, 0.92]), _run([2.0, 0.69], [0.55, 0.91])]
    rows = compare_timm.compare(ours, timm)
    assert rows[0]["loss_differs"] is False and rows[0]["loss_inside"] is True
    assert rows[1]["loss_differs"] is True and rows[1]["loss_inside"] is False
    # "inside" is timm's seed scatter, not the interval of its mean: 2.3 is outside 2.0 +- 0.25, inside 2.0 +- 0.50
    ours, timm = ([_run([x], [0.5]) for x in xs] for xs in ((2.3, 2.4, 2.2), (2.0, 2.1, 1.9)))
    row = compare_timm.compare(ours, timm)[0]
    assert row["loss_timm_hi"] < 2.3 < row["loss_timm_runs_hi"] and row["loss_inside"] is True
    assert rows[1]["loss_diff"] == pytest.approx(0.31) and rows[1]["loss_diff_lo"] > 0.25
    assert rows[1]["top1_differs"] is True and rows[1]["top1_diff"] < 0
    text = compare_timm.markdown(rows, "t")
    assert "| 2 | 1.0100 [" in text and "+0.3100 [+0." in text and "] * |" in text and "] ! | +0.3100" in text
    assert ("loss: difference excludes 0 at 1 of 2 epochs [2] (0.1 expected by chance); ours' mean outside timm's "
            "runs at 1 epoch [2]") in compare_timm.verdict(rows)


def test_late_summary_takes_one_number_per_run():
    ours = [_run([3.0, 1.0, 0.8], [0.1, 0.9, 0.8]), _run([3.0, 1.2, 1.0], [0.1, 0.7, 0.95])]
    timm = [_run([3.0, 1.0, 0.6], [0.2, 0.9, 0.9])] * 2
    s = compare_timm.late_summary(ours, timm, late=2)
    assert s["runs_ours"] == {"late_loss": pytest.approx([0.9, 1.1]), "late_top1": pytest.approx([0.85, 0.825]),
                              "best_top1": [0.9, 0.95]}
    assert s["late_top1_diff"] == pytest.approx(0.8375 - 0.9)
    assert s["late_loss_ours"] == pytest.approx(1.0) and s["late_loss_diff"] == pytest.approx(0.2)
    assert s["best_top1_timm_lo"] == s["best_top1_timm_hi"] == 0.9  # identical runs: a zero-width interval
    text = compare_timm.markdown([], "t", s)
    assert "| mean train loss, last 2 epochs | 1.0000 [" in text and "| mean val top-1, last 2 epochs | 0.8375 [" in text


def test_one_seed_reports_means_without_intervals(tmp_path):
    rows = compare_timm.compare([_run([1.0, 1.0], [0.5, 0.7])], [_run([1.01, 1.01], [0.5, 0.7])])
    assert rows[-1]["loss_differs"] is None
    assert "| 2 | 1.0000 | 1.0100 | - | -0.0100 | 0.7000 | 0.7000 | - | +0.0000 |" in compare_timm.markdown(rows, "t")
    assert "no intervals" in compare_timm.verdict(rows)
    compare_timm.plot(rows, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_cli_checks_and_defaults(capsys):
    a = compare_timm.parse_args(["--dataset", "digits", "--device_num", "2", "--batch_size", "32",
                                 "--seeds", "1,2,3", "--epochs", "30"])
    assert a.timm_device_num == 2 and a.seed_list == [1, 2, 3] and a.train_per_class == 144
    assert compare_timm.parse_args(["--dataset", "digits", "--device_num", "2", "--timm_device_num", "1"]) \
        .timm_device_num == 1
    for bad, says in ((["--seeds", "1,x"], "--seeds '1,x'"), (["--batch_size", "33", "--device_num", "2"], "split"),
                      (["--late_epochs", "9", "--epochs", "6"], "--late_epochs 9")):
        with pytest.raises(SystemExit):
            compare_timm.parse_args(["--dataset", "demo", *bad])
        assert says in capsys.readouterr().err


def test_our_runs_get_an_absolute_lr(tmp_path, monkeypatch):
    """--lr is the LR both sides train at: ours must not scale it by the batch (lr_scaling linear in a config)."""
    calls = []

    def train(cmd, **kw):
        calls.append(cmd)
        (tmp_path / "ours").mkdir()
        (tmp_path / "ours" / "metrics.jsonl").write_text('{"epoch": 1}\n')

    monkeypatch.setattr(compare_timm.subprocess, "run", train)
    a = compare_timm.parse_args(["--data", str(tmp_path), "--epochs", "1"])
    compare_timm.run_ours(a, tmp_path, tmp_path, seed=7)
    cmd = calls[0]
    assert cmd[cmd.index("--lr_scaling") + 1] == "none" and cmd[cmd.index("--seed") + 1] == "7"



def test_every_recipe_value_reaches_both_sides(tmp_path, monkeypatch):
    """Each RECIPE key given on the command line is passed, with its value, to our train.py and to the reference."""
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        (tmp_path / "ours").mkdir(exist_ok=True)
        (tmp_path / "ours" / "metrics.jsonl").write_text('{"epoch": 1}\n')
        return subprocess.CompletedProcess(cmd, 0, stdout='{"epoch": 1}\n')

    monkeypatch.setattr(compare_timm.subprocess, "run", run)
    monkeypatch.setattr(compare_timm, "_timm_python", lambda requested: "python")
    given = {key: str(0.5 + i / 1000) for i, key in enumerate(compare_timm.RECIPE)}  # all distinct from defaults
    a = compare_timm.parse_args(["--data", str(tmp_path), "--epochs", "1",
                                 *[s for k, v in given.items() for s in (f"--{k}", v)]])
    compare_timm.run_ours(a, tmp_path, tmp_path, seed=1)
    compare_timm.run_timm(a, tmp_path, tmp_path, seed=1)
    for cmd in calls:
        assert {k: float(cmd[cmd.index(f"--{k}") + 1]) for k in given} == {k: float(v) for k, v in given.items()}
    reference = (ROOT / "benchmarks" / "timm_reference.py").read_text()  # needs timm to import: its options as text
    assert all(f'ap.add_argument("--{k}"' in reference for k in given)

def test_built_datasets_are_named_by_their_size(tmp_path):
    a = compare_timm.parse_args(["--dataset", "digits", "--train_per_class", "20", "--num_classes", "3"])
    data = compare_timm.prepare_data(a, tmp_path)
    assert data.name == "data-digits-20" and len(list((data / "train").rglob("*.png"))) == 60


def _timm_python() -> str | None:
    py = os.environ.get("TIMM_PYTHON") or "/tmp/timm-ref/bin/python"
    return py if Path(py).is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(_timm_python() is None, reason="no timm environment (../shared/tools/timm_reference_env.sh)")
def test_timm_reference_trains_under_ddp(tmp_path):
    """The reference's DDP mode (2 gloo processes x 8) trains an epoch, rank 0 reports it once, the loss averaged
    over the replicas."""
    from benchmarks.datasets import digits_folder

    data = digits_folder(tmp_path / "d", classes=2, train_per_class=16)
    cmd = [_timm_python(), str(ROOT / "benchmarks" / "timm_reference.py"), str(data), "--epochs", "2",
           "--batch_size", "16", "--image_size", "32", "--crop_pct", "0.875", "--mean", "0.5", "0.5", "0.5",
           "--std", "0.25", "0.25", "0.25", "--workers", "0", "--world", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in records] == [1, 2] and all(math.isfinite(r["train_loss"]) for r in records)
    assert 0.0 <= records[-1]["val_top1"] <= 1.0


def test_lock_is_held_around_a_run(tmp_path):
    """An flock, as `flock FILE cmd` takes: the study interleaves with the shell's users of the same file."""
    lock = tmp_path / "cpu.lock"
    with open(lock, "a") as other:
        with compare_timm.cpu_lock(str(lock)), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the run
