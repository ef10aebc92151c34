"""Records read back from disk are untrusted input: JSON this package wrote (a cube search's cube.json, export
sidecars, metrics.jsonl, caches) may have been edited, truncated or replaced since. Each is read whole only below a
size bound, decoded as UTF-8, parsed, and checked field by field (``Field``) before any value is used; every path
taken from one is resolved and kept inside the folder it belongs to (``confined``). Every failure is one
``RecordError`` (a ValueError) naming the file, the first bad key and what to do.

    record = read_json(path, "export the model again")
    check_fields(record, {"epochs": Field("int", "[1, inf)")}, path, "delete it", required=("epochs",))
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Far above any record written here (a 1000-class sidecar is ~30 kB, a 450-epoch metrics.jsonl ~250 kB), far below
# what would stall a reader: a bigger file is not one of ours.
MAX_RECORD_BYTES = 16 << 20
MAX_ITEMS = 100_000  # list items / text characters a field holds unless its Field says otherwise


class RecordError(ValueError):
    """A record that is not what its reader expects: one line naming the file, the key and what to do."""


def shown(value: Any) -> str:
    """``value`` for an error line: short, and never the expansion of a container (a YAML alias bomb's repr is
    billions of characters) nor of an integer too long for ``repr``."""
    if isinstance(value, (list, tuple, dict, set)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} of {len(value)} item(s)"
    try:
        text = repr(value)
    except ValueError:  # an int over Python's 4300-digit conversion limit
        return "a number too long to show"
    return text if len(text) <= 60 else text[:57] + "..."


def read_text_bounded(path: str | os.PathLike, fix: str, max_bytes: int = MAX_RECORD_BYTES) -> str:
    """The UTF-8 text of a record file, refused (``RecordError``) when larger than ``max_bytes`` or not UTF-8."""
    path = Path(path)
    with open(path, "rb") as f:  # read to the bound, not to the size stat gives: /proc files say 0, files grow
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RecordError(f"{path}: more than {max_bytes:,} bytes, more than a record of this kind can be; {fix}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text (byte {exc.start}); {fix}") from None


def parse_json(text: str, where: str, fix: str) -> Any:
    """``json.loads`` with every way it fails on hostile text (syntax, nesting too deep for the parser, integers
    too long to convert) as one ``RecordError``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise RecordError(f"{where}: nested too deeply to be a record; {fix}") from None
    except ValueError as exc:  # JSONDecodeError, and the integer-length limit
        raise RecordError(f"{where}: not JSON ({str(exc).splitlines()[0][:100]}); {fix}") from None


def read_json(path: str | os.PathLike, fix: str, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """A JSON file's value (not yet checked: see ``check_fields``); ``fix`` says what to do when it is broken."""
    return parse_json(read_text_bounded(path, fix, max_bytes), str(path), fix)


def in_bounds(value: float, bounds: str) -> bool:
    """``value`` in an interval written as "[lo, hi)" etc. (inf allowed); NaN is in none."""
    lo, hi = (float(x) for x in bounds[1:-1].split(","))
    above = value > lo if bounds[0] == "(" else value >= lo
    below = value < hi if bounds[-1] == ")" else value <= hi
    return above and below


_KINDS = {"int": "an integer", "number": "a number", "str": "text", "bool": "true or false", "list": "a list",
          "dict": "an object"}


@dataclass(frozen=True)
class Field:
    """What one value of a record must be: a JSON ``kind`` (int, number, str, bool, list, dict), for numbers an
    interval (``in_bounds``), for text its ``choices``, for lists their ``items`` and ``length`` (exact, or 0 =
    up to ``max_len``); ``null`` allows None."""

    kind: str
    bounds: str = ""
    null: bool = False
    choices: tuple[str, ...] = ()
    items: Field | None = None
    length: int = 0
    max_len: int = MAX_ITEMS

    def describe(self) -> str:
        what = _KINDS[self.kind]
        if self.bounds:
            what += f" in {self.bounds}"
        if self.choices:
            what = f"one of {', '.join(self.choices)}"
        if self.items is not None:
            count = f"{self.length} " if self.length else ""
            what = f"a list of {count}items, each {self.items.describe()}"
        return what + (" or null" if self.null else "")

    def problem(self, value: Any) -> tuple[str, str] | None:
        """Why ``value`` does not fit, as (where inside it, e.g. "[3]" for a list's item, what is wrong); None
        when it fits."""
        if value is None and self.null:
            return None
        bad = "", f"must be {self.describe()}, got {shown(value)}"
        if self.kind in ("int", "number"):
            number = int if self.kind == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
                return bad
            return bad if self.bounds and not in_bounds(value, self.bounds) else None
        if not isinstance(value, {"str": str, "bool": bool, "list": list, "dict": dict}[self.kind]):
            return bad
        if self.choices and value not in self.choices:
            return bad
        if isinstance(value, (str, list)):
            if self.length and len(value) != self.length:
                return bad[0], f"must be {self.describe()}, got {len(value)} item(s)"
            if len(value) > self.max_len:
                unit = "characters" if isinstance(value, str) else "items"
                return bad[0], f"must be {self.describe()} of at most {self.max_len:,} {unit}, got {len(value):,}"
        if self.items is not None:
            for i, item in enumerate(value):
                inner = self.items.problem(item)
                if inner is not None:
                    return f"[{i}]{inner[0]}", inner[1]
        return None


def check_fields(record: Any, fields: Mapping[str, Field], where: str | os.PathLike, fix: str,
                 required: Iterable[str] = (), key_prefix: str = "") -> dict:
    """``record`` itself, once it is an object whose ``required`` keys are present and whose every key in
    ``fields`` fits its Field (other keys are left alone: newer writers may add some); else one ``RecordError``
    naming ``where`` and the first bad key (``key_prefix`` + key: e.g. "candidates[2].")."""
    if not isinstance(record, dict):
        name = f"'{key_prefix.rstrip('.')}'" if key_prefix else "its content"
        raise RecordError(f"{where}: {name} must be a JSON object, got {shown(record)}; {fix}")
    for key, field in fields.items():
        if key in record:
            problem = field.problem(record[key])
            if problem is not None:
                raise RecordError(f"{where}: key '{key_prefix}{key}{problem[0]}' {problem[1]}; {fix}")
    for key in required:
        if key not in record:
            raise RecordError(f"{where}: key '{key_prefix}{key}' is missing; {fix}")
    return record


def confined(base: str | os.PathLike, relative: str, where: str, fix: str, within: str = "") -> Path:
    """``base / relative`` resolved (symlinks followed), refused with a ``RecordError`` naming ``where`` unless it
    lies strictly inside ``base / within`` (``within`` taken literally: a link there pointing elsewhere does not
    move the bound). A path read from a record must not reach outside the folder it belongs to: an absolute path,
    '..', or a link pointing elsewhere."""
    root = Path(base).resolve() / within
    target = (Path(base).resolve() / relative).resolve()
    if target == root or not target.is_relative_to(root):
        raise RecordError(f"{where} is {shown(relative)}, which is not inside {root}; {fix}")
    return target
