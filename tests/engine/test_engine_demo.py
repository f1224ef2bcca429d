"""`lapmask demo` end to end on a tiny dataset with a 30-second budget (time-based: ~40 s whatever the CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lapmask.engine.evaluator import METRICS

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def test_demo_end_to_end_tiny(tmp_path):
    out = tmp_path / "demo"
    rc = subprocess.run([sys.executable, "-m", "lapmask", "demo", "--out", str(out), "--minutes", "0.5",
                         "--train", "8", "--val", "4", "--size", "64", "--train-sizes", "64", "--batch-size", "2",
                         "--threads", "1", "--vis", "2", "--no-progress"], cwd=tmp_path, env=_env(),
                        capture_output=True, text=True, timeout=300, check=False)
    assert rc.returncode == 0, rc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["iterations"] > 0 and set(METRICS) <= set(s["segm"])
    for f in ("training_curves.png", "eval/metrics.json", "train/model_final.pth", "vis/000001.png"):
        assert (out / f).is_file(), f
    assert "| segm |" in rc.stdout and "iterations" in rc.stdout
