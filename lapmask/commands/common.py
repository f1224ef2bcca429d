"""Arguments shared by several commands (one definition each)."""
from __future__ import annotations

import argparse


def add_config(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", required=required, help="preset name (e.g. R50_3x, lite_R18) or a .json config file")


def add_weights(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--weights", required=required, help="lapmask checkpoint (.pth)")


def add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
