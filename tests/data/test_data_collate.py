"""Samplers and loaders: determinism, exact resume from an iteration, per-rank sharding, aspect grouping."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lapmask.data.coco import CocoInstanceDataset
from lapmask.data.collate import (InferenceSampler, InfiniteBatchSampler, TrainingSampler, batch_seed,
                                  build_test_loader, build_train_loader, trivial_collate)


def _take(it, n):
    return list(itertools.islice(iter(it), n))


def test_training_sampler_deterministic_and_epoch_permutations():
    a = _take(TrainingSampler(10, seed=3), 40)
    assert a == _take(TrainingSampler(10, seed=3), 40)
    assert a != _take(TrainingSampler(10, seed=4), 40)
    idx = [i for i, _ in a]
    for e in range(4):
        assert sorted(idx[10 * e:10 * e + 10]) == list(range(10))  # every epoch is a permutation
    assert idx[:10] != idx[10:20]  # epochs are reshuffled
    seeds = [s for _, s in a]
    assert len(set(seeds)) == 40  # each sample gets its own augmentation seed
    assert [i for i, _ in _take(TrainingSampler(5, shuffle=False), 7)] == [0, 1, 2, 3, 4, 0, 1]


def test_training_sampler_resume_and_sharding():
    full = _take(TrainingSampler(7, seed=1), 60)
    assert _take(TrainingSampler(7, seed=1, start=13), 20) == full[13:33]
    world = 3
    shards = [_take(TrainingSampler(7, seed=1, rank=r, world_size=world), 20) for r in range(world)]
    for r in range(world):
        assert shards[r] == full[r::world][:20]  # rank r takes positions r, r + W, ...
    # together the ranks consume the global stream without overlap
    merged = [shards[p % world][p // world] for p in range(60)]
    assert merged == full
    # resume on a rank
    assert _take(TrainingSampler(7, seed=1, rank=2, world_size=3, start=5), 10) == shards[2][5:15]


@pytest.mark.parametrize("groups", [None, np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0])])
def test_batch_sampler_resume_equality(groups):
    n = 11
    fresh = _take(InfiniteBatchSampler(n, 3, seed=5, group_ids=groups), 30)
    for k in (0, 1, 7, 19):
        assert _take(InfiniteBatchSampler(n, 3, seed=5, start_iter=k, group_ids=groups), 11) == fresh[k:k + 11]
    if groups is not None:
        for batch in fresh:
            assert len({int(groups[i]) for i, _ in batch}) == 1  # one aspect group per batch
    assert all(len(b) == 3 for b in fresh)


def test_batch_sampler_per_rank():
    g = np.array([0, 1] * 6)
    b0 = _take(InfiniteBatchSampler(12, 2, seed=0, rank=0, world_size=2, group_ids=g), 10)
    b1 = _take(InfiniteBatchSampler(12, 2, seed=0, rank=1, world_size=2, group_ids=g), 10)
    s0 = {s for b in b0 for _, s in b}
    s1 = {s for b in b1 for _, s in b}
    assert not s0 & s1  # different stream positions
    assert b0 != b1


@pytest.mark.parametrize("groups", [None, np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0])])
def test_batch_sampler_size_per_batch(groups):
    """One size seed per batch, a function of (seed, iteration) only: shared by the ranks, stable on resume,
    and the (index, seed) pairs are those of the per-image sampler."""
    plain = _take(InfiniteBatchSampler(11, 3, seed=5, group_ids=groups), 12)
    per_batch = _take(InfiniteBatchSampler(11, 3, seed=5, group_ids=groups, size_per_batch=True), 12)
    for it, (a, b) in enumerate(zip(plain, per_batch)):
        assert [(i, s) for i, s, _ in b] == a
        assert {z for _, _, z in b} == {batch_seed(5, it)}
    assert len({b[0][2] for b in per_batch}) == 12  # a new draw every iteration
    assert _take(InfiniteBatchSampler(11, 3, seed=5, group_ids=groups, size_per_batch=True, start_iter=7), 5) \
        == per_batch[7:12]
    ranks = [_take(InfiniteBatchSampler(12, 2, seed=0, rank=r, world_size=2, group_ids=groups if groups is None
                                        else np.resize(groups, 12), size_per_batch=True), 6) for r in range(2)]
    assert [b[0][2] for b in ranks[0]] == [b[0][2] for b in ranks[1]]  # every rank trains at the same size


def test_train_loader_size_per_batch(make_coco, h):
    """Per-image draws mix short sides inside a batch (padding to the largest); per-batch draws never do, and
    over the batches every size still occurs."""
    ds = _dataset(make_coco, h, n=8)

    def short_sides(loader) -> list[set[int]]:
        return [{min(d["image"].shape[1:]) for d in b} for b in _take(loader, 12)]

    assert any(len(s) > 1 for s in short_sides(build_train_loader(ds, 4, seed=3, aspect_ratio_grouping=False)))
    per_batch = short_sides(build_train_loader(ds, 4, seed=3, aspect_ratio_grouping=False, size_per_batch=True))
    assert all(len(s) == 1 for s in per_batch)
    assert set().union(*per_batch) == {12, 16}


def test_inference_sampler_shards():
    shards = [list(InferenceSampler(10, r, 3)) for r in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert list(InferenceSampler(2, 2, 3)) == []
    assert len(InferenceSampler(10, 0, 3)) == 4


def test_trivial_collate():
    a, b = {"x": 1}, {"x": 2}
    assert trivial_collate([a, None, b]) == [a, b]
    assert trivial_collate([a, None, b])[0] is a


def _dataset(make_coco, h, n=6):
    anns = [h.ann(i, i, 3, [h.rect_poly(1, 1, 6 + i, 7)]) for i in range(1, n + 1)]
    imgs = [(i, 12 + (i % 2) * 4, 16) for i in range(1, n + 1)]
    p, root = make_coco(imgs, anns)
    return CocoInstanceDataset(p, root, is_train=True, min_sizes=(12, 16), max_size=64)


def _sig(batch):
    return [(d["image_id"], tuple(d["image"].shape), int(d["image"].sum()), d["instances"]["boxes"].tolist())
            for d in batch]


def test_train_loader_deterministic_resumable(make_coco, h):
    ds = _dataset(make_coco, h)
    a = [_sig(b) for b in _take(build_train_loader(ds, 2, num_workers=0, seed=9), 8)]
    assert a == [_sig(b) for b in _take(build_train_loader(ds, 2, num_workers=0, seed=9), 8)]
    assert a != [_sig(b) for b in _take(build_train_loader(ds, 2, num_workers=0, seed=10), 8)]
    assert [_sig(b) for b in _take(build_train_loader(ds, 2, seed=9, start_iter=5), 3)] == a[5:8]
    assert [_sig(b) for b in _take(build_train_loader(ds, 2, num_workers=2, seed=9), 8)] == a  # worker-independent
    batch = _take(build_train_loader(ds, 2, seed=9), 1)[0]
    assert isinstance(batch, list) and len(batch) == 2 and isinstance(batch[0]["image"], torch.Tensor)


def test_loaders_distributed_flags(make_coco, h):
    ds = _dataset(make_coco, h, n=3)
    with pytest.raises(ValueError, match="torch.distributed"):
        build_train_loader(ds, 2, distributed=True)
    out = list(build_test_loader(ds, batch_size=2))
    assert [len(b) for b in out] == [2, 1]
    assert [d["image_id"] for b in out for d in b] == ds.image_ids


def _dist_worker(rank: int, world: int, init_file: str, ann: str, root: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ds = CocoInstanceDataset(ann, root, is_train=True, min_sizes=(12,), max_size=64)
        loader = build_train_loader(ds, batch_size=4, seed=2, aspect_ratio_grouping=False)  # 2 per rank
        ids = [[d["image_id"] for d in b] for b in _take(loader, 3)]
        torch.save(ids, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~15 s: two spawned processes with a gloo group
def test_train_loader_shards_under_torch_distributed(make_coco, h, tmp_path):
    ds = _dataset(make_coco, h)
    ann, root = ds.ann_file, str(tmp_path / "images")
    out = str(tmp_path / "ids")
    torch.multiprocessing.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(ann), root, out), nprocs=2)
    per_rank = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    for r in range(2):
        expected = _take(InfiniteBatchSampler(len(ds), 2, seed=2, rank=r, world_size=2), 3)
        assert per_rank[r] == [[ds.image_ids[i] for i, _ in b] for b in expected]
    stream = [i for i, _ in _take(TrainingSampler(len(ds), seed=2), 12)]
    merged = [per_rank[p % 2][p // 2 // 2][(p // 2) % 2] for p in range(12)]
    assert merged == [ds.image_ids[i] for i in stream]  # the ranks split one global stream
