"""Per-target recipes: how a target is standardised and how per-atom outputs are pooled.

- `extensive` (energies, ZPVE, heat capacity): the target grows with the molecule. Per-element
  reference energies (atomrefs) are fitted on the training split by least squares over element
  counts and removed before standardising; models with a per-atom output sum it over atoms.
- `intensive` (dipole, orbital energies, polarizability, R^2, omega1): standardised over
  molecules only; models with a per-atom output average it.

Every model uses the recipe of its target (`recipe=null`, the default) unless `recipe=` names
another; results.json records which recipe a run used.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpnn.targets import get_target


@dataclass(frozen=True)
class Recipe:
    name: str
    atomrefs: bool  # fit and remove per-element reference values
    pooling: str  # "sum" | "mean": how a model with per-atom outputs pools them


RECIPES: dict[str, Recipe] = {
    "extensive": Recipe("extensive", atomrefs=True, pooling="sum"),
    "intensive": Recipe("intensive", atomrefs=False, pooling="mean"),
}


def get_recipe(target: str, name: str | None = None) -> Recipe:
    """The recipe called `name`, or the target's own when `name` is None."""
    name = name or ("extensive" if get_target(target).extensive else "intensive")
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe={name!r}; valid: {', '.join(RECIPES)} (or null: the target's own)") from None
