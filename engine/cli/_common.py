"""Options shared by the sub-commands."""

from __future__ import annotations

import argparse
import os


def config_dir(value: str) -> str:
    """argparse type of ``--config``: an existing folder."""
    if not os.path.isdir(value):
        raise argparse.ArgumentTypeError(f"no such folder: {value}")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config DIR``: the folder holding strategies/, rules/ and schedules.yaml."""
    parser.add_argument(
        "--config",
        metavar="DIR",
        type=config_dir,
        default=".",
        help="folder holding strategies/, rules/ and schedules.yaml (default: the current directory)",
    )


#: the output formats of every command that offers a choice: text for people, json for programs and CI
FORMATS = ("text", "json")
#: spellings other commands once used, and the one to use now
_OLD_FORMATS = {"table": "text"}


def output_format(value: str) -> str:
    """argparse type of ``--format``: ``text`` or ``json``; an old spelling is refused naming the new one."""
    if value in FORMATS:
        return value
    if value in _OLD_FORMATS:
        raise argparse.ArgumentTypeError(f"{value!r} is now spelled {_OLD_FORMATS[value]!r} (every command's --format is text or json)")
    raise argparse.ArgumentTypeError(f"expected text or json, found {value!r}")


def add_format_option(parser: argparse.ArgumentParser, text: str = "for people") -> None:
    """Add ``--format text|json`` (default text): the one spelling of every command's output option."""
    parser.add_argument("--format", type=output_format, default="text", metavar="{text,json}",
                        help=f"text {text} (default), json for programs and CI")
