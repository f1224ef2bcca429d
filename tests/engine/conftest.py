"""Fixtures for the engine tests: a tiny synthetic dataset and a tiny (fast) variant of the lite_R18 config."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lapmask.config import LapMaskConfig


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """4 train + 3 val synthetic 64x64 images (COCO layout: annotations/, train/, val/)."""
    from lapmask.data.synth import generate_synthetic

    d = tmp_path_factory.mktemp("synth")
    generate_synthetic(d, 4, 3, 64, seed=0)
    return d


@pytest.fixture
def train_dataset(synth_dir):
    from lapmask.data.coco import CocoInstanceDataset

    def make(cfg: LapMaskConfig):
        return CocoInstanceDataset.from_config(cfg, synth_dir / "annotations" / "instances_train.json",
                                               synth_dir / "train", is_train=True)
    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """The CPU is shared: one intra-op thread keeps tests fair (and deterministic)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
