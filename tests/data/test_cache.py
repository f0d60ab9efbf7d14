import json
import subprocess
import sys
import time

import pytest

from mpnn.data import cache
from tests.conftest import DATA_ROOT, REPO


def test_cache_is_compact_and_keyed(packed):
    path = cache.cache_path(DATA_ROOT, cache.cache_key("1.0.3"))
    assert path.exists()
    assert path.stat().st_size < 60 * 2**20
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["molecules"] == 130_831
    assert sum(meta["paths"].values()) == 130_831
    changed = dict(cache.cache_key("1.0.3"), format_version=cache.FORMAT_VERSION + 1)
    assert cache.cache_path(DATA_ROOT, changed) != path


def test_loading_imports_neither_rdkit_nor_qm9pack(packed):
    code = (
        "import sys, time; t = time.perf_counter();"
        "from mpnn.data.cache import load_or_build; load_or_build('data');"
        "print(time.perf_counter() - t);"
        "assert 'rdkit' not in sys.modules and 'qm9pack' not in sys.modules, 'heavy import'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) < 10


def test_warm_dataset_load_is_fast(datamodule_factory):
    start = time.perf_counter()
    datamodule_factory(subset=None)
    assert time.perf_counter() - start < 10


def test_corrupt_cache_gives_a_clear_error_and_is_kept(tmp_path):
    bad = tmp_path / "qm9_v1_broken.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(RuntimeError, match="unreadable.*prepare_data.py"):
        cache.load(bad)
    assert bad.read_bytes() == b"not a zip file"
