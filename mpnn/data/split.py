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

from mpnn.files import check_writable, lock_for, write_atomically

VALIDATION_SIZE = 10_000
TEST_SIZE = 10_000


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def load_or_create_permutation(path: Path, num_molecules: int, seed: int) -> np.ndarray:
    """The permutation saved in `path`, created from `seed` first if there is none (by one process:
    others started at the same time wait for it and read the same split)."""
    if path.exists():  # no lock to read: the data root may be a shared, read-only folder
        return _load_permutation(path, num_molecules)
    check_writable(path.parent, "data.root")
    with lock_for(path):
        if path.exists():
            return _load_permutation(path, num_molecules)
        permutation = np.random.default_rng(seed).permutation(num_molecules)
        write_atomically(path, lambda file: np.save(file, permutation))
    return permutation


def _load_permutation(path: Path, num_molecules: int) -> np.ndarray:
    advice = "move it away to create a new split"
    with open(path, "rb") as file:
        start = file.read(len(np.lib.format.MAGIC_PREFIX))
    if start != np.lib.format.MAGIC_PREFIX:
        found = f"it starts with {start!r}" if start else "it is empty"
        raise RuntimeError(f"split file {path} is not a .npy file ({found}); {advice}")
    try:
        permutation = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise RuntimeError(f"split file {path} is unreadable ({type(error).__name__}: {error}); {advice}") from None
    if (
        permutation.dtype.kind not in "iu"
        or permutation.shape != (num_molecules,)
        or not np.array_equal(np.sort(permutation), np.arange(num_molecules))
    ):
        raise RuntimeError(
            f"split file {path} does not match the dataset: it holds {permutation.dtype} values of shape "
            f"{permutation.shape}, not a permutation of the {num_molecules} molecules; {advice}"
        )
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
