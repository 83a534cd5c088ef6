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
