"""`mpnn-diagnose [overrides] [--json]`: sanity checks of a configuration before training it.

Takes the same Hydra overrides as train.py, e.g.
    mpnn-diagnose model=edge_net target=mu data.subset=500 trainer.accelerator=cpu --json
`--figure PATH` also draws the message-scale check (the paper's MPNN) to PATH.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mpnn.cli import compose


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv
    figure = None
    if "--figure" in argv:
        at = argv.index("--figure")
        if at + 1 >= len(argv):
            print("--figure needs a file name, e.g. --figure message_scale.png", file=sys.stderr)
            return 2
        figure = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    overrides = [a for a in argv if a != "--json"]
    if any(a.startswith("-") for a in overrides):
        print(__doc__, file=sys.stderr)
        return 2
    from mpnn.diagnostics import diagnose
    from mpnn.logs import quiet_logs

    quiet_logs()
    report = diagnose(compose(["logger=none", *overrides]))
    if figure and report["message_scale"]:
        from mpnn.plots import draw_message_scale

        draw_message_scale(report["message_scale"], " ".join(overrides), figure)
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
    print_message_scale(report["message_scale"])
    for warning in report["warnings"]:
        print(f"WARNING: {warning}")
    return 0


def print_message_scale(scale: dict) -> None:
    """Per message passing step: message and state RMS and saturated GRU pre-activations; gradients."""
    if not scale:
        return
    print("message scale (the paper's MPNN; docs/TRAINING.md):")
    print("  when     step  |m| rms  |h| rms  m/h    saturated: reset  update  candidate")
    for when, label in (("at_init", "init"), ("trained", f"{scale['training_steps']} st")):
        for s in scale[when]:
            print(
                f"  {label:<8} {s['step']:>4}  {s['message_rms']:>7.3g}  {s['state_rms']:>7.3g}  "
                f"{s['message_to_state']:>5.3g}  {s['saturated_reset']:>16.0%}  {s['saturated_update']:>6.0%}  "
                f"{s['saturated_candidate']:>9.0%}"
            )
    training = scale["training"]
    norms = ", ".join(f"{part} {value:.3g}" for part, value in training["gradient_norm"].items())
    print(f"  gradient norm per part (mean over steps): {norms}")
    print(f"  clipping bound on {training['clipped_fraction']:.0%} of the steps")
    readout = scale["readout"]
    print(f"  readout loss with h_T {readout['loss']:.4g}, without (x alone) {readout['loss_without_states']:.4g}")


if __name__ == "__main__":
    raise SystemExit(main())
