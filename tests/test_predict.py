"""Predicting new molecules from XYZ: the same numbers as the dataset path for QM9's own molecules."""

from pathlib import Path

import numpy as np
import pytest

from mpnn.data.source import read_smiles, read_xyz
from mpnn.inference import load_checkpoint, predict, predict_xyz, run_checkpoint
from tests.conftest import DATA_ROOT, run_script, train

pytestmark = pytest.mark.slow
SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}


def as_xyz(rows: np.ndarray) -> tuple[str, list[str]]:
    """QM9 molecules written out as an XYZ file (cache coordinates), with their SMILES."""
    from mpnn.data import cache

    packed, _ = cache.load_or_build(DATA_ROOT, progress=False)
    ptr = np.concatenate([[0], np.cumsum(packed.num_atoms.astype(np.int64))])
    blocks = []
    for row in rows:
        atoms = zip(packed.z[ptr[row] : ptr[row + 1]], packed.pos[ptr[row] : ptr[row + 1]].tolist())
        lines = [f"{SYMBOLS[int(z)]} {x!r} {y!r} {w!r}" for z, (x, y, w) in atoms]
        blocks.append(f"{len(lines)}\nQM9 {packed.index[row]}\n" + "\n".join(lines))
    smiles = read_smiles()
    return "\n".join(blocks) + "\n", [smiles[int(packed.index[row])] for row in rows]


def dataset_predictions(run_dir: Path, rows: np.ndarray) -> np.ndarray:
    """The run's best model on dataset rows, through the dataset path (the cache, not XYZ)."""
    from mpnn.data import cache
    from mpnn.data.datamodule import molecule_store

    model = load_checkpoint(run_checkpoint(run_dir))
    return predict(model, molecule_store(cache.load_or_build(DATA_ROOT)[0], model.spec, model.backend), rows)


def first_test_rows(run_dir: Path, count: int) -> np.ndarray:
    return np.load(run_dir / "test_predictions.npz")["index"][:count]


@pytest.mark.parametrize("model", [("model=edge_net",), ("experiment=ggnn_no_distance", "data.explicit_h=false")])
def test_xyz_predictions_equal_the_dataset_path(model, tmp_path, packed):
    run_dir = tmp_path / "run"
    train(run_dir, *model, "logger=none", "data.subset=600", "trainer.max_epochs=1")
    rows = first_test_rows(run_dir, 12)
    xyz, smiles = as_xyz(rows)
    expected = dataset_predictions(run_dir, rows)

    table = predict_xyz(run_dir, xyz, smiles)
    assert (table["path"] == "template").all()
    np.testing.assert_allclose(table["mu [D]"], expected, rtol=1e-6)
    assert list(table["atoms"]) == [int(packed.num_atoms[r]) for r in rows]  # the XYZ keeps every hydrogen

    geometry_only = predict_xyz(run_dir, xyz)  # bonds perceived from the coordinates
    assert (geometry_only["path"] != "template").all() and np.isfinite(geometry_only["mu [D]"]).all()


def test_runs_of_one_target_predict_as_an_ensemble(tmp_path, packed):
    """Two seeds of mu average, with their spread; a homo run adds its own column."""
    runs = {name: tmp_path / name for name in ("mu0", "mu1", "homo")}
    for name, overrides in {"mu0": ("seed=0",), "mu1": ("seed=1",), "homo": ("target=homo",)}.items():
        train(runs[name], *overrides, "logger=none", "data.subset=300", "trainer.max_epochs=1")
    rows = first_test_rows(runs["mu0"], 5)
    xyz, smiles = as_xyz(rows)
    members = [dataset_predictions(runs[name], rows) for name in ("mu0", "mu1")]
    assert not np.allclose(members[0], members[1])  # two different models

    table = predict_xyz(list(runs.values()), xyz, smiles)
    assert list(table.columns[4:]) == ["mu [D]", "mu std [D]", "homo [eV]"]
    np.testing.assert_allclose(table["mu [D]"], (members[0] + members[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(table["mu std [D]"], np.abs(members[0] - members[1]) / np.sqrt(2), rtol=1e-5)
    homo = dataset_predictions(runs["homo"], rows)
    np.testing.assert_allclose(table["homo [eV]"], homo, rtol=1e-6)


def test_predict_script_and_its_errors(tmp_path, packed):
    run_dir = tmp_path / "run"
    train(run_dir, "logger=none", "data.subset=300", "trainer.max_epochs=1")
    xyz, smiles = as_xyz(first_test_rows(run_dir, 3))
    (tmp_path / "m.xyz").write_text(xyz)
    (tmp_path / "m.smi").write_text("\n".join(smiles))
    out = tmp_path / "predictions.csv"
    args = ("scripts/predict.py", str(run_dir), "--xyz", str(tmp_path / "m.xyz"))
    result = run_script(*args, "--smiles", str(tmp_path / "m.smi"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "mu [D]" in result.stdout.splitlines()[0] and len(out.read_text().splitlines()) == 4
    again = run_script(*args, "--out", str(out))
    assert again.returncode != 0 and "exists; choose another --out" in again.stderr

    (tmp_path / "bad.xyz").write_text("2\nsilane fragment\nSi 0 0 0\nH 0 0 1.48\n")
    bad = run_script("scripts/predict.py", str(run_dir), "--xyz", str(tmp_path / "bad.xyz"))
    assert bad.returncode != 0 and "element one of H, C, N, O, F" in bad.stderr
    (tmp_path / "one.smi").write_text(smiles[0])
    mismatch = run_script(*args, "--smiles", str(tmp_path / "one.smi"))
    assert mismatch.returncode != 0 and "1 SMILES for 3 molecules" in mismatch.stderr
    (tmp_path / "broken.smi").write_text("C1CC\nC\nC\n")
    broken = run_script(*args, "--smiles", str(tmp_path / "broken.smi"))
    assert broken.returncode != 0 and "RDKit cannot read the SMILES 'C1CC'" in broken.stderr


def test_xyz_layout_errors_name_the_line():
    with pytest.raises(ValueError, match="XYZ block 1: 3 atoms announced, 1 lines follow"):
        read_xyz("3\ncomment\nC 0 0 0\n")
    with pytest.raises(ValueError, match="line 1 should be the atom count"):
        read_xyz("C 0 0 0\n")
    with pytest.raises(ValueError, match="line 1 should be the atom count, got '0'"):
        read_xyz("0\nempty\n")
    with pytest.raises(ValueError, match=r"line 3: expected `element x y z`.*got 'C 0 zero 0'"):
        read_xyz("1\n\nC 0 zero 0\n")
    molecules, comments = read_xyz("1\nmethane carbon\nC 1.0*^-3 0 0\n\n2\n\nH 0 0 0\nH 0 0 0.74\n")
    assert comments == ["methane carbon", ""] and list(molecules.atom_ptr) == [0, 1, 3]
    assert molecules.pos[0, 0] == pytest.approx(1e-3)  # QM9's own files write exponents as *^


def test_suspicious_molecules_are_refused_or_flagged_by_name(packed):
    """Overlapping atoms are refused; molecules larger than QM9's and SMILES that do not fit are flagged."""
    from mpnn.inference import featurize_xyz

    with pytest.raises(ValueError, match=r"molecule 1 \(clash\): atoms 1 and 2 are 0.300 A apart"):
        featurize_xyz("2\nclash\nC 0 0 0\nC 0 0 0.3\n")
    xyz, smiles = as_xyz(np.array([0, 1]))
    with pytest.warns(UserWarning, match=r"molecule 2 \(QM9 2\): its SMILES 'C' does not match"):
        featurize_xyz(xyz, [smiles[0], smiles[0]])  # methane's SMILES for ammonia
    block, _ = as_xyz(np.array([int(np.argmax(packed.num_atoms))]))  # a 29-atom molecule, twice, 50 A apart
    atoms = block.strip().splitlines()[2:]
    shifted = [f"{a} {float(x) + 50!r} {y} {z}" for a, x, y, z in (line.split() for line in atoms)]
    twice = f"{2 * len(atoms)}\ntwo copies\n" + "\n".join(atoms + shifted) + "\n"
    with pytest.warns(UserWarning, match=r"molecule 1 \(two copies\) has 58 atoms, more than any QM9"):
        featurize_xyz(twice)
