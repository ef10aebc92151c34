"""Untrusted structures and paths (issue 33): configs, the cube search's cube.json, export sidecars, metrics.jsonl,
the offline label file and the dataset index cache are checked by type and size before use, every path read from
one stays in its folder, and every refusal is one line naming the file and the key."""
import json

import pytest

from helpers import ROOT
from src import config as config_module
from tinynet_ms.cli import UsageError
from tinynet_ms.records import Field, RecordError, check_fields, confined, read_json

DEMO_CONFIG = ROOT / "configs" / "demo.yaml"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert len(lines[0]) < 500, lines[0][:300]
    return lines[0]


def _alias_bomb(levels: int) -> str:
    """A "billion laughs" config: ``levels`` lists of 9 aliases of the previous, 9**levels strings in all."""
    lines = ["model:", '  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_file(tmp_path, capsys):
    # 9**6 strings: small enough that the old reader expanded it (into a multi-megabyte error line) in a test's
    # time; 9 levels hung train.py and python -m src.config with no output
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(6))
    assert config_module.main([str(bomb), "--get", "model"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(bomb) in line and "aliases (*name) are not allowed" in line
    # anchors without aliases, and every shipped config, still read
    (tmp_path / "anchor.yaml").write_text("model: &m tinynet_b\n")
    assert config_module.load_config(tmp_path / "anchor.yaml").model == "tinynet_b"


@pytest.mark.parametrize("content,expect", [
    (b"model: tinynet_a\n\xff\xfe: 1\n", "not UTF-8 text"),
    (b"lr: " + b"1" * 5000 + b"\n", "is not a valid config"),  # an integer too long for Python to convert
    (b"model: " + b"[" * 50000 + b"]" * 50000 + b"\n", "nested too deeply"),
    (b"model: tinynet_a\n" + b"#" * (2 << 20) + b"\n", "more than a record of this kind can be"),
])
def test_a_config_that_is_not_a_config_is_one_line_naming_the_file_exit_2(tmp_path, capsys, content, expect):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert config_module.main([str(path), "--get", "model"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(path) in line and expect in line


def test_record_fields_are_checked_by_type_size_and_bounds(tmp_path):
    fields = {"n": Field("int", "[1, 10]"), "xs": Field("list", items=Field("number", "(0, 4]"), length=3),
              "names": Field("list", items=Field("str"), max_len=2)}
    check_fields({"n": 3, "xs": [1, 2.5, 4], "other": "kept"}, fields, "f.json", "fix it", required=("n",))
    for record, expect in (([], "its content must be a JSON object, got a list of 0"),
                           ({}, "key 'n' is missing"), ({"n": True}, "key 'n' must be an integer in [1, 10]"),
                           ({"n": 1, "xs": [1, "a", 2]}, "key 'xs[1]' must be a number in (0, 4], got 'a'"),
                           ({"n": 1, "xs": [1, float("nan"), 2]}, "key 'xs[1]' must be a number"),
                           ({"n": 1, "names": ["a"] * 3}, "at most 2 items, got 3")):
        with pytest.raises(RecordError, match=r"^f\.json: .*; fix it$") as info:
            check_fields(record, fields, "f.json", "fix it", required=("n",))
        assert expect in str(info.value)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(RecordError, match="nested too deeply"):
        read_json(deep, "fix it")
    assert confined(tmp_path, "a/b", "k", "fix") == tmp_path.resolve() / "a" / "b"
    (tmp_path / "link").symlink_to("/")
    for outside in ("../x", "/etc", ".", "link/etc"):
        with pytest.raises(RecordError, match="which is not inside"):
            confined(tmp_path, outside, "k", "fix")


# -- the cube search's cube.json (src/search.py) ----------------------------------------------------------------
def _cube_record(search, **candidate) -> dict:
    from src.search import new_record

    entry = {"index": 1, "source": "tiny", "r": 0.3, "w": 0.5, "d": 0.4, "image_size": 67, "repeats": [1] * 7,
             "channels": [8] * 7, "params": 1000, "macs": 5e6, "run_dir": "candidates/01_tiny", **candidate}
    return new_record(search, [entry])


def _search_args(data, out) -> list[str]:
    return ["search", str(data), "--macs", "5M", "--samples", "1", "--epochs", "1", "--out", str(out), "--config",
            str(DEMO_CONFIG)]


def test_a_run_dir_outside_the_search_is_refused_before_anything_trains(tmp_path, demo_data, monkeypatch, capsys):
    import src.search as search_module
    from src.cube import main

    # a run with checkpoints beside the search: a record sending a candidate there would train with
    # --overwrite true and delete them
    victim = tmp_path / "victim" / "checkpoints"
    victim.mkdir(parents=True)
    (victim / "last.ckpt").write_bytes(b"weights")
    monkeypatch.setattr(search_module.subprocess, "Popen", lambda *a, **k: pytest.fail(f"trained: {a[0]}"))
    out = tmp_path / "s"
    (out / "candidates").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "candidates" / "link").symlink_to(tmp_path / "elsewhere")
    search = search_module.Search(data=str(demo_data), config=str(DEMO_CONFIG), overrides=[], epochs=1, samples=1,
                                  device_num=1, num_classes=4, budget_macs=5_000_000, out=out)
    for run_dir in ("../victim", str(tmp_path / "victim"), "candidates/../../victim", "candidates", "cube.json",
                    "candidates/link"):
        search_module.write_search(out, _cube_record(search, run_dir=run_dir))
        assert main(_search_args(demo_data, out)) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"error: {out / 'cube.json'}: key 'candidates[0].run_dir' is ") and \
            f"which is not inside {out.resolve() / 'candidates'}" in line and "or give another --out" in line
    assert (victim / "last.ckpt").read_bytes() == b"weights"
    (out / "candidates" / "link").unlink()
    (out / "candidates").rmdir()
    (out / "candidates").symlink_to(tmp_path)  # OUT/candidates itself a link: its runs would be elsewhere
    search_module.write_search(out, _cube_record(search, run_dir="candidates/victim"))
    with pytest.raises(UsageError, match=r"key 'candidates\[0\].run_dir' is 'candidates/victim', which is not"):
        search_module.run_search(search)
    (out / "candidates").unlink()
    twice = _cube_record(search)
    twice["candidates"].append({**twice["candidates"][0], "index": 2, "run_dir": "candidates/x/../01_tiny"})
    search_module.write_search(out, twice)
    with pytest.raises(UsageError, match=r"key 'candidates\[1\].run_dir' is candidates\[0\]'s too"):
        search_module.run_search(search)


@pytest.mark.parametrize("change,key", [
    (lambda r: r.update(candidates={"index": 1}), "'candidates' must be a list"),
    (lambda r: r.update(candidates=[[1, 2]]), "key 'candidates[0]' must be an object"),
    (lambda r: r["candidates"][0].update(r="0.3"), "key 'candidates[0].r' must be a number in (0, 4], got '0.3'"),
    (lambda r: r["candidates"][0].update(r=1e308), "key 'candidates[0].r' must be a number in (0, 4]"),
    (lambda r: r["candidates"][0].update(channels=[8] * 10**5), "key 'candidates[0].channels' must be a list"),
    (lambda r: r["candidates"][0].pop("run_dir") and None, "key 'candidates[0].run_dir' is missing"),
    (lambda r: r["candidates"][0].update(top1="good"), "key 'candidates[0].top1' must be a number in [0, 1]"),
    (lambda r: r["candidates"][0].update(top1=0.5), "key 'candidates[0].top5' is missing"),
    (lambda r: r.update(search=[]), "key 'search' must be an object"),
    (lambda r: r["search"].update(latency_runs=10**9), "key 'search.latency_runs' must be an integer in [1, 1e6]"),
    (lambda r: r.pop("budget_macs") and None, "needs one of the keys 'budget_macs' and 'budget_ms'"),
    (lambda r: json.dumps(r).replace("5000000", "1" * 5000), "not JSON (Exceeds the limit"),  # as text: too long
])
def test_a_malformed_cube_json_is_one_line_naming_the_file_and_key_exit_2(tmp_path, demo_data, capsys, change, key):
    from src.cube import main
    from src.search import Search

    out = tmp_path / "s"
    search = Search(data=str(demo_data), config=str(DEMO_CONFIG), overrides=[], epochs=1, samples=1, device_num=1,
                    num_classes=4, budget_macs=5_000_000, out=out)
    record = _cube_record(search)
    text = change(record)
    out.mkdir()
    (out / "cube.json").write_text(text if isinstance(text, str) else json.dumps(record))
    for args in (_search_args(demo_data, out), ["remeasure", str(out)], ["fit", str(out), "--out",
                                                                          str(tmp_path / "f.json")]):
        if args[0] == "fit" and "candidates[0]." in key and not any(k in key for k in (".r'", "top1")):
            continue  # fit reads only r, d, macs and top1 of a candidate
        assert main(args) == 2, args[0]
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"error: {out / 'cube.json'}: ") and key in line, line
        assert "delete it to start a new search" in line or "not a tinynet_ms.cube" in line


# -- export sidecars (tinynet_ms.export): read by preprocess.py / run_infer_310.sh (export info) and predict.py ----
_PRE = {"crop_pct": 0.9, "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}


@pytest.mark.parametrize("content,key", [
    ({"preprocessing": []}, "key 'preprocessing' must be an object"),
    ({"preprocessing": {**_PRE, "mean": ["0 1", 0, 0]}}, "key 'preprocessing.mean[0]' must be a number"),  # the
    # harness's command line is split on spaces: a shifted field there runs the model on wrong inputs silently
    ({"preprocessing": {**_PRE, "crop_pct": True}}, "key 'preprocessing.crop_pct' must be a number in (0, 1]"),
    ({"preprocessing": {k: v for k, v in _PRE.items() if k != "std"}}, "key 'preprocessing.std' is missing"),
    ({"preprocessing": _PRE, "class_names": ["x" * 5000]}, "key 'class_names[0]' must be text of at most 1,000"),
    ({"preprocessing": _PRE, "class_names": "cat"}, "key 'class_names' must be a list"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ([_PRE], "its content must be a JSON object"),
])
def test_a_malformed_sidecar_is_one_line_naming_it_and_the_key(tmp_path, capsys, content, key):
    from tinynet_ms.cli import run_main
    from tinynet_ms.export import read_preprocessing, sidecar_class_names, sidecar_path

    model = tmp_path / "m.onnx"
    sidecar_path(model).write_text(content if isinstance(content, str) else json.dumps(content))
    for read in (read_preprocessing, sidecar_class_names):
        assert run_main(lambda: read(model)) == 1
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"error: {sidecar_path(model)}") and key in line and "export again" in line
    sidecar_path(model).write_text(json.dumps({"preprocessing": _PRE, "class_names": ["cat", "dog"]}))
    assert read_preprocessing(model)[0].mean == (0.5, 0.5, 0.5) and sidecar_class_names(model) == ["cat", "dog"]


# -- the offline label file (preprocess.py writes it, postprocess.py reads it) ------------------------------------
@pytest.mark.parametrize("labels,expect", [
    ({"../outside": 0}, "key '../outside' is not an image name"),
    ({"/tmp/x": 0}, "key '/tmp/x' is not an image name"),
    ({"a": "0"}, "key 'a' must be an integer in [0, 1e7], got '0'"),
    ({"a": -1}, "key 'a' must be an integer"),
    (["a", 0], "its content must be a JSON object"),
])
def test_the_label_file_names_only_result_files_in_the_result_folder(tmp_path, capsys, labels, expect):
    import numpy as np

    from src.offline import postprocess
    from tinynet_ms.cli import run_main

    results = tmp_path / "result_Files"
    results.mkdir()
    for name in ("a", "../outside", "/tmp/x"):  # logits a hostile label file would otherwise score
        path = results / f"{name}_0.bin"
        if path.resolve().parent.is_dir():
            np.ones(4, np.float32).tofile(path)
    label_file = tmp_path / "label.json"
    label_file.write_text(json.dumps(labels))
    assert run_main(lambda: postprocess(str(results), str(label_file), str(tmp_path / "acc.log"))) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"error: {label_file}: ") and expect in line and "preprocess.py" in line


# -- the dataset index cache (OUTPUT_DIR/.cache/*_index.json) -----------------------------------------------------
def test_an_edited_index_cache_is_checked_again_not_trusted(tmp_path, demo_data):
    from tinynet_ms.data import scan_split

    cache = tmp_path / "index.json"
    truth = scan_split(demo_data / "val", cache_file=cache)
    entries = json.loads(cache.read_text())
    for content in ("[1, 2]", "[" * 100000 + "]" * 100000,
                    json.dumps({path: [key, 7, "yes"] for path, (key, _, _) in entries.items()}),
                    json.dumps({path: [key] for path, (key, _, _) in entries.items()})):
        cache.write_text(content)
        again = scan_split(demo_data / "val", cache_file=cache)
        assert again.samples == truth.samples
        assert json.loads(cache.read_text()) == entries  # rewritten whole


# -- class names stored in a checkpoint (tinynet_ms.weights), read by eval, export and predict ---------------------
@pytest.mark.parametrize("value,expect", [
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    (json.dumps(["cat", 3]), "key 'class_names[1]' must be text"),
    (json.dumps({"0": "cat"}), "key 'class_names' must be a list"),
    ("cat, dog", "not JSON"),
])
def test_class_names_in_a_checkpoint_are_checked_like_a_sidecars(tmp_path, capsys, value, expect):
    import mindspore as ms
    import numpy as np

    from tinynet_ms.cli import run_main
    from tinynet_ms.weights import read_class_names

    path = tmp_path / "w.ckpt"
    ms.save_checkpoint([{"name": "classifier.bias", "data": ms.Tensor(np.zeros(2, np.float32))}], str(path),
                       append_dict={"class_names": value})
    assert run_main(lambda: read_class_names(path)) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"error: {path}: ") and expect in line and "write_class_names" in line


def test_a_formula_file_nested_too_deeply_is_one_line(tmp_path):
    from tinynet_ms.formula import read_formula

    (tmp_path / "f.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match=r"f\.json: nested too deeply"):
        read_formula(tmp_path / "f.json")


# -- metrics.jsonl: read back on resume (truncate_after), for the curves and by the cube search (read_result) ------
@pytest.mark.parametrize("line,expect", [
    ("[1, 2]", "line 2: its content must be a JSON object"),
    ('{"epoch": "2"}', "line 2: key 'epoch' must be an integer"),
    ('{"train_loss": 1.0}', "line 2: key 'epoch' is missing"),
    ('{"epoch": 2, "val_top1": "high"}', "line 2: key 'val_top1' must be a number"),
    ("{epoch: 2}", "line 2: not JSON"),
])
def test_a_malformed_metrics_line_is_one_line_naming_the_file_and_line(tmp_path, capsys, line, expect):
    from src.search import read_result
    from tinynet_ms.cli import run_main
    from tinynet_ms.train.metrics import MetricsLog

    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"epoch": 1, "train_loss": 2.0, "val_top1": 0.5, "val_top5": 0.9, "best_epoch": 1})
                    + f"\n{line}\n")
    for read in (lambda: MetricsLog(path).truncate_after(1), lambda: read_result(tmp_path, 2)):
        assert run_main(read) == 1
        err = _one_line(capsys.readouterr().err)
        assert err.startswith(f"error: {path} {expect}") and "delete that line" in err, err
    MetricsLog(path).truncate_after(0)  # a fresh start keeps nothing, whatever was there
    assert path.read_text() == ""
