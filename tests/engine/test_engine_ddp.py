"""DistributedDataParallel on 2 Gloo processes == one process running both half-batches (per-half losses); the
local launcher the demo uses (``launch_local``) and how it reports a failing process."""
from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from engine_utils import ddp_worker, free_port, half_batch, rank_report, tiny_config

from lapmask.engine.distributed import launch_local
from lapmask.engine.progress import read_jsonl
from lapmask.engine.trainer import Trainer, TrainOptions, compute_losses


def test_ddp_two_gloo_ranks_match_per_half_reference(tmp_path, synth_dir, train_dataset):
    world = 2
    mp.spawn(ddp_worker, args=(world, free_port(), str(synth_dir), str(tmp_path)), nprocs=world, join=True)
    r0, r1 = (torch.load(tmp_path / f"grads_rank{r}.pt", weights_only=True) for r in range(world))

    # Reference: one process, the same initial weights, each half normalised on its own (per-GPU focal
    # normaliser and dice mean), gradients averaged over the halves like DDP's all-reduce.
    cfg = tiny_config(max_iter=2, ims_per_batch=2 * world)
    ds = train_dataset(cfg)
    ref = Trainer(cfg, ds, TrainOptions(out_dir=tmp_path / "ref", num_workers=0, progress=False))
    ref.model.train()
    ref.optimizer.zero_grad()
    ref_losses = []
    for rank in range(world):
        losses = compute_losses(ref.model, half_batch(ds, rank), cfg, torch.device("cpu"))
        total = losses["loss_ins"] + losses["loss_cate"]
        (total / world).backward()
        ref_losses.append(float(total.detach()))
    grads = {n: p.grad for n, p in ref.model.named_parameters() if p.grad is not None}

    assert r0["grads"].keys() == grads.keys() and len(grads) > 100
    worst = max(float((r0["grads"][n] - g).abs().max()) for n, g in grads.items())
    assert worst <= 1e-6, worst
    for n in grads:  # DDP leaves identical gradients on every rank
        assert torch.equal(r0["grads"][n], r1["grads"][n])
    assert abs(r0["losses"]["loss"] - ref_losses[0]) < 1e-5 and abs(r1["losses"]["loss"] - ref_losses[1]) < 1e-5
    assert r0["mean"]["rank"] == r1["mean"]["rank"] == 0.5  # all_reduce_mean of logged metrics

    # sharded 2-iteration training: weights stay identical on both ranks; rank 0 alone writes logs/checkpoints.
    # BatchNorm running statistics (lite backbone.norm "BN", not synchronised, like detectron2's "BN") are each
    # rank's own: they are excluded, and they must differ (each rank saw its own shard).
    f0, f1 = (torch.load(tmp_path / f"final_rank{r}.pt", weights_only=True) for r in range(world))
    stats = {k for k in f0 if k.endswith(("running_mean", "running_var")) and ".norm." in k
             and f"{k.rsplit('.', 1)[0]}.num_batches_tracked" in f0}
    assert stats and not all(torch.equal(f0[k], f1[k]) for k in stats)
    assert all(torch.equal(f0[k], f1[k]) for k in f0 if k not in stats)
    assert (tmp_path / "run2" / "model_final.pth").is_file()
    assert [r["iteration"] for r in read_jsonl(tmp_path / "run2" / "metrics.jsonl")] == [1, 2]


def test_launch_local_runs_a_gloo_group_and_reports_a_failing_rank(tmp_path):
    """``launch_local`` (the demo's data-parallel start): every rank runs in one Gloo group on this machine; an
    exception in one rank, or its death by a signal, comes back as a RuntimeError that names the rank and why."""
    launch_local(rank_report, 2, (str(tmp_path),))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world"], r["sum"], r["backend"]) for r in reports] == [(0, 2, 3.0, "gloo"),
                                                                                   (1, 2, 3.0, "gloo")]
    with pytest.raises(RuntimeError, match="process 1 of 2 failed: ValueError: rank 1 was asked to fail"):
        launch_local(rank_report, 2, (str(tmp_path / "x"), 1))
    with pytest.raises(RuntimeError, match="process 1 of 2 failed: ended by signal SIGABRT"):
        launch_local(rank_report, 2, (str(tmp_path / "x"), 1, True))
