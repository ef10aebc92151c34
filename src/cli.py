"""Shared entry-point handling of train.py / eval.py / export.py: the command line → config → run, with the exit
codes of ``tinynet_ms.cli`` (0 ok, 1 bad input or failed run, 2 usage or config error)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace

from src.builders import model_args
from src.config import CommandLine, load_config
from tinynet_ms.cli import EXIT_USAGE, run_main


def run_app(fn: Callable[[SimpleNamespace], object], argv: list[str], doc: str, prog: str,
            aliases: dict[str, str] | None = None, positional: str = "") -> int:
    """Parse ``argv`` (``--config_path C`` and ``--key value`` / ``--key=value`` for every config key; with
    ``positional``, words besides them: ``cfg.inputs``), load the config and run ``fn(cfg)``. No arguments: the
    usage and exit code 2; ``--help``: every key, exit code 0."""
    command_line = CommandLine(prog, doc, aliases, positional)
    if not argv:
        command_line.parser.print_usage()
        print(doc.strip())
        return EXIT_USAGE
    state: dict = {}

    def run() -> None:
        config_path, values, inputs = command_line.parse_all(argv)
        state["cfg"] = cfg = load_config(config_path, values)
        model_args(cfg)  # an unknown model is a config error, found before any data is read
        if command_line.positional:
            cfg.inputs = inputs
        fn(cfg)

    def log_error(exc: BaseException) -> None:  # the run's log file gets the reason too, once logging is set up
        if "cfg" in state:
            logging.getLogger("tinynet").error("%s: %s", type(exc).__name__, exc)

    try:
        return run_main(run, log_error)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
