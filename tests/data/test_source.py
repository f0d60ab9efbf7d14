import numpy as np
import pandas as pd
import pytest

from mpnn.data.source import EXPECTED_MOLECULES, qm9pack_data_dir, read_qm9
from mpnn.targets import HARTREE_TO_EV, TARGET_NAMES, TARGETS


@pytest.fixture(scope="module")
def raw():
    return read_qm9(limit=500)


@pytest.fixture(scope="module")
def csv_rows():
    return pd.read_csv(qm9pack_data_dir() / "qm9_part1.csv", nrows=500)


def test_unit_conversion_against_raw_csv(raw, csv_rows):
    column = {name: k for k, name in enumerate(TARGET_NAMES)}
    # Energies: hartree -> eV; others unchanged.
    np.testing.assert_allclose(raw.targets[:, column["homo"]], csv_rows["HOMO_au"] * HARTREE_TO_EV)
    np.testing.assert_allclose(raw.targets[:, column["u0"]], csv_rows["InternalEnergy_0K_au"] * HARTREE_TO_EV)
    np.testing.assert_allclose(raw.targets[:, column["mu"]], csv_rows["Dipole_debye"])
    # Methane's largest harmonic frequency and its atomization energy (QM9: about -17.17 eV).
    assert raw.targets[0, column["omega1"]] == pytest.approx(3151.7078)
    assert raw.targets[0, column["u0_atom"]] == pytest.approx(-17.17, abs=0.01)
    assert all(TARGETS[name].scale == HARTREE_TO_EV for name in ("gap", "zpve", "g"))


def test_atoms_and_coordinates_follow_the_csv(raw, csv_rows):
    assert len(raw) == 500
    assert list(raw.z[raw.atom_ptr[0] : raw.atom_ptr[1]]) == [6, 1, 1, 1, 1]
    # "1." style numbers parse: acetylene lies on z = 1.
    acetylene = raw.pos[raw.atom_ptr[3] : raw.atom_ptr[4]]
    np.testing.assert_allclose(acetylene[:, 2], 1.0)


def test_full_source_has_expected_count(packed):
    assert len(packed) == EXPECTED_MOLECULES
