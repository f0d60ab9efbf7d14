"""Every model variant: shape, atom-permutation invariance, gradients, batch independence."""

import itertools

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mpnn.data.batch import MoleculeBatch
from mpnn.data.edges import EdgeFeaturizer
from mpnn.models.message import EdgeNetworkMessage, MatrixMultiplyMessage, PairMessage
from mpnn.models.mpnn import MPNN
from mpnn.models.update import GRUUpdate
from tests.conftest import REPO
from tests.models.conftest import build_model

VARIANTS = [
    dict(message=m, kind=k, readout=r, towers=t, master_node=mn)
    for (m, k), r, t, mn in itertools.product(
        [(EdgeNetworkMessage, "raw_distance"), (MatrixMultiplyMessage, "distance_bins"), (PairMessage, "raw_distance")],
        ["set2set", "gated_sum"],
        [1, 2],
        [False, True],
    )
]


def variant_id(v) -> str:
    return f"{v['message'].__name__}-{v['readout']}-towers{v['towers']}{'-master' if v['master_node'] else ''}"


def make(v) -> MPNN:
    return build_model(
        v["message"], EdgeFeaturizer(v["kind"]), readout=v["readout"], towers=v["towers"], master_node=v["master_node"]
    )


def permuted(batch: MoleculeBatch, generator: torch.Generator) -> MoleculeBatch:
    """The same molecules with their real atoms in a random order (padding stays last)."""
    x, pos, bond = batch.x.clone(), batch.pos.clone(), batch.bond.clone()
    for b, count in enumerate(batch.mask.sum(1).tolist()):
        order = torch.randperm(count, generator=generator)
        x[b, :count], pos[b, :count] = batch.x[b, order], batch.pos[b, order]
        bond[b, :count, :count] = batch.bond[b, order][:, order]
    return MoleculeBatch(x=x, pos=pos, bond=bond, mask=batch.mask, y=batch.y, index=batch.index)


def single(batch: MoleculeBatch, b: int) -> MoleculeBatch:
    n = int(batch.mask[b].sum())
    return MoleculeBatch(
        x=batch.x[b : b + 1, :n],
        pos=batch.pos[b : b + 1, :n],
        bond=batch.bond[b : b + 1, :n, :n],
        mask=batch.mask[b : b + 1, :n],
        y=batch.y[b : b + 1],
        index=batch.index[b : b + 1],
    )


def check_model(model: MPNN, batch: MoleculeBatch) -> None:
    out = model(batch)
    assert out.shape == (batch.num_molecules,) and torch.isfinite(out).all()

    # Invariance to the order of atoms within each molecule.
    shuffled = model(permuted(batch, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(shuffled, out, rtol=1e-8, atol=1e-8)

    # A molecule's prediction does not depend on the other molecules (or on padding).
    alone = torch.stack([model(single(batch, b))[0] for b in range(batch.num_molecules)])
    torch.testing.assert_close(alone, out, rtol=1e-8, atol=1e-8)

    # Every parameter receives a gradient.
    model.zero_grad()
    out.pow(2).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_variant(variant, real_batch):
    check_model(make(variant), real_batch)


@pytest.mark.parametrize("path", sorted((REPO / "conf" / "model" / "message").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_message_config(path, real_batch):
    """A new message file in conf/model/message/ is checked like the built-in ones, on distance bins
    (the edge representation every message function accepts)."""
    torch.manual_seed(0)
    model = MPNN(
        node_features=real_batch.x.shape[-1],
        edges=EdgeFeaturizer("distance_bins"),
        message=instantiate(OmegaConf.load(path)),
        update=GRUUpdate,
        hidden_dim=16,
    )
    check_model(model.double(), real_batch)


def test_towers_must_divide_hidden_dim():
    with pytest.raises(ValueError, match="divisible by model.towers=3"):
        build_model(EdgeNetworkMessage, EdgeFeaturizer(), towers=3)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hidden_dim": -3}, "model.hidden_dim=-3 must be a whole number >= 1"),
        ({"steps": -1}, "model.steps=-1 must be a whole number >= 0"),
        ({"towers": 0}, "model.towers=0 must be a whole number >= 1"),
        ({"readout_steps": 0}, "model.readout_steps=0 must be a whole number >= 1"),
    ],
)
def test_sizes_out_of_range_are_rejected(setting, message):
    with pytest.raises(ValueError, match=message):
        build_model(EdgeNetworkMessage, EdgeFeaturizer(), **setting)


def test_unknown_readout_is_rejected():
    with pytest.raises(ValueError, match="valid: set2set, gated_sum"):
        build_model(EdgeNetworkMessage, EdgeFeaturizer(), readout="mean")
