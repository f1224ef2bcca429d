"""One real benchmark run shared by the smoke tests: the shipped ``benchmarks/configs/smoke.json`` (lite_R18,
random weights, 64x64 input, 3 timed runs) on the CPU backends, through the CLI, in a temporary folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "benchmarks" / "configs" / "smoke.json"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> dict:
    """{"rc", "doc" (bench.json), "markdown", "out"} of ``lapmask bench --config smoke.json``."""
    import torch

    from lapmask.cli import main

    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; the workers get --threads 1 from the config
    try:
        rc = main(["bench", "--config", str(SMOKE_CONFIG), "--out", str(out), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    doc = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else None
    md = (out / "bench.md").read_text() if (out / "bench.md").is_file() else ""
    return {"rc": rc, "doc": doc, "markdown": md, "out": out}
