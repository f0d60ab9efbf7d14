"""mpnn-benchmark (scripts/benchmark.py): its subcommands, each with its own options, and the old flag form;
the results file; this project against PyG's QM9 example, the step alone, the data path, the zoo, accuracy
within noise and time to accuracy, each in its CI-sized form."""

import json
import math
import re

import pytest
import torch

from mpnn.bench.gpu_check import Part, throughput_numbers
from mpnn.cli.benchmark import MODES, build_parser, main, subcommand_form
from tests.conftest import run_script

SHARED_OPTIONS = {"-h", "--device", "--quick", "--json", "--results"}
OWN_OPTIONS = {
    "throughput": {"--baseline-steps", "--baseline-workers"},
    "zoo": {"--models"},
    "accuracy": {"--seeds"},
    "time-to-accuracy": {"--budget", "--evaluations", "--ratio", "--out"},
    "learning": {"--configs", "--subset", "--epochs", "--out"},
    "ensemble": {"--sizes", "--engines", "--steps"},
}


@pytest.mark.parametrize("mode", MODES)
def test_each_modes_help_lists_only_its_own_options(mode, capsys):
    with pytest.raises(SystemExit) as done:
        main([mode, "--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert usage.startswith(f"usage: mpnn-benchmark {mode} ")
    assert set(re.findall(r"\[(-[-\w]+)", usage)) == SHARED_OPTIONS | OWN_OPTIONS.get(mode, set()), usage


def test_the_top_level_help_lists_every_mode(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(re.search(rf"^    {re.escape(mode)}\b", listed, flags=re.M) for mode in MODES), listed


@pytest.mark.parametrize(
    "old, new",
    [
        (["--device", "cpu", "--quick", "--json"], ["throughput", "--device", "cpu", "--quick", "--json"]),
        (
            ["--learning", "--device", "cpu", "--configs", "enn_s2s", "model.message.sum_scale=1.0"],
            ["learning", "--device", "cpu", "--configs", "enn_s2s", "model.message.sum_scale=1.0"],
        ),
        (
            ["--device", "cpu", "--quick", "--zoo", "--zoo-models", "schnet"],
            ["zoo", "--device", "cpu", "--quick", "--models", "schnet"],
        ),
        (
            ["--device", "cuda", "--ensemble", "1,5,8", "--steps", "50"],
            ["ensemble", "--device", "cuda", "--sizes", "1,5,8", "--steps", "50"],
        ),
        (["--ensemble=1,2"], ["ensemble", "--sizes", "1,2"]),
        (
            ["--time-to-accuracy", "--budget", "6", "--ratio", "100", "data.subset=300"],
            ["time-to-accuracy", "--budget", "6", "--ratio", "100", "data.subset=300"],
        ),
        (["--step", "data.subset=2000"], ["step", "data.subset=2000"]),
        (["--data-path", "--quick"], ["data-path", "--quick"]),
    ],
)
def test_an_old_flag_command_parses_to_the_same_mode_and_options(old, new):
    parser = build_parser()
    assert vars(parser.parse_args(subcommand_form(old))) == vars(parser.parse_args(new))


def test_options_are_parsed_into_their_values():
    parser = build_parser()
    learning = parser.parse_args(subcommand_form(["--learning", "--configs", "enn_s2s,default", "optim.lr=1"]))
    assert learning.mode == "learning" and learning.configs == ("enn_s2s", "default")
    assert learning.overrides == ["optim.lr=1"] and learning.epochs == 8 and learning.results is None
    assert parser.parse_args(["ensemble", "--sizes", "1,5,8"]).sizes == [1, 5, 8]
    with pytest.raises(SystemExit):
        parser.parse_args(["ensemble", "--sizes", "1,two"])
    with pytest.raises(SystemExit):
        parser.parse_args(["throughput", "--configs", "enn_s2s"])  # learning's option, not throughput's


@pytest.mark.slow
def test_results_are_written_once_as_json(packed, tmp_path):
    """`--results` writes the mode's numbers (here the FLOP count, the cheapest real mode) to a new file, in
    a folder it creates; a second run refuses before any work rather than overwrite it."""
    results = tmp_path / "new folder" / "flops.json"
    args = ["flops", "--quick", "--results", str(results), "data.static_shapes=true", "data.batch_parts=1"]
    first = run_script("scripts/benchmark.py", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    written = json.loads(results.read_text())
    assert written["mode"] == "flops" and written["argv"] == args and written["exit_status"] == 0
    assert f"GFLOP: {written['numbers']['gflop']:.2f} " in first.stdout.strip().splitlines()[-1]
    assert 53 <= written["numbers"]["gflop"] < 54 and written["numbers"]["gflop_by_operator"]
    assert [p.name for p in results.parent.iterdir()] == ["flops.json"]  # no temporary file left
    again = run_script("scripts/benchmark.py", *args)
    assert again.returncode == 2 and "exists" in again.stderr and json.loads(results.read_text()) == written


@pytest.mark.slow
def test_benchmark_quick_cpu(packed, tmp_path):
    results = tmp_path / "results.json"
    result = run_script(
        "scripts/benchmark.py", "throughput", "--device", "cpu", "--quick", "--json", "--results", str(results)
    )
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
    assert json.loads(results.read_text())["numbers"] == numbers
    read = throughput_numbers(Part("benchmark: cpu", [], 0, results=str(results)))  # as the GPU check reads it
    assert read["speedup"] == numbers["speedup"] and read["molecules_per_s"] == numbers["ours"]["molecules_per_s"]


@pytest.mark.slow
def test_step_throughput_trains_the_benchmark_step(packed):
    result = run_script("scripts/benchmark.py", "--step", "data.subset=2000")  # the old flag form
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"step alone \(cpu\): [1-9]\d* molecules/s", result.stdout.strip().splitlines()[-1])
    flops = run_script(
        "scripts/benchmark.py", "flops", "data.subset=2000", "data.static_shapes=true", "data.batch_parts=1"
    )
    assert re.match(r"one step \(forward \+ backward\), GFLOP: 53\.\d\d ", flops.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_data_path_and_zoo_quick(packed):
    result = run_script("scripts/benchmark.py", "data-path", "--device", "cpu", "--quick", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(numbers["batches_per_s"]) == {
        "on-device PyG Batch (backend=pyg)",
        "PyG DataLoader + Complete + Distance",
        "on-device dense batch (backend=dense)",
    }
    assert all(value > 0 for value in [*numbers["batches_per_s"].values(), *numbers["ms_per_step"].values()])
    assert re.search(r"on-device PyG batches / PyG DataLoader: \d+\.\dx", result.stdout)
    zoo = run_script("scripts/benchmark.py", "zoo", "--device", "cpu", "--quick", "--models", "schnet", "--json")
    assert zoo.returncode == 0, zoo.stderr[-3000:]
    (row,) = json.loads(zoo.stdout.strip().splitlines()[-1])["zoo"]
    assert row["model"] == "schnet" and row["on_device_ms"] > 0 and row["dataloader_ms"] > 0


@pytest.mark.slow
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


@pytest.mark.slow
def test_time_to_accuracy_records_both_curves_and_draws_them(packed, tmp_path):
    figure = tmp_path / "tta.png"
    result = run_script(
        "scripts/benchmark.py", "time-to-accuracy", "--device", "cpu", "--budget", "6", "--evaluations", "2",
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
