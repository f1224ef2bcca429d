"""CLI commands of the ``export`` package (``lapmask export``, ``lapmask compare``).

Each module has ``add_arguments(parser)`` and ``run(args) -> int`` (the ``lapmask.cli`` table points at them) and
imports nothing heavy at module level: argparse only, the work is imported inside ``run``.
"""
