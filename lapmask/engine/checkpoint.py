"""lapmask checkpoints: atomic writes, safe loading (``weights_only=True``), strict validation against a config.

Format: a dict with ``format`` = "lapmask", ``format_version``, ``lapmask_version``, ``config`` (full config dict),
``class_names``, ``category_ids``, ``model`` (state_dict) and, for training checkpoints, optimizer/scheduler/RNG
state under further keys.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lapmask import __version__
from lapmask.config import LapMaskConfig, load_config

CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says why and what to do."""


def save_checkpoint(path: str | Path, state_dict: dict[str, Tensor], cfg: LapMaskConfig,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file in the same folder + rename): an interrupted write never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "lapmask", "format_version": CHECKPOINT_FORMAT_VERSION, "lapmask_version": __version__,
        "config": cfg.to_dict(), "class_names": list(cfg.class_names), "category_ids": list(cfg.category_ids),
        "model": {k: v.detach().cpu() for k, v in state_dict.items()}, **(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a lapmask checkpoint safely (no arbitrary unpickling). Raises CheckpointError with a fix-it message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt zip, truncated file, unsafe pickle: all "not a checkpoint"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable lapmask checkpoint ({first}). If it is an official LapMask/"
                              "detectron2 checkpoint, convert it first: lapmask convert-official IN OUT --config C")
    if not isinstance(obj, dict) or obj.get("format") != "lapmask" or not isinstance(obj.get("model"), dict):
        hint = (" It looks like a detectron2-format checkpoint: run `lapmask convert-official` first."
                if isinstance(obj, dict) and ("model" in obj or any(str(k).startswith("backbone.") for k in obj))
                else "")
        raise CheckpointError(f"{path} is not a lapmask checkpoint (no 'format': 'lapmask' entry).{hint}")
    if obj.get("format_version", 0) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {obj['format_version']}, newer than this lapmask "
                              f"({CHECKPOINT_FORMAT_VERSION}); upgrade lapmask")
    return obj


def check_state_dict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Strict key and shape check with an error that names the first mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
           for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or bad:
        parts = []
        for what, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", bad)):
            if items:
                parts.append(f"{len(items)} {what} (first: {', '.join(items[:5])})")
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(parts) +
                              ". Is it a checkpoint of another config? Pass the matching --config.")


def load_model(weights: str | Path, config: str | LapMaskConfig | None = None,
               device: str | torch.device = "cpu") -> tuple[nn.Module, LapMaskConfig]:
    """Build the model of a checkpoint and load it strictly.

    ``config`` defaults to the checkpoint's own config; when given, its preset must match the checkpoint's
    (shapes are checked key by key either way).
    """
    from lapmask.model.lapmask import build_model  # lazy: torch model code only when a model is built

    ckpt = load_checkpoint(weights)
    ck_cfg = LapMaskConfig.from_dict(ckpt["config"])
    cfg = ck_cfg if config is None else load_config(config)
    model = build_model(cfg)
    check_state_dict(model, ckpt["model"], f"checkpoint {weights} (config {ck_cfg.name})")
    model.load_state_dict(ckpt["model"], strict=True)
    if config is not None:  # keep the checkpoint's classes and thresholds' provenance visible to the caller
        cfg = cfg.replace(class_names=ck_cfg.class_names, category_ids=ck_cfg.category_ids)
        model.cfg = cfg
    return model.to(device).eval(), cfg
