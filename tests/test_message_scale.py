"""The paper's configs must propagate and learn (issue: enn-s2s stalled at 0.71 D on mu with the plain sum).

Two checks that failed on the code of 2026-12-04 (plain sum, `model.message.sum_scale=1.0`) and pass
with `sum_scale=auto` (docs/TRAINING.md has the measurements behind the thresholds):
- at initialisation, on the committed real molecules, every paper experiment config and every
  message function keeps its messages within 10x the node states and leaves at most half of any
  GRU gate's pre-activations saturated (plain sum: 85-96% saturated with the edge network); the GG-NN
  with virtual edges, which sums plainly as the paper does and learns so (SATURATED_YET_LEARNING), aside;
- the default config learns on a few hundred real molecules within a fixed number of steps: the
  training loss falls well below its start (the mean predictor's ~1 on the standardised target)
  and the readout uses h_T. The limits hold with margins over three seeds (measured, below).
"""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from mpnn.cli import compose
from mpnn.message_scale import message_scale, propagation
from mpnn.models.factory import build_model
from tests.conftest import REPO
from tests.models.conftest import batches, fitted_spec

PAPER_EXPERIMENTS = ("enn_s2s", "enn_s2s_implicit_h", "enn_s2s_reference", "ggnn_no_distance", "ggnn_virtual_edges",
                     "ggnn_master_node", "ggnn_set2set", "towers_baseline", "towers8")  # fmt: skip
CONFIGS = [[f"experiment={e}"] for e in PAPER_EXPERIMENTS] + [[], ["model=ggnn"], ["model=pair_message"]]
# Largest message / state ratio and saturated fraction of any gate allowed at initialisation.
LIMITS = (10.0, 0.5)
# The GG-NN rows without distances sum plainly, as the paper does (ggnn_no_distance.yaml). With virtual edges
# (and the master node and set2set on top) their messages reach 17-18x the states at initialisation and 60-70%
# of a gate saturates (seeds 0-2), yet they learn better than with the scale (docs/TRAINING.md, section 3: best
# 1.03-1.09x the reference's against 1.12-1.15x, seeds 0-2). For these the learning guard is the judge; this
# check only holds them near what was measured.
SATURATED_YET_LEARNING = {
    f"experiment={name}": (25.0, 0.85) for name in ("ggnn_virtual_edges", "ggnn_master_node", "ggnn_set2set")
}


def test_every_paper_experiment_is_checked():
    on_disk = {p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")}
    assert set(PAPER_EXPERIMENTS) == {e for e in on_disk if not e.endswith("_qm9")}  # the zoo's recipes aside


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda o: o[0] if o else "default")
def test_messages_stay_in_the_range_the_gru_can_use_at_init(overrides, sample):
    cfg = compose(["logger=none", *overrides])
    spec = fitted_spec(
        sample, target="mu", edges=cfg.data.edges, virtual_edges=cfg.data.virtual_edges,
        explicit_h=cfg.data.explicit_h,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), spec)
    dense, _ = batches(sample, spec, rows=range(len(sample)))
    steps = propagation(model, [dataclasses.replace(dense, x=dense.x.float(), pos=dense.pos.float())])
    assert len(steps) == cfg.model.steps
    largest_ratio, most_saturated = SATURATED_YET_LEARNING.get(" ".join(overrides), LIMITS)
    for step in steps:
        saturated = max(step["saturated_reset"], step["saturated_update"], step["saturated_candidate"])
        assert step["message_to_state"] < largest_ratio and saturated <= most_saturated, step


# name: (overrides, molecules, steps, most of the starting loss left, least loss ratio without / with h_T).
# Measured over seeds 0, 1, 2 (docs/TRAINING.md, section 4): the default keeps 0.342 / 0.448 / 0.381 of
# its starting loss with sum_scale=auto and 0.616 / 0.586 / 0.583 with the plain sum; its readout loses
# 2.56x / 2.20x / 2.06x without h_T (plain sum: 1.28x / 1.30x / 1.31x). enn_s2s is not in this test: at 60
# steps on 256 molecules its seed 1 kept 0.827 of its loss with a readout ratio of 1.011, as close to the
# limits as the plain sum's stall, so no threshold separates them there; its stall is caught at
# initialisation above (85-96% saturated with the plain sum, at most 21% with `auto`, 2.5% with the shipped
# `auto*0.5`, over three seeds) and by `mpnn-benchmark learning`.
LEARNING = {
    "default": ([], 128, 120, 0.52, 1.6),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LEARNING))
def test_the_default_config_learns_in_a_few_steps(name, packed):
    from mpnn.diagnostics import _batches
    from mpnn.training.build import build

    overrides, molecules, steps, most_left, least_ratio = LEARNING[name]
    cfg = compose(["logger=none", "data.subset=2000", "trainer.accelerator=cpu", *overrides])
    datamodule, module = build(cfg)
    size = min(cfg.data.batch_size, 32)
    train = _batches(datamodule, datamodule.split.train[:molecules], size)
    held_out = _batches(datamodule, datamodule.split.val[:100], 100)
    report = message_scale(module, train, held_out, steps, cfg.optim.lr, cfg.optim.gradient_clip_val)
    training, readout = report["training"], report["readout"]
    assert 0.8 < training["first_loss"] < 1.3  # the mean predictor's loss, about 1
    assert training["last_loss"] < most_left * training["first_loss"], training
    assert readout["loss_without_states"] > least_ratio * readout["loss"], readout
