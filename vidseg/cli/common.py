"""What every vidseg command shares: one-line errors, exit codes, Ctrl-C handling."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from vidseg.errors import VidsegError

__all__ = ["cli_entry", "size_arg"]


def cli_entry(fn: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command's main: a VidsegError prints as one line (no traceback) and sets the exit code."""

    @functools.wraps(fn)
    def main(argv: list[str] | None = None) -> int:
        try:
            code = fn(argv)
        except VidsegError as err:
            print(f"error: {err}", file=sys.stderr)
            if err.details and "--verbose" in (sys.argv[1:] if argv is None else argv):
                print(err.details, file=sys.stderr)
            code = err.exit_code
        except KeyboardInterrupt:
            print("interrupted: results produced so far were flushed", file=sys.stderr)
            code = 130
        if argv is None:  # called as a console script
            sys.exit(code)
        return code

    return main


def size_arg(text: str) -> tuple[int, int]:
    """argparse type of an HxW size ("256x512" -> (256, 512))."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 256x512, got {text!r}") from None
    return h, w
