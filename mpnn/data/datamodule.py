"""QM9DataModule: the cached dataset resident on the training device, batched by index there.

Loaders yield only molecule indices (plus sizes counted on the host); `on_after_batch_transfer`
gathers the batch on the device: a dense `MoleculeBatch` (backend `dense`) or a PyG `Batch`
(backend `pyg`), from the same cache, split and target. Dense batches can be padded less
(`mpnn.data.buckets`): with `batch_parts`, each batch is sorted by size and its parts padded
separately (the same molecules and loss); with `bucketing`, batches are drawn from molecules of
similar size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from mpnn.data.batch import BACKENDS, EnsembleBatch
from mpnn.data.buckets import BucketBatchSampler, SplitBatch, bucket_bounds
from mpnn.data.cache import PackedQM9, ensure_built, load_or_build
from mpnn.data.elements import element_counts as batch_counts
from mpnn.data.features import atom_table
from mpnn.data.graphs import GraphQM9
from mpnn.data.padded import PaddedQM9
from mpnn.data.sampling import MemberBatches, ShuffledBatches
from mpnn.data.spec import DataSpec
from mpnn.data.split import Split, load_or_create_permutation, make_split
from mpnn.recipes import get_recipe
from mpnn.targets import TARGET_NAMES, get_target


class _Indices(Dataset):
    """Molecule indices; `__getitems__` lets the loader fetch a whole batch in one call."""

    def __init__(self, indices: np.ndarray):
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> int:
        return int(self.indices[i])

    def __getitems__(self, positions: list[int] | list[list[int]]) -> np.ndarray | list[np.ndarray]:
        if positions and isinstance(positions[0], list):  # one batch per ensemble member (MemberBatches)
            return [self.indices[member] for member in positions]
        return self.indices[positions]


class QM9DataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str = "data",
        target: str = "mu",
        recipe: str | None = None,
        edges: str = "raw_distance",
        virtual_edges: bool = False,
        explicit_h: bool = True,
        backend: str = "dense",
        batch_size: int = 128,
        eval_batch_size: int = 512,
        subset: int | None = None,
        train_size: int | None = None,
        split_seed: int = 0,
        static_shapes: bool = False,
        bucketing: bool = False,
        buckets: int = 6,
        batch_parts: int = 1,
        shuffle_seeds: Sequence[int] = (0,),
    ):
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"data.{name}={value} must be a positive number of molecules")
        if split_seed < 0:
            raise ValueError(f"data.split_seed={split_seed} must be a non-negative integer")
        if not shuffle_seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shuffle_seeds):
            raise ValueError(f"shuffle_seeds={shuffle_seeds!r} must be whole numbers >= 0, one per run")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend={backend!r}; valid: {', '.join(BACKENDS)}")
        if static_shapes and backend != "dense":
            raise ValueError("data.static_shapes=true pads dense batches; it needs backend=dense")
        if bucketing and backend != "dense":
            raise ValueError("data.bucketing=true pads dense batches less; it needs backend=dense")
        if buckets < 1:
            raise ValueError(f"data.buckets={buckets} must be a positive number of buckets")
        if batch_parts < 1:
            raise ValueError(f"data.batch_parts={batch_parts} must be a positive number of parts")
        if batch_parts > 1 and (backend != "dense" or static_shapes or bucketing):
            raise ValueError(
                f"data.batch_parts={batch_parts} pads the parts of a dense batch to their own sizes: it needs "
                "backend=dense, data.static_shapes=false and data.bucketing=false"
            )
        self.target = get_target(target)
        self.spec = DataSpec(
            target=target,
            recipe=get_recipe(target, recipe).name,
            edges=edges,
            virtual_edges=virtual_edges,
            explicit_h=explicit_h,
        )
        self.backend = backend
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.subset = subset
        self.train_size = train_size
        self.split_seed = split_seed
        self.static_shapes = static_shapes
        self.bucketing = bucketing
        self.buckets = buckets
        self.batch_parts = batch_parts
        self.shuffle_seeds = list(shuffle_seeds)
        # Bucket bounds in atoms (one bucket of n_max without bucketing); static shapes pad a batch to
        # the smallest bound that holds it.
        self.pad_sizes: np.ndarray | None = None
        self.dataset: PaddedQM9 | GraphQM9 | None = None
        self.packed: PackedQM9 | None = None
        self.split: Split | None = None
        self.cache_file: Path | None = None
        self.split_file: Path | None = None

    def prepare_data(self) -> None:
        ensure_built(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        self.packed, self.cache_file = load_or_build(self.root)
        self.dataset = molecule_store(self.packed, self.spec, self.backend)
        self.split_file = self.cache_file.with_name(f"{self.cache_file.stem}_split_seed{self.split_seed}.npy")
        permutation = load_or_create_permutation(self.split_file, len(self.packed), self.split_seed)
        self.split = make_split(permutation, self.subset, self.train_size)
        self.spec = dataclasses.replace(
            self.spec, mean_neighbours=mean_neighbours(self.dataset, self.split.train, self.spec.complete_graph)
        )
        if isinstance(self.dataset, PaddedQM9):
            if self.bucketing:  # bounds fitted on the training split; the last one fits every molecule
                num_atoms = self.dataset.num_atoms.numpy()
                self.pad_sizes = bucket_bounds(num_atoms[self.split.train], self.buckets)
                self.pad_sizes[-1] = self.dataset.n_max
            else:
                self.pad_sizes = np.array([self.dataset.n_max])

    @property
    def target_column(self) -> int:
        """Column of the target in the cache's `targets` (`mpnn.targets.TARGET_NAMES` order)."""
        return TARGET_NAMES.index(self.spec.target)

    def training_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(targets, element counts) of the training split: what the target scaler is fitted on."""
        rows = self.split.train
        return self.packed.targets[rows, self.target_column], element_counts(self.packed)[rows]

    def _collate(self, indices: np.ndarray | list[np.ndarray], split: bool = True) -> tuple | list[tuple]:
        if isinstance(indices, list):  # one batch per ensemble member
            return [self._collate(member, split) for member in indices]
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if isinstance(self.dataset, GraphQM9):
            return index, self.dataset.sizes(index)
        num_atoms = self.dataset.num_atoms[index]
        if split and self.batch_parts > 1:  # sorted by size; each part's atom count, a tuple
            order = torch.argsort(num_atoms, stable=True)
            parts = num_atoms[order].tensor_split(min(self.batch_parts, len(index)))
            return index[order], tuple(int(part.max()) for part in parts)
        n = int(num_atoms.max())
        if self.static_shapes:  # the smallest of the fixed sizes that holds the batch
            n = int(self.pad_sizes[np.searchsorted(self.pad_sizes, n)])
        return index, n

    def _loader(self, indices: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader:
        """Evaluation batches in order; training batches from each run's seed (`shuffle_seeds`, one per
        ensemble member) and the epoch (`mpnn.data.sampling`)."""
        if not shuffle:
            sampler = BatchSampler(SequentialSampler(indices), batch_size, drop_last)
            if self.bucketing:
                sampler = BucketBatchSampler(self.dataset.num_atoms.numpy()[indices], self.pad_sizes, batch_size, False)
        elif self.trainer is not None and self.trainer.world_size > 1:  # Lightning's DistributedSampler shuffles
            if len(self.shuffle_seeds) > 1:
                raise ValueError("an ensemble trains on one device; use ensemble.size > 1 without trainer=ddp")
            sampler = BatchSampler(RandomSampler(indices), batch_size, drop_last)
        else:
            samplers = [self._shuffled(indices, batch_size, drop_last, seed) for seed in self.shuffle_seeds]
            sampler = samplers[0] if len(samplers) == 1 else MemberBatches(samplers)
        # Pinned index tensors make the host-to-device copy asynchronous: a pageable copy would
        # synchronise with the GPU every step and stop the CPU from queueing work ahead.
        return DataLoader(
            _Indices(indices), batch_sampler=sampler, collate_fn=self._collate, pin_memory=torch.cuda.is_available()
        )

    def _shuffled(self, indices: np.ndarray, batch_size: int, drop_last: bool, seed: int) -> Sampler:
        if self.bucketing:
            num_atoms = self.dataset.num_atoms.numpy()[indices]
            return BucketBatchSampler(num_atoms, self.pad_sizes, batch_size, True, drop_last, seed)
        return ShuffledBatches(len(indices), batch_size, seed, drop_last)

    def train_dataloader(self) -> DataLoader:
        if self.bucketing and self.trainer is not None and self.trainer.world_size > 1:
            raise ValueError("data.bucketing=true batches on one device; use it without trainer=ddp")
        # With static shapes, also a static batch size: the last partial batch is dropped
        # (a different random 0..batch_size-1 molecules each epoch).
        drop_last = self.static_shapes and len(self.split.train) > self.batch_size
        # Lightning's overfit_batches (debug=overfit) trains on the same first batches every epoch.
        overfit = self.trainer is not None and bool(self.trainer.overfit_batches)
        return self._loader(self.split.train, self.batch_size, shuffle=not overfit, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, self.eval_batch_size, shuffle=False)

    def batch(
        self, indices: np.ndarray | torch.Tensor, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ):
        """A batch of the given molecules (dataset rows) on `device`, features and coordinates in
        `dtype`, for diagnostics and notebooks."""
        index, sizes = self._collate(np.asarray(indices), split=False)
        return self._gather(index.to(device), sizes, dtype)

    def on_after_batch_transfer(self, batch: tuple | list[tuple], dataloader_idx: int):
        if isinstance(batch, list):  # one batch per ensemble member
            return EnsembleBatch([self.on_after_batch_transfer(member, dataloader_idx) for member in batch])
        index, sizes = batch
        return self._gather(index, sizes, self._float_dtype())

    def _float_dtype(self) -> torch.dtype:
        """float64 for a float64 model (`trainer.precision=64-true`), else float32 (also under bf16-mixed,
        whose autocast casts inside the model). Batches are built in it rather than cast afterwards: edge
        features computed in float32 and cast would differ from the dense path's, computed in the model."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return torch.float64 if module is not None and module.dtype == torch.float64 else torch.float32

    def _gather(self, index: torch.Tensor, sizes, dtype: torch.dtype):
        if isinstance(self.dataset, PaddedQM9) and isinstance(sizes, tuple):
            parts = index.tensor_split(len(sizes))
            return SplitBatch([self.dataset.gather(part, n, dtype) for part, n in zip(parts, sizes)])
        return self.dataset.gather(index, sizes, dtype)


def molecule_store(packed: PackedQM9, spec: DataSpec, backend: str) -> PaddedQM9 | GraphQM9:
    """The molecules of `packed` as the backend batches them, with the target of `spec`."""
    y = packed.targets[:, TARGET_NAMES.index(spec.target)]
    table = atom_table(packed, spec.explicit_h)
    return PaddedQM9(table, y) if backend == "dense" else GraphQM9(table, y, packed.index, spec)


def mean_neighbours(store: PaddedQM9 | GraphQM9, rows: np.ndarray, complete_graph: bool) -> float:
    """Incoming edges per atom over the molecules `rows` of a store (the training split, for
    `model.message.sum_scale=auto`): every other atom on a complete graph, else the bonded ones."""
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    atoms = store.num_atoms[rows].double()
    edges = atoms * (atoms - 1) if complete_graph else store.num_bonds[rows].double()
    return float(edges.sum() / atoms.sum())


def element_counts(packed: PackedQM9) -> np.ndarray:
    """(molecules, MAX_Z + 1) count of each element in each molecule, as the scaler counts a batch's."""
    molecule = torch.from_numpy(np.repeat(np.arange(len(packed)), packed.num_atoms.astype(np.int64)))
    z = torch.from_numpy(packed.z.astype(np.int64))
    return batch_counts(z, molecule, len(packed), torch.from_numpy(packed.num_h)).numpy()
