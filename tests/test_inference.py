"""Checkpoints as files: a best checkpoint copied alone predicts as its run does; unsafe ones are refused."""

import io
import os
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from mpnn.inference import load_checkpoint, run_checkpoint
from tests.conftest import run_script, train
from tests.test_predict import as_xyz

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, packed):
    run_dir = tmp_path_factory.mktemp("inference") / "run"
    train(run_dir, "logger=none", "data.subset=600", "trainer.max_epochs=1", "target=homo")
    return run_dir


def test_a_checkpoint_alone_predicts_like_its_run_directory(finished_run, tmp_path):
    """No run directory, no config, no QM9 cache beside it: `mpnn-predict --checkpoint FILE --xyz FILE`."""
    alone = tmp_path / "empty"
    alone.mkdir()
    shutil.copy(run_checkpoint(finished_run), alone / "model.ckpt")
    rows = np.load(finished_run / "test_predictions.npz")["index"][:6]
    xyz, _ = as_xyz(rows)
    (alone / "molecules.xyz").write_text(xyz)
    via_run = run_script("scripts/predict.py", str(finished_run), "--xyz", str(alone / "molecules.xyz"))
    via_file = run_script(
        "scripts/predict.py", "--checkpoint", "model.ckpt", "--xyz", "molecules.xyz", "--out", "p.csv", cwd=alone
    )
    assert via_run.returncode == 0 and via_file.returncode == 0, via_file.stderr[-2000:]
    assert via_file.stdout.split("written:")[0] == via_run.stdout
    table = pd.read_csv(alone / "p.csv")
    assert list(table.columns[4:]) == ["homo [eV]"] and np.isfinite(table["homo [eV]"]).all()
    assert sorted(os.listdir(alone)) == ["model.ckpt", "molecules.xyz", "p.csv"]  # nothing else was needed or made


def test_a_checkpoint_carrying_a_pickled_object_is_refused(finished_run, tmp_path):
    checkpoint = torch.load(run_checkpoint(finished_run), map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["payload"] = zipfile.ZipInfo("not a plain type")  # any class outside the allowlist
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save(checkpoint, unsafe)
    with pytest.raises(ValueError, match="holds pickled Python objects, which could run code when loaded; refusing"):
        load_checkpoint(unsafe)
    molecules = tmp_path / "molecules.xyz"
    molecules.write_text(as_xyz(np.load(finished_run / "test_predictions.npz")["index"][:2])[0])
    refused = run_script("scripts/predict.py", "--checkpoint", str(unsafe), "--xyz", str(molecules))
    assert refused.returncode != 0 and "refusing it" in refused.stderr


def test_checkpoints_are_looked_up_inside_a_moved_run_directory(finished_run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(finished_run, moved)
    assert run_checkpoint(moved).parent == moved / "checkpoints"
    run_checkpoint(moved).unlink()
    with pytest.raises(FileNotFoundError, match="was moved or deleted"):
        run_checkpoint(moved)  # never a silent fall-back to another checkpoint


def test_a_plain_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    junk = tmp_path / "junk.ckpt"
    buffer = io.BytesIO()
    torch.save({"state_dict": {}}, buffer)
    junk.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="is not a checkpoint of this project"):
        load_checkpoint(junk)
