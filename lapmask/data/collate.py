"""Samplers, collation and loaders (detectron2 ``TrainingSampler`` / ``InferenceSampler`` / aspect grouping).

Training stream: the infinite sequence ``perm_0 + perm_1 + ...`` of dataset indices, ``perm_e`` a permutation
seeded by ``(seed, e)``; rank r of W takes stream positions r, r + W, r + 2W, ... (detectron2 shards the same
way). Every sample also carries its own augmentation seed, a hash of ``(seed, stream position)``, so batches
and their augmentations are a pure function of (seed, iteration, rank, world size) -- independent of the number
of workers, and resumable exactly from an iteration count (``start_iter``).

Collation keeps the list of items unchanged: the model pads the batch to its canvas (multiple of 32).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def trivial_collate(batch: Sequence[Any]) -> list[Any]:
    """The items as a list (None items, i.e. test images that failed to load, are dropped)."""
    return [b for b in batch if b is not None]


def sample_seed(seed: int, position: int) -> int:
    """Augmentation seed of the sample at a global stream position (64-bit, well mixed)."""
    return int(np.random.SeedSequence([int(seed), int(position)]).generate_state(1, np.uint64)[0])


def batch_seed(seed: int, iteration: int) -> int:
    """Seed of the short-side draw shared by the batch of ``iteration`` (the same on every rank; 64-bit)."""
    return int(np.random.SeedSequence([int(seed), int(iteration), 1]).generate_state(1, np.uint64)[0])


def dist_rank_world(distributed: bool | None) -> tuple[int, int]:
    """(rank, world size). ``None`` = use torch.distributed when it is initialised; True requires it."""
    ready = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed and not ready:
        raise ValueError("distributed=True needs torch.distributed initialised (init_process_group) first")
    if (distributed is None or distributed) and ready:
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TrainingSampler(Sampler):
    """Infinite per-rank stream of ``(index, augmentation_seed)``.

    Args:
        size: dataset length.
        seed: shuffling and augmentation seed (same on every rank).
        shuffle: permute each epoch (else 0..size-1 repeated).
        rank, world_size: shard of the stream taken by this process.
        start: how many of this rank's samples to skip (resume: iteration * per-rank batch size).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 start: int = 0):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty dataset (size={size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.size, self.seed, self.shuffle = int(size), int(seed), shuffle
        self.rank, self.world_size, self.start = rank, world_size, int(start)
        self._epoch, self._perm = -1, np.arange(0)

    def index_at(self, position: int) -> int:
        """Dataset index at a global stream position."""
        epoch, i = divmod(position, self.size)
        if not self.shuffle:
            return i
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size)
        return int(self._perm[i])

    def positions(self) -> Iterator[tuple[int, int]]:
        """This rank's ``(index, global stream position)`` pairs from ``start`` on."""
        p = self.start * self.world_size + self.rank
        while True:
            yield self.index_at(p), p
            p += self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i, p in self.positions():
            yield i, sample_seed(self.seed, p)


class InfiniteBatchSampler(Sampler):
    """Per-rank batches of ``batch_size`` ``(index, seed)`` pairs from a ``TrainingSampler`` stream.

    With ``group_ids`` (one int per dataset item, e.g. landscape 0 / portrait 1) a batch holds one group only,
    emitted when its bucket fills (detectron2 ``AspectRatioGroupedDataset``); resuming then replays the integer
    stream from the start (cheap: no images are read). Without grouping, resuming is O(1).
    With ``size_per_batch`` every item is ``(index, seed, batch_seed(seed, iteration))``: the dataset draws the
    short side of all images of the batch from that one seed (``InputConfig.size_per_batch``).
    """

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_iter: int = 0, group_ids: Sequence[int] | np.ndarray | None = None, shuffle: bool = True,
                 size_per_batch: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle
        self.size_per_batch = size_per_batch
        self.rank, self.world_size, self.start_iter = rank, world_size, int(start_iter)
        g = None if group_ids is None else np.asarray(group_ids)
        if g is not None and len(g) != size:
            raise ValueError(f"{len(g)} group ids for a dataset of {size}")
        self.group_ids = None if g is None or len(np.unique(g)) <= 1 else g  # one group = plain chunking

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        for iteration, batch in enumerate(self._batches(), start=self.start_iter):
            if self.size_per_batch:
                b = batch_seed(self.seed, iteration)
                batch = [(i, s, b) for i, s in batch]
            yield batch

    def _batches(self) -> Iterator[list[tuple[int, int]]]:
        """``(index, seed)`` batches from iteration ``start_iter`` on."""
        if self.group_ids is None:
            stream = iter(TrainingSampler(self.size, self.seed, self.shuffle, self.rank, self.world_size,
                                          start=self.start_iter * self.batch_size))
            while True:
                yield [next(stream) for _ in range(self.batch_size)]
        sampler = TrainingSampler(self.size, self.seed, self.shuffle, self.rank, self.world_size)
        groups = self.group_ids.tolist()
        buckets: dict[int, list[tuple[int, int]]] = {}
        emitted = 0
        for item in sampler.positions():  # seeds are only computed for batches that are yielded
            bucket = buckets.setdefault(groups[item[0]], [])
            bucket.append(item)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                bucket.clear()
                emitted += 1
                if emitted > self.start_iter:
                    yield [(i, sample_seed(self.seed, p)) for i, p in batch]


class InferenceSampler(Sampler):
    """Contiguous shard of 0..size-1 for this rank (detectron2 ``InferenceSampler``; shards differ by <= 1)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        shard, left = divmod(size, world_size)
        sizes = [shard + int(r < left) for r in range(world_size)]
        self.begin = sum(sizes[:rank])
        self.end = min(self.begin + sizes[rank], size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.begin, self.end))

    def __len__(self) -> int:
        return self.end - self.begin


def _worker_init(worker_id: int) -> None:
    # Augmentations use per-sample seeds; seed the global generators anyway for any third-party randomness.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    import random
    random.seed(s)


def build_train_loader(dataset: Any, batch_size: int, num_workers: int = 0, seed: int = 0,
                       distributed: bool | None = None, start_iter: int = 0,
                       aspect_ratio_grouping: bool = True, size_per_batch: bool = False) -> DataLoader:
    """Infinite training loader yielding lists of items (this rank's share of the batch).

    Args:
        batch_size: images per iteration over ALL ranks (detectron2 IMS_PER_BATCH); each rank gets
            ``batch_size // world_size``.
        seed: shuffling/augmentation seed (same on every rank).
        distributed: shard by torch.distributed rank (None = when it is initialised).
        start_iter: resume: the first batch is the one iteration ``start_iter`` would have seen.
        aspect_ratio_grouping: batches hold only landscape or only portrait images (detectron2 default).
        size_per_batch: one training short side per batch instead of per image (``InputConfig.size_per_batch``).
    """
    rank, world = dist_rank_world(distributed)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}")
    groups = dataset.aspect_groups() if aspect_ratio_grouping and hasattr(dataset, "aspect_groups") else None
    bsampler = InfiniteBatchSampler(len(dataset), batch_size // world, seed, rank, world, start_iter, groups,
                                    size_per_batch=size_per_batch)
    # No persistent workers: the infinite sampler means one iterator per run anyway, and a loader that keeps its
    # iterator alive keeps its worker processes alive after an interrupted run (they hung interpreter exit).
    return DataLoader(dataset, batch_sampler=bsampler, num_workers=num_workers, collate_fn=trivial_collate,
                      worker_init_fn=_worker_init, persistent_workers=False)


def build_test_loader(dataset: Any, batch_size: int = 1, num_workers: int = 0,
                      distributed: bool | None = None) -> DataLoader:
    """Sequential loader over this rank's contiguous shard; batches are lists (possibly shorter: unreadable
    images are dropped, see ``CocoInstanceDataset``)."""
    rank, world = dist_rank_world(distributed)
    return DataLoader(dataset, sampler=InferenceSampler(len(dataset), rank, world), batch_size=batch_size,
                      num_workers=num_workers, collate_fn=trivial_collate, drop_last=False)
