"""Dense batches padded only as far as their molecules need: split batches and size buckets.

A dense batch pads every molecule to the largest one in it. QM9 molecules (explicit hydrogens)
have 3 to 29 atoms, 18 on average, so random batches of 128 are nearly always padded to 27-29
atoms: about 1.5x the work of the atoms themselves (atom work grows with n, pair work with n^2).
Two ways to pad less:

- `SplitBatch` (`data.batch_parts=k`): a random batch, sorted by size and cut into k parts, each
  padded to its own largest molecule. The model sees each molecule alone (nothing couples the
  molecules of a batch), so the loss, its gradient and the training run are those of the whole
  batch, up to floating-point summation order. With k = 4 at batch 128, the padded work of QM9
  drops from 1.54x to 1.13x that of the atoms themselves. Shapes vary, so it is for eager runs.
- Size buckets (`data.bucketing=true`), below: every batch from one size range, static shapes
  possible (one per bucket, for compiled and CUDA-graph steps), padded work 1.05x. But batches
  of similar molecules are not random samples of the data, and training converges more slowly
  (docs/PERFORMANCE.md, "Accuracy within noise").

Buckets are contiguous ranges of atom counts. `bucket_bounds` places them so that the padded
work of the training split is smallest. Every epoch, `BucketBatchSampler` shuffles the molecules
of each bucket and cuts them into full batches; the remainders of all buckets (fewer than one
batch each) are pooled in size order and cut into batches too; then the order of all batches is
shuffled. Every molecule appears once per epoch, except that with `drop_last` (static shapes)
fewer than `batch_size` molecules, drawn at random from the pooled remainders, are left out: a
different set every epoch.

With static shapes a batch is padded to the upper bound of the bucket of its largest molecule,
so there are as many batch shapes as buckets (one compiled graph, one CUDA graph each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.sampling import EpochBatches

# Padded work of a molecule slot in a batch padded to n atoms: n atom slots plus n^2 pair slots
# weighted by the default edge network's FLOPs per pair relative to per atom (16.0 and 36.6
# GFLOP per step of 128 x 29 atoms, `mpnn-benchmark flops`: 1/66 of an atom slot).
PAIR_WEIGHT = 1 / 66


@dataclass
class SplitBatch:
    """One batch as size-sorted parts, each a `MoleculeBatch` padded to its own largest molecule.

    The training module computes the batch's mean loss part by part (`RegressionModule.loss`).
    """

    parts: list[MoleculeBatch]

    @property
    def num_graphs(self) -> int:
        return sum(part.num_graphs for part in self.parts)

    @property
    def y(self) -> torch.Tensor:
        return torch.cat([part.y for part in self.parts])


def bucket_bounds(num_atoms: np.ndarray, buckets: int) -> np.ndarray:
    """Upper atom counts of at most `buckets` contiguous size ranges that minimise the padded work of
    molecules with `num_atoms` atoms, each padded to the upper bound of its range (ascending)."""
    if buckets < 1:
        raise ValueError(f"data.buckets={buckets} must be a positive number of buckets")
    counts = np.bincount(np.asarray(num_atoms, dtype=np.int64))
    sizes = np.flatnonzero(counts)
    k = min(buckets, len(sizes))
    cost = sizes + PAIR_WEIGHT * sizes.astype(np.float64) ** 2
    covered = np.concatenate([[0], np.cumsum(counts[sizes])])  # molecules with size index < j
    # best[b, j]: least padded work of the sizes[:j] in b buckets; first[b, j]: where the last bucket starts.
    best = np.full((k + 1, len(sizes) + 1), np.inf)
    best[0, 0] = 0.0
    first = np.zeros((k + 1, len(sizes) + 1), dtype=np.int64)
    for b in range(1, k + 1):
        for j in range(1, len(sizes) + 1):
            options = best[b - 1, :j] + (covered[j] - covered[:j]) * cost[j - 1]
            first[b, j] = int(np.argmin(options))
            best[b, j] = options[first[b, j]]
    bounds, j = [], len(sizes)
    for b in range(k, 0, -1):
        bounds.append(int(sizes[j - 1]))
        j = first[b, j]
    return np.array(bounds[::-1])


class BucketBatchSampler(EpochBatches):
    """Batches of positions into `num_atoms`, each from molecules of similar size (module docstring).

    `shuffle=False` (evaluation) orders molecules by size and keeps batches in that order. With
    `shuffle`, the order depends only on `seed` and the epoch: Lightning calls `set_epoch` before
    each epoch; without it, each new iteration counts as the next epoch.
    """

    def __init__(
        self,
        num_atoms: np.ndarray,
        bounds: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ):
        self.num_atoms = np.asarray(num_atoms)
        self.bounds = np.asarray(bounds)
        if len(self.num_atoms) and self.num_atoms.max() > self.bounds[-1]:
            raise ValueError(f"a molecule of {self.num_atoms.max()} atoms is larger than every bucket {self.bounds}")
        self.bucket = np.searchsorted(self.bounds, self.num_atoms)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        super().__init__(seed)

    def batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        full, remainders = [], []
        for bucket in range(len(self.bounds)):
            members = np.flatnonzero(self.bucket == bucket)
            members = rng.permutation(members) if self.shuffle else members[np.argsort(self.num_atoms[members])]
            cut = len(members) - len(members) % self.batch_size
            full += np.split(members[:cut], cut // self.batch_size) if cut else []
            remainders.append(members[cut:])
        pooled = np.concatenate(remainders)
        if self.drop_last:  # a random few of the remainders (the largest would be left out every epoch)
            pooled = rng.permutation(pooled)[len(pooled) % self.batch_size :]
        pooled = pooled[np.argsort(self.num_atoms[pooled], kind="stable")]
        batches = full + [pooled[i : i + self.batch_size] for i in range(0, len(pooled), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        counts = np.bincount(self.bucket, minlength=len(self.bounds))
        full = int((counts // self.batch_size).sum())
        pooled = int((counts % self.batch_size).sum())
        return full + (pooled // self.batch_size if self.drop_last else -(-pooled // self.batch_size))
