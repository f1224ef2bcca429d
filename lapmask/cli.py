"""``lapmask`` command line: one table drives parsing, help and the README's command list (contracts.md 7).

The CLI is the composition root: it is the only place in ``lapmask`` that may reach the ``export`` package, and
it imports each command's module lazily so ``lapmask --help`` starts fast and needs no torch.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # module with add_arguments(parser) and run(args) -> int
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("demo", "lapmask.commands.demo", "generate the synthetic dataset, train, evaluate, plot (no downloads)"),
    Command("data", "lapmask.commands.data", "dataset tools: `lapmask data synth --out DIR ...`"),
    Command("train", "lapmask.commands.train", "train on a COCO-format dataset (torchrun for multi-GPU)"),
    Command("eval", "lapmask.commands.eval", "COCO mask AP of a model on a dataset's val split"),
    Command("predict", "lapmask.commands.predict", "instance masks for images: PNG overlays + JSON"),
    Command("convert-official", "lapmask.commands.convert_official",
            "convert an official LapMask (detectron2) checkpoint, strictly"),
    Command("export", "export.commands.export", "export to ONNX or TorchScript"),
    Command("build-engine", "export.commands.build_engine", "build a TensorRT engine from an exported ONNX"),
    Command("compare", "export.commands.compare", "compare a deployed backend with PyTorch on the same images"),
    Command("bench", "export.commands.bench", "latency and mask AP per backend and precision"),
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is absent
        return False


def available_commands() -> list[Command]:
    """Commands whose module is installed in this version (others are not listed at all)."""
    return [c for c in COMMANDS if _installed(c.module)]


def _top_parser(cmds: list[Command]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lapmask", description="LapMask instance segmentation: train, export, deploy.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="commands:\n" + "\n".join(f"  {c.name:<18}{c.help}" for c in cmds))
    p.add_argument("command", choices=[c.name for c in cmds], metavar="COMMAND")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmds = available_commands()
    top = _top_parser(cmds)
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    ns = top.parse_args(argv[:1])
    cmd = next(c for c in cmds if c.name == ns.command)
    mod = importlib.import_module(cmd.module)
    parser = argparse.ArgumentParser(prog=f"lapmask {cmd.name}", description=cmd.help)
    mod.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"lapmask {cmd.name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
