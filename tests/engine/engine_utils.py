"""Helpers shared by the engine tests."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from lapmask.config import LapMaskConfig, get_preset
from lapmask.engine.distributed import free_port  # noqa: F401  (the tests import it from here)

REPO = Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """Environment for a ``python -m lapmask`` child: this checkout first on the path, one OpenMP thread."""
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def tiny_config(**solver) -> LapMaskConfig:
    """lite_R18 made cheap for CPU tests: 64-px inputs, narrow FPN/heads, small grids (same structure)."""
    cfg = get_preset("lite_R18")
    c = 64
    return cfg.replace(
        backbone=dataclasses.replace(cfg.backbone, fpn_out_channels=c),
        head=dataclasses.replace(cfg.head, instance_in_channels=c, mask_in_channels=c, instance_channels=64,
                                 mask_channels=32, num_grids=(12, 10, 8, 6, 4, 3)),
        input=dataclasses.replace(cfg.input, min_size_train=(64,), max_size_train=128, min_size_test=64,
                                  max_size_test=128),
        solver=dataclasses.replace(cfg.solver, **{"warmup_iters": 3, "base_lr": 0.01, "max_iter": 20,
                                                  "ims_per_batch": 2, "steps": (), **solver}),
    )


def half_batch(ds, rank: int, per_rank: int = 2) -> list[dict]:
    """Rank ``rank``'s fixed share of a 4-image batch (items with fixed augmentation seeds)."""
    return [ds[(i, 100 + i)] for i in range(rank * per_rank, (rank + 1) * per_rank)]


def ddp_worker(rank: int, world: int, port: int, data_dir: str, out_dir: str) -> None:
    """One Gloo rank: gradients of its half-batch under DDP, then a 2-iteration sharded training run."""
    import os
    from pathlib import Path

    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from lapmask.data.coco import CocoInstanceDataset
    from lapmask.engine import distributed as du
    from lapmask.engine.trainer import Trainer, TrainOptions

    info = du.init_from_env("cpu")
    try:
        assert info.world_size == world and info.rank == rank and info.distributed
        cfg = tiny_config(max_iter=2, ims_per_batch=2 * world)
        ds = CocoInstanceDataset.from_config(cfg, Path(data_dir) / "annotations" / "instances_train.json",
                                             Path(data_dir) / "train", is_train=True)
        out = Path(out_dir)
        tr = Trainer(cfg, ds, TrainOptions(out_dir=out / "run", num_workers=0, progress=False, checkpoint_period=0,
                                           log_period=1), info)
        losses = tr.forward_backward(half_batch(ds, rank))
        grads = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters() if p.grad is not None}
        mean = du.all_reduce_mean({"loss": losses["loss"], "rank": float(rank)})
        torch.save({"grads": grads, "losses": losses, "mean": mean}, out / f"grads_rank{rank}.pt")
        tr2 = Trainer(cfg, ds, TrainOptions(out_dir=out / "run2", num_workers=0, progress=False,
                                            checkpoint_period=0, log_period=1), info)
        tr2.train()
        torch.save(tr2.model.state_dict(), out / f"final_rank{rank}.pt")
    finally:
        du.cleanup(info)


def rank_report(info, out_dir: str, fail_rank: int | None = None, abort: bool = False) -> None:
    """``launch_local`` target: write this rank's view of the group (or fail on ``fail_rank``: raise, or
    ``abort`` the process as a native crash would)."""
    import json
    import os
    from pathlib import Path

    import torch
    import torch.distributed as dist

    if info.rank == fail_rank:
        if abort:
            os.abort()
        raise ValueError(f"rank {info.rank} was asked to fail")
    t = torch.tensor([float(info.rank + 1)])
    dist.all_reduce(t)
    Path(out_dir, f"rank{info.rank}.json").write_text(json.dumps(
        {"rank": info.rank, "world": info.world_size, "sum": float(t), "backend": dist.get_backend()}))


def ctrl_c_when(cmd: list[str], ready: Callable[[], bool], cwd, env: dict[str, str],
                timeout: float = 180.0) -> tuple[int, str]:
    """Run ``cmd``, wait until ``ready()``, then send SIGINT to its whole process group (what a terminal's Ctrl-C
    does: every process of the command gets it, DataLoader workers and training processes included).

    Returns (exit code, stderr). Fails if the command ends, or ``timeout`` s pass, before it is ready.
    """
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + timeout
        while not ready():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err
