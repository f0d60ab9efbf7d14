import re

import numpy as np
import pytest
import torch

from mpnn.data.datamodule import QM9DataModule


def test_loaders_cover_each_split_once(datamodule_factory):
    dm = datamodule_factory(subset=1000, batch_size=64, eval_batch_size=100)
    seen = {}
    for stage, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        indices = torch.cat([dm.on_after_batch_transfer(batch, 0).index for batch in loader]).numpy()
        seen[stage] = indices
        np.testing.assert_array_equal(np.sort(indices), np.sort(getattr(dm.split, stage)))
    assert not set(seen["train"]) & set(seen["val"]) and not set(seen["val"]) & set(seen["test"])


def test_batches_are_cropped_to_their_largest_molecule(datamodule_factory):
    dm = datamodule_factory(subset=500, batch_size=32)
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch.x.shape[1] == int(batch.mask.sum(1).max())
    static = datamodule_factory(subset=500, batch_size=32, static_shapes=True)
    shapes = {static.on_after_batch_transfer(b, 0).x.shape for b in static.train_dataloader()}
    assert shapes == {(32, 29, 13)}  # fixed shapes: the last partial batch is dropped


def test_target_statistics_come_from_the_training_split(datamodule_factory):
    dm = datamodule_factory(subset=500, target="gap")
    mean, std = dm.target_statistics()
    y = dm.dataset.y[torch.from_numpy(dm.split.train)]
    assert mean == float(y.mean()) and std == float(y.std())
    assert 5 < mean < 9  # HOMO-LUMO gap in eV


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batch_size": 0}, "data.batch_size=0 must be a positive number"),
        ({"eval_batch_size": -5}, "data.eval_batch_size=-5 must be a positive number"),
        ({"split_seed": -1}, "data.split_seed=-1 must be a non-negative integer"),
        ({"edges": "bonds"}, "unknown data.edges='bonds'; valid: chemical_graph, distance_bins, raw_distance"),
    ],
)
def test_bad_settings_fail_with_the_valid_range(setting, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        QM9DataModule(**setting)
