"""``lapmask convert-official IN.pth OUT.pth --config C``."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lapmask.commands.common import add_config, add_debug


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="official checkpoint (.pth raw state_dict or detectron2 {'model': ...}, or .pkl)")
    p.add_argument("dst", help="output lapmask checkpoint (.pth)")
    add_config(p, required=True)
    add_debug(p)


def run(args: argparse.Namespace) -> int:
    from lapmask.config import load_config
    from lapmask.convert import convert_official_file

    t = time.time()
    cfg = load_config(args.config)
    out = convert_official_file(args.src, args.dst, cfg)
    size = Path(out).stat().st_size / 2**20
    print(f"converted {args.src} -> {out} ({size:.1f} MiB, config {cfg.name}, {time.time() - t:.1f} s)")
    print(f"next: lapmask predict IMAGE --weights {out} --out predictions/")
    return 0
