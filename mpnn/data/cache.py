"""The compact processed cache: one `.npz` of packed per-atom and per-bond arrays.

Loading imports neither rdkit nor qm9pack, so the cache can be carried to a machine that has
neither. The file name holds a hash of everything that shapes its contents (format version,
source and its version, feature set), so a change builds a new file next to the old one.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mpnn.files import check_writable, lock_for, write_atomically
from mpnn.targets import TARGET_NAMES

if TYPE_CHECKING:
    from mpnn.data.featurize import Features
    from mpnn.data.source import RawQM9

FORMAT_VERSION = 2  # 2: SMILES stored with the molecules
FEATURE_SET = "gilmer2017:type,z,acceptor,donor,aromatic,hybridization,num_h;bonds:single,double,triple,aromatic"
ARRAYS = (
    "index",
    "num_atoms",
    "z",
    "pos",
    "acceptor",
    "donor",
    "aromatic",
    "hybridization",
    "num_h",
    "bonds",
    "bond_count",
    "path",
    "targets",
    "smiles",
)


@dataclass
class PackedQM9:
    """All molecules, atoms and bonds concatenated; what the cache file holds."""

    index: np.ndarray  # (M,) QM9 molecule index
    num_atoms: np.ndarray  # (M,) uint8
    z: np.ndarray  # (A,) uint8
    pos: np.ndarray  # (A, 3) float32, Angstrom
    acceptor: np.ndarray  # (A,) uint8
    donor: np.ndarray
    aromatic: np.ndarray
    hybridization: np.ndarray
    num_h: np.ndarray
    bonds: np.ndarray  # (B, 3) uint8: molecule-local i < j, bond type code 1..4
    bond_count: np.ndarray  # (M,) uint8
    path: np.ndarray  # (M,) uint8 featurization path, see mpnn.data.featurize.PATHS
    targets: np.ndarray  # (M, T) float64, columns TARGET_NAMES, physical units
    smiles: np.ndarray  # (M,) str, the source's SMILES ("" for molecules given by geometry alone)

    def __len__(self) -> int:
        return len(self.index)


def cache_key(source_version: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "source": "qm9pack",
        "source_version": source_version,
        "features": FEATURE_SET,
        "targets": list(TARGET_NAMES),
    }


def cache_path(root: str | Path, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return Path(root) / f"qm9_v{key['format_version']}_{digest}.npz"


def save(packed: PackedQM9, path: Path, key: dict, counts: dict[str, int]) -> None:
    """Write the metadata, then the cache, each whole or not at all: a complete `.npz` is the sign
    that a cache is ready, so an interrupted build leaves no half file that would be taken for one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "molecules": len(packed), "atoms": int(len(packed.z)), "paths": counts}
    text = json.dumps(meta, indent=2) + "\n"
    write_atomically(path.with_suffix(".json"), lambda file: file.write(text.encode()))
    arrays = {name: getattr(packed, name) for name in ARRAYS}
    write_atomically(path, lambda file: np.savez_compressed(file, **arrays))


def load(path: Path) -> PackedQM9:
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
        detail = str(error) if len(str(error)) <= 200 else f"{str(error)[:200]}..."  # zipfile may quote whole headers
        raise RuntimeError(
            f"processed QM9 cache {path} is unreadable ({type(error).__name__}: {detail}). "
            f"Move it away and rebuild with `python scripts/prepare_data.py data.root={path.parent}`."
        ) from None
    packed = PackedQM9(**arrays)
    if packed.num_atoms.sum() != len(packed.z) or packed.targets.shape != (len(packed), len(TARGET_NAMES)):
        raise RuntimeError(f"processed QM9 cache {path} is inconsistent; move it away and rebuild it")
    return packed


def build(progress: bool = True) -> tuple[PackedQM9, dict]:
    """Read qm9pack and featurize all of it with RDKit (loading the cache imports neither)."""
    from mpnn.data.featurize import featurize, path_counts
    from mpnn.data.source import read_qm9

    raw = read_qm9()
    features = featurize(raw, progress=progress)
    return pack(raw, features), path_counts(features)


def pack(raw: RawQM9, features: Features) -> PackedQM9:
    """Molecules as read and their RDKit features, in the cache's layout."""
    return PackedQM9(
        index=raw.index.astype(np.int32),
        num_atoms=np.diff(raw.atom_ptr).astype(np.uint8),
        z=raw.z,
        pos=raw.pos,
        acceptor=features.acceptor,
        donor=features.donor,
        aromatic=features.aromatic,
        hybridization=features.hybridization,
        num_h=features.num_h,
        bonds=features.bonds,
        bond_count=features.bond_count.astype(np.uint8),
        path=features.path,
        targets=raw.targets,
        smiles=np.array([text or "" for text in raw.smiles], dtype=str),
    )


def ensure_built(root: str | Path, progress: bool = True) -> Path:
    """Path of the cache under `root`, building it first if it does not exist yet (once, however many
    processes ask at the same time)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        source_version = version("qm9pack")
    except PackageNotFoundError:
        source_version = _existing_source_version(Path(root))
    key = cache_key(source_version)
    path = cache_path(root, key)
    if path.exists():  # no lock to read: the cache may lie in a folder this process cannot write to
        return path
    check_writable(path.parent, "data.root")
    with lock_for(path):  # one process builds; others started with it wait here, then reuse its cache
        if not path.exists():
            packed, counts = build(progress=progress)
            print(f"featurized {len(packed)} molecules; bond paths: {counts}")
            save(packed, path, key, counts)
    return path


def load_or_build(root: str | Path, progress: bool = True) -> tuple[PackedQM9, Path]:
    """The cached dataset under `root` (built first if needed) and its path."""
    path = ensure_built(root, progress)
    return load(path), path


def _existing_source_version(root: Path) -> str:
    """Without qm9pack installed (a GPU box), accept the cache built from any qm9pack version."""
    for meta in sorted(root.glob(f"qm9_v{FORMAT_VERSION}_*.json")):
        key = json.loads(meta.read_text())["key"]
        if key == cache_key(key["source_version"]):
            return key["source_version"]
    raise RuntimeError(
        f"no processed QM9 cache in {root} and qm9pack is not installed: "
        "install it (`pip install qm9pack==1.0.3`) or copy a cache built elsewhere into data.root"
    )
