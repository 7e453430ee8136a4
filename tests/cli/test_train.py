"""vidseg-train's command line: every subcommand option says what it does."""

from __future__ import annotations

import argparse

from vidseg.cli.train import build_parser


def test_every_subcommand_option_has_a_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"demo", "hr", "arseg"}
    for name, sub in subparsers.choices.items():
        options = [a for a in sub._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        assert options, name
        silent = [a.option_strings[0] for a in options if not (a.help or "").strip()]
        assert not silent, f"vidseg-train {name}: options without help: {silent}"
