"""The target scaler: least-squares atomrefs, standardisation round trip, element counts."""

import numpy as np
import pytest
import torch

from mpnn.data.spec import DataSpec
from mpnn.models.protocol import batch_element_counts
from mpnn.models.scaler import MAX_Z, TargetScaler, fit_atomrefs
from mpnn.targets import ATOM_REFERENCE_U0_HARTREE, HARTREE_TO_EV
from tests.models.conftest import batches


def constructed_energies(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element counts of 2,000 made-up molecules and energies = counts @ known per-element values + noise."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((2000, MAX_Z + 1))
    for z, (low, high) in {1: (0, 20), 6: (1, 9), 7: (0, 3), 8: (0, 4), 9: (0, 2)}.items():
        counts[:, z] = rng.integers(low, high + 1, len(counts))
    known = np.zeros(MAX_Z + 1)
    for z, hartree in ATOM_REFERENCE_U0_HARTREE.items():
        known[z] = hartree * HARTREE_TO_EV  # QM9's single-atom energies, eV
    return counts, counts @ known + rng.normal(0, 0.05, len(counts)), known


def test_atomref_fit_recovers_known_per_element_energies():
    counts, energies, known = constructed_energies()
    fitted = fit_atomrefs(counts, energies)
    np.testing.assert_allclose(fitted[[1, 6, 7, 8, 9]], known[[1, 6, 7, 8, 9]], atol=0.01)  # eV, of ~-2700 for F
    assert fitted[0] == 0 and fitted[2:6].tolist() == [0, 0, 0, 0]  # elements never seen stay 0


def test_extensive_scaler_removes_atomrefs_and_standardises():
    counts, energies, _ = constructed_energies()
    scaler = TargetScaler()
    scaler.fit(energies, counts, atomrefs=True)
    normalised = scaler.normalise(torch.from_numpy(energies), torch.from_numpy(counts))
    assert normalised.mean().abs() < 1e-6 and normalised.std().item() == pytest.approx(1.0, rel=1e-4)
    assert scaler.std.item() == pytest.approx(0.05, rel=0.1)  # only the noise is left to learn
    round_trip = scaler.denormalise(normalised, torch.from_numpy(counts))
    np.testing.assert_allclose(round_trip.numpy(), energies, atol=1e-5)  # float64 buffers keep ~-10,000 eV exact
    restored = TargetScaler()
    restored.load_state_dict(scaler.state_dict())
    assert torch.equal(restored.atomref, scaler.atomref) and restored.std == scaler.std


def test_intensive_scaler_is_plain_standardisation():
    counts, energies, _ = constructed_energies()
    scaler = TargetScaler()
    scaler.fit(energies, counts, atomrefs=False)
    assert scaler.atomref.abs().sum() == 0
    assert scaler.mean.item() == pytest.approx(energies.mean())
    assert scaler.std.item() == pytest.approx(energies.std(ddof=1))


def test_zero_spread_is_rejected():
    with pytest.raises(ValueError, match="must be positive"):
        TargetScaler().fit(np.ones(5), np.ones((5, MAX_Z + 1)), atomrefs=False)


@pytest.mark.parametrize("explicit_h", [True, False])
def test_element_counts_are_the_same_on_every_representation(sample, explicit_h):
    """Hydrogens count whether they are atoms or only the num_h feature, on both backends."""
    dense, sparse = batches(sample, DataSpec(explicit_h=explicit_h))
    expected, _ = batches(sample, DataSpec(explicit_h=True))
    reference = torch.stack([torch.bincount(z[z > 0], minlength=MAX_Z + 1) for z in expected.z]).double()
    torch.testing.assert_close(batch_element_counts(dense), reference)
    torch.testing.assert_close(batch_element_counts(sparse), reference)
