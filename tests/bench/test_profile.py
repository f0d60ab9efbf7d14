"""The step profile: kernels per step, their time and the device's idle share (mpnn/bench/profile.py)."""

import pytest
import torch

from mpnn.bench.profile import covered_ms, profile_steps, profile_table
from tests.training.test_module import compose_config


def test_overlapping_kernels_count_once():
    assert covered_ms([(0, 1000), (500, 1500), (3000, 4000), (3100, 3200)]) == pytest.approx(2.5)
    assert covered_ms([]) == 0


def test_a_cpu_profile_accounts_for_the_step(packed):
    """Edge_net at batch 128 on the CPU: hundreds of operators a step, the matrix products on top, and
    most of the wall time inside operators (the device idle for less than half of it)."""
    numbers = profile_steps(compose_config("data.subset=400"), torch.device("cpu"), steps=2, warmup=1)
    assert numbers["steps"] == 2 and numbers["kernels_per_step"] > 200
    assert 0 < numbers["kernel_ms_per_step"] <= numbers["ms_per_step"] and 0 <= numbers["idle_share"] < 0.5
    times = [row["ms_per_step"] for row in numbers["top"]]
    assert len(times) == 10 and times == sorted(times, reverse=True)
    assert {"aten::mm", "aten::bmm"} & {row["kernel"] for row in numbers["top"][:2]}
    assert "kernels per step" in profile_table(numbers)
