"""Sanity checks of a configuration before training it: `python scripts/diagnose.py [overrides] [--json]`.

Takes the same Hydra overrides as train.py, e.g.
    python scripts/diagnose.py model=edge_net target=mu data.subset=500 trainer.accelerator=cpu --json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    overrides = [a for a in argv if a != "--json"]
    if any(a.startswith("-") for a in overrides):
        print(__doc__, file=sys.stderr)
        return 2
    from hydra import compose, initialize_config_dir

    from mpnn.diagnostics import diagnose

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", *overrides])
    cfg.paths.root_dir = str(ROOT)
    report = diagnose(cfg)
    if as_json:
        print(json.dumps(report))
        return 0
    unit = report["unit"]
    print(f"init_loss               {report['init_loss']:.4f}  (expected about {report['expected_init_loss']})")
    print(f"mean_predictor_mae      {report['mean_predictor_mae']:.4g} {unit}  (predict the training mean)")
    print(
        f"input_independent_mae   {report['input_independent_mae']:.4g} {unit}  vs real inputs "
        f"{report['real_input_mae']:.4g} {unit}  (after {report['train_steps']} steps each)"
    )
    print(
        f"overfit_one_batch_loss  {report['overfit_one_batch_loss']:.4g}  "
        f"({report['overfit_molecules']} molecules, {report['overfit_steps']} steps; should approach 0)"
    )
    print(f"batch_independence      {report['batch_independence']}")
    for warning in report["warnings"]:
        print(f"WARNING: {warning}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
