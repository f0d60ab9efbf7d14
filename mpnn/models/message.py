"""Message functions M(h_v, h_w, e_vw) of Gilmer et al. (section 4), on dense padded batches.

Every message module has two calls: `prepare(edges)` runs once per forward pass and computes
what depends on the edges only (the edge network's hidden layer, a one-hot of edge types);
`forward(h, prepared)` runs at each of the T steps. A new message function is a subclass with
those two methods.

The edge network and the matrix-multiply message are both "bilinear" messages:
A(e_vw) = sum_k z_k(e_vw) K_k for per-pair coefficients z (B, n, n, K) and kernels K (K, d, d).
Their fast path never builds one d x d matrix per pair: it first sums coefficients times
neighbour states, S[v, k] = sum_w z_k(vw) h_w (a batched matmul), then applies the kernels,
m_v = sum_k K_k S[v, k] (one matmul). The straightforward path (`fast=False`) materialises
A(e_vw) for every pair and computes sum_w A(e_vw) h_w; tests check both agree.
"""

from __future__ import annotations

import torch
from torch import nn

from mpnn.data.batch import EdgeInputs

AGGREGATIONS = ("sum", "mean")


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers)


class Message(nn.Module):
    """Base class: aggregation over neighbours and the prepare/forward protocol."""

    def __init__(self, aggregation: str = "sum"):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown message aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
        self.aggregation = aggregation

    def prepare(self, edges: EdgeInputs) -> dict:
        raise NotImplementedError

    def degree(self, edges: EdgeInputs) -> torch.Tensor | None:
        """Neighbour counts (B, n, 1) for mean aggregation, None for sum; once per forward."""
        return edges.adjacency.sum(-1, keepdim=True).clamp(min=1) if self.aggregation == "mean" else None

    @staticmethod
    def normalise(messages: torch.Tensor, degree: torch.Tensor | None) -> torch.Tensor:
        return messages if degree is None else messages / degree


class BilinearMessage(Message):
    """A(e_vw) h_w with A(e) = sum_k z_k(e) K_k; subclasses give `coefficients` and `kernels`."""

    def __init__(self, dim: int, aggregation: str = "sum", fast: bool = True):
        super().__init__(aggregation)
        self.dim = dim
        self.fast = fast

    def coefficients(self, edges: EdgeInputs) -> torch.Tensor:  # (B, n, n, K), zero off the edges
        raise NotImplementedError

    def kernels(self) -> torch.Tensor:  # (K, d_out, d_in)
        raise NotImplementedError

    def prepare(self, edges: EdgeInputs) -> dict:
        z = self.coefficients(edges) * edges.adjacency.unsqueeze(-1)
        kernels = self.kernels()  # (K, d_out, d_in)
        b, n, _, k = z.shape
        prepared = {"degree": self.degree(edges)}
        if self.fast:
            # z as (B, n*K, n): rows (v, k), columns w; kernels as (K*d_in, d_out): rows (k, j).
            prepared["z"] = z.permute(0, 1, 3, 2).reshape(b, n * k, n)
            prepared["kernels"] = kernels.permute(0, 2, 1).reshape(-1, kernels.shape[1])
        else:
            prepared["z"], prepared["kernels"] = z, kernels
        return prepared

    def forward(self, h: torch.Tensor, prepared: dict) -> torch.Tensor:
        z, kernels = prepared["z"], prepared["kernels"]
        if self.fast:
            s = torch.bmm(z, h).view(h.shape[0], h.shape[1], -1)  # S[v, (k, j)] = sum_w z_k(vw) h_w[j]
            m = s @ kernels  # m[v, i] = sum_{k,j} K_k[i, j] S[v, k, j]
        else:
            a = torch.einsum("bvwk,kij->bvwij", z, kernels)  # one d x d matrix per pair
            m = torch.einsum("bvwij,bwj->bvi", a, h)
        return self.normalise(m, prepared["degree"])


class EdgeNetworkMessage(BilinearMessage):
    """Edge network (Gilmer et al. eq. for "edge network"): A(e_vw) = reshape(NN(e_vw), d, d).

    NN is an MLP whose last layer is linear; with hidden activations z(e), A(e) = sum_k z_k W_k + B,
    so the hidden layer (plus a constant 1 for the bias) are the bilinear coefficients.
    """

    def __init__(
        self,
        dim: int,
        edge_dim: int,
        num_edge_types: int = 0,
        hidden_dim: int = 128,
        layers: int = 1,
        aggregation: str = "sum",
        fast: bool = True,
    ):
        super().__init__(dim, aggregation, fast)
        self.hidden = _mlp([edge_dim] + [hidden_dim] * layers)
        # PyTorch's default initialisation: a much smaller one leaves Adam's first steps
        # (size ~lr) large relative to the weights, and training stalls.
        self.out = nn.Linear(hidden_dim, dim * dim)

    def coefficients(self, edges: EdgeInputs) -> torch.Tensor:
        hidden = self.hidden(edges.features)
        return torch.cat([hidden, torch.ones_like(hidden[..., :1])], -1)

    def kernels(self) -> torch.Tensor:
        d = self.dim
        weight = self.out.weight.view(d, d, -1).permute(2, 0, 1)  # (hidden, d_out, d_in)
        return torch.cat([weight, self.out.bias.view(1, d, d)], 0)


class MatrixMultiplyMessage(BilinearMessage):
    """GG-NN message (Li et al. 2016): one learned d x d matrix per discrete edge type."""

    def __init__(self, dim: int, edge_dim: int, num_edge_types: int, aggregation: str = "sum", fast: bool = True):
        super().__init__(dim, aggregation, fast)
        if num_edge_types < 1:
            raise ValueError(
                "the matrix-multiply message needs discrete edge types: "
                "use data.edges=chemical_graph or data.edges=distance_bins"
            )
        self.weight = nn.Parameter(torch.randn(num_edge_types, dim, dim) / dim**0.5)

    def coefficients(self, edges: EdgeInputs) -> torch.Tensor:
        return edges.features  # one-hot edge types

    def kernels(self) -> torch.Tensor:
        return self.weight


class PairMessage(Message):
    """Pair message (Gilmer et al. section 4): m_vw = f(h_w, h_v, e_vw), f an MLP.

    The first layer is linear in the concatenation, so it splits into three projections that
    are added with broadcasting instead of concatenating n^2 vectors.
    """

    def __init__(
        self, dim: int, edge_dim: int, num_edge_types: int = 0, hidden_dim: int = 128, aggregation: str = "sum"
    ):
        super().__init__(aggregation)
        self.project_w = nn.Linear(dim, hidden_dim)
        self.project_v = nn.Linear(dim, hidden_dim, bias=False)
        self.project_e = nn.Linear(edge_dim, hidden_dim, bias=False)
        self.out = nn.Linear(hidden_dim, dim)

    def prepare(self, edges: EdgeInputs) -> dict:
        mask = edges.adjacency.unsqueeze(-1).to(edges.features.dtype)
        return {"e": self.project_e(edges.features), "mask": mask, "degree": self.degree(edges)}

    def forward(self, h: torch.Tensor, prepared: dict) -> torch.Tensor:
        hidden = self.project_w(h)[:, None, :, :] + self.project_v(h)[:, :, None, :] + prepared["e"]
        pair = self.out(torch.relu(hidden)) * prepared["mask"]
        return self.normalise(pair.sum(2), prepared["degree"])
