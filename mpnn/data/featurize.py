"""RDKit featurization of QM9 molecules: the paper's atom features and bonds in DFT atom order.

Bonds come from the coordinates (connectivity) plus bond orders from the SMILES template
(`AssignBondOrdersFromTemplate`); when the template does not match, RDKit's
`DetermineBonds(useHueckel=True)` perceives orders from the geometry alone. Every molecule is
featurized; the path each one took is recorded and counted.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from mpnn.data.source import RawQM9

if TYPE_CHECKING:  # rdkit is imported lazily: loading the cache must not need it
    from rdkit import Chem
    from rdkit.Chem.rdMolChemicalFeatures import MolChemicalFeatureFactory

# Paths a molecule can take, in order of preference (stored per molecule as uint8 codes).
PATHS = ("template", "hueckel", "geometry", "connectivity_only")
BOND_TYPES = ("single", "double", "triple", "aromatic")  # codes 1..4; 0 means "no bond"
HYBRIDIZATIONS = ("sp", "sp2", "sp3")  # codes 1..3; 0 means "other"


@dataclass
class Features:
    """Per-atom and per-bond arrays for a range of molecules (atoms in DFT order)."""

    acceptor: np.ndarray  # (A,) uint8
    donor: np.ndarray  # (A,) uint8
    aromatic: np.ndarray  # (A,) uint8
    hybridization: np.ndarray  # (A,) uint8 code, see HYBRIDIZATIONS
    num_h: np.ndarray  # (A,) uint8 hydrogens bonded to the atom
    bonds: np.ndarray  # (B, 3) uint8: local atom i < j, bond type code
    bond_count: np.ndarray  # (M,) int64 bonds per molecule
    path: np.ndarray  # (M,) uint8 code, see PATHS


def _donor_acceptor_factory():
    """A feature factory with only RDKit's single-atom donor/acceptor definitions.

    The full BaseFeatures.fdef costs about 1 ms per molecule; these two families are what the
    paper uses and take a fraction of that.
    """
    from rdkit import RDConfig
    from rdkit.Chem import ChemicalFeatures

    with open(os.path.join(RDConfig.RDDataDir, "BaseFeatures.fdef")) as handle:
        text = handle.read()
    atom_types = "\n".join(line for line in text.splitlines() if line.startswith("AtomType"))
    blocks = re.findall(r"DefineFeature Single(?:AtomDonor|AtomAcceptor) .*?EndFeature", text, re.S)
    return ChemicalFeatures.BuildFeatureFactoryFromString(atom_types + "\n" + "\n".join(blocks))


@contextmanager
def _quiet_stderr():
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _atoms(mol: Chem.Mol) -> list:
    # Index access: RDKit's atom/bond sequence wrappers cost more than the chemistry here.
    return [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]


def _bonds(mol: Chem.Mol) -> list:
    return [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]


def assign_bond_orders_from_template(template: Chem.Mol, mol: Chem.Mol) -> Chem.Mol:
    """RDKit's AllChem.AssignBondOrdersFromTemplate, rewritten for speed (same result).

    RDKit's version enumerates every substructure match (with explicit hydrogens, every
    permutation of every CH3/CH2 group) to keep the first, and walks atoms and bonds through
    slow Python sequence wrappers. Raises ValueError when the template does not match.
    """
    from rdkit import Chem

    query, target = Chem.Mol(template), Chem.Mol(mol)
    for probe in (query, target):  # match on elements and connectivity only
        for bond in _bonds(probe):
            bond.SetBondType(Chem.BondType.SINGLE)
            bond.SetIsAromatic(False)
        for atom in _atoms(probe):
            atom.SetFormalCharge(0)
    match = target.GetSubstructMatch(query)
    if not match:
        raise ValueError("the SMILES template does not match the connectivity of the coordinates")
    result = Chem.RWMol(mol)
    for bond in _bonds(template):
        assigned = result.GetBondBetweenAtoms(match[bond.GetBeginAtomIdx()], match[bond.GetEndAtomIdx()])
        assigned.SetBondType(bond.GetBondType())
        assigned.SetIsAromatic(bond.GetIsAromatic())
    for atom in _atoms(template):
        assigned = result.GetAtomWithIdx(match[atom.GetIdx()])
        assigned.SetHybridization(atom.GetHybridization())
        assigned.SetIsAromatic(atom.GetIsAromatic())
        assigned.SetNumExplicitHs(atom.GetNumExplicitHs())
        assigned.SetFormalCharge(atom.GetFormalCharge())
    return result


def _bonded_mol(smiles: str | None, z: np.ndarray, pos: np.ndarray):
    """Return (mol in DFT atom order with bond orders, path code).

    Without a SMILES (a new molecule given by its geometry alone) the bond orders come from the
    geometry, as for QM9 molecules whose SMILES template does not fit, with a total charge of 0.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.Geometry import Point3D

    def from_geometry():
        mol = Chem.RWMol()
        for number in z:
            mol.AddAtom(Chem.Atom(int(number)))
        conformer = Chem.Conformer(len(z))
        for i, (x, y, w) in enumerate(pos.tolist()):
            conformer.SetAtomPosition(i, Point3D(x, y, w))
        mol.AddConformer(conformer)
        return mol

    def from_template():
        mol = from_geometry()
        rdDetermineBonds.DetermineConnectivity(mol)
        return assign_bond_orders_from_template(template, mol)

    def from_bond_perception(hueckel: bool):
        mol = from_geometry()
        with _quiet_stderr():  # the Hueckel code prints distance warnings straight to stderr
            rdDetermineBonds.DetermineBonds(mol, useHueckel=hueckel, charge=Chem.GetFormalCharge(template))
        return mol

    parsed = Chem.MolFromSmiles(smiles) if smiles else Chem.Mol()
    if parsed is None:
        raise ValueError(f"RDKit cannot read the SMILES {smiles!r}")
    template = Chem.AddHs(parsed) if smiles else parsed
    strategies = (from_template, lambda: from_bond_perception(True), lambda: from_bond_perception(False))
    for code, strategy in enumerate(strategies):
        if code == 0 and not smiles:
            continue
        try:
            mol = strategy()
            Chem.SanitizeMol(mol)
            return mol, code
        except (ValueError, RuntimeError, Chem.rdchem.MolSanitizeException):
            continue
    mol = from_geometry()
    rdDetermineBonds.DetermineConnectivity(mol)
    mol.UpdatePropertyCache(strict=False)
    return mol, len(strategies)


def featurize_molecule(
    smiles: str | None, z: np.ndarray, pos: np.ndarray, factory: MolChemicalFeatureFactory | None = None
) -> tuple[dict, list, int]:
    """Featurize one molecule; returns (per-atom feature lists, bonds, path code)."""
    from rdkit import Chem

    factory = factory or _donor_acceptor_factory()
    mol, path = _bonded_mol(smiles, z, pos)
    n = mol.GetNumAtoms()
    acceptor, donor = [0] * n, [0] * n
    if path < 3:
        for feature in factory.GetFeaturesForMol(mol):
            target = acceptor if feature.GetFamily() == "Acceptor" else donor
            for atom_id in feature.GetAtomIds():
                target[atom_id] = 1
    hyb_code = {Chem.HybridizationType.SP: 1, Chem.HybridizationType.SP2: 2, Chem.HybridizationType.SP3: 3}
    atoms = _atoms(mol)
    features = {
        "acceptor": acceptor,
        "donor": donor,
        "aromatic": [int(a.GetIsAromatic()) for a in atoms],
        "hybridization": [hyb_code.get(a.GetHybridization(), 0) for a in atoms],
        "num_h": [a.GetTotalNumHs(includeNeighbors=True) for a in atoms],
    }
    bond_code = {
        Chem.BondType.SINGLE: 1,
        Chem.BondType.DOUBLE: 2,
        Chem.BondType.TRIPLE: 3,
        Chem.BondType.AROMATIC: 4,
    }
    bonds = []
    for bond in _bonds(mol):
        i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        bonds.append((i, j, bond_code.get(bond.GetBondType(), 1)))
    return features, bonds, path


def _featurize_chunk(args: tuple[list[str], np.ndarray, np.ndarray, np.ndarray]) -> Features:
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    smiles, z, pos, ptr = args
    factory = _donor_acceptor_factory()
    columns: dict[str, list[int]] = {k: [] for k in ("acceptor", "donor", "aromatic", "hybridization", "num_h")}
    bonds, bond_count, paths = [], [], []
    for m, text in enumerate(smiles):
        lo, hi = ptr[m], ptr[m + 1]
        features, mol_bonds, path = featurize_molecule(text, z[lo:hi], pos[lo:hi], factory)
        for key, values in features.items():
            columns[key].extend(values)
        bonds.extend(mol_bonds)
        bond_count.append(len(mol_bonds))
        paths.append(path)
    return Features(
        **{k: np.asarray(v, dtype=np.uint8) for k, v in columns.items()},
        bonds=np.asarray(bonds, dtype=np.uint8).reshape(-1, 3),
        bond_count=np.asarray(bond_count, dtype=np.int64),
        path=np.asarray(paths, dtype=np.uint8),
    )


def featurize(raw: RawQM9, workers: int | None = None, chunk_size: int = 2000, progress: bool = True) -> Features:
    """Featurize every molecule of `raw` on `workers` processes (default: all cores), with progress."""
    workers = workers or len(os.sched_getaffinity(0))
    chunks = []
    for start in range(0, len(raw), chunk_size):
        stop = min(start + chunk_size, len(raw))
        lo, hi = raw.atom_ptr[start], raw.atom_ptr[stop]
        chunks.append((raw.smiles[start:stop], raw.z[lo:hi], raw.pos[lo:hi], raw.atom_ptr[start : stop + 1] - lo))
    bar = tqdm(total=len(raw), desc="featurizing QM9", unit="mol", disable=not progress)
    parts: list[Features] = []
    if workers <= 1:
        results = map(_featurize_chunk, chunks)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_featurize_chunk, chunks)
    for part in results:
        parts.append(part)
        bar.update(len(part.path))
    bar.close()
    if workers > 1:
        pool.shutdown()
    return Features(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in Features.__dataclass_fields__})


def path_counts(features: Features) -> dict[str, int]:
    counts = Counter(features.path.tolist())
    return {name: counts.get(code, 0) for code, name in enumerate(PATHS)}
