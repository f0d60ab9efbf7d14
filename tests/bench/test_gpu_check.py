"""The prepared GPU check: on a machine without CUDA it refuses in one line; its part runner keeps each
part to its own time limit, each part's reader turns what it left into numbers (or a failed status that says
why) and the summary names every part (checked on CPU with small real commands and crafted results)."""

import json
import subprocess
import sys

import pytest
import torch

from mpnn.bench.gpu_check import (
    ENN_S2S,
    PATHS,
    SUBSET,
    Part,
    part_summary,
    parts,
    profile_numbers,
    pytest_numbers,
    read_numbers,
    run_part,
    summary_markdown,
    targets,
    throughput_numbers,
    training_numbers,
    zoo_numbers,
)
from mpnn.cli.benchmark import PYG_DATA_PATH, build_parser, example_overrides
from mpnn.config import compose
from mpnn.training.build import build
from tests.bench import test_precision  # noqa: F401  (its CUDA test is checked for the mark)
from tests.conftest import REPO
from tests.training import test_cuda_graph  # noqa: F401


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_it_says_so_in_one_line_and_fails():
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_it_runs_where_only_python3_is_on_the_path(tmp_path):
    """Cluster nodes often have python3 and no `python`: the script used to fail there with exit 127."""
    python3 = tmp_path / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # this environment's interpreter
    python3.chmod(0o755)
    path = f"{tmp_path}:/usr/bin:/bin"
    assert subprocess.run(["bash", "-c", "command -v python"], env={"PATH": path}).returncode != 0  # none there
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True, env={"PATH": path}
    )
    assert result.returncode == 2 and "no CUDA device" in result.stdout + result.stderr, result.stderr[-2000:]


def test_every_gpu_path_is_a_part_with_its_own_limit(tmp_path):
    planned = parts(tmp_path)
    names = [p.name for p in planned]
    assert names[0] == "CUDA tests" and names[-1] == "enn_s2s accuracy"
    assert "zoo steps" in names and "enn_s2s step profile" in names
    assert all(f"benchmark: {path}" in names for path in PATHS)
    assert sum(p.limit_s for p in planned) <= 8 * 60  # the whole check fits in 8 minutes
    assert all(p.read is not None for p in planned)  # each part names its reader
    results = [p.results for p in planned if p.results]
    assert len(set(results)) == len(results) == len(planned) - 1  # all but pytest's, each its own file
    assert all(r.startswith(str(tmp_path)) and r.endswith("results.json") for r in results)


def test_the_check_runs_benchmark_commands_the_benchmark_accepts(tmp_path):
    """Each benchmark part's command line, parsed by mpnn-benchmark's own parser: its mode, CUDA, its results
    file, its overrides (a renamed option would otherwise surface only on a GPU node)."""
    benchmarks = [p for p in parts(tmp_path) if p.command[1].endswith("benchmark.py")]
    modes = {p.name: build_parser().parse_args(p.command[2:]) for p in benchmarks}
    assert {args.mode for args in modes.values()} == {"throughput", "zoo", "profile"}
    for part in benchmarks:
        args = modes[part.name]
        assert args.device == "cuda" and str(args.results) == part.results
        assert (
            part.read is {"throughput": throughput_numbers, "zoo": zoo_numbers, "profile": profile_numbers}[args.mode]
        )
    eager = modes["benchmark: eager fp32"]
    assert eager.baseline_steps == 100 and eager.overrides == [SUBSET, *PATHS["eager fp32"][0]]


def test_every_cuda_test_carries_the_gpu_mark_the_check_selects(tmp_path):
    """The check's first part runs `pytest -m gpu`; until 2026-12-05 no CUDA test was marked `gpu`, and it
    would have run nothing. Every test skipped for want of CUDA must carry the mark (tests.conftest.needs_cuda)."""
    assert parts(tmp_path)[0].command[-3:-1] == ["-m", "gpu"]
    cuda_tests = {}
    for module in [m for name, m in sys.modules.items() if name.startswith("tests.") and m is not None]:
        for name, test in vars(module).items():
            marks = getattr(test, "pytestmark", []) if name.startswith("test_") and callable(test) else []
            if any(m.name == "skipif" and "a CUDA device" in str(m.kwargs.get("reason", "")) for m in marks):
                cuda_tests[f"{module.__name__}.{name}"] = {m.name for m in marks}
    assert "tests.training.test_cuda_graph.test_lightning_fit_with_cuda_graph" in cuda_tests
    assert "tests.bench.test_precision.test_on_cuda_bf16_stays_near_the_exact_gradient" in cuda_tests
    assert all("gpu" in marks for marks in cuda_tests.values()), cuda_tests


def test_a_part_that_hangs_is_stopped_and_the_next_still_runs(tmp_path):
    hung = run_part(
        Part("hangs", [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(60)"], 2)
    )
    failed = run_part(Part("fails", [sys.executable, "-c", "raise SystemExit(3)"], 30))
    fine = run_part(Part("works", [sys.executable, "-c", "print('speedup: 2.0x')"], 30))
    assert hung.status.startswith("timed out") and hung.seconds < 30 and "started" in hung.output_tail
    assert failed.status == "failed (exit 3)"
    assert fine.status == "ok" and fine.output_tail == "speedup: 2.0x"
    text = summary_markdown([hung, failed, fine], "cpu")
    assert "| hangs | timed out after 2 s |" in text and "| works | ok |" in text and "speedup: 2.0x" in text
    json.dumps([part_summary(p) for p in (hung, failed, fine)])  # the JSON summary holds every part


def written(tmp_path, numbers: dict, name: str = "results.json") -> str:
    """A results file as `mpnn-benchmark --results` writes it."""
    path = tmp_path / name
    path.write_text(json.dumps({"mode": "crafted", "argv": [], "exit_status": 0, "numbers": numbers}))
    return str(path)


def test_each_reader_reads_its_kind_of_part(tmp_path):
    throughput = {"ours": {"molecules_per_s": 64_000.0, "ms_per_step": 2.0}, "baseline": {"molecules_per_s": 2_000.0},
                  "speedup": 32.0}  # fmt: skip
    part = Part("benchmark: any name", [], 1, throughput_numbers, written(tmp_path, throughput, "t.json"))
    assert throughput_numbers(part) == {
        "molecules_per_s": 64_000.0, "ms_per_step": 2.0, "example_molecules_per_s": 2_000.0, "speedup": 32.0
    }  # fmt: skip
    zoo = {"zoo": [{"model": "schnet", "on_device_ms": 5.0, "dataloader_ms": 9.0}]}
    part = Part("zoo", [], 1, zoo_numbers, written(tmp_path, zoo, "z.json"))
    assert zoo_numbers(part) == {"schnet on_device_ms": 5.0, "schnet dataloader_ms": 9.0}
    profile = {"ms_per_step": 3.3, "kernels_per_step": 1160.0, "kernel_ms_per_step": 1.9, "idle_share": 0.42, "x": 1}
    part = Part("profile", [], 1, profile_numbers, written(tmp_path, profile, "p.json"))
    assert profile_numbers(part) == {key: profile[key] for key in profile if key != "x"}
    run = tmp_path / "train.json"  # train.py's own results.json
    run.write_text(json.dumps({"val_mae_per_epoch": [0.6, 0.5], "wall_s": 80.0, "train_molecules_per_s": 1000.0,
                               "molecules": {"train": 110_831}}))  # fmt: skip
    numbers = training_numbers(Part("training", [], 1, training_numbers, str(run)))
    assert numbers["train_epoch_s"] == 110.831 and numbers["projected_540_epochs_h"] == 110.831 * 540 / 3600
    tests = Part("tests", [], 1, pytest_numbers, output_tail="PASSED something\n3 passed, 2 skipped, 1 error in 12.34s")
    assert pytest_numbers(tests) == {"passed": 3, "skipped": 2, "error": 1}


def test_a_part_without_readable_numbers_fails_saying_why(tmp_path):
    (tmp_path / "broken.json").write_text('{"numbers": ')
    incomplete = written(tmp_path, {"ours": {"molecules_per_s": 1.0, "ms_per_step": 1.0}})
    cases = {
        str(tmp_path / "missing.json"): "was not written",
        str(tmp_path / "broken.json"): "is not JSON",
        incomplete: "has no 'baseline'",
    }
    for results, reason in cases.items():
        part = read_numbers(Part("benchmark: x", [], 1, throughput_numbers, results, status="ok"))
        assert part.status.startswith("failed (no numbers: ") and reason in part.status and part.numbers == {}
    silent = read_numbers(Part("CUDA tests", [], 1, pytest_numbers, status="ok", output_tail="no summary here"))
    assert silent.status == "failed (no numbers: no pytest summary line in the output)"
    late = Part("benchmark: y", [], 1, throughput_numbers, str(tmp_path / "missing.json"), status="timed out after 1 s")
    assert read_numbers(late).status == "timed out after 1 s"  # how it failed stays the status
    assert "| benchmark: x | failed (no numbers: " in summary_markdown([part], "cpu")


def test_every_gpu_paths_run_builds(packed):
    """A rehearsal on the CPU: each benchmark part's overrides, assembled as the benchmark assembles them
    on CUDA (the CUDA fast path first, the part's settings last), build the run they name."""
    for name, (overrides, _) in PATHS.items():
        cfg = compose(example_overrides(torch.device("cuda"), quick=True, overrides=[*overrides, "data.subset=300"]))
        cfg.trainer.accelerator = "cpu"
        build(cfg)
        assert cfg.optim.compile == ("compile" in name) and cfg.optim.cuda_graph == ("CUDA graph" in name)
        assert (cfg.trainer.precision == "bf16-mixed") == ("bf16" in name)
        assert cfg.data.static_shapes == (name not in ("eager fp32", "eager bf16"))
        assert cfg.data.bucketing == ("bucketed" in name)
    cuda_default = example_overrides(torch.device("cuda"), quick=True, overrides=["trainer.accelerator=cpu"])
    build(compose([*cuda_default, *PYG_DATA_PATH]))  # data-path's PyG side, on CUDA's fast path
    _, profiled = build(compose([*ENN_S2S, "trainer.accelerator=cpu", "data.subset=300"]))  # the profile part
    assert profiled.hparams.cuda_graph and profiled.model.hidden_dim == 128


def test_the_summary_judges_the_speed_targets_from_the_best_path():
    def path(name: str, rate: float, ms: float, example_rate: float) -> Part:
        numbers = {"molecules_per_s": rate, "ms_per_step": ms, "example_molecules_per_s": example_rate}
        return Part(name, [], 35, throughput_numbers, status="ok", numbers={**numbers, "speedup": rate / example_rate})

    plain = path("benchmark: eager fp32", 11_000.0, 11.6, 1_900.0)
    graph = path("benchmark: CUDA graph bf16", 64_000.0, 2.0, 2_000.0)
    numbers = {"ms_per_step": 3.3, "kernels_per_step": 1160.0, "kernel_ms_per_step": 1.9, "idle_share": 0.42}
    profile = Part("enn_s2s step profile", [], 30, profile_numbers, status="ok", numbers=numbers)
    example, enn_s2s = targets([plain, graph, profile])
    assert "64,000 molecules/s, 32.0x the example (CUDA graph bf16)" in example and example.endswith(": met")
    assert "3.30 ms, 1160 kernels, GPU idle 42%" in enn_s2s and enn_s2s.endswith(": not met")
    assert targets([plain])[0].endswith(": not met")
    assert "Speed targets:" in summary_markdown([plain, graph, profile], "cpu")
