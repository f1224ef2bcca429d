"""`lapmask demo` end to end on a tiny dataset with a 45-second budget (time-based: ~55 s whatever the CPU), and
Ctrl-C during its training."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from engine_utils import ctrl_c_when, subprocess_env

from lapmask.engine.evaluator import METRICS


@pytest.mark.parametrize("processes", [1, 2])
def test_demo_end_to_end_tiny(tmp_path, processes):
    """One process, and two data-parallel processes (Gloo; sharded mid-training and final evaluations)."""
    out = tmp_path / "demo"
    rc = subprocess.run([sys.executable, "-m", "lapmask", "demo", "--out", str(out), "--minutes", "0.75",
                         "--train", "8", "--val", "4", "--size", "64", "--train-sizes", "64", "--batch-size", "2",
                         "--threads", "1", "--processes", str(processes), "--vis", "2", "--no-progress"],
                        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rc.returncode == 0, rc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["iterations"] > 0 and set(METRICS) <= set(s["segm"]) and s["processes"] == processes
    assert s["threads"] == 1 and s["cpu_matmul_gflops"]["float32"] > 0  # the machine's speed beside the AP
    # the budget holds (start-up of the processes is inside it; 15 s of it are the final phase's fixed costs)
    assert s["minutes_total"] <= 0.75 + 0.25
    for f in ("training_curves.png", "eval/metrics.json", "train/model_final.pth", "vis/000001.png"):
        assert (out / f).is_file(), f
    assert "| segm |" in rc.stdout and "iterations" in rc.stdout
    evals = [r for r in map(json.loads, (out / "train" / "metrics.jsonl").read_text().splitlines()) if "segm" in r]
    assert len(evals) == 2  # the two mid-training evaluations (every rank took part, or this would hang)


@pytest.mark.parametrize("processes", [1, 2])
def test_demo_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, processes):
    """Ctrl-C while training (SIGINT to the whole process group, as a terminal sends it): the training
    processes stop at the same iteration, rank 0 saves a checkpoint, and the command exits 130 saying where it is.
    With several processes the launching one must wait for them (its own exit would kill them mid-save)."""
    from lapmask.engine.checkpoint import load_checkpoint

    out = tmp_path / "demo"
    log = out / "train" / "metrics.jsonl"
    code, err = ctrl_c_when([sys.executable, "-m", "lapmask", "demo", "--out", str(out), "--minutes", "4", "--train",
                             "8", "--val", "4", "--size", "64", "--train-sizes", "64", "--batch-size", "2",
                             "--threads", "1", "--processes", str(processes), "--eval-points", "0", "--no-progress"],
                            lambda: log.is_file() and bool(log.read_text().strip()),  # training under way
                            cwd=tmp_path, env=subprocess_env())
    assert code == 130, err[-3000:]
    saved = sorted((out / "train").glob("model_0*.pth"))
    assert len(saved) == 1 and not (out / "train" / "model_final.pth").exists() and "interrupted" in err
    ck = load_checkpoint(saved[0])
    assert f"stopped at iteration {ck['iteration']} (SIGINT); checkpoint {saved[0]}" in err
    assert (out / "train" / "last_checkpoint").read_text().strip() == saved[0].name


@pytest.mark.parametrize("free,want", [(2, (2, 1)), (1, (1, 1)), (16, (2, 8)), (3, (2, 1))])
def test_demo_placement_on_cpu(monkeypatch, free, want):
    """Free cores run as processes of one thread (at least 4 images each of the batch of 8), the rest as threads."""
    import argparse

    import torch

    from lapmask.commands import demo

    monkeypatch.setattr("lapmask.engine.cpu_threads.auto_threads", lambda *a, **k: free)
    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    args = p.parse_args([])
    assert demo.placement(args, torch.device("cpu")) == want
    assert demo.placement(p.parse_args(["--threads", "3"]), torch.device("cpu")) == (1, 3)
    assert demo.placement(p.parse_args(["--processes", "2", "--threads", "1"]), torch.device("cpu")) == (2, 1)
    with pytest.raises(ValueError, match="must divide the batch size"):
        demo.placement(p.parse_args(["--processes", "3"]), torch.device("cpu"))


def test_matmul_gflops_counts_two_flops_per_multiply_add(monkeypatch):
    """With a clock that advances 1 s per product, GFLOPS is exactly 2 * size^3 / 1e9."""
    import itertools

    from lapmask.engine import machine_speed

    ticks = itertools.count()
    monkeypatch.setattr(machine_speed.time, "perf_counter", lambda: float(next(ticks)))
    assert machine_speed.matmul_gflops(size=100, seconds=3.0) == pytest.approx(2 * 100**3 / 1e9)
