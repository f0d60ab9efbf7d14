"""Message functions: the dense fast path, the dense reference path and the PyG (edge_index) path all
equal the per-edge formula; the edge network equals PyG's NNConv given the same weights."""

import pytest
import torch
from torch_geometric.nn import NNConv

from mpnn.data.batch import EdgeInputs, SparseEdges
from mpnn.data.edges import EdgeFeaturizer
from mpnn.data.spec import DataSpec
from mpnn.models.message import EdgeNetworkMessage, MatrixMultiplyMessage, PairMessage
from tests.models.conftest import MESSAGE_CASES, batches, case_id


def per_edge_reference(message, h, edges: EdgeInputs):
    """sum (or mean) over edges w -> v of M(h_v, h_w, e_vw), one edge at a time."""
    b_idx, v_idx, w_idx = edges.adjacency.nonzero(as_tuple=True)
    out = torch.zeros_like(h)
    d = h.shape[-1]
    for b, v, w in zip(b_idx.tolist(), v_idx.tolist(), w_idx.tolist()):
        e = edges.features[b, v, w]
        if isinstance(message, EdgeNetworkMessage):
            matrix = message.out(message.hidden(e)).view(d, d)  # NN(e) as a d_in x d_out matrix (NNConv's layout)
            out[b, v] += h[b, w] @ matrix
        elif isinstance(message, MatrixMultiplyMessage):
            out[b, v] += h[b, w] @ message.weight[int(e.argmax())]
        else:
            hidden = message.project_w(h[b, w]) + message.project_v(h[b, v]) + message.project_e(e)
            out[b, v] += message.out(torch.relu(hidden))
    if message.aggregation == "mean":
        out = out / edges.adjacency.sum(-1, keepdim=True).clamp(min=1)
    return out


def make_message(message_cls, spec: DataSpec, aggregation: str):
    torch.manual_seed(0)
    kwargs = {"aggregation": aggregation}
    if message_cls is not MatrixMultiplyMessage:
        kwargs["hidden_dim"] = 16
    return message_cls(8, spec.edge_dim, **kwargs).double()


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("case", MESSAGE_CASES, ids=case_id)
def test_every_path_matches_the_per_edge_formula(case, aggregation, sample):
    message_cls, kind, virtual = case
    spec = DataSpec(edges=kind, virtual_edges=virtual)
    dense, sparse = batches(sample, spec, rows=(2, 17, 9))  # 3 molecules keep the Python loop short
    edges = EdgeFeaturizer(spec).double()(dense)
    message = make_message(message_cls, spec, aggregation)
    h = torch.randn(*dense.mask.shape, 8, dtype=torch.double) * dense.mask.unsqueeze(-1)
    expected = per_edge_reference(message, h, edges)
    torch.testing.assert_close(message.step(h, message.prepare(edges)), expected, rtol=1e-10, atol=1e-12)
    if hasattr(message, "fast"):
        message.fast = False
        torch.testing.assert_close(message.step(h, message.prepare(edges)), expected, rtol=1e-10, atol=1e-12)
    # The PyG form on the same molecules: node states in edge_index layout (N, d).
    h_nodes = h[dense.mask]
    sparse_out = message(h_nodes, sparse.edge_index, sparse.edge_attr)
    torch.testing.assert_close(sparse_out, expected[dense.mask], rtol=1e-10, atol=1e-12)


def test_edge_network_with_sum_equals_pyg_nnconv(sample):
    """NNConv(aggr="add", root_weight=False, bias=False) with our edge network as its nn."""
    spec = DataSpec(edges="raw_distance")
    _, sparse = batches(sample, spec)
    message = make_message(EdgeNetworkMessage, spec, "sum")
    nnconv = NNConv(8, 8, torch.nn.Sequential(*message.hidden, message.out), aggr="add", root_weight=False, bias=False)
    h = torch.randn(sparse.num_nodes, 8, dtype=torch.double)
    expected = nnconv(h, sparse.edge_index, sparse.edge_attr)
    torch.testing.assert_close(message(h, sparse.edge_index, sparse.edge_attr), expected, rtol=1e-10, atol=1e-12)
    prepared = message.prepare(SparseEdges(sparse.edge_index, sparse.edge_attr))
    torch.testing.assert_close(message.step(h, prepared), expected, rtol=1e-10, atol=1e-12)


def test_unknown_aggregation_is_rejected():
    with pytest.raises(ValueError, match="valid: sum, mean"):
        PairMessage(8, edge_dim=5, aggregation="max")


@pytest.mark.parametrize(
    "sum_scale, expected",
    [(1.0, 1.0), (2, 2.0), ("auto", 1 / 17.5), ("auto*0.5", 0.5 / 17.5), ("auto*2", 2 / 17.5)],
)
def test_sum_scale_is_a_number_auto_or_a_factor_of_auto(sum_scale, expected):
    message = PairMessage(8, edge_dim=5, sum_scale=sum_scale, mean_neighbours=17.5)
    assert message.sum_scale == pytest.approx(expected, rel=1e-12)


def test_a_factor_of_auto_scales_the_summed_messages(sample):
    """auto*0.5 halves what auto gives on the same graph and weights (the factor reaches the output)."""
    spec = DataSpec(edges="raw_distance")
    _, sparse = batches(sample, spec)
    h = torch.randn(sparse.num_nodes, 8, dtype=torch.double)
    outputs = []
    for sum_scale in ("auto", "auto*0.5"):
        torch.manual_seed(0)
        message = EdgeNetworkMessage(8, spec.edge_dim, hidden_dim=16, sum_scale=sum_scale, mean_neighbours=7.0)
        outputs.append(message.double()(h, sparse.edge_index, sparse.edge_attr))
    torch.testing.assert_close(outputs[1], outputs[0] * 0.5, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "sum_scale, mean_neighbours, message",
    [
        ("auto*", 17.5, "after auto\\* give one positive number"),
        ("auto*-1", 17.5, "after auto\\* give one positive number"),
        ("auto*x", 17.5, "after auto\\* give one positive number"),
        ("auto*0.5*2", 17.5, "after auto\\* give one positive number"),
        ("auto*nan", 17.5, "after auto\\* give one positive number"),
        ("auto*0.5", None, "was not given"),
        ("autox", 17.5, "must be a positive number .* auto\\*F"),
        ("0.5", 17.5, "must be a positive number"),
        (0.0, 17.5, "must be a positive number"),
        (float("inf"), 17.5, "must be a positive number"),
        (True, 17.5, "must be a positive number"),
    ],
)
def test_a_bad_sum_scale_is_rejected_with_what_is_valid(sum_scale, mean_neighbours, message):
    with pytest.raises(ValueError, match=message):
        PairMessage(8, edge_dim=5, sum_scale=sum_scale, mean_neighbours=mean_neighbours)
