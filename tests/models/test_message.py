"""The fast message computations equal the straightforward per-edge formula."""

import pytest
import torch

from mpnn.data.edges import EdgeFeaturizer
from mpnn.models.message import EdgeNetworkMessage, MatrixMultiplyMessage, PairMessage
from tests.models.conftest import MESSAGE_CASES, case_id


def per_edge_reference(message, h, edges):
    """sum over edges (v, w) of M(h_v, h_w, e_vw), one edge at a time, as a sparse MPNN would."""
    b_idx, v_idx, w_idx = edges.adjacency.nonzero(as_tuple=True)
    out = torch.zeros_like(h)
    d = h.shape[-1]
    for b, v, w in zip(b_idx.tolist(), v_idx.tolist(), w_idx.tolist()):
        e = edges.features[b, v, w]
        if isinstance(message, EdgeNetworkMessage):
            matrix = message.out(message.hidden(e)).view(d, d)  # NN(e) reshaped to d x d
            out[b, v] += matrix @ h[b, w]
        elif isinstance(message, MatrixMultiplyMessage):
            out[b, v] += message.weight[edges.types[b, v, w]] @ h[b, w]
        else:
            hidden = message.project_w(h[b, w]) + message.project_v(h[b, v]) + message.project_e(e)
            out[b, v] += message.out(torch.relu(hidden))
    if message.aggregation == "mean":
        out = out / edges.adjacency.sum(-1, keepdim=True).clamp(min=1)
    return out


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("case", MESSAGE_CASES, ids=case_id)
def test_fast_path_matches_per_edge_formula(case, aggregation, real_batch):
    message_cls, kind, virtual = case
    featurizer = EdgeFeaturizer(kind, virtual)
    edges = featurizer(real_batch)
    edges.features = edges.features.double()
    torch.manual_seed(0)
    kwargs = {"aggregation": aggregation}
    if message_cls is not MatrixMultiplyMessage:
        kwargs["hidden_dim"] = 16
    message = message_cls(8, featurizer.edge_dim, featurizer.num_edge_types, **kwargs).double()
    h = torch.randn(*real_batch.mask.shape, 8, dtype=torch.double) * real_batch.mask.unsqueeze(-1)
    expected = per_edge_reference(message, h, edges)
    fast = message(h, message.prepare(edges))
    torch.testing.assert_close(fast, expected, rtol=1e-9, atol=1e-9)
    if hasattr(message, "fast"):
        message.fast = False
        straightforward = message(h, message.prepare(edges))
        torch.testing.assert_close(straightforward, expected, rtol=1e-9, atol=1e-9)


def test_matrix_multiply_needs_discrete_edges():
    with pytest.raises(ValueError, match="data.edges=chemical_graph or data.edges=distance_bins"):
        MatrixMultiplyMessage(8, edge_dim=5, num_edge_types=0)


def test_unknown_aggregation_is_rejected():
    with pytest.raises(ValueError, match="valid: sum, mean"):
        PairMessage(8, edge_dim=5, aggregation="max")
