"""``lapmask data synth --out DIR --train N --val M --size S [--seed K] [--val-seed K]``: dataset tools.

The options of each tool are parsed by the tool itself (``lapmask data synth --help`` lists them).
"""
from __future__ import annotations

import argparse

TOOLS = {"synth": "generate the synthetic shapes dataset (COCO format) used by the demo and the tests"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "tools:\n" + "\n".join(f"  {k:<10}{v}" for k, v in TOOLS.items()) + \
        "\n\nexample: lapmask data synth --out lapmask_demo --train 1000 --val 200 --size 256"
    p.add_argument("tool", choices=sorted(TOOLS), help="dataset tool")
    p.add_argument("tool_args", nargs=argparse.REMAINDER, help="the tool's own options (see `lapmask data TOOL -h`)")


def run(args: argparse.Namespace) -> int:
    if args.tool == "synth":
        from lapmask.data.synth import main

        return int(main(args.tool_args) or 0)
    raise ValueError(f"unknown data tool {args.tool!r}; choose one of {sorted(TOOLS)}")
