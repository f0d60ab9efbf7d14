"""Training batches drawn from a seed and the epoch only, one stream per model of an ensemble.

A run's shuffle depends on its seed and the epoch, not on how much of the global random stream
came before (model initialisation, other members): a single run with seed k and member k of an
ensemble (`mpnn.training.ensemble`) see the same batches, and a resumed run sees the batches the
uninterrupted one would have. Lightning calls `set_epoch` before every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class EpochBatches(Sampler[list[int]]):
    """Base of batch samplers whose batches come from `seed` and the epoch (`batches(epoch)`): Lightning
    calls `set_epoch` before each epoch; without it, each new iteration counts as the next epoch."""

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> EpochBatches:
        """Itself: Lightning calls `set_epoch` on a batch sampler's `sampler` before every epoch."""
        return self

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of `epoch`, in the order they are yielded."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        for batch in self.batches(epoch):
            yield batch.tolist()


class ShuffledBatches(EpochBatches):
    """Batches of positions 0..size-1 in a fresh random order every epoch, from `seed` and the epoch."""

    def __init__(self, size: int, batch_size: int, seed: int, drop_last: bool = False):
        super().__init__(seed)
        self.size = size
        self.batch_size = batch_size
        self.drop_last = drop_last

    def batches(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        return [
            order[start : start + self.batch_size] for start in range(0, len(self) * self.batch_size, self.batch_size)
        ]

    def __len__(self) -> int:
        return self.size // self.batch_size if self.drop_last else -(-self.size // self.batch_size)


class MemberBatches(Sampler[list[list[int]]]):
    """One batch from each member's own sampler per step: member k's batches are those its sampler
    alone would give. The samplers must yield the same number of batches per epoch."""

    def __init__(self, samplers: Sequence[Sampler]):
        lengths = {len(sampler) for sampler in samplers}
        if len(lengths) != 1:
            raise ValueError(f"the members' samplers give different numbers of batches per epoch: {sorted(lengths)}")
        self.samplers = list(samplers)

    def set_epoch(self, epoch: int) -> None:
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    @property
    def sampler(self) -> MemberBatches:
        return self

    def __iter__(self) -> Iterator[list[list[int]]]:
        yield from (list(batches) for batches in zip(*self.samplers))

    def __len__(self) -> int:
        return len(self.samplers[0])
