"""``python -m tinynet_ms``: the library's command lines, one line each (each takes ``--help``).

The one-line summaries are the first lines of the modules' own docstrings, read from their source files without
importing them (importing a model module loads MindSpore: seconds, for a list).
"""
from __future__ import annotations

import ast
import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple


class Command(NamedTuple):
    name: str  # python -m tinynet_ms.NAME
    summary: str = ""  # '' = the first line of the module's docstring


COMMANDS = (
    Command("convert"),
    Command("profile"),
    Command("design"),
    # the module exports from Python (export.py uses it); its command line only inspects an exported file
    Command("export info", "Print an exported .mindir/.onnx file's format, input/output shapes and preprocessing "
                           "as JSON."),
    Command("quantize"),
    Command("hub download", "Fetch and convert the official ImageNet weights into the cache (pretrained=True does "
                            "it on first use)."),
    Command("data.demo"),
)

ENTRY_POINTS = "train.py, eval.py, export.py, predict.py, preprocess.py, postprocess.py, cube.py, scripts/*.sh"


def summary(command: Command) -> str:
    """The command's one line: its own, else its module docstring's first line."""
    if command.summary:
        return command.summary
    module = command.name.split()[0]
    spec = importlib.util.find_spec(f"tinynet_ms.{module}")
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = ["usage: python -m tinynet_ms.COMMAND ...   (python -m tinynet_ms.COMMAND --help: its arguments)", "",
             "commands:"]
    lines += [f"  {c.name:<{width}}  {summary(c)}" for c in COMMANDS]
    lines += ["", *textwrap.wrap(f"The model zoo's entry points ({ENTRY_POINTS}) live in the source checkout, not in "
                                 f"the installed package: python train.py --help, bash scripts/run_demo.sh --help.",
                                 100)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the list (also for -h/--help); any other argument is a usage error: name a module instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("-h", "--help"):
        print(usage(), file=sys.stderr)
        print(f"error: python -m tinynet_ms takes no command ('{argv[0]}'): run python -m tinynet_ms.MODULE",
              file=sys.stderr)
        return 2
    print(usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
