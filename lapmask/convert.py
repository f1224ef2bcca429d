"""Official LapMask (detectron2) checkpoint -> lapmask checkpoint, strictly.

Our module names mirror the official ones (``backbone.bottom_up.*``, ``backbone.fpn_*``, ``ins_head.*``,
``mask_head.*``), so the mapping is the identity on names; the work is validation: every official key must be
used, every shape must match, and a checkpoint of another config is named as such.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from lapmask.config import PRESETS, LapMaskConfig, get_preset
from lapmask.engine.checkpoint import CheckpointError, save_checkpoint

# detectron2 registers these as non-persistent buffers; tolerate them if a third-party dump includes them.
_IGNORED_KEYS = ("pixel_mean", "pixel_std")


def expected_shapes(cfg: LapMaskConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our model's state_dict for a config (built on the meta device: no memory, no init cost)."""
    from lapmask.model.lapmask import build_model

    with torch.device("meta"):
        model = build_model(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _guess_preset(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    for name in PRESETS:
        if expected_shapes(get_preset(name)) == dict(shapes):
            return name
    return None


def convert_official_state_dict(sd: Mapping[str, Tensor], cfg: LapMaskConfig) -> dict[str, Tensor]:
    """Map an official state_dict onto our model for ``cfg``; raise CheckpointError naming the first mismatches."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if k not in _IGNORED_KEYS}
    exp = expected_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = [k for k in exp if k not in got]
    unused = [k for k in got if k not in exp]
    bad = [f"{k} {got[k]} != {exp[k]}" for k in exp if k in got and got[k] != exp[k]]
    if missing or unused or bad:
        guess = _guess_preset(got)
        hint = (f" The checkpoint matches preset {guess!r}: pass --config {guess}." if guess and guess != cfg.name
                else " Check that --config names the checkpoint's config.")
        parts = [f"{len(v)} {n} (first: {', '.join(v[:5])})" for n, v in
                 (("missing", missing), ("not used", unused), ("with wrong shapes", bad)) if v]
        raise CheckpointError(f"official checkpoint does not match config {cfg.name!r}: " + "; ".join(parts) + "." + hint)
    return {k: sd[k].detach().to("cpu").contiguous() for k in exp}


def read_official_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint (``.pth`` raw dict or detectron2's ``{"model": ...}``, or a ``.pkl`` of numpy
    arrays) without executing code; returns name -> tensor."""
    from lapmask.safe_load import CheckpointFormatError, extract_tensors, read_weights_file

    path = Path(path)
    try:
        return extract_tensors(read_weights_file(path), path)
    except (CheckpointFormatError, FileNotFoundError) as e:
        raise CheckpointError(str(e)) from None


def convert_official_file(src: str | Path, dst: str | Path, cfg: LapMaskConfig) -> Path:
    """``lapmask convert-official SRC DST --config C``: read, convert strictly, write a lapmask checkpoint."""
    state = convert_official_state_dict(read_official_checkpoint(src), cfg)
    return save_checkpoint(dst, state, cfg, {"converted_from": str(src)})
