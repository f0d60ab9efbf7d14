"""The message passing neural network of Gilmer et al. (2017), assembled from small parts.

    h_v^0   = embed(x_v)                            (ReLU(Linear(x_v)), or x_v zero-padded to d)
    m_v^t+1 = sum_w M(h_v^t, h_w^t, e_vw)          (message module, prepared once per forward)
    h_v^t+1 = U(h_v^t, m_v^t+1)                    (update module, weights tied over t)
    y       = head(R({[h_v^T, x_v]}))              (readout module, then an MLP)

Variants (section 5 of the paper): `towers=k` splits h into k parts of d/k, each with its own
message and update, mixed by a shared network after every step; `master_node=True` adds a
node linked to every atom by its own edge type, with its own state size and GRU.

One model, two backends with the same parameters: on a PyG `Batch` every part runs in
`edge_index` form; on a dense `MoleculeBatch` (the fast path) on padded tensors, with the edges
built on the device by `EdgeFeaturizer`. Tests check both give the same predictions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch_geometric.utils import scatter

from mpnn.data.batch import MoleculeBatch, SparseEdges
from mpnn.data.edges import EdgeFeaturizer
from mpnn.data.spec import DataSpec
from mpnn.models.message import Message
from mpnn.models.precision import float32, float32_region
from mpnn.models.protocol import MoleculeModel
from mpnn.models.readout import GatedSumReadout, Set2SetReadout

READOUTS = {"set2set": Set2SetReadout, "gated_sum": GatedSumReadout}


class MasterNode(nn.Module):
    """A global node: receives a sum over atoms, sends one message to every atom."""

    def __init__(self, dim: int, master_dim: int):
        super().__init__()
        self.initial = nn.Parameter(torch.zeros(master_dim))
        self.to_atoms = nn.Linear(master_dim, dim)  # the master's own edge type towards atoms
        self.from_atoms = nn.Linear(dim, master_dim)
        self.update = nn.GRUCell(master_dim, master_dim)

    def start(self, num_molecules: int) -> torch.Tensor:
        return self.initial.expand(num_molecules, -1)

    def step(self, g: torch.Tensor, h: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(message to every atom, shaped to add to h; new master state)."""
        if isinstance(batch, MoleculeBatch):
            to_atoms = self.to_atoms(g).unsqueeze(1)
            received = (self.from_atoms(h) * batch.mask.unsqueeze(-1)).sum(1)
        else:
            to_atoms = self.to_atoms(g)[batch.batch]
            received = scatter(self.from_atoms(h), batch.batch, dim=0, dim_size=batch.num_graphs, reduce="sum")
        with float32_region(g.device.type):  # the master's state, like the atoms', stays in float32
            return to_atoms, self.update(float32(received), g)


class MPNN(MoleculeModel):
    backends = ("dense", "pyg")

    def __init__(
        self,
        data: DataSpec,
        message: Callable[..., Message],
        update: Callable[..., nn.Module],
        readout: str | Callable[..., nn.Module] = "set2set",
        hidden_dim: int = 64,
        steps: int = 3,
        towers: int = 1,
        master_node: bool = False,
        master_dim: int | None = None,
        initial_state: str = "learned",
    ):
        super().__init__()
        for name, value, least in (("hidden_dim", hidden_dim, 1), ("steps", steps, 0), ("towers", towers, 1)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"model.{name}={value!r} must be a whole number >= {least}")
        if hidden_dim % towers:
            raise ValueError(f"model.hidden_dim={hidden_dim} must be divisible by model.towers={towers}")
        self.hidden_dim = hidden_dim
        self.steps = steps
        self.towers = towers
        part = hidden_dim // towers
        self.edges = EdgeFeaturizer(data)
        self.embed = _initial_state(initial_state, data.node_features, hidden_dim)
        self.messages = nn.ModuleList(
            message(dim=part, edge_dim=data.edge_dim, mean_neighbours=data.mean_neighbours) for _ in range(towers)
        )
        if self.messages[0].discrete_edges and not data.num_edge_types:
            raise ValueError(
                f"{type(self.messages[0]).__name__} needs discrete edge types, not data.edges={data.edges}: "
                "use data.edges=chemical_graph or data.edges=distance_bins"
            )
        self.updates = nn.ModuleList(update(dim=part) for _ in range(towers))
        self.mix = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU()) if towers > 1 else None
        self.master = MasterNode(hidden_dim, master_dim or hidden_dim) if master_node else None
        self.readout = _readout(readout, hidden_dim + data.node_features)
        self.head = nn.Sequential(nn.Linear(self.readout.out_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        # Start at the normalised target mean (0) with a small spread, so the initial loss is ~1.
        nn.init.zeros_(self.head[-1].bias)
        self.head[-1].weight.data.mul_(0.1)

    def forward(self, batch) -> torch.Tensor:
        """Prediction of the standardised target, shape (num_molecules,)."""
        x = batch.x
        if isinstance(batch, MoleculeBatch):
            edges = self.edges(batch)
            mask = batch.mask.unsqueeze(-1)
        else:
            edges, mask = SparseEdges(batch.edge_index, batch.edge_attr), None
        h = self.embed(x) if mask is None else self.embed(x) * mask
        prepared = [message.prepare(edges) for message in self.messages]
        g = self.master.start(batch.num_graphs) if self.master is not None else None
        for _ in range(self.steps):
            parts = h.chunk(self.towers, dim=-1)
            m = torch.cat([msg.step(part, prep) for msg, part, prep in zip(self.messages, parts, prepared)], -1)
            if self.master is not None:
                to_atoms, g = self.master.step(g, h, batch)
                m = m + to_atoms
            m_parts = m.chunk(self.towers, dim=-1)
            h = torch.cat([update(part, mp) for update, part, mp in zip(self.updates, parts, m_parts)], -1)
            if self.mix is not None:
                h = self.mix(h)
            if mask is not None:
                h = h * mask
        with float32_region(x.device.type):  # readout and prediction in float32 under autocast
            return self.head(self.readout(torch.cat([float32(h), x], -1), batch)).squeeze(-1)


class ZeroPad(nn.Module):
    """h_v^0 = x_v zero-padded to d: the paper's initial state (section 5), without parameters."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        if out_dim < in_dim:
            raise ValueError(
                f"model.initial_state=pad needs model.hidden_dim >= the {in_dim} atom features, not {out_dim}"
            )
        self.extra = out_dim - in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, self.extra))


INITIAL_STATES = ("learned", "pad")


def _initial_state(kind: str, in_dim: int, hidden_dim: int) -> nn.Module:
    """`learned`: ReLU(Linear(x)) (this project's default); `pad`: x zero-padded to d (the paper's)."""
    if kind == "learned":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU())
    if kind == "pad":
        return ZeroPad(in_dim, hidden_dim)
    raise ValueError(f"unknown model.initial_state={kind!r}; valid: {', '.join(INITIAL_STATES)}")


def _readout(readout: str | Callable[..., nn.Module], in_dim: int) -> nn.Module:
    """A readout from its config (a factory taking `in_dim`) or by name (`"set2set"`, `"gated_sum"`)."""
    if isinstance(readout, str):
        if readout not in READOUTS:
            raise ValueError(f"unknown model.readout={readout!r}; valid: {', '.join(READOUTS)}")
        readout = READOUTS[readout]
    return readout(in_dim=in_dim)
