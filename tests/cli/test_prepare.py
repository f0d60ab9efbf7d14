"""mpnn-prepare (scripts/prepare_data.py): the cache built cold, then loaded warm."""

import time

import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.slow


def test_prepare_data_cold_and_warm(tmp_path):
    start = time.perf_counter()
    cold = run_script("scripts/prepare_data.py", f"data.root={tmp_path}")
    cold_seconds = time.perf_counter() - start
    assert cold.returncode == 0, cold.stderr[-3000:]
    assert "molecules: 130831" in cold.stdout and "bond paths: template" in cold.stdout
    assert cold_seconds < 300
    warm = run_script("scripts/prepare_data.py", f"data.root={tmp_path}")
    assert warm.returncode == 0
    seconds = float(warm.stdout.split("ready in ")[1].split(" s")[0])
    assert seconds < 10
