"""Benchmark parts that run without timm: the Fashion-MNIST reader, the FLOP/s ceiling (the parity report:
test_compare_timm.py)."""
from __future__ import annotations

import gzip
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.datasets import FASHION_MNIST_CLASSES, fashion_mnist_folder  # noqa: E402


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_folder_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28))
    labels = np.arange(12) % 10
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    out = fashion_mnist_folder(tmp_path / "fm", train_size=10, val_size=4, source=tmp_path)
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(FASHION_MNIST_CLASSES)
    assert len(list((out / "train").rglob("*.png"))) == 10 and len(list((out / "val").rglob("*.png"))) == 4
    first = out / "train" / FASHION_MNIST_CLASSES[labels[0]] / "00000.png"
    np.testing.assert_array_equal(np.asarray(Image.open(first)), images[0])


def test_peak_percentage_of_the_measured_sgemm():
    from benchmarks.common import peak_pct, sgemm_gflops

    assert 1.0 < sgemm_gflops(n=256, runs=3) < 1e5  # a real measurement, in GFLOP/s
    assert peak_pct(1000.0, 2e8, 400.0) == "50.0%"  # 1000 img/s x 0.2 GFLOP = 200 of 400 GFLOP/s


def test_rounds_merge_into_medians_per_runtime():
    from benchmarks.common import median_rows

    def row(runtime, ms, ips):
        return {"model": "m", "runtime": runtime, "bs1_ms": ms, "bs32_img_per_sec": ips}

    rounds = [[row("ours", 5.0, 100.0), row("timm", 7.0, 50.0)],
              [row("ours", 9.0, 80.0)],  # timm failed in this round: left out of it only
              [row("ours", 6.0, 120.0), row("timm", 8.0, 40.0)]]
    merged = median_rows(rounds, ("model", "runtime"), ("bs1_ms", "bs32_img_per_sec"))
    assert [r["runtime"] for r in merged] == ["ours", "timm"]
    assert merged[0]["bs1_ms"] == 6.0 and merged[0]["bs32_img_per_sec"] == 100.0 and merged[0]["rounds"] == 3
    assert merged[1]["bs1_ms"] == 7.5 and merged[1]["rounds"] == 2


def test_digits_folder_splits_each_class(tmp_path):
    from benchmarks.datasets import digits_folder

    root = digits_folder(tmp_path / "d", classes=3, train_per_class=5)
    for split, low, high in (("train", 5, 5), ("val", 150, 190)):
        counts = [len(list((root / split / f"digit_{c}").glob("*.png"))) for c in range(3)]
        assert all(low <= n <= high for n in counts), (split, counts)
    train = {p.name for p in (root / "train").rglob("*.png")}
    assert not train & {p.name for p in (root / "val").rglob("*.png")}  # no image in both


def test_goal_table_puts_ours_over_each_peer_the_right_way_round():
    from benchmarks.bench_all import HARNESS, OURS_INFER, goal_table

    train = [{"model": "tinynet_e", "size": 106, "kernels": "on", "amp": "O0", "mode": "graph", "img_per_sec": 150.0},
             {"model": "tinynet_e", "size": 106, "kernels": "off", "amp": "O0", "mode": "graph", "img_per_sec": 15.0},
             {"model": "tinynet_e", "size": 106, "kernels": "-", "amp": "-", "mode": "timm eager", "img_per_sec": 100.0}]
    infer = [{"model": "tinynet_e", "size": 106, "runtime": OURS_INFER, "bs1_ms": 2.0, "bs32_img_per_sec": 900.0},
             {"model": "tinynet_e", "size": 106, "runtime": "timm eager", "bs1_ms": 5.0, "bs32_img_per_sec": 300.0},
             {"model": "tinynet_e", "size": 106, "runtime": HARNESS, "bs1_ms": 1.0, "bs32_img_per_sec": 1200.0},
             {"model": "tinynet_e", "size": 106, "runtime": "onnxruntime", "bs1_ms": 1.2, "bs32_img_per_sec": 1000.0}]
    pipeline = [{"model": "tinynet_e", "size": 106, "cores": 1, "ours_img_per_sec": 300.0, "timm_img_per_sec": 100.0},
                {"model": "tinynet_e", "size": 106, "cores": 2, "ours_img_per_sec": 400.0, "timm_img_per_sec": 200.0}]
    int8 = [{"model": "tinynet_e", "size": 106, "batch": 1, "ratio": 1.3},
            {"model": "tinynet_e", "size": 106, "batch": 32, "ratio": 1.1}]
    lines = goal_table({"train": train, "infer": infer, "pipeline": pipeline, "int8": int8},
                       ["tinynet_e"]).splitlines()
    assert lines[0] == "goal (ours over the peer, higher is better) | needs | E@106"
    cells = [line.rsplit(" | ", 1)[1] for line in lines[2:]]
    # train 150 / 100 (needs 1.5 x 1.15); pipeline: the worse core count, 400 / 200; latency 5 / 2 (lower is
    # better); no torch.compile row; harness 1.2 / 1.0 and 1200 / 1000; INT8 over float32 at batch 1 and 32
    assert cells == ["1.50x (below)", "2.00x", "2.50x", "-", "1.20x", "1.20x", "1.30x", "1.10x (below)"]


def test_a_generated_block_replaces_only_its_own_text(tmp_path):
    from benchmarks.common import replace_block

    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- t:begin -->\nold\n<!-- t:end -->\noutro\n")
    replace_block(page, "t", "new table\n")
    assert page.read_text() == "intro\n<!-- t:begin -->\nnew table\n<!-- t:end -->\noutro\n"
    page.write_text("no markers\n")
    with pytest.raises(ValueError, match="page.md: expected one '<!-- t:begin -->'"):
        replace_block(page, "t", "x")


def test_the_speed_tables_on_the_pages_are_bench_alls():
    """docs/benchmarks.md's tables and the README's goal table sit in bench_all.py's blocks (written by its
    --markdown / --readme), each naming the command and machine that made them."""
    root = Path(__file__).resolve().parents[1]
    for page, block, first_row in (("docs/benchmarks.md", "bench:tables", "**Train step**"),
                                   ("README.md", "bench:goals", "goal (ours over the peer, higher is better)")):
        text = (root / page).read_text(encoding="utf-8")
        inside = text.split(f"<!-- {block}:begin -->")[1].split(f"<!-- {block}:end -->")[0]
        assert "python benchmarks/bench_all.py" in inside and "GFLOP/s" in inside and first_row in inside, page


def test_onnxruntime_is_timed_in_a_process_of_its_own(tmp_path, monkeypatch):
    """bench_infer's onnxruntime row: ort_speed.py in a child process (never beside MindSpore's threads) on the
    exported file, at the file's batch, its median seconds per call."""
    from benchmarks import bench_infer
    from tinynet_ms import create_model
    from tinynet_ms.export import export_network

    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", 2, 32)
    children = []
    run = bench_infer.subprocess.run
    monkeypatch.setattr(bench_infer.subprocess, "run", lambda cmd, **kw: children.append(cmd) or run(cmd, **kw))
    seconds = bench_infer.onnxruntime_seconds(model, 2, 32, 3)
    assert 0 < seconds < 5
    assert children and children[0][1].endswith("ort_speed.py") and str(model) in children[0]


def test_runtime_profiles_count_each_runtimes_nodes(tmp_path):
    """profile_runtimes: OpenVINO's and onnxruntime's own profilers on one exported file, per node kind, the warm-up
    runs left out: the convolutions are there, every node kind runs once or more per inference, the rows add up."""
    from benchmarks import profile_runtimes
    from tinynet_ms import create_model
    from tinynet_ms.export import export_network

    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, cpu_kernels=False)
    net.set_train(False)
    model = export_network(net, tmp_path / "m", "ONNX", 1, 32)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for runtime, totals, conv in [("openvino", profile_runtimes._openvino(model, x, 3), "Convolution"),
                                  ("onnxruntime", profile_runtimes._onnxruntime(model, x, 3, tmp_path), "Conv")]:
        assert conv in {node for node, _ in totals}, runtime
        rows = profile_runtimes._rows("mini", 32, runtime, totals, 3)
        assert rows[-1]["node"] == "total" and all(r["nodes"] >= 1 for r in rows), runtime
        parts = sum(r["us_per_inference"] for r in rows[:-1])
        assert abs(parts - rows[-1]["us_per_inference"]) <= 0.1 * len(rows), runtime


@pytest.mark.parametrize("script, option", [("bench_all", "--variants"), ("bench_infer", "--variants"),
                                            ("bench_int8", "--models"), ("bench_pipeline", "--models"),
                                            ("profile_runtimes", "--models")])
def test_an_unknown_variant_is_a_usage_error_naming_the_choices(script, option, capsys):
    module = importlib.import_module(f"benchmarks.{script}")
    with pytest.raises(SystemExit) as stop:
        module.main([option, "tinynet_e,e"])
    assert stop.value.code == 2
    assert "unknown variant 'e' (choose from tinynet_a," in capsys.readouterr().err
