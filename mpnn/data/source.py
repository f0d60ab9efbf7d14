"""Read QM9 from the CSVs shipped inside the `qm9pack` wheel, offline.

`qm9pack.get_data()` imports `pkg_resources` (gone from recent setuptools), so the package's
data folder is located with `importlib.util.find_spec`, which does not execute the package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpnn.targets import ATOM_REFERENCE_U0_HARTREE, TARGETS

EXPECTED_MOLECULES = 130_831
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_COLUMNS = ["Index", "SMILES", "Elements", "XYZ_Ang", "Harmonic_Freq_cmi"] + [
    t.column for t in TARGETS.values() if t.column and t.column != "Harmonic_Freq_cmi"
]
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


@dataclass
class RawQM9:
    """Molecules as read from the source, atoms concatenated in the DFT order."""

    index: np.ndarray  # (M,) QM9 molecule index (1-based, as in the xyz file names)
    smiles: list[str | None]  # None: bonds from the geometry alone (molecules given as XYZ)
    z: np.ndarray  # (A,) uint8 atomic numbers
    pos: np.ndarray  # (A, 3) float32 Angstrom
    atom_ptr: np.ndarray  # (M+1,) int64 offsets into z/pos
    targets: np.ndarray  # (M, len(TARGETS)) float64 in the units of mpnn.targets

    def __len__(self) -> int:
        return len(self.index)


def qm9pack_data_dir() -> Path:
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("QM9 source not found: install the pinned package with `pip install qm9pack==1.0.3`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def qm9pack_version() -> str:
    from importlib.metadata import version

    return version("qm9pack")


def read_xyz(text: str, smiles: list[str] | None = None) -> tuple[RawQM9, list[str]]:
    """Molecules from XYZ text (one or more blocks: atom count, comment, `element x y z` lines, in
    Angstrom), for prediction, and the blocks' comment lines; targets are NaN. `smiles`, one per
    block, gives the bond orders as for QM9's molecules; without it they come from the geometry."""
    lines = text.splitlines()
    z, pos, atom_ptr, comments, row = [], [], [0], [], 0
    while row < len(lines):
        if not lines[row].strip():
            row += 1
            continue
        block = len(comments) + 1
        fields = lines[row].split()
        if not fields[0].isdigit() or int(fields[0]) < 1:
            raise ValueError(f"XYZ block {block}: line {row + 1} should be the atom count, got {lines[row]!r}")
        count = int(fields[0])
        atoms = lines[row + 2 : row + 2 + count]
        if len(atoms) < count:
            raise ValueError(f"XYZ block {block}: {count} atoms announced, {len(atoms)} lines follow")
        for offset, line in enumerate(atoms):
            fields = line.split()
            try:
                z.append(ELEMENTS[fields[0]])
                pos.append([float(v.replace("*^", "e")) for v in fields[1:4]])
                if len(pos[-1]) != 3:
                    raise ValueError
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"XYZ block {block}, line {row + 3 + offset}: expected `element x y z` with element one of "
                    f"{', '.join(ELEMENTS)} (QM9's elements), got {line.strip()!r}"
                ) from None
        comments.append(lines[row + 1].strip() if row + 1 < len(lines) else "")
        atom_ptr.append(len(z))
        row += 2 + count
    if not comments:
        raise ValueError("no molecule found: XYZ text starts each molecule with its atom count")
    if smiles is not None and len(smiles) != len(comments):
        raise ValueError(f"{len(smiles)} SMILES for {len(comments)} molecules: give one per XYZ block, in order")
    molecules = RawQM9(
        index=np.arange(1, len(comments) + 1),
        smiles=list(smiles) if smiles is not None else [None] * len(comments),
        z=np.asarray(z, dtype=np.uint8),
        pos=np.asarray(pos, dtype=np.float32).reshape(-1, 3),
        atom_ptr=np.asarray(atom_ptr, dtype=np.int64),
        targets=np.full((len(comments), len(TARGETS)), np.nan),
    )
    return molecules, comments


def read_smiles() -> dict[int, str]:
    """SMILES of every molecule, keyed by QM9 index (a few seconds: two columns only)."""
    import pandas as pd

    frames = [pd.read_csv(qm9pack_data_dir() / part, usecols=["Index", "SMILES"]) for part in _PARTS]
    frame = pd.concat(frames, ignore_index=True)
    return dict(zip(frame["Index"].tolist(), frame["SMILES"].tolist()))


def read_qm9(limit: int | None = None) -> RawQM9:
    """Read all molecules (or the first `limit`, for tests) and convert targets to physical units."""
    import pandas as pd

    folder = qm9pack_data_dir()
    frames, remaining = [], limit
    for part in _PARTS:
        frame = pd.read_csv(folder / part, usecols=_COLUMNS, nrows=remaining)
        frames.append(frame)
        if remaining is not None:
            remaining -= len(frame)
            if remaining <= 0:
                break
    df = pd.concat(frames, ignore_index=True)
    polar = pd.read_csv(folder / "qm9_polarizability.csv")
    if limit is None and len(df) != EXPECTED_MOLECULES:
        raise RuntimeError(
            f"qm9pack returned {len(df)} molecules, expected {EXPECTED_MOLECULES}: "
            f"reinstall `qm9pack==1.0.3` (data folder: {folder})"
        )
    # The fourth CSV holds the polarizability tensor; alpha (the scalar column) is its trace / 3.
    polar = polar.set_index("XYZ_file").reindex(df["Index"].map("dsgdb9nsd_{:06d}.xyz".format))
    isotropic = polar[["A_xx", "A_yy", "A_zz"]].to_numpy().mean(1)
    if not np.allclose(isotropic, df["Polarizability_bohr3"].to_numpy(), atol=0.01):
        raise RuntimeError("qm9pack polarizability tensor and isotropic column disagree: corrupt install?")
    n_atoms = df["Elements"].str.count(",").to_numpy() + 1
    elements = ",".join(df["Elements"].str.slice(1, -1)).replace("'", "").split(",")
    unknown = set(elements) - set(ELEMENTS)
    if unknown:
        raise RuntimeError(f"unexpected elements {sorted(unknown)} in QM9; expected {sorted(ELEMENTS)}")
    z = np.array([ELEMENTS[e] for e in elements], dtype=np.uint8)
    xyz_text = ",".join(df["XYZ_Ang"]).replace("[", "").replace("]", "")
    pos = np.array(xyz_text.split(","), dtype=np.float64).reshape(-1, 3)
    if len(pos) != len(z):
        raise RuntimeError("QM9 coordinates and element lists disagree in length")
    atom_ptr = np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64)

    # omega1 is the largest harmonic frequency: the list's maximum (linear molecules have fewer modes).
    omega1 = np.array([max(map(float, s[1:-1].split(","))) for s in df["Harmonic_Freq_cmi"]])
    targets = np.empty((len(df), len(TARGETS)), dtype=np.float64)
    mol_of_atom = np.repeat(np.arange(len(df)), n_atoms)
    refs = np.zeros(10)
    for number, energy in ATOM_REFERENCE_U0_HARTREE.items():
        refs[number] = energy
    reference_energy = np.bincount(mol_of_atom, weights=refs[z], minlength=len(df))
    for k, target in enumerate(TARGETS.values()):
        if target.name == "omega1":
            raw = omega1
        elif target.column:
            raw = df[target.column].to_numpy(dtype=np.float64)
        else:  # atomization energy: total minus single-atom references
            total = TARGETS[target.name.removesuffix("_atom")].column
            raw = df[total].to_numpy(dtype=np.float64) - reference_energy
        targets[:, k] = raw * target.scale
    return RawQM9(
        index=df["Index"].to_numpy(np.int64),
        smiles=df["SMILES"].tolist(),
        z=z,
        pos=pos.astype(np.float32),
        atom_ptr=atom_ptr,
        targets=targets,
    )
