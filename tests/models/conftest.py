"""Model tests run on the committed fixture of 48 real QM9 molecules: no QM9 cache needed."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import pytest
import torch

from mpnn.data.cache import PackedQM9, load
from mpnn.data.datamodule import mean_neighbours, molecule_store
from mpnn.data.spec import DataSpec
from mpnn.models.message import EdgeNetworkMessage, MatrixMultiplyMessage, PairMessage
from mpnn.models.mpnn import MPNN
from mpnn.models.update import GRUUpdate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "qm9_sample.npz"
ROWS = (2, 32, 0, 17, 44, 33, 9, 21)  # fixture molecules of 3 to 29 atoms, in no size order

# (message class, edge representation, virtual edges)
MESSAGE_CASES = [
    (EdgeNetworkMessage, "raw_distance", False),
    (EdgeNetworkMessage, "distance_bins", False),
    (EdgeNetworkMessage, "chemical_graph", True),
    (MatrixMultiplyMessage, "chemical_graph", False),
    (MatrixMultiplyMessage, "chemical_graph", True),
    (MatrixMultiplyMessage, "distance_bins", False),
    (PairMessage, "raw_distance", False),
    (PairMessage, "chemical_graph", False),
]


def case_id(case) -> str:
    return f"{case[0].__name__}-{case[1]}{'-virtual' if case[2] else ''}"


@pytest.fixture(scope="session")
def sample() -> PackedQM9:
    return load(FIXTURE)


def fitted_spec(packed: PackedQM9, **settings) -> DataSpec:
    """A DataSpec with its mean neighbour count fitted on all of `packed`, as QM9DataModule.setup fits
    it on the training split (what `model.message.sum_scale=auto` reads)."""
    spec = DataSpec(**settings)
    store = molecule_store(packed, spec, "dense")
    return dataclasses.replace(spec, mean_neighbours=mean_neighbours(store, range(len(packed)), spec.complete_graph))


def batches(packed: PackedQM9, spec: DataSpec, rows=ROWS):
    """(dense MoleculeBatch, PyG Batch) of the same molecules, float64."""
    index = torch.tensor(rows)
    dense = molecule_store(packed, spec, "dense").gather(index, dtype=torch.float64)
    sparse = molecule_store(packed, spec, "pyg").gather(index, dtype=torch.float64)
    return dense, sparse


def build_model(message_cls, spec: DataSpec, **kwargs) -> MPNN:
    """A small float64 MPNN with a fixed initialisation."""
    message_kwargs = {} if message_cls is MatrixMultiplyMessage else {"hidden_dim": 16}
    message_kwargs["aggregation"] = kwargs.pop("aggregation", "sum")
    torch.manual_seed(0)
    model = MPNN(
        data=spec,
        message=partial(message_cls, **message_kwargs),
        update=GRUUpdate,
        hidden_dim=kwargs.pop("hidden_dim", 16),
        **kwargs,
    )
    return model.double()
