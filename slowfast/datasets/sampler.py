"""Reproducible data order and augmentation, so that a resumed run sees what an uninterrupted
one would.

- :class:`EpochSampler`: the order of an epoch is a function of ``(seed, epoch)`` alone (a
  shuffle drawn from its own generator, never the global RNG); with several processes each rank
  takes every ``world``-th item of that order (the order padded to a multiple of the world
  size, as ``DistributedSampler`` does); ``set_start(n)`` skips the first ``n`` items of this
  rank's share, which is how a run resumed in the middle of an epoch continues with the batches
  it has not seen, in the same order.
- :class:`SeededItems`: each item is produced under RNG states seeded from ``(seed, epoch,
  position of the item in the epoch's order)`` (python ``random``, numpy and torch; the caller's
  states are restored afterwards), so the random scale, crop, flip and clip time of an item do
  not depend on which DataLoader worker makes it, on ``DATA_LOADER.NUM_WORKERS``, on the items
  made before it, or on where the run was resumed.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def item_seed(seed: int, epoch: int, position: int) -> int:
    """The 63-bit seed of the item at ``position`` of epoch ``epoch``'s order."""
    words = [int(seed) & 0xFFFFFFFF, int(epoch) + 1, int(position) + 1]  # entropy: >= 0
    low, high = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).tolist()
    return ((high << 32) | low) >> 1


class EpochSampler(Sampler):
    """Yields ``(dataset index, item seed)`` pairs; see the module docstring.

    Args:
        size: the dataset's length.
        shuffle: shuffle each epoch (train), else the dataset's order.
        seed: ``RNG_SEED``.
        world: number of processes sharing the data.
        rank: this process.
    """

    def __init__(self, size: int, shuffle: bool, seed: int, world: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world} processes")
        self.size = int(size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.world = int(world)
        self.rank = int(rank)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order (and start at its beginning)."""
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, items: int) -> None:
        """Skip the first ``items`` items of this rank's share of the current epoch."""
        self.start = max(0, int(items))

    def order(self) -> List[int]:
        """The epoch's full order (all ranks), padded to a multiple of the world size."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(item_seed(self.seed, self.epoch, -1))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if order and len(order) % self.world:
            pad = self.world - len(order) % self.world
            order += (order * (pad // len(order) + 1))[:pad]
        return order

    def per_rank(self) -> int:
        return -(-self.size // self.world) if self.size else 0

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order = self.order()
        for j in range(self.start, self.per_rank()):
            position = j * self.world + self.rank
            yield order[position], item_seed(self.seed, self.epoch, position)


class SeededItems(Dataset):
    """``dataset`` indexed by ``(index, seed)`` pairs (from :class:`EpochSampler`): the item is
    made under RNG states seeded from ``seed``; plain integer indices pass through unseeded.
    Attributes not found here are the wrapped dataset's (``num_videos``, ``video_names``...)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: Any):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                random.seed(seed)
                np.random.seed(seed % (1 << 32))
                torch.manual_seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
