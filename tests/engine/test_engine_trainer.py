"""Trainer: smoke training, exact resume, Ctrl-C / SIGTERM checkpoints, logs, batch canvas."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from engine_utils import tiny_config

from lapmask.engine.checkpoint import load_checkpoint
from lapmask.engine.progress import CSV_COLUMNS, read_jsonl
from lapmask.engine.trainer import (
    LAST_CHECKPOINT,
    Trainer,
    TrainingInterrupted,
    TrainOptions,
    prepare_batch,
    rng_state,
    set_rng_state,
)


def _opts(out: Path, **kw) -> TrainOptions:
    base = {"out_dir": out, "num_workers": 0, "progress": False, "checkpoint_period": 0, "log_period": 5}
    return TrainOptions(**{**base, **kw})


def test_smoke_loss_decreases(tmp_path, train_dataset):
    cfg = tiny_config(max_iter=20)
    losses: list[float] = []
    tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path), callbacks=[lambda t: losses.append(t.last_values["loss"])])
    res = tr.train()
    assert res.iterations == 20 and len(losses) == 20 and all(map(torch.isfinite, torch.tensor(losses)))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, losses
    # logs: JSONL rows at 1, 5, 10, 15, 20 with losses and lr; CSV with the fixed header
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 5, 10, 15, 20]
    assert all({"loss", "loss_ins", "loss_cate", "lr", "images_per_s"} <= set(r) for r in rows)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS
    ck = load_checkpoint(tmp_path / "model_final.pth")
    assert ck["iteration"] == 20 and ck["class_names"] == list(cfg.class_names)
    assert (tmp_path / LAST_CHECKPOINT).read_text().strip() == "model_final.pth"


def _state(tr: Trainer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v for k, v in tr.model.state_dict().items()}
    for i, (pid, st) in enumerate(tr.optimizer.state_dict()["state"].items()):
        out.update({f"opt.{pid}.{k}": v for k, v in st.items() if torch.is_tensor(v)})
    return out


class _StopAt:
    """Callback raising KeyboardInterrupt once the trainer has completed ``k`` iterations."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, tr: Trainer) -> None:
        if tr.iter == self.k:
            raise KeyboardInterrupt


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_after_ctrl_c(tmp_path, train_dataset, workers):
    # lr step inside the run (iteration 4) and warm-up across the interruption: the schedule must resume too
    cfg = tiny_config(max_iter=6, steps=(4,), warmup_iters=4)
    ds = train_dataset(cfg)
    straight = Trainer(cfg, ds, _opts(tmp_path / "a", num_workers=workers))
    straight.train()

    part = Trainer(cfg, ds, _opts(tmp_path / "b", num_workers=workers), callbacks=[_StopAt(3)])
    with pytest.raises(TrainingInterrupted) as ei:
        part.train()
    assert ei.value.iteration == 3 and ei.value.checkpoint == tmp_path / "b" / "model_0000003.pth"
    ck = load_checkpoint(ei.value.checkpoint)
    assert ck["iteration"] == 3 and ck["sampler"]["start_iter"] == 3 and "optimizer" in ck and "rng" in ck
    resumed = Trainer(cfg, ds, _opts(tmp_path / "b", num_workers=workers, resume=True))
    assert resumed.iter == 3
    resumed.train()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and len(a) > 100
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, f"{len(bad)} tensors differ, first {bad[:3]}"
    assert resumed.scheduler.state_dict()["last_epoch"] == straight.scheduler.state_dict()["last_epoch"] == 6
    # logs of the resumed run read like one run (rows from iteration 3 on were rewritten, not duplicated)
    its = [r["iteration"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert its == sorted(set(its)) and its[-1] == 6


def test_sigterm_stops_after_the_iteration_and_saves(tmp_path, train_dataset):
    cfg = tiny_config(max_iter=10)

    def term_at_2(tr: Trainer) -> None:
        if tr.iter == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path), callbacks=[term_at_2])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as ei:
        tr.train()
    assert ei.value.reason == "SIGTERM" and ei.value.iteration == 2
    assert load_checkpoint(tmp_path / "model_0000002.pth")["iteration"] == 2
    assert (tmp_path / LAST_CHECKPOINT).read_text().strip() == "model_0000002.pth"
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, train_dataset):
    cfg = tiny_config()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(cfg, train_dataset(cfg), _opts(tmp_path, resume=True))


def test_periodic_checkpoints_pruned_and_nan_loss_message(tmp_path, train_dataset, monkeypatch):
    cfg = tiny_config(max_iter=4)
    tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path, checkpoint_period=1, keep_checkpoints=2))
    tr.train()
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_0000002.pth", "model_0000003.pth",
                                                                     "model_final.pth"]
    import lapmask.engine.trainer as trainer_mod

    def nan_losses(*args, **kw):
        return {"loss_ins": torch.tensor(float("nan"), requires_grad=True), "loss_cate": torch.tensor(1.0)}

    monkeypatch.setattr(trainer_mod, "compute_losses", nan_losses)
    bad = Trainer(cfg, train_dataset(cfg), _opts(tmp_path / "nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        bad.train()
    assert not (tmp_path / "nan" / "model_final.pth").exists()


def test_batch_canvas_is_the_padded_maximum(train_dataset):
    cfg = tiny_config()
    ds = train_dataset(cfg)
    tr = Trainer(cfg, ds, _opts(Path("unused")))
    a = ds[(0, 1)]  # 64 x 64
    m = torch.zeros(1, 40, 70, dtype=torch.bool)
    m[0, 10:30, 20:60] = True
    b = {"image": torch.randint(0, 255, (3, 40, 70), dtype=torch.uint8),
         "instances": {"boxes": torch.tensor([[20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([1]), "masks": m}}
    x, targets = prepare_batch([a, b], tr.model, cfg, torch.device("cpu"))
    assert tuple(x.shape) == (2, 3, 64, 96)  # max(64, 40) -> 64; max(64, 70) -> 96
    assert all(tuple(r["masks"].shape[-2:]) == (16, 24) for t in targets for r in t)
    assert torch.all(x[1, :, 40:, :] == 0) and torch.all(x[1, :, :, 70:] == 0)  # zero padding after normalising


def test_rng_state_roundtrip_through_checkpoint_format(tmp_path):
    import random

    import numpy as np

    st = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    torch.save(st, tmp_path / "rng.pt")
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_amp_on_cpu_is_bfloat16_or_a_clear_error(tmp_path, train_dataset, monkeypatch):
    import lapmask.engine.trainer as trainer_mod

    cfg = tiny_config(max_iter=3)
    json.dumps(cfg.to_dict())  # the config travels with checkpoints as plain JSON
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        seen: list[torch.dtype] = []
        tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path, amp=True))
        tr.model.backbone.register_forward_hook(lambda m, i, o: seen.append(o["p2"].dtype))
        assert not tr.scaler.is_enabled()  # no loss scaling for bfloat16
        w0 = tr.model.ins_head.cate_pred.weight.detach().clone()
        res = tr.train()
        assert res.iterations == 3 and seen == [torch.bfloat16] * 3
        # the weights stay float32 and have moved
        w = load_checkpoint(tmp_path / "model_final.pth")["model"]["ins_head.cate_pred.weight"]
        assert w.dtype == torch.float32 and not torch.equal(w, w0)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="native bf16"):
        Trainer(cfg, train_dataset(cfg), _opts(tmp_path / "no_bf16", amp=True))
    assert trainer_mod.amp_dtype(torch.device("cuda")) == torch.float16


def test_time_budget_places_lr_steps_and_stops(tmp_path, train_dataset):
    cfg = tiny_config(max_iter=1000, warmup_iters=0)
    lrs: list[float] = []
    tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path, time_budget_s=10.0),
                 callbacks=[lambda t: lrs.append(t.optimizer.param_groups[0]["lr"])])
    tr.train_seconds = lambda: float(tr.iter)  # a deterministic clock: one "second" per iteration
    res = tr.train()
    assert res.iterations == 10  # stopped by the budget, not by max_iter
    assert tr.scheduler.steps == [8, 9]  # 75 % of 10 s crossed after iteration 8, 90 % after 9
    base = cfg.solver.base_lr
    # lrs[i] is the lr for iteration i + 1 (read after iteration i's scheduler step)
    assert lrs[6] == pytest.approx(base) and lrs[7] == pytest.approx(base * 0.1) and lrs[8] == pytest.approx(base * 0.01)
    assert load_checkpoint(tmp_path / "model_final.pth")["trainer"]["time_steps_done"] == 2


def test_time_budget_linear_schedule_ends_at_zero(tmp_path, train_dataset):
    """WarmupLinearLR on a time budget: the line is re-aimed at the expected last iteration, so the lr reaches
    0 exactly when the time is used up."""
    cfg = tiny_config(max_iter=1000, warmup_iters=0)
    cfg = cfg.replace(solver=dataclasses.replace(cfg.solver, lr_scheduler="WarmupLinearLR"))
    lrs: list[float] = []
    tr = Trainer(cfg, train_dataset(cfg), _opts(tmp_path, time_budget_s=10.0),
                 callbacks=[lambda t: lrs.append(t.optimizer.param_groups[0]["lr"])])
    tr.train_seconds = lambda: float(tr.iter)  # one "second" per iteration: 10 iterations expected
    assert tr.train().iterations == 10
    base = cfg.solver.base_lr
    assert lrs == pytest.approx([base * (1 - (i + 1) / 10) for i in range(10)], abs=1e-12)
    assert tr.scheduler.max_iter == 10
