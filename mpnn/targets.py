"""The QM9 regression targets: names, units, conversions and the paper's chemical accuracy.

One table is the single source of truth for every place that needs a unit, a chemical
accuracy or the raw CSV column behind a target (featurization, metrics, results, docs).
Chemical accuracy and the paper's error ratios are Gilmer et al. (2017), Tables 2 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass

HARTREE_TO_EV = 27.211386246

# Single-atom reference energies (U0, hartree) from the QM9 paper, keyed by atomic number.
ATOM_REFERENCE_U0_HARTREE = {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    unit: str
    column: str  # qm9pack CSV column ("" for derived targets)
    scale: float  # multiply the CSV value by this to get `unit`
    chemical_accuracy: float | None  # None for targets the paper does not report
    paper_enn_s2s_ratio: float | None = None  # Gilmer et al. Table 2, best single model
    paper_ens5_ratio: float | None = None  # Gilmer et al. Table 2, ensemble of five models
    extensive: bool = False  # grows with molecule size: fitted atomrefs, per-atom outputs summed (mpnn.recipes)

    @property
    def paper_enn_s2s_mae(self) -> float | None:
        if self.chemical_accuracy is None or self.paper_enn_s2s_ratio is None:
            return None
        return self.paper_enn_s2s_ratio * self.chemical_accuracy


_EV = HARTREE_TO_EV
TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("mu", "dipole moment", "D", "Dipole_debye", 1.0, 0.1, 0.30, 0.20),
        Target("alpha", "isotropic polarizability", "bohr^3", "Polarizability_bohr3", 1.0, 0.1, 0.92, 0.68),
        Target("homo", "HOMO energy", "eV", "HOMO_au", _EV, 0.043, 0.99, 0.74),
        Target("lumo", "LUMO energy", "eV", "LUMO_au", _EV, 0.043, 0.87, 0.65),
        Target("gap", "HOMO-LUMO gap", "eV", "HOMO_LUMO_gap_au", _EV, 0.043, 1.60, 1.23),
        Target("r2", "electronic spatial extent", "bohr^2", "R2_bohr2", 1.0, 1.2, 0.15, 0.14),
        Target("zpve", "zero point vibrational energy", "eV", "ZPVE_au", _EV, 0.0012, 1.27, 1.10, extensive=True),
        Target("u0", "internal energy at 0 K", "eV", "InternalEnergy_0K_au", _EV, 0.043, 0.45, 0.33, extensive=True),
        Target(
            "u", "internal energy at 298.15 K", "eV", "InternalEnergy_298K_au", _EV, 0.043, 0.45, 0.34, extensive=True
        ),
        Target("h", "enthalpy at 298.15 K", "eV", "Enthalphy_298K_au", _EV, 0.043, 0.39, 0.30, extensive=True),
        Target("g", "free energy at 298.15 K", "eV", "GibbsFreeEnergy_298K_au", _EV, 0.043, 0.44, 0.34, extensive=True),
        Target(
            "cv",
            "heat capacity at 298.15 K",
            "cal/(mol K)",
            "Heatcapacity_Cv_cal_mol_K",
            1.0,
            0.050,
            0.80,
            0.62,
            extensive=True,
        ),
        Target(
            "omega1", "highest fundamental vibrational frequency", "cm^-1", "Harmonic_Freq_cmi", 1.0, 10.0, 0.19, 0.15
        ),
        # Atomization energies: total energy minus the single-atom reference energies.
        # The paper reports total energies; same chemical accuracy applies to differences.
        Target("u0_atom", "atomization energy at 0 K", "eV", "", _EV, 0.043, extensive=True),
        Target("u_atom", "atomization internal energy at 298.15 K", "eV", "", _EV, 0.043, extensive=True),
        Target("h_atom", "atomization enthalpy at 298.15 K", "eV", "", _EV, 0.043, extensive=True),
        Target("g_atom", "atomization free energy at 298.15 K", "eV", "", _EV, 0.043, extensive=True),
    ]
}
# Gilmer et al.'s study of training-set size (enn-s2s, mu): error ratio by number of training molecules.
PAPER_MU_RATIO_BY_TRAIN_SIZE = {11_000: 1.28, 35_000: 0.55, 58_000: 0.44, 82_000: 0.32, 110_000: 0.30}
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)
PAPER_TARGETS: tuple[str, ...] = TARGET_NAMES[:13]


def get_target(name: str) -> Target:
    """Look a target up by name, failing with the list of valid names."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; valid targets: {', '.join(TARGET_NAMES)}") from None
