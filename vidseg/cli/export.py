"""vidseg-export."""

from __future__ import annotations

from vidseg.cli.common import cli_entry, not_available


@cli_entry
def main(argv: list[str] | None = None) -> int:
    return not_available("vidseg-export", "it is being built")
