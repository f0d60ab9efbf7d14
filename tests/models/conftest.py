from __future__ import annotations

from functools import partial

import pytest
import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.edges import EdgeFeaturizer
from mpnn.models.message import EdgeNetworkMessage, MatrixMultiplyMessage, PairMessage
from mpnn.models.mpnn import MPNN
from mpnn.models.update import GRUUpdate

# (message class, edge representation, extra edge settings)
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


def build_model(message_cls, featurizer: EdgeFeaturizer, node_features: int = 13, **kwargs) -> MPNN:
    message_kwargs = {} if message_cls is MatrixMultiplyMessage else {"hidden_dim": 16}
    torch.manual_seed(0)
    return MPNN(
        node_features=node_features,
        edges=featurizer,
        message=partial(message_cls, **message_kwargs),
        update=partial(GRUUpdate),
        hidden_dim=kwargs.pop("hidden_dim", 16),
        **kwargs,
    ).double()


def as_double(batch: MoleculeBatch) -> MoleculeBatch:
    batch.x, batch.pos = batch.x.double(), batch.pos.double()
    return batch


@pytest.fixture(scope="module")
def real_batch(datamodule_factory):
    """Six real QM9 molecules of different sizes, padded to the largest."""
    dm = datamodule_factory(subset=300)
    return as_double(dm.on_after_batch_transfer(dm._collate(dm.split.train[:6]), 0))
