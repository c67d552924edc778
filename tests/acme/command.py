"""`conjunction acme PATH`: Acme's command group."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path")
