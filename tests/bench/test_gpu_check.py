"""The prepared GPU check: on a machine without CUDA it refuses in one line; its part runner keeps each
part to its own time limit and the summary names every part (checked on CPU with small real commands)."""

import json
import subprocess
import sys

import pytest
import torch

from mpnn.bench.gpu_check import ENN_S2S, PATHS, Part, parts, run_part, summary_markdown, targets
from mpnn.cli.benchmark import PYG_DATA_PATH, example_overrides
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
    json.dumps([p.__dict__ for p in (hung, failed, fine)])  # the JSON summary holds every part


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
    build(compose([*cuda_default, *PYG_DATA_PATH]))  # --data-path's PyG side, on CUDA's fast path
    _, profiled = build(compose([*ENN_S2S, "trainer.accelerator=cpu", "data.subset=300"]))  # the profile part
    assert profiled.hparams.cuda_graph and profiled.model.hidden_dim == 128


def test_the_summary_judges_the_speed_targets_from_the_best_path():
    plain = Part("benchmark: eager fp32", [], 35, status="ok", extra={"numbers": {"molecules_per_s": 11_000.0,
                 "ms_per_step": 11.6, "example_molecules_per_s": 1_900.0, "speedup": 5.8}})  # fmt: skip
    graph = Part("benchmark: CUDA graph bf16", [], 35, status="ok", extra={"numbers": {"molecules_per_s": 64_000.0,
                 "ms_per_step": 2.0, "example_molecules_per_s": 2_000.0, "speedup": 32.0}})  # fmt: skip
    profile = Part("enn_s2s step profile", [], 30, status="ok", extra={"numbers": {"ms_per_step": 3.3,
                   "kernels_per_step": 1160.0, "kernel_ms_per_step": 1.9, "idle_share": 0.42}})  # fmt: skip
    example, enn_s2s = targets([plain, graph, profile])
    assert "64,000 molecules/s, 32.0x the example (CUDA graph bf16)" in example and example.endswith(": met")
    assert "3.30 ms, 1160 kernels, GPU idle 42%" in enn_s2s and enn_s2s.endswith(": not met")
    assert targets([plain])[0].endswith(": not met")
    assert "Speed targets:" in summary_markdown([plain, graph, profile], "cpu")
