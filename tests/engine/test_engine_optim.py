"""Optimiser param groups, WarmupMultiStepLR values and the element-wise gradient clamp (spec 5.4)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from engine_utils import tiny_config
from torch import nn

from lapmask.config import get_preset
from lapmask.engine.optim import (
    ADAMW_WEIGHT_DECAY,
    WarmupLinearLR,
    WarmupMultiStepLR,
    build_lr_scheduler,
    build_optimizer,
    clamp_gradients,
    param_groups,
)
from lapmask.model.lapmask import build_model


def _norm_param_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm))
            for p in m.parameters(recurse=False)}


def test_sgd_groups_no_decay_on_norms_and_frozen_left_out():
    cfg = tiny_config()
    cfg = cfg.replace(backbone=dataclasses.replace(cfg.backbone, freeze_at=2),  # stem + res2 frozen
                      solver=dataclasses.replace(cfg.solver, optimizer="SGD"))  # the official optimiser
    model = build_model(cfg)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.SGD)
    norm_ids = _norm_param_ids(model)
    assert norm_ids, "the model should have GroupNorm parameters"
    # the trainable backbone BatchNorms (lite backbone.norm "BN") are norms too: no decay
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    seen = []
    for g in opt.param_groups:
        assert g["momentum"] == 0.9 and g["nesterov"] is False and g["lr"] == cfg.solver.base_lr
        for p in g["params"]:
            seen.append(id(p))
            want = 0.0 if id(p) in norm_ids else cfg.solver.weight_decay
            assert g["weight_decay"] == want
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    frozen = [p for n, p in model.named_parameters() if n.startswith("backbone.bottom_up.res2")]
    assert frozen and not any(id(p) in seen for p in frozen)
    # biases keep the base lr and the ordinary decay (BIAS_LR_FACTOR 1, WEIGHT_DECAY_BIAS = WEIGHT_DECAY)
    conv_bias = model.ins_head.cate_pred.bias
    assert any(conv_bias is p and g["weight_decay"] == cfg.solver.weight_decay and g["lr"] == cfg.solver.base_lr
               for g in opt.param_groups for p in g["params"])


def test_shared_parameter_listed_once_and_bias_lr_factor():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.GroupNorm(1, 3), lin)
    groups = param_groups(model, 1e-4, 0.0, base_lr=0.1, bias_lr_factor=2.0)
    names = [n for g in groups for n in g["param_names"]]
    assert len(names) == 4  # weight, bias of the shared Linear once; GroupNorm weight, bias
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert by_name["0.bias"]["lr"] == pytest.approx(0.2) and "lr" not in by_name["0.weight"]
    assert by_name["1.weight"]["weight_decay"] == 0.0 and by_name["0.weight"]["weight_decay"] == 1e-4


def test_adamw_official_settings():
    cfg = tiny_config(optimizer="ADAMW", base_lr=1e-4, weight_decay=1e-4)
    model = build_model(cfg)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    norm_ids = _norm_param_ids(model)
    for g in opt.param_groups:
        assert g["eps"] == cfg.solver.adamw_eps == 1e-3 and g["lr"] == 1e-4
        for p in g["params"]:
            assert g["weight_decay"] == (0.0 if id(p) in norm_ids else ADAMW_WEIGHT_DECAY)
    other = cfg.replace(solver=dataclasses.replace(cfg.solver, adamw_eps=1e-8))
    assert {g["eps"] for g in build_optimizer(model, other).param_groups} == {1e-8}
    with pytest.raises(ValueError, match="SGD"):
        build_optimizer(model, tiny_config(optimizer="LAMB"))


def _lrs(sched: WarmupMultiStepLR, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def test_warmup_multistep_values_by_hand():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.02)
    sched = WarmupMultiStepLR(opt, steps=(20, 30, 1000), gamma=0.1, warmup_iters=10, warmup_factor=0.001,
                              max_iter=40)
    lrs = _lrs(sched, 40)
    assert sched.steps == [20, 30]  # 1000 > max_iter is ignored, as detectron2 does
    hand = {0: 0.02 * 0.001, 5: 0.02 * (0.001 * 0.5 + 0.5), 9: 0.02 * (0.001 * 0.1 + 0.9), 10: 0.02, 19: 0.02,
            20: 0.002, 29: 0.002, 30: 0.0002, 39: 0.0002}
    for it, lr in hand.items():
        assert lrs[it] == pytest.approx(lr, rel=1e-12), it


def test_scheduler_state_roundtrip_and_set_schedule():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    a = WarmupMultiStepLR(opt, steps=(5,), warmup_iters=2, max_iter=10)
    _lrs(a, 4)
    state = a.state_dict()
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    b = WarmupMultiStepLR(opt2, steps=(), warmup_iters=2, max_iter=10)
    b.load_state_dict(state)
    assert b.steps == [5] and _lrs(a, 4) == _lrs(b, 4) == [1.0, 0.1, 0.1, 0.1]
    b.set_schedule(20, [5, 9])  # time-budget runs insert a step at the current iteration (8)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    assert _lrs(b, 2) == pytest.approx([0.1, 0.01])
    with pytest.raises(ValueError, match="increasing"):
        b.set_schedule(20, [9, 5])


def test_warmup_linear_values_by_hand():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.02)
    sched = WarmupLinearLR(opt, steps=(5,), warmup_iters=10, warmup_factor=0.001, max_iter=40)
    lrs = _lrs(sched, 41)
    hand = {0: 0.02 * 0.001, 5: 0.02 * (0.001 * 0.5 + 0.5) * (1 - 5 / 40), 10: 0.02 * 0.75, 20: 0.01,
            39: 0.02 / 40, 40: 0.0}  # steps are ignored
    for it, lr in hand.items():
        assert lrs[it] == pytest.approx(lr, rel=1e-12, abs=1e-15), it
    sched.set_schedule(80, ())  # a longer horizon re-aims the line from the current iteration on
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * (1 - 41 / 80))


def test_build_lr_scheduler_from_config():
    cfg = get_preset("R50_3x")
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.solver.base_lr)
    sched = build_lr_scheduler(opt, cfg)
    assert sched.steps == [420_000, 500_000] and sched.warmup_iters == 500 and sched.warmup_factor == 0.001
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005 * 0.001)
    lin = cfg.replace(solver=dataclasses.replace(cfg.solver, lr_scheduler="WarmupLinearLR"))
    assert type(build_lr_scheduler(opt, lin)) is WarmupLinearLR
    with pytest.raises(ValueError, match="WarmupLinearLR"):
        build_lr_scheduler(opt, cfg.replace(solver=dataclasses.replace(cfg.solver, lr_scheduler="Cosine")))


def test_clamp_by_value_elementwise():
    a = nn.Parameter(torch.zeros(4))
    b = nn.Parameter(torch.zeros(2))
    c = nn.Parameter(torch.zeros(1))  # no gradient: skipped
    a.grad = torch.tensor([-100.0, -35.0, 3.0, 1e6])
    b.grad = torch.tensor([34.9, -35.1])
    clamp_gradients([a, b, c], 35.0)
    assert torch.equal(a.grad, torch.tensor([-35.0, -35.0, 3.0, 35.0]))
    assert torch.equal(b.grad, torch.tensor([34.9, -35.0]))
    assert c.grad is None
    b.grad = torch.tensor([1e9, -1e9])
    clamp_gradients([b], 0.0)  # disabled
    assert torch.equal(b.grad, torch.tensor([1e9, -1e9]))


@pytest.mark.parametrize("optimizer", ["SGD", "ADAMW"])
def test_fused_optimizer_matches_the_for_loop_update(optimizer):
    """build_optimizer picks torch's fused kernels on CPU; five steps of them equal the plain for-loop update
    (same formula, different kernel) to float32 rounding, decay groups and the official eps included."""
    cfg = tiny_config(optimizer=optimizer, base_lr=1e-2 if optimizer == "SGD" else 1e-3, weight_decay=1e-4)
    torch.manual_seed(0)
    a = build_model(cfg)
    b = build_model(cfg)
    b.load_state_dict(a.state_dict())
    fused = build_optimizer(a, cfg)
    assert fused.defaults["fused"] is True
    plain_cls = torch.optim.SGD if optimizer == "SGD" else torch.optim.AdamW
    plain = plain_cls([{k: v for k, v in g.items() if k not in ("params", "fused", "foreach")}
                       | {"params": [dict(b.named_parameters())[n] for n in _names(a, g["params"])]}
                       for g in fused.param_groups], foreach=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        for pa, pb in zip(a.parameters(), b.parameters()):
            g = torch.randn(pa.shape, generator=gen)
            pa.grad, pb.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    with torch.no_grad():
        diffs = [float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), b.parameters())]
        moved = [float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), build_model(cfg).parameters())]
    assert max(diffs) < 1e-6
    assert max(moved) > 1e-3  # the parameters did move (the comparison is not between two untouched models)


def _names(model: nn.Module, params: list[torch.Tensor]) -> list[str]:
    ids = {id(p): n for n, p in model.named_parameters()}
    return [ids[id(p)] for p in params]
