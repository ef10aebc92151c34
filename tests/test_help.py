"""Help everywhere: every command line of the project exits 0 on --help, and every option, positional argument and
subcommand of each of its argparse parsers (subcommands' included) says what it is. The parsers are caught as each
main builds them, so a new option without help fails here without a list to keep up to date; a new module with a
command line fails until it is added to CLIS."""
import argparse
import contextlib
import importlib
import io
import re

import pytest

from helpers import ROOT
from src.config import ENTRY_POINTS, CommandLine

# module → its subcommands (each also checked with --help)
CLIS = {
    "tinynet_ms.convert": (), "tinynet_ms.profile": (), "tinynet_ms.design": (), "tinynet_ms.export": ("info",),
    "tinynet_ms.quantize": (), "tinynet_ms.hub": ("download",), "tinynet_ms.data.demo": (),
    "src.cube": ("search", "remeasure", "fit"), "src.launch": (), "src.app": (), "src.config": (),
    "preprocess": (), "postprocess": (),
}


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """The options, positionals and subcommands of ``parser`` without a help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            missing += [f"{parser.prog} {choice.dest}" for choice in action._choices_actions if not choice.help]
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def _help(module: str, args: list[str], monkeypatch) -> tuple[int, str, list[argparse.ArgumentParser]]:
    """(exit code, stdout, every parser built) of ``module.main(args)`` in this process."""
    built: list[argparse.ArgumentParser] = []
    init = argparse.ArgumentParser.__init__

    def recording(self, *a, **kw):
        init(self, *a, **kw)
        built.append(self)

    monkeypatch.setattr(argparse.ArgumentParser, "__init__", recording)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        importlib.import_module(module).main(args)
    monkeypatch.undo()
    return done.value.code or 0, out.getvalue(), built


@pytest.mark.parametrize("module", sorted(CLIS))
def test_every_option_has_help_and_help_exits_0(module, monkeypatch):
    code, out, parsers = _help(module, ["--help"], monkeypatch)
    assert code == 0 and out.startswith("usage:"), module
    assert parsers, module
    for sub in CLIS[module]:
        code, out, more = _help(module, [sub, "--help"], monkeypatch)
        assert code == 0 and out.startswith("usage:"), (module, sub)
        parsers += more
    missing = sorted({name for parser in parsers for name in _undocumented(parser)})
    assert not missing, f"options without help: {missing}"


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_the_entry_points_options_have_help(script):
    assert not _undocumented(CommandLine(script).parser)


def test_every_command_line_is_checked_here():
    """A module that builds an ArgumentParser is in CLIS (benchmarks/ are tools, not the product)."""
    found = set()
    for path in [*ROOT.glob("*.py"), *(ROOT / "src").rglob("*.py"), *(ROOT / "tinynet_ms").rglob("*.py")]:
        if re.search(r"ArgumentParser\(", path.read_text()):
            found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert found <= set(CLIS), found - set(CLIS)


def test_python_m_tinynet_ms_lists_the_commands(capsys):
    from tinynet_ms.__main__ import COMMANDS, main

    assert main([]) == 0 and main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        line = next(line for line in out.splitlines() if line.strip().startswith(command.name + "  "))
        assert len(line.split(None, len(command.name.split()))[-1]) > 20, line  # a real summary
        module = command.name.split()[0]
        assert importlib.util.find_spec(f"tinynet_ms.{module}"), module
        if " " in command.name:  # a subcommand: the module's parser has it
            assert command.name.split()[1] in CLIS[f"tinynet_ms.{module}"]
    assert "train.py" in out and "source checkout" in out
    assert main(["convert"]) == 2
