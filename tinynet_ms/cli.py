"""The exit-code convention of every command line in this project (library modules and model-zoo scripts):

    0  success
    1  a bad input file (missing, unreadable, wrong weights, corrupt data) or a failed run
    2  a usage or config error: unknown or malformed argument / config key / value (argparse's own code)

Expected failures print one ``error: ...`` line on stderr; anything else is a bug and keeps its traceback
(Python's exit code 1).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_FAILED, EXIT_USAGE = 1, 2


class UsageError(ValueError):
    """A wrong command-line argument or config value: exit code 2."""


# Failures caused by the input rather than by a bug: one line, exit code 1.
INPUT_ERRORS = (OSError, ValueError, ImportError, FloatingPointError)


def run_main(fn: Callable[[], object], on_error: Callable[[BaseException], None] | None = None) -> int:
    """Run ``fn`` and map its expected failures to the exit codes above (``on_error`` may log them too)."""
    try:
        fn()
    except (UsageError, *INPUT_ERRORS) as exc:
        if on_error is not None:
            on_error(exc)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
    return 0


def argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type=`` that keeps ``parse``'s own error message (argparse would replace it)."""
    def wrapped(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


def positive_int(text: str) -> int:
    """An integer >= 1 (for argument_type): counts, sizes."""
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text}")
    return value
