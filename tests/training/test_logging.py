"""What a run prints and logs: each line once, no advertisements; learning rate, early stopping, TensorBoard."""

import csv
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_script, train

pytestmark = pytest.mark.slow


def test_a_run_prints_no_line_twice_and_no_advertisement(tmp_path, packed):
    result = run_script(
        "train.py", "data.subset=300", "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("] - ")[-1] for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    repeated = [a for a, b in zip(lines, lines[1:]) if a == b]
    assert not repeated, repeated
    text = result.stdout + result.stderr
    assert "Tip:" not in text and "litlogger" not in text and "litmodels" not in text and "LeafSpec" not in text
    assert "GPU available" in text  # Lightning's own information still reaches the console, once


def test_a_run_logged_to_a_file_prints_progress_lines(tmp_path, packed):
    """stdout to a file (SLURM, nohup): Lightning's bar shows nothing until an epoch ends, so plain lines
    do, at every epoch's end and every `every_s` seconds in between."""
    log = tmp_path / "log.txt"
    with open(log, "w") as handle:
        result = subprocess.run(
            [sys.executable, str(REPO / "train.py"), "data.subset=300", "trainer.max_epochs=2", "logger=none",
             "trainer.accelerator=cpu", "callbacks.progress.every_s=0.05", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=REPO, stdout=handle, stderr=subprocess.PIPE, text=True, timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in log.read_text().splitlines() if line.startswith("[progress]")]
    ends = [line for line in lines if " end |" in line]
    assert [line.split()[2] for line in ends] == ["1/2", "2/2"], lines
    assert all("molecules/s" in line and "elapsed" in line and "left ~" in line for line in lines)
    assert "val/mae" in ends[-1] and "left ~0:00:00" in ends[-1]
    assert any(" step " in line for line in lines), lines  # the timed lines between epoch ends


def test_the_learning_rate_reaches_the_logger(tmp_path, packed):
    train(tmp_path / "run", "data.subset=300", "trainer.max_epochs=2", "logger=csv", "schedule=linear_decay",
          "schedule.decay_start=0")  # fmt: skip
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        rates = [float(row["lr-Adam"]) for row in csv.DictReader(handle) if row.get("lr-Adam")]
    assert len(rates) == 2 and rates[0] == pytest.approx(1e-3) and rates[1] < rates[0]


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path, packed):
    results = train(
        tmp_path / "run", "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=1000", "data.subset=300", "trainer.max_epochs=10", "logger=none",
    )  # fmt: skip
    assert results["epochs"] == 2  # no improvement of 1000 D after the first validation: stop after one more


def test_tensorboard_logger_writes_event_files(tmp_path, packed):
    train(tmp_path / "run", "logger=tensorboard", "data.subset=300", "trainer.max_epochs=1")
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_a_failed_run_finishes_its_wandb_run_as_failed(tmp_path, packed):
    """The task closes its loggers in a `finally`: W&B records exit code 1 for a run that failed
    after its logger started (here: CUDA graphs asked for on a CPU), and 0 for one that completed."""
    from mpnn.training.wandb_offline import offline_exit_code

    failed = run_script(
        "train.py", "data.subset=300", "trainer.max_epochs=1", "trainer.accelerator=cpu", "optim.cuda_graph=true",
        "data.static_shapes=true", f"hydra.run.dir={tmp_path / 'failed'}",
    )  # fmt: skip
    assert failed.returncode != 0 and "needs a CUDA device" in failed.stderr
    assert offline_exit_code(tmp_path / "failed") == 1
    train(tmp_path / "completed", "data.subset=300", "trainer.max_epochs=1")
    assert offline_exit_code(tmp_path / "completed") == 0


def test_time_left_after_a_resume_counts_only_the_steps_this_process_took(capsys):
    """Resumed at step 900 of 1,000, 50 steps in 100 s: 50 steps left take 100 s more (dividing by all 950
    steps said 5 s)."""
    from types import SimpleNamespace

    from mpnn.training.callbacks import ProgressLines, time_left

    assert time_left(100.0, 50, 50) == pytest.approx(100.0)
    assert time_left(100.0, 0, 50) != time_left(100.0, 0, 50)  # nan: no step taken yet
    progress = ProgressLines(every_s=1, always=True)
    trainer = SimpleNamespace(
        is_global_zero=True, global_step=900, estimated_stepping_batches=1000, current_epoch=9, max_epochs=10,
        world_size=1, callback_metrics={},
    )  # fmt: skip
    progress.on_train_start(trainer, None)
    progress._start -= 100  # 100 s ago
    trainer.global_step = 950
    progress.on_train_epoch_end(trainer, None)
    line = capsys.readouterr().out.strip()
    assert "left ~0:01:40" in line, line
