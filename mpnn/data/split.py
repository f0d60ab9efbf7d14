"""Seeded train/validation/test split, saved next to the cache and reused.

The split file holds a permutation of all molecules for one seed. A `subset` of N molecules
takes the first N of that permutation and splits them in the paper's proportions, so subsets of
one seed nest and the full-data split is always 10,000 / 10,000 / rest. A `train_size` of N keeps
validation and test as they are and trains on the first N training molecules (the paper's study
of training-set size); smaller training sets are nested in larger ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VALIDATION_SIZE = 10_000
TEST_SIZE = 10_000


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def load_or_create_permutation(path: Path, num_molecules: int, seed: int) -> np.ndarray:
    if path.exists():
        permutation = np.load(path)
        if len(permutation) != num_molecules or not np.array_equal(np.sort(permutation), np.arange(num_molecules)):
            raise RuntimeError(
                f"split file {path} does not match the dataset ({num_molecules} molecules); "
                "move it away to create a new split"
            )
        return permutation
    permutation = np.random.default_rng(seed).permutation(num_molecules)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, permutation)
    tmp.replace(path)
    return permutation


def make_split(permutation: np.ndarray, subset: int | None = None, train_size: int | None = None) -> Split:
    total = len(permutation)
    if subset is not None and not 10 <= subset <= total:
        raise ValueError(f"data.subset={subset} is out of range; use 10..{total} or null for all molecules")
    n = subset or total
    n_val = round(n * VALIDATION_SIZE / total)
    n_test = round(n * TEST_SIZE / total)
    chosen = permutation[:n]
    train = chosen[n_val + n_test :]
    if train_size is not None:
        if not 1 <= train_size <= len(train):
            raise ValueError(
                f"data.train_size={train_size} is out of range; use 1..{len(train)} (the training split) "
                "or null for all of it"
            )
        train = train[:train_size]
    return Split(train=train, val=chosen[:n_val], test=chosen[n_val : n_val + n_test])
