"""mpnn-benchmark (scripts/benchmark.py): this project against PyG's QM9 example, and the step alone."""

import json
import re

import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.slow


def test_benchmark_quick_cpu(packed):
    result = run_script("scripts/benchmark.py", "--device", "cpu", "--quick", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    numbers = json.loads(lines[-2])
    assert lines[-1] == f"speedup: {numbers['speedup']:.1f}"
    assert numbers["speedup"] >= 3, lines


def test_step_throughput_trains_the_benchmark_step(packed):
    result = run_script("scripts/benchmark.py", "--step", "data.subset=2000")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"step alone \(cpu\): [1-9]\d* molecules/s", result.stdout.strip().splitlines()[-1])
    flops = run_script("scripts/benchmark.py", "--flops", "data.subset=2000", "data.static_shapes=true")
    assert re.match(r"one step \(forward \+ backward\), GFLOP: 53\.\d\d ", flops.stdout.strip().splitlines()[-1])
