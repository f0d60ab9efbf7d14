"""mpnn-benchmark (scripts/benchmark.py): this project against PyG's QM9 example, the step alone, the data
path, the zoo, accuracy within noise and time to accuracy, each in its CI-sized form."""

import json
import math
import re

import pytest
import torch

from mpnn.bench.gpu_check import Part, printed_numbers
from tests.conftest import run_script

pytestmark = pytest.mark.slow


def test_benchmark_quick_cpu(packed):
    result = run_script("scripts/benchmark.py", "--device", "cpu", "--quick", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    numbers = json.loads(lines[-2])
    assert lines[-1] == f"speedup: {numbers['speedup']:.1f}"
    assert numbers["speedup"] >= 3, lines
    assert "Tip:" not in result.stdout + result.stderr  # Lightning's advertisements are dropped
    assert (
        "this project's path: precision bf16-mixed, batch parts 4, bucketing False, static shapes False, "
        "compile False, CUDA graph False"
    ) in lines
    gflops = next(line for line in lines if line.startswith("GFLOP/s: "))
    achieved, share = re.match(
        r"GFLOP/s: (\d+) achieved .* (\d+)% of the measured bf16 matmul peak; peak fp32", gflops
    ).groups()
    peaks = numbers["matmul_peak_gflop_per_s"]
    assert 0 < int(achieved) == round(numbers["gflop_per_s"]) and 0 < int(share) < 150
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    printed = printed_numbers(Part("benchmark: cpu", [], 0, output_tail=result.stdout))  # as the GPU check reads it
    assert printed["speedup"] == numbers["speedup"] and printed["molecules_per_s"] == numbers["ours"]["molecules_per_s"]


def test_step_throughput_trains_the_benchmark_step(packed):
    result = run_script("scripts/benchmark.py", "--step", "data.subset=2000")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"step alone \(cpu\): [1-9]\d* molecules/s", result.stdout.strip().splitlines()[-1])
    flops = run_script(
        "scripts/benchmark.py", "--flops", "data.subset=2000", "data.static_shapes=true", "data.batch_parts=1"
    )
    assert re.match(r"one step \(forward \+ backward\), GFLOP: 53\.\d\d ", flops.stdout.strip().splitlines()[-1])


def test_data_path_and_zoo_quick(packed):
    result = run_script("scripts/benchmark.py", "--device", "cpu", "--quick", "--data-path", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(numbers["batches_per_s"]) == {
        "on-device PyG Batch (backend=pyg)",
        "PyG DataLoader + Complete + Distance",
        "on-device dense batch (backend=dense)",
    }
    assert all(value > 0 for value in [*numbers["batches_per_s"].values(), *numbers["ms_per_step"].values()])
    assert re.search(r"on-device PyG batches / PyG DataLoader: \d+\.\dx", result.stdout)
    zoo = run_script("scripts/benchmark.py", "--device", "cpu", "--quick", "--zoo", "--zoo-models", "schnet", "--json")
    assert zoo.returncode == 0, zoo.stderr[-3000:]
    (row,) = json.loads(zoo.stdout.strip().splitlines()[-1])["zoo"]
    assert row["model"] == "schnet" and row["on_device_ms"] > 0 and row["dataloader_ms"] > 0


def test_accuracy_grid_trains_every_path_for_the_epoch_budget(packed):
    from mpnn.bench.accuracy import VARIANTS, accuracy_grid, accuracy_table

    variants = {name: VARIANTS[name] for name in ("fp32, batches padded to their largest molecule", "bucketing")}
    grid = accuracy_grid(
        ["data.subset=300", "trainer.max_epochs=2", "trainer.accelerator=cpu"], [0], torch.device("cpu"), variants
    )
    assert all(len(runs) == 1 and len(runs[0]["val_mae"]) == 2 for runs in grid.values())
    table = accuracy_table(grid).splitlines()
    assert table[0].startswith("| path | validation MAE per seed (D) |") and len(table) == 4
    assert table[2].split(" | ")[3] == "+0.0%"


def test_time_to_accuracy_records_both_curves_and_draws_them(packed, tmp_path):
    figure = tmp_path / "tta.png"
    result = run_script(
        "scripts/benchmark.py", "--device", "cpu", "--time-to-accuracy", "--budget", "6", "--evaluations", "2",
        "--ratio", "100", "--out", str(figure), "--json", "data.subset=300",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    curves = json.loads(result.stdout.strip().splitlines()[-1])["curves"]
    assert len(curves) == 2
    for curve in curves.values():
        seconds = [s for s, _ in curve]
        assert seconds[0] == 0 and seconds == sorted(seconds) and seconds[-1] >= 6  # until the budget is spent
        assert all(math.isfinite(mae) and mae > 0 for _, mae in curve)
    # Error ratio 100 (10 D for mu) is reached at the first evaluation by both sides.
    assert re.search(r"seconds to error ratio 100\.00: this project 0 s, PyG example 0 s", result.stdout)
    assert figure.stat().st_size > 10_000
