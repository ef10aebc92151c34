"""Shared entry-point handling: ``--config_path`` + overrides → config; expected failures as one line."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from src.config import ConfigError, load_config
from tinynet_ms.checkpoint import CheckpointMismatchError

# Errors that mean "the input is wrong" (reported as one line), as opposed to bugs (traceback).
USER_ERRORS = (FileNotFoundError, CheckpointMismatchError, FloatingPointError, ValueError, ImportError)


def run_app(fn: Callable, argv: list[str], usage: str) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage.strip())
        return 0 if argv else 2
    config_path = None
    args = list(argv)
    if "--config_path" in args:
        i = args.index("--config_path")
        if i + 1 >= len(args):
            print("error: --config_path needs a value", file=sys.stderr)
            return 2
        config_path = args[i + 1]
        del args[i:i + 2]
    try:
        cfg = load_config(config_path, args)
        fn(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        logging.getLogger("tinynet").error("%s: %s", type(exc).__name__, exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
