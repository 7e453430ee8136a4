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


DRIFT_LIMIT_HELP = ("arseg: a non-keyframe whose labels' departure from the keyframe's (carried along the motion) "
                    "grew by this share of the map since the interval's first non-keyframe runs again as a keyframe "
                    "(files; live: the next frame is one) (default 0.05; off: never)")


def drift_limit_arg(text: str) -> dict[str, float | None]:
    """argparse type of --drift-limit: a share in (0, 1], or "off"; as EngineConfig keyword arguments."""
    if text.strip().lower() in ("off", "none"):
        return {"drift_limit": None}
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1] like 0.2, or off; got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1] like 0.2, or off; got {text!r}")
    return {"drift_limit": value}
