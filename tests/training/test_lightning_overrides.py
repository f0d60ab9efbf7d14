"""What mpnn/training/lightning_overrides.py relies on in Lightning's private API: each test fails if a
Lightning release renames, re-signs or stops calling what an override replaces."""

import csv
import inspect

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mpnn.training.lightning_overrides import ResumableCSVLogger, RunCheckpoint, _AtomicWriter

# name: the parameters (after self) that RunCheckpoint calls or overrides it with.
MODEL_CHECKPOINT_PRIVATE = {
    "_save_last_checkpoint": ["trainer", "monitor_candidates"],
    "_remove_checkpoint": ["trainer", "filepath"],
    "_should_skip_saving_checkpoint": ["trainer"],
    "_monitor_candidates": ["trainer"],
}


@pytest.mark.parametrize("name", sorted(MODEL_CHECKPOINT_PRIVATE))
def test_model_checkpoint_still_has_the_methods_run_checkpoint_uses(name):
    method = getattr(ModelCheckpoint, name, None)
    assert method is not None, f"ModelCheckpoint.{name} is gone: RunCheckpoint must be rewritten"
    assert list(inspect.signature(method).parameters)[1:] == MODEL_CHECKPOINT_PRIVATE[name]


def test_model_checkpoint_saves_last_and_removes_through_the_overridden_methods():
    """RunCheckpoint defers deleting a superseded best checkpoint until last.ckpt is written: that needs
    ModelCheckpoint to remove files through `_remove_checkpoint` and write last.ckpt through
    `_save_last_checkpoint` (both called from its own code, not only from ours)."""
    source = inspect.getsource(ModelCheckpoint)
    assert "self._remove_checkpoint(" in source and "self._save_last_checkpoint(" in source
    assert RunCheckpoint._remove_checkpoint is not ModelCheckpoint._remove_checkpoint


def test_the_csv_writer_rewrites_the_header_through_the_method_we_replace(tmp_path):
    """ExperimentWriter.save calls `_rewrite_with_new_header(fieldnames)` when a column is added to an
    existing file; _AtomicWriter replaces it with a write to a temporary file and a rename."""
    assert list(inspect.signature(ExperimentWriter._rewrite_with_new_header).parameters)[1:] == ["fieldnames"]
    calls = []

    class Counting(_AtomicWriter):
        def _rewrite_with_new_header(self, fieldnames):
            calls.append(list(fieldnames))
            super()._rewrite_with_new_header(fieldnames)

    writer = Counting(log_dir=str(tmp_path))
    writer.log_metrics({"val/mae": 1.0}, step=0)
    writer.save()
    writer.log_metrics({"train/loss": 2.0}, step=1)  # a new column: the header is rewritten
    writer.save()
    assert calls == [["step", "train/loss", "val/mae"]] or calls == [["step", "val/mae", "train/loss"]]
    with open(tmp_path / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["step"] for row in rows] == ["0", "1"] and rows[0]["val/mae"] == "1.0"
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_the_csv_logger_still_builds_its_writer_from_the_attributes_we_use(tmp_path):
    logger = ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    assert isinstance(logger.experiment, _AtomicWriter)
    plain = CSVLogger(save_dir=str(tmp_path), name="plain", version="")
    assert hasattr(plain, "_experiment") and hasattr(plain, "_fs")
    assert hasattr(plain.experiment, "metrics_keys")  # mpnn.training.resume.keep_csv_history sets it
