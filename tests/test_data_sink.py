"""The trainer's data-sink path (Ascend/GPU). MindSpore's ``data_sink`` refuses CPU, so a stand-in with its
contract drives the path here: ``fn`` called on the dataset's batches in order, ``sink_size`` steps per call,
the dataset sent round and round until its transfer is stopped. What is checked is our bookkeeping around it
(steps per call, the per-interval log, the epoch's end, resume); MindSpore's device queue itself is untested here."""
import json
from dataclasses import replace

import mindspore as ms
import numpy as np
import pytest

from helpers import ROOT
from src.config import ConfigError, load_config
from src.context import setup_context
from src.trainer import sink_steps


@pytest.mark.parametrize("steps,interval,expected", [(12, 5, 4), (12, 50, 12), (7, 5, 1), (100, 50, 50), (3, 1, 1)])
def test_sink_steps_divide_the_epoch(steps, interval, expected):
    assert sink_steps(steps, interval) == expected


def test_data_sink_on_cpu_is_refused_in_one_line():
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["--data_sink", "on"])
    with pytest.raises(ConfigError, match="data_sink on: .*Ascend and GPU only.*--data_sink auto"):
        setup_context(cfg)
    assert not setup_context(load_config(ROOT / "configs" / "demo.yaml")).data_sink  # auto: off on CPU


class _FakeSink:
    """``ms.data_sink``'s contract, run by the host; ``fail_at``: the call that raises (a kill mid-epoch)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sizes, self.stopped, self.calls, self.fail_at = [], 0, 0, fail_at

    def __call__(self, fn, dataset, sink_size=1, jit_config=None):
        self.sizes.append(sink_size)
        fake = self

        class Transfer:
            def stop_send(self):
                fake.stopped += 1

            def release(self):
                pass

        dataset.__transfer_dataset__ = Transfer()

        def batches():
            while True:
                yield from dataset.create_tuple_iterator(num_epochs=1)

        source = batches()

        def run():
            fake.calls += 1
            if fake.calls == fake.fail_at:
                raise KeyboardInterrupt("killed")
            out = None
            for _ in range(sink_size):
                out = fn(*next(source))
            return out

        return run


def _train(monkeypatch, out, demo_data, sink: _FakeSink | None, resume: str = ""):
    import src.trainer as trainer

    if sink is not None:
        monkeypatch.setattr(ms, "data_sink", sink)
        monkeypatch.setattr(trainer, "setup_context", lambda cfg: replace(setup_context(cfg), data_sink=True))
    cfg = load_config(ROOT / "configs" / "demo.yaml", [
        "--model", "tinynet", "--w", "0.25", "--d", "0.35", "--num_classes", "4", "--data_path", str(demo_data),
        "--batch_size", "4", "--epochs", "2", "--log_interval", "5", "--num_parallel_workers", "1",
        "--output_dir", str(out), "--resume", resume, "--auto_augment", "none", "--lr", "3e-4"])
    try:
        trainer.run_training(cfg)
    finally:
        monkeypatch.undo()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    records[0]["_out"] = out
    return records


def _same_training(a, b) -> None:
    """Bit-identical weights, EMA, optimizer state; the same records (the epoch's mean loss up to the order of
    summing its logged windows, which differ)."""
    keys = ("epoch", "val_top1", "val_top1_ema", "skipped_steps", "lr")
    assert [{k: r[k] for k in keys} for r in a] == [{k: r[k] for k in keys} for r in b]
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-6)
    from tinynet_ms.weights import read_checkpoint  # its tensors (the checkpoint's class names entry is a str)

    last_a, last_b = (read_checkpoint(r[0]["_out"] / "checkpoints" / "last.ckpt") for r in (a, b))
    assert last_a.keys() == last_b.keys() and len(last_a) > 100
    for name in last_a:
        np.testing.assert_array_equal(last_a[name], last_b[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.filterwarnings("error:Conversion of an array:DeprecationWarning")  # a resumed scalar coming back 1-d
def test_sink_path_trains_as_the_host_loop_and_resumes_exactly(monkeypatch, demo_data, tmp_path, capfd):
    host = _train(monkeypatch, tmp_path / "host", demo_data, None)
    sink = _FakeSink()
    capfd.readouterr()
    sunk = _train(monkeypatch, tmp_path / "sink", demo_data, sink)
    text = capfd.readouterr().err  # train.py's logging (basicConfig on stderr)
    # 48 images / batch 4 = 12 steps: 4 per call (the largest divisor up to log_interval 5), 3 calls an epoch
    assert sink.sizes == [4, 4] and sink.calls == 6 and sink.stopped == 2
    assert "data sink: 4 steps per host call" in text
    steps_logged = [line.split(" step ")[1].split()[0] for line in text.splitlines() if " step " in line
                    and "loss" in line]
    assert steps_logged == ["8/12", "12/12"] * 2  # a line at the first call past each interval, and at the end
    _same_training(host, sunk)

    killed = _FakeSink(fail_at=5)  # epoch 2's second call: epoch 1 is saved, epoch 2 half done
    with pytest.raises(KeyboardInterrupt):
        _train(monkeypatch, tmp_path / "killed", demo_data, killed)
    assert killed.stopped == 2  # the interrupted epoch's transfer is stopped too
    resumed = _train(monkeypatch, tmp_path / "killed", demo_data, _FakeSink(), resume="auto")
    _same_training(host, resumed)
