"""``benchmarks/bench_train.py``: one real (tiny) run through the trainer in a worker process; valid JSON out."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


def test_bench_train_writes_timings(tmp_path):
    out = tmp_path / "train.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--presets", "lite_R18", "--batch", "2", "--iters", "3",
                           "--warmup", "1", "--threads", "1", "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    (r,) = doc["results"]
    assert r["preset"] == "lite_R18" and r["batch"] == 2 and r["amp"] is False
    assert r["timed_iterations"] == 3  # the warm-up iteration is dropped
    assert 0 < r["min_s_per_iter"] <= r["median_s_per_iter"] <= r["max_s_per_iter"]
    assert abs(r["images_per_s"] - 2 / r["median_s_per_iter"]) < 1e-9
    assert doc["machine"]["cpu_count"] >= 1 and "lite_R18" in proc.stdout
    speed = doc["cpu_matmul_gflops"]  # the CPU's speed around the run (it drifts); bf16 only with --amp
    assert speed["start"]["float32"] > 0 and speed["end"]["float32"] > 0 and "bfloat16" not in speed["start"]


def test_bench_train_unknown_preset_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--presets", "R42", "--iters", "1", "--warmup", "0",
                           "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "unknown preset" in (proc.stdout + proc.stderr)
