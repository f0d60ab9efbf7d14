"""Message functions M(h_v, h_w, e_vw) of Gilmer et al. (section 4), as PyG `MessagePassing` layers
that also run on dense padded batches (the fast path), with the same parameters.

Every message module has two calls: `prepare(edges)` runs once per forward pass and computes
what depends on the edges only (e.g. the edge network's matrices); `step(h, prepared)` runs at
each of the T steps. `edges` is a dense `EdgeInputs` (node states h: (B, n, d)) or a
`SparseEdges` (h: (N, d)); the result has the shape of h. `forward(x, edge_index, edge_attr)` is
the usual one-step PyG call, for use in any PyG model. A new message function is a subclass
with `prepare` and `step` for both forms (see `PairMessage`).

The edge network and the matrix-multiply message are "bilinear": the message from w to v is
h_w A(e_vw), A(e) a d x d matrix (in PyG's NNConv layout: rows index the input dimension), with
A(e) = sum_k z_k(e) K_k for per-edge coefficients z (K of them) and kernels K (K, d, d). The
sparse form builds A(e) per edge once per forward, as NNConv does at every call. The dense form
never builds a d x d matrix per pair: it first sums coefficients times neighbour states,
S[v, k] = sum_w z_k(vw) h_w (a batched matmul), then applies the kernels, m_v = sum_k S[v, k] K_k
(one matmul). `fast=False` is the straightforward dense formulation; tests check all agree.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from mpnn.data.batch import EdgeInputs, SparseEdges

AGGREGATIONS = {"sum": "add", "mean": "mean"}  # ours -> PyG's name


# "glorot": Glorot-uniform weights and zero biases, as in the paper's reference implementation (TF1's
# default). PyTorch's default ("torch") draws the d*d outputs of A(e) from U(+-1/sqrt(fan_in)), 4.6x the
# Glorot spread at d = 128: summed over the complete graph, messages come out ~60x the node states and
# ~90% of the GRU's gate pre-activations saturate (docs/TRAINING.md).
INITS = ("glorot", "torch")


def _glorot(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers)


def _positive(value: object) -> float | None:
    """value as a finite positive float, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < float("inf") else None


def resolve_sum_scale(sum_scale: float | str, mean_neighbours: float | None) -> float:
    """The constant that summed messages are multiplied by: a positive number as given, `auto` for 1 / the
    training split's mean neighbour count, or `auto*F` for F times that (a factor carries over to graphs
    of other sizes, where a number fitted on one graph would not)."""
    if isinstance(sum_scale, str) and (sum_scale == "auto" or sum_scale.startswith("auto*")):
        factor = 1.0 if sum_scale == "auto" else _positive(sum_scale.removeprefix("auto*"))
        if factor is None:
            raise ValueError(
                f"model.message.sum_scale={sum_scale}: after auto* give one positive number, e.g. auto*0.5"
            )
        if not mean_neighbours:
            raise ValueError(
                f"model.message.sum_scale={sum_scale} divides the sum by the training split's mean neighbour count, "
                "which this model was not given (DataSpec.mean_neighbours, fitted by QM9DataModule.setup); "
                "give a positive number instead (1.0: the plain sum)"
            )
        return factor / mean_neighbours
    scale = None if isinstance(sum_scale, str) else _positive(sum_scale)
    if scale is None:
        raise ValueError(
            f"model.message.sum_scale={sum_scale!r} must be a positive number (1.0: the plain sum), auto "
            "(1 / the mean neighbour count) or auto*F (F times that, e.g. auto*0.5)"
        )
    return scale


class Message(MessagePassing):
    """Base class: aggregation over incoming edges ("sum" or "mean") and the prepare/step protocol."""

    discrete_edges: bool = False  # True: edge features must be a one-hot of edge types

    def __init__(self, aggregation: str = "sum", sum_scale: float | str = 1.0, mean_neighbours: float | None = None):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown message aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
        sum_scale = resolve_sum_scale(sum_scale, mean_neighbours)
        super().__init__(aggr=AGGREGATIONS[aggregation])
        self.aggregation = aggregation
        self.sum_scale = sum_scale

    def prepare(self, edges: EdgeInputs | SparseEdges) -> dict:
        raise NotImplementedError

    def step(self, h: torch.Tensor, prepared: dict) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """One message passing step on a PyG graph: the aggregated message of every node, (N, d)."""
        return self.step(x, self.prepare(SparseEdges(edge_index, edge_attr)))

    def dense_degree(self, edges: EdgeInputs) -> torch.Tensor | None:
        """Incoming edges per atom slot (B, n, 1) for mean aggregation, None for sum; once per forward."""
        return edges.adjacency.sum(-1, keepdim=True).clamp(min=1) if self.aggregation == "mean" else None

    def normalise(self, messages: torch.Tensor, degree: torch.Tensor | None) -> torch.Tensor:
        """Mean: divided by each atom's degree (dense form; PyG's "mean" does it on edge lists). Sum:
        times the constant `sum_scale` (1: the paper's plain sum)."""
        if degree is not None:
            return messages / degree
        return messages if self.sum_scale == 1.0 or self.aggregation != "sum" else messages * self.sum_scale


class BilinearMessage(Message):
    """h_w A(e_vw) with A(e) = sum_k z_k(e) K_k; subclasses give `coefficients` and `kernels`."""

    def __init__(
        self,
        dim: int,
        aggregation: str = "sum",
        fast: bool = True,
        sum_scale: float | str = 1.0,
        mean_neighbours: float | None = None,
    ):
        super().__init__(aggregation, sum_scale, mean_neighbours)
        self.dim = dim
        self.fast = fast

    def coefficients(self, features: torch.Tensor) -> torch.Tensor:  # (..., edge_dim) -> (..., K)
        raise NotImplementedError

    def kernels(self) -> torch.Tensor:  # (K, d_in, d_out)
        raise NotImplementedError

    def edge_matrices(self, edge_attr: torch.Tensor) -> torch.Tensor:
        """A(e) of every edge, (E, d_in, d_out)."""
        return torch.einsum("ek,kio->eio", self.coefficients(edge_attr), self.kernels())

    def prepare(self, edges: EdgeInputs | SparseEdges) -> dict:
        if isinstance(edges, SparseEdges):
            return {"edge_index": edges.edge_index, "weight": self.edge_matrices(edges.edge_attr)}
        z = self.coefficients(edges.features) * edges.adjacency.unsqueeze(-1)
        kernels = self.kernels()
        b, n, _, k = z.shape
        prepared = {"degree": self.dense_degree(edges)}
        if self.fast:  # z as (B, n*K, n): rows (v, k), columns w; kernels as (K*d_in, d_out): rows (k, i)
            prepared["z"] = z.permute(0, 1, 3, 2).reshape(b, n * k, n)
            prepared["kernels"] = kernels.reshape(-1, kernels.shape[-1])
        else:
            prepared["z"], prepared["kernels"] = z, kernels
        return prepared

    def step(self, h: torch.Tensor, prepared: dict) -> torch.Tensor:
        if "edge_index" in prepared:
            return self.normalise(self.propagate(prepared["edge_index"], x=h, weight=prepared["weight"]), None)
        z, kernels = prepared["z"], prepared["kernels"]
        if self.fast:
            s = torch.bmm(z, h).view(h.shape[0], h.shape[1], -1)  # S[v, (k, i)] = sum_w z_k(vw) h_w[i]
            m = s @ kernels  # m[v, o] = sum_{k,i} S[v, k, i] K_k[i, o]
        else:
            a = torch.einsum("bvwk,kio->bvwio", z, kernels)  # one d x d matrix per pair
            m = torch.einsum("bvwio,bwi->bvo", a, h)
        return self.normalise(m, prepared["degree"])

    def message(self, x_j: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x_j.unsqueeze(1), weight).squeeze(1)


class EdgeNetworkMessage(BilinearMessage):
    """Edge network (Gilmer et al.): A(e_vw) = reshape(NN(e_vw), d, d), NN = `hidden` MLP then `out`.

    With sum aggregation this is PyG's `NNConv(d, d, nn=Sequential(*hidden, out), aggr="add",
    root_weight=False, bias=False)`. NN's last layer is linear, so with hidden activations z(e),
    A(e) = sum_k z_k W_k + B: the hidden layer (plus a constant 1 for the bias) are the coefficients.
    """

    def __init__(
        self,
        dim: int,
        edge_dim: int,
        hidden_dim: int = 128,
        layers: int = 1,
        aggregation: str = "sum",
        fast: bool = True,
        init: str = "torch",
        sum_scale: float | str = 1.0,
        mean_neighbours: float | None = None,
    ):
        super().__init__(dim, aggregation, fast, sum_scale, mean_neighbours)
        if init not in INITS:
            raise ValueError(f"unknown model.message.init={init!r}; valid: {', '.join(INITS)}")
        self.hidden = _mlp([edge_dim] + [hidden_dim] * layers)
        self.out = nn.Linear(hidden_dim, dim * dim)
        if init == "glorot":
            _glorot(self)

    def coefficients(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden(features)
        return torch.cat([hidden, torch.ones_like(hidden[..., :1])], -1)

    def kernels(self) -> torch.Tensor:
        d = self.dim
        weight = self.out.weight.T.reshape(-1, d, d)  # (hidden, d_in, d_out)
        return torch.cat([weight, self.out.bias.view(1, d, d)], 0)

    def edge_matrices(self, edge_attr: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(edge_attr)).view(-1, self.dim, self.dim)  # as NNConv computes it


class MatrixMultiplyMessage(BilinearMessage):
    """GG-NN message (Li et al. 2016): one learned d x d matrix per discrete edge type; the edge
    features are the one-hot of the type (`edge_dim` types)."""

    discrete_edges = True

    def __init__(
        self,
        dim: int,
        edge_dim: int,
        aggregation: str = "sum",
        fast: bool = True,
        sum_scale: float | str = 1.0,
        mean_neighbours: float | None = None,
    ):
        super().__init__(dim, aggregation, fast, sum_scale, mean_neighbours)
        self.weight = nn.Parameter(torch.randn(edge_dim, dim, dim) / dim**0.5)

    def coefficients(self, features: torch.Tensor) -> torch.Tensor:
        return features  # one-hot edge types

    def kernels(self) -> torch.Tensor:
        return self.weight


class PairMessage(Message):
    """Pair message (Gilmer et al. section 4): m_vw = f(h_w, h_v, e_vw), f an MLP.

    The first layer is linear in the concatenation, so it splits into three projections that
    are added (with broadcasting in the dense form) instead of concatenating one vector per pair.
    """

    def __init__(
        self,
        dim: int,
        edge_dim: int,
        hidden_dim: int = 128,
        aggregation: str = "sum",
        sum_scale: float | str = 1.0,
        mean_neighbours: float | None = None,
    ):
        super().__init__(aggregation, sum_scale, mean_neighbours)
        self.project_w = nn.Linear(dim, hidden_dim)
        self.project_v = nn.Linear(dim, hidden_dim, bias=False)
        self.project_e = nn.Linear(edge_dim, hidden_dim, bias=False)
        self.out = nn.Linear(hidden_dim, dim)

    def prepare(self, edges: EdgeInputs | SparseEdges) -> dict:
        if isinstance(edges, SparseEdges):
            return {"edge_index": edges.edge_index, "e": self.project_e(edges.edge_attr)}
        mask = edges.adjacency.unsqueeze(-1).to(edges.features.dtype)
        return {"e": self.project_e(edges.features), "mask": mask, "degree": self.dense_degree(edges)}

    def step(self, h: torch.Tensor, prepared: dict) -> torch.Tensor:
        if "edge_index" in prepared:
            return self.normalise(self.propagate(prepared["edge_index"], x=h, e=prepared["e"]), None)
        hidden = self.project_w(h)[:, None, :, :] + self.project_v(h)[:, :, None, :] + prepared["e"]
        pair = self.out(torch.relu(hidden)) * prepared["mask"]
        return self.normalise(pair.sum(2), prepared["degree"])

    def message(self, x_i: torch.Tensor, x_j: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.project_w(x_j) + self.project_v(x_i) + e))
