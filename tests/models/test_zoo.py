"""PyG's SchNet, DimeNet++ and ViSNet under the model protocol, on real QM9 molecules (no QM9 cache needed)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch_geometric.data import Batch, Data

from mpnn.cli import compose
from mpnn.data.cache import load
from mpnn.data.spec import DataSpec
from mpnn.models.dimenet import DimeNetPlusPlusModel
from mpnn.models.protocol import MoleculeModel
from mpnn.models.schnet import SchNetModel
from mpnn.models.visnet import ViSNetModel
from mpnn.published import PUBLISHED_MAE
from mpnn.targets import TARGET_NAMES

REPO = Path(__file__).resolve().parents[2]
EXTENSIVE = DataSpec(target="u0", recipe="extensive")
INTENSIVE = DataSpec(target="mu", recipe="intensive")
BATCH = (2, 32, 0, 17, 44, 33, 9, 21)  # fixture molecules of 3 to 29 atoms, in no size order

# Small versions of each model (the cutoff of 5 Angstrom is below the size of the larger molecules).
# DimeNet's basis is built symbolically (sympy) at construction, seconds per model: keep it tiny.
SMALL = {
    "schnet": (SchNetModel, dict(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=16, cutoff=5.0)),
    "dimenet_pp": (
        DimeNetPlusPlusModel,
        dict(
            hidden_channels=16,
            num_blocks=1,
            int_emb_size=8,
            basis_emb_size=4,
            out_emb_channels=16,
            num_spherical=2,
            num_radial=3,
            cutoff=5.0,
            output_initializer="glorot_orthogonal",  # zeros (the reference's choice for mu) would output 0
        ),
    ),
    "visnet": (
        ViSNetModel,
        dict(hidden_channels=16, num_layers=2, num_heads=2, num_rbf=8, lmax=2, vecnorm_type="max_min", cutoff=5.0),
    ),
}
# Parameters of PyG's ViSNet that no loss can reach: the first layer only ever sees the zero vector
# features every atom starts with, and EquivariantScalar multiplies its vector output by 0.
VISNET_UNREACHABLE = {
    "net.representation_model.vis_mp_layers.0.vec_proj.weight",
    "net.representation_model.vis_mp_layers.0.f_proj.weight",
    "net.representation_model.vis_mp_layers.0.f_proj.bias",
    "net.representation_model.vis_mp_layers.0.w_src_proj.weight",
    "net.representation_model.vis_mp_layers.0.w_trg_proj.weight",
    "net.output_model.output_network.1.vec2_proj.weight",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models and batches are tiny: thread start-up would cost more than it saves (3x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def molecules() -> list[Data]:
    """The 48 fixture molecules: atomic numbers (long) and positions (float64, Angstrom)."""
    packed = load(REPO / "tests" / "fixtures" / "qm9_sample.npz")
    split = np.cumsum(packed.num_atoms.astype(np.int64))[:-1]
    return [
        Data(z=torch.from_numpy(z.astype(np.int64)), pos=torch.from_numpy(pos.astype(np.float64)))
        for z, pos in zip(np.split(packed.z, split), np.split(packed.pos, split))
    ]


@functools.cache
def _built(name: str, data: DataSpec) -> MoleculeModel:
    cls, kwargs = SMALL[name]
    torch.manual_seed(0)
    return cls(data, **kwargs)


def build(name: str, data: DataSpec = EXTENSIVE, double: bool = True) -> MoleculeModel:
    """A fresh copy of the small model (built once per module), in float64 unless `double=False`."""
    model = copy.deepcopy(_built(name, data))
    return model.double() if double else model


def collate(molecules: list[Data], dtype: torch.dtype = torch.float64) -> Batch:
    batch = Batch.from_data_list(molecules)
    batch.pos = batch.pos.to(dtype)
    return batch


def rotation(generator: torch.Generator) -> torch.Tensor:
    """A random proper rotation (det +1), float64."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


@pytest.mark.parametrize("name", SMALL)
def test_forward_on_a_real_batch(molecules, name):
    model = build(name, double=False)
    assert isinstance(model, MoleculeModel) and model.backends == ("pyg",)
    batch = collate([molecules[i] for i in BATCH], torch.float32)
    out = model(batch)
    assert out.shape == (len(BATCH),) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.unique().numel() == len(BATCH)
    predicted = model.predict(batch)  # the protocol's physical-unit path on a PyG batch
    assert predicted.shape == (len(BATCH),) and predicted.dtype == torch.float64


@pytest.mark.parametrize("name", SMALL)
def test_invariant_to_atom_order_and_rigid_motion(molecules, name):
    model = build(name)
    chosen = [molecules[i] for i in BATCH]
    reference = model(collate(chosen))

    generator = torch.Generator().manual_seed(1)
    moved = []
    for mol in chosen:
        perm = torch.randperm(mol.num_nodes, generator=generator)
        shift = 10 * torch.randn(3, generator=generator, dtype=torch.float64)
        moved.append(Data(z=mol.z[perm], pos=mol.pos[perm] @ rotation(generator).T + shift))
    torch.testing.assert_close(model(collate(moved)), reference, rtol=1e-10, atol=1e-10)

    # The test can fail: the model does see the geometry.
    stretched = [Data(z=mol.z, pos=1.05 * mol.pos) for mol in chosen]
    assert (model(collate(stretched)) - reference).abs().min() > 1e-6


@pytest.mark.parametrize("name", SMALL)
def test_a_molecule_does_not_depend_on_its_batch(molecules, name):
    model = build(name)
    chosen = [molecules[i] for i in BATCH]
    together = model(collate(chosen))
    alone = torch.cat([model(collate([mol])) for mol in chosen])
    reversed_order = model(collate(chosen[::-1])).flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(together, reversed_order, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SMALL)
def test_pooling_follows_the_recipe(molecules, name):
    """Two copies of a molecule 1000 Angstrom apart: twice the output when summed, the same when averaged."""
    mol = molecules[16]
    pair = Data(z=torch.cat([mol.z, mol.z]), pos=torch.cat([mol.pos, mol.pos + 1000.0]))
    for data, factor in ((EXTENSIVE, 2.0), (INTENSIVE, 1.0)):
        model = build(name, data)
        torch.testing.assert_close(model(collate([pair])), factor * model(collate([mol])), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SMALL)
def test_every_parameter_gets_a_gradient(molecules, name):
    model = build(name)
    batch = collate([molecules[i] for i in BATCH])
    batch.pos.requires_grad_(True)
    model(batch).pow(2).sum().backward()
    assert torch.isfinite(batch.pos.grad).all()  # forces are defined (ViSNet's self-loops included)
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
    unreached = {n for n, p in model.named_parameters() if not p.grad.any()}
    assert unreached == (VISNET_UNREACHABLE if name == "visnet" else set())


def test_dimenet_output_initialisation_follows_the_reference_per_target():
    def output_weights(data: DataSpec) -> torch.Tensor:
        model = DimeNetPlusPlusModel(
            data, hidden_channels=16, num_blocks=1, out_emb_channels=16, num_spherical=2, num_radial=2
        )
        return torch.cat([block.lin.weight.flatten() for block in model.net.output_blocks])

    assert not output_weights(INTENSIVE).any()  # mu: zeros
    assert output_weights(EXTENSIVE).any()  # U0: glorot_orthogonal


@pytest.mark.parametrize(
    "name, cls, size",
    [
        ("schnet", SchNetModel, lambda m: m.net.hidden_channels == 128 and m.net.cutoff == 10.0),
        ("dimenet_pp", DimeNetPlusPlusModel, lambda m: len(m.net.interaction_blocks) == 4 and m.net.cutoff == 5.0),
        ("visnet", ViSNetModel, lambda m: m.net.representation_model.hidden_channels == 512),
    ],
)
def test_config_builds_the_published_model(molecules, name, cls, size):
    cfg = compose([f"model={name}"]).model
    if name == "dimenet_pp":  # its full basis (7 x 6) takes about 20 s of sympy to build on CPU
        cfg.num_spherical, cfg.num_radial = 2, 2
    # _convert_="object": Hydra would otherwise hand the DataSpec over as a DictConfig, without `pooling`.
    model = instantiate(cfg, data=EXTENSIVE, _convert_="object")
    assert type(model) is cls and size(model)
    with torch.no_grad():
        out = model(collate(molecules[:2], torch.float32))
    assert out.shape == (2,) and torch.isfinite(out).all()


def test_visnet_brings_the_batch_sizes_it_fits_in():
    """At the paper size, ViSNet needs more than 20 GB for one CPU step at the default batch of 128."""
    assert (compose(["model=visnet"]).data.batch_size, compose(["model=edge_net"]).data.batch_size) == (32, 128)
    assert compose(["model=visnet"]).data.eval_batch_size == 128
    assert compose(["model=visnet", "data.batch_size=8"]).data.batch_size == 8  # the command line wins


def test_published_numbers_are_in_project_units():
    assert PUBLISHED_MAE["dimenet_pp"]["u0"].mae == pytest.approx(0.00632)  # 6.32 meV in eV
    assert PUBLISHED_MAE["dimenet_pp"]["mu"].mae == pytest.approx(0.0297)  # D
    assert PUBLISHED_MAE["schnet"]["zpve"].mae == pytest.approx(0.001616)  # 1.616 meV in eV
    for model, table in PUBLISHED_MAE.items():
        assert model == "pyg_nnconv_example" or (REPO / "conf" / "model" / f"{model}.yaml").exists()
        for target, entry in table.items():
            assert target in TARGET_NAMES and entry.source and 0 < entry.mae < 1, (model, target)
