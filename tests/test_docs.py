"""The manual is tested: every link in README/docs resolves, and every command in their code blocks names a script
or module that exists and only options that command knows (config keys for the model-zoo scripts, argparse options
for the module CLIs), so renaming a key or a flag fails here until the docs follow."""
import contextlib
import importlib
import io
import re
import shlex

import pytest

from helpers import ROOT
from src.config import KEYS

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# model-zoo entry points that take --config_path and --key value for every config key
CONFIG_SCRIPTS = {"train.py", "eval.py", "export.py", "predict.py", "scripts/run_distribute_train.sh",
                  "scripts/run_standalone_train.sh", "scripts/run_eval.sh", "scripts/run_demo.sh"}
ALIASES = {"batch_size", "config_path"}  # export.py's --batch_size is its export_batch_size


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def _anchors(page) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target} does not resolve"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: no heading '#{anchor}' in {file.name}"


def _commands(page) -> list[list[str]]:
    """The command lines of a page's bash code blocks (continuations joined, comments and placeholders dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"&&|;", line):
                part = re.sub(r"\[([^\]]*)\]", r"\1", part)  # [--key value] optional parts: still options
                part = part.replace("|", " ")  # MINDIR|ONNX|AIR choices
                try:
                    words = shlex.split(part)
                except ValueError:
                    continue
                if words:
                    out.append(words)
    return out


def _module_options(module: str, sub: str | None) -> set[str]:
    """The --options a module CLI's --help lists (its subcommand's, when it has them)."""
    main = importlib.import_module(module).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([sub, "--help"] if sub else ["--help"])
    assert done.value.code == 0, (module, sub)
    return set(re.findall(r"--\w+", out.getvalue()))


def _check(words: list[str], where: str) -> None:
    if words[0] == "python" and len(words) > 1 and words[1] == "-m":
        module = words[2]
        if not module.startswith("tinynet_ms"):
            return
        assert importlib.util.find_spec(module), f"{where}: no module {module}"
        rest = words[3:]
        sub = rest[0] if rest and not rest[0].startswith("-") and module in SUBCOMMANDS else None
        known = _module_options(module, sub)
        flags = [w.split("=")[0] for w in rest if w.startswith("--")]
    elif words[0] in ("python", "bash") and len(words) > 1 and words[1].endswith((".py", ".sh")):
        script = words[1]
        if not (ROOT / script).is_file():
            assert script.startswith(("benchmarks/", "/")) or (ROOT / script).is_file(), f"{where}: no {script}"
            return
        if script == "cube.py":
            sub = words[2]
            known = _module_options("src.cube", sub)
        elif script in CONFIG_SCRIPTS:
            known = {f"--{k}" for k in (*KEYS, *ALIASES)}
        else:
            return
        flags = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
    else:
        return
    unknown = [f for f in flags if f not in known and f not in ("--help", "--key")]  # --key value: the placeholder
    assert not unknown, f"{where}: {' '.join(words[:3])} ... has no option {unknown}"


SUBCOMMANDS = {"tinynet_ms.hub", "tinynet_ms.export"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_what_exists(page):
    commands = _commands(page)
    for words in commands:
        _check(words, page.name)


def test_the_check_fails_on_a_renamed_key_or_flag():
    with pytest.raises(AssertionError, match="no option"):
        _check(["python", "train.py", "--config_path", "c.yaml", "--freeze_the_backbone", "true"], "t")
    with pytest.raises(AssertionError, match="no option"):
        _check(["python", "-m", "tinynet_ms.design", "--budget", "40M"], "t")
    with pytest.raises(AssertionError, match="no module"):
        _check(["python", "-m", "tinynet_ms.cubes", "fit"], "t")
    _check(["python", "-m", "tinynet_ms.design", "--macs", "40M"], "t")
