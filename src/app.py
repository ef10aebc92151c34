"""Shared entry-point handling of train.py / eval.py / export.py: the command line → config → run, with the exit
codes of ``tinynet_ms.cli`` (0 ok, 1 bad input or failed run, 2 usage or config error).

The model-zoo scripts call this module before they start anything (``python -m src.app --get KEY -- ARGS``):
the checks an entry point makes before it touches a device or data, so a config error is reported once, with
exit code 2, instead of once per rank after msrun has started them all.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from types import SimpleNamespace

from src.builders import model_args
from src.config import KEYS, CommandLine, ConfigError, load_config
from tinynet_ms.cli import EXIT_USAGE, run_main


def load_app_config(command_line: CommandLine, argv: list[str]) -> SimpleNamespace:
    """The config an entry point runs with, every key, value and the model checked (an unknown model is a config
    error, found before any data is read). One function for the entry points and the scripts' pre-launch check,
    so both refuse exactly the same. A command with positional arguments (predict.py) gets them as
    ``cfg.inputs``."""
    config_path, values, inputs = command_line.parse_all(argv)
    cfg = load_config(config_path, values)
    model_args(cfg)
    if command_line.positional:
        cfg.inputs = inputs
    return cfg


def _log_to_files(exc: BaseException) -> None:
    """The run's log files get the reason too, with its time; the console only the one ``error:`` line run_main
    prints (setup_logging's handler writes to stderr, which would show the error twice)."""
    logger = logging.getLogger("tinynet")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s: %s", (type(exc).__name__, exc), None)
    while logger is not None:
        for handler in logger.handlers:
            if getattr(handler, "stream", None) not in (sys.stderr, sys.stdout) and record.levelno >= handler.level:
                handler.handle(record)
        logger = logger.parent if logger.propagate else None


def run_app(fn: Callable[[SimpleNamespace], object], argv: list[str], doc: str, prog: str,
            aliases: dict[str, str] | None = None, positional: str = "") -> int:
    """Parse ``argv`` (``--config_path C`` and ``--key value`` / ``--key=value`` for every config key; with
    ``positional``, words besides them: ``cfg.inputs``), load the config and run ``fn(cfg)``. No arguments: the
    usage and exit code 2; ``--help``: the keys entry point ``prog`` uses, exit code 0."""
    command_line = CommandLine(prog, doc, aliases, positional)
    if not argv:
        command_line.parser.print_usage()
        print(doc.strip())
        return EXIT_USAGE
    try:
        return run_main(lambda: fn(load_app_config(command_line, argv)), _log_to_files)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _check_training_output(cfg: SimpleNamespace) -> None:
    """train.py's output_dir check (a fresh run refuses another run's checkpoints); it only checks: deleting with
    --overwrite true stays the run's rank 0's job. A refused directory that a run is still writing is named as in
    use (not as holding a finished run's files). Not locked otherwise: the nodes of a multi-node job sharing the
    directory check it while node 0's launcher holds its lock."""
    from src.context import RunContext
    from src.trainer import check_output_dir, lock_output_dir

    try:
        check_output_dir(cfg, RunContext(cfg.device_target), only_check=True)
    except ConfigError:
        with lock_output_dir(cfg):  # InUse when a run holds it
            pass
        raise


# The checks an entry point makes after loading its config and before it touches a device or data.
_ENTRY_CHECKS: dict[str, Callable[[SimpleNamespace], None]] = {"train.py": _check_training_output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.app", description="Check an entry point's arguments as it would (nothing is started) "
        "and print one resolved config key; exit code 2 and one error line on a config error.")
    parser.add_argument("--get", required=True, metavar="KEY", help="the config key to print")
    parser.add_argument("--entry", default="", help="train.py: also check output_dir as train.py does")
    parser.add_argument("--cwd", help="the directory the entry point will run in (relative paths are its)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- the entry point's arguments")
    args = parser.parse_args(argv)
    entry_args = args.args[1:] if args.args[:1] == ["--"] else args.args

    def check() -> None:
        if args.get not in KEYS:
            raise ConfigError(f"--get {args.get}: not a config key")
        if args.cwd:
            os.chdir(args.cwd)
        with contextlib.redirect_stdout(sys.stderr):  # --help: for the user, not for the caller's $(...)
            cfg = load_app_config(CommandLine(args.entry or "python -m src.app"), entry_args)
            _ENTRY_CHECKS.get(args.entry, lambda _cfg: None)(cfg)
        print(getattr(cfg, args.get))

    try:
        return run_main(check)
    except SystemExit:  # --help among the entry point's arguments: shown, and nothing is to be started
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
