"""Untrusted structures and paths (issue 33): configs, the cube search's cube.json, export sidecars, metrics.jsonl,
the offline label file and the dataset index cache are checked by type and size before use, every path read from
one stays in its folder, and every refusal is one line naming the file and the key."""
import json

import pytest

from src import config as config_module
from tinynet_ms.records import Field, RecordError, check_fields, confined, read_json


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
