"""QM9DataModule: the cached dataset resident on the training device, batched by index there.

Loaders yield only molecule indices (plus the batch's largest molecule size, read on the CPU);
`on_after_batch_transfer` gathers the padded tensors on the device. The edge representation
(`edges=...`) is an EdgeFeaturizer handed to the model, which builds edges on the device.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mpnn.data import cache
from mpnn.data.batch import NODE_FEATURES, MoleculeBatch, PaddedQM9
from mpnn.data.edges import EdgeFeaturizer
from mpnn.data.split import Split, load_or_create_permutation, make_split
from mpnn.targets import TARGET_NAMES, get_target


class _Indices(Dataset):
    """Molecule indices; `__getitems__` lets the loader fetch a whole batch in one call."""

    def __init__(self, indices: np.ndarray):
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> int:
        return int(self.indices[i])

    def __getitems__(self, positions: list[int]) -> np.ndarray:
        return self.indices[positions]


class QM9DataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str = "data",
        target: str = "mu",
        edges: str = "raw_distance",
        virtual_edges: bool = False,
        explicit_h: bool = True,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        subset: int | None = None,
        train_size: int | None = None,
        split_seed: int = 0,
        static_shapes: bool = False,
    ):
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"data.{name}={value} must be a positive number of molecules")
        if split_seed < 0:
            raise ValueError(f"data.split_seed={split_seed} must be a non-negative integer")
        self.target = get_target(target)
        self.target_column = TARGET_NAMES.index(target)
        self.edge_featurizer = EdgeFeaturizer(edges, virtual_edges)
        self.root = Path(root)
        self.explicit_h = explicit_h
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.subset = subset
        self.train_size = train_size
        self.split_seed = split_seed
        self.static_shapes = static_shapes
        self.dataset: PaddedQM9 | None = None
        self.split: Split | None = None
        self.cache_file: Path | None = None
        self.split_file: Path | None = None

    def prepare_data(self) -> None:
        cache.ensure_built(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        packed, self.cache_file = cache.load_or_build(self.root)
        self.dataset = PaddedQM9(packed, self.target_column, self.explicit_h)
        self.split_file = self.cache_file.with_name(f"{self.cache_file.stem}_split_seed{self.split_seed}.npy")
        permutation = load_or_create_permutation(self.split_file, len(packed), self.split_seed)
        self.split = make_split(permutation, self.subset, self.train_size)

    # Target statistics of the training split only: they become the model's scaler buffers.
    def target_statistics(self) -> tuple[float, float]:
        y = self.dataset.y[torch.from_numpy(self.split.train)]
        return float(y.mean()), float(y.std())

    @property
    def num_node_features(self) -> int:
        return self.dataset.num_node_features if self.dataset is not None else len(NODE_FEATURES)

    def model_inputs(self) -> dict:
        """What a model needs to know about the data to be built: feature count and edge builder."""
        return {"node_features": self.num_node_features, "edges": self.edge_featurizer}

    def _collate(self, indices: np.ndarray) -> tuple[torch.Tensor, int]:
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        n = self.dataset.n_max if self.static_shapes else int(self.dataset.num_atoms[index].max())
        return index, n

    def _loader(self, indices: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader:
        # Pinned index tensors make the host-to-device copy asynchronous: a pageable copy would
        # synchronise with the GPU every step and stop the CPU from queueing work ahead.
        return DataLoader(
            _Indices(indices),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            collate_fn=self._collate,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        # With static shapes, also a static batch size: the last partial batch is dropped
        # (a different random 0..batch_size-1 molecules each epoch).
        drop_last = self.static_shapes and len(self.split.train) > self.batch_size
        return self._loader(self.split.train, self.batch_size, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, self.eval_batch_size, shuffle=False)

    def batch(self, indices: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> MoleculeBatch:
        """A batch of the given molecules (dataset rows), for diagnostics and notebooks; the model
        builds its edges itself."""
        index, n = self._collate(np.asarray(indices))
        return self.on_after_batch_transfer((index.to(device), n), 0)

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, int], dataloader_idx: int) -> MoleculeBatch:
        # Edges are built by the model (its `edges` featurizer is this module's), inside the
        # compiled region when torch.compile is on.
        index, n = batch
        return self.dataset.gather(index, n)
