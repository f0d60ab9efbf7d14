"""Error analysis of a real finished run: per-molecule errors, their breakdowns, the script."""

import json

import pytest
from rdkit import Chem

from mpnn.analysis import breakdown, per_molecule_errors
from tests.conftest import run_script, train

pytestmark = pytest.mark.slow


def test_per_molecule_errors_of_a_finished_run(tmp_path, packed):
    run_dir = tmp_path / "run"
    results = train(run_dir, "logger=none", "data.subset=600", "trainer.max_epochs=1", "target=homo")
    frame, target = per_molecule_errors(run_dir)
    assert target.name == "homo" and len(frame) == results["molecules"]["test"]
    assert frame["abs_error"].mean() == pytest.approx(results["test_mae"], rel=1e-4)
    assert frame["abs_error"].is_monotonic_decreasing
    # SMILES come from the source by QM9 index; RDKit's reading of them agrees with the cache's atoms.
    for row in frame.itertuples():
        assert Chem.MolFromSmiles(row.smiles).GetNumHeavyAtoms() == row.heavy_atoms
    by_size = breakdown(frame, "heavy_atoms")
    assert by_size["molecules"].sum() == len(frame)
    assert (by_size["mae"] * by_size["molecules"]).sum() / len(frame) == pytest.approx(results["test_mae"], rel=1e-4)

    shown = run_script("scripts/errors.py", str(run_dir), "--top", "3")
    assert shown.returncode == 0, shown.stderr
    assert f"homo: test MAE {results['test_mae']:.4g} eV" in shown.stdout and "by path" in shown.stdout
    assert str(frame["qm9_index"][0]) in shown.stdout.split("largest errors")[1]
    assert (run_dir / "test_errors.png").stat().st_size > 1000
    assert len((run_dir / "test_errors.csv").read_text().splitlines()) == len(frame) + 1
    assert json.loads((run_dir / "results.json").read_text()) == results  # the run's own files untouched

    missing = run_script("scripts/errors.py", str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "test_predictions.npz not found" in missing.stderr
