"""Processes that start together on one data root (a sweep, a job array) build its files once and share them."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

# Prepended to each process's code: `start_together()` returns in all of them at the same moment.
PRELUDE = """
import sys, time
from pathlib import Path

def start_together():
    go = Path(sys.argv[1])
    go.with_name(f"ready-{sys.argv[2]}").touch()
    while not go.exists():
        time.sleep(0.001)
"""


def run_together(code: str, count: int, folder: Path, *args: str, timeout: float) -> list[tuple[int, str, str]]:
    """`count` processes of `python -c PRELUDE+code GO INDEX *args`, released together once all have
    imported what they need; (exit code, stdout, stderr) of each."""
    go = folder / "go"
    processes = []
    for index in range(count):
        with open(folder / f"{index}.out", "w") as out, open(folder / f"{index}.err", "w") as err:
            command = [sys.executable, "-c", PRELUDE + code, str(go), str(index), *args]
            processes.append(subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err))
    deadline = time.monotonic() + 120
    while not all((folder / f"ready-{index}").exists() for index in range(count)):
        assert time.monotonic() < deadline and all(process.poll() is None for process in processes)
        time.sleep(0.01)
    go.touch()
    for process in processes:
        process.wait(timeout=timeout)
    return [
        (process.returncode, (folder / f"{i}.out").read_text(), (folder / f"{i}.err").read_text())
        for i, process in enumerate(processes)
    ]


SPLIT = """
import numpy as np
from mpnn.data.split import load_or_create_permutation

start_together()
permutation = load_or_create_permutation(Path(sys.argv[3]), 130_831, seed=int(sys.argv[2]))  # each its own seed
np.save(Path(sys.argv[1]).with_name(f"{sys.argv[2]}.npy"), permutation)
"""


def test_processes_started_together_create_one_split_and_all_use_it(tmp_path):
    """The shared `.tmp.npy` of the split file crashed 21 of 30 runs started together; and each process
    that found no file made its own split. One must create it; the others, with other seeds, read it."""
    root, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    results = run_together(SPLIT, 8, work, str(root / "split.npy"), timeout=120)
    assert all(code == 0 for code, _, _ in results), [err[-2000:] for _, _, err in results]
    permutations = [np.load(work / f"{index}.npy") for index in range(8)]
    assert all(np.array_equal(permutation, permutations[0]) for permutation in permutations)
    np.testing.assert_array_equal(np.load(root / "split.npy"), permutations[0])
    assert sorted(p.name for p in root.iterdir()) == ["split.npy", "split.npy.lock"]  # no temporary file left


def assert_one_cache_and_split(root: Path) -> None:
    """One cache, its metadata, one split and their lock files: no second cache, no temporary file left."""
    name = next(root.glob("*.npz")).stem
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [f"{name}.npz", f"{name}.json", f"{name}.npz.lock", f"{name}_split_seed0.npy", f"{name}_split_seed0.npy.lock"]
    )


@pytest.mark.slow
def test_eight_training_runs_started_together_on_an_empty_root(tmp_path):
    """The acceptance test: eight `train.py` with the default run directory, one empty data root, and
    `mpnn-prepare` (scripts/prepare_data.py) on the same root. One featurizes QM9 (a minute or more on 2
    cores); the others wait for it and load its file. Then `mpnn-prepare` again: warm, in seconds."""
    root, outputs = tmp_path / "data", tmp_path / "outputs"
    command = [
        sys.executable, str(REPO / "train.py"), f"data.root={root}", f"paths.log_dir={outputs}", "data.subset=200",
        "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv",
    ]  # fmt: skip
    prepare = [sys.executable, str(REPO / "scripts" / "prepare_data.py"), f"data.root={root}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    logs = [tmp_path / f"train-{index}.log" for index in range(8)] + [tmp_path / "prepare.log"]
    processes = []
    for log in logs:
        with open(log, "w") as out:
            started = prepare if log.name == "prepare.log" else command
            processes.append(subprocess.Popen(started, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
    for process in processes:
        process.wait(timeout=2400)
    failed = [log.read_text()[-3000:] for log, process in zip(logs, processes) if process.returncode != 0]
    assert not failed, failed
    runs = {path.parent for path in outputs.glob("runs/mu-edge_net/*/results.json")}
    assert len(runs) == 8
    assert sum("featurized" in log.read_text() for log in logs) == 1
    assert sum("waiting for another process to create" in log.read_text() for log in logs) >= 1
    assert_one_cache_and_split(root)
    cold = logs[-1].read_text()
    assert "molecules: 130831" in cold and "bond paths: template" in cold
    assert float(cold.split("ready in ")[1].split(" s")[0]) < 300  # featurized or waited for: ready within 5 min
    warm = subprocess.run(prepare, cwd=REPO, capture_output=True, text=True)
    assert warm.returncode == 0 and float(warm.stdout.split("ready in ")[1].split(" s")[0]) < 10
