"""Data: COCO-format instance dataset, official transforms, loaders, and the embedded synthetic dataset.

Submodules: ``coco`` (dataset), ``transforms``, ``collate`` (samplers, loaders), ``masks`` (polygon/RLE helpers,
numpy only), ``synth`` (synthetic generator). Names below load lazily, so importing ``lapmask.data.masks`` (as the
torch-free evaluator does) never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CocoInstanceDataset": "coco", "BrokenRecordsWarning": "coco", "EmptyDatasetError": "coco",
    "load_coco_records": "coco", "check_categories": "coco",
    "build_train_loader": "collate", "build_test_loader": "collate", "trivial_collate": "collate",
    "TrainingSampler": "collate", "InferenceSampler": "collate",
    "generate_synthetic": "synth", "ensure_synthetic": "synth", "dataset_statistics": "synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"lapmask.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'lapmask.data' has no attribute {name!r}")
