"""The targets table: names, units, chemical accuracy and the paper's ratios."""

import pytest

from mpnn.targets import PAPER_TARGETS, TARGET_NAMES, get_target


def test_targets_table_matches_reference_values():
    assert TARGET_NAMES[:13] == (
        "mu",
        "alpha",
        "homo",
        "lumo",
        "gap",
        "r2",
        "zpve",
        "u0",
        "u",
        "h",
        "g",
        "cv",
        "omega1",
    )
    assert get_target("zpve").chemical_accuracy == 0.0012
    assert get_target("omega1").unit == "cm^-1"
    assert get_target("mu").paper_enn_s2s_mae == pytest.approx(0.030)


def test_unknown_target_lists_valid_names():
    with pytest.raises(ValueError, match="valid targets: mu, alpha"):
        get_target("dipole")


@pytest.mark.parametrize(("field", "paper_mean"), [("paper_enn_s2s_ratio", 0.68), ("paper_ens5_ratio", 0.52)])
def test_paper_ratios_average_to_the_papers_mean(field, paper_mean):
    """Gilmer et al. quote the mean error ratio over the 13 targets; a mistyped entry would move it."""
    ratios = [getattr(get_target(name), field) for name in PAPER_TARGETS]
    assert sum(ratios) / len(ratios) == pytest.approx(paper_mean, abs=0.005)
    assert all(get_target(name).paper_ens5_ratio < get_target(name).paper_enn_s2s_ratio for name in PAPER_TARGETS)
