import json
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from mpnn.data import cache
from tests.conftest import DATA_ROOT, REPO

FIXTURE = REPO / "tests" / "fixtures" / "qm9_sample.npz"


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


def test_damage_anywhere_in_the_cache_names_the_file_and_how_to_rebuild(tmp_path):
    """Bytes overwritten inside the archive (a bad disk, a broken copy) used to surface as a bare zlib error.
    Now either the error names the file and how to rebuild it, or the damage hit bytes that carry no data
    (a timestamp, say) and every array loads unchanged: damage never passes silently into the data."""
    original = FIXTURE.read_bytes()
    reference = cache.load(FIXTURE)
    messages, harmless = [], 0
    for offset in range(0, len(original), 97):
        damaged = bytearray(original)
        damaged[offset : offset + 16] = b"\xff" * 16
        copy = tmp_path / f"qm9_v2_damaged_at_{offset}.npz"
        copy.write_bytes(bytes(damaged))
        try:
            loaded = cache.load(copy)
        except RuntimeError as error:
            message = str(error)
            assert str(copy) in message and "prepare_data.py" in message and len(message) < 600, message
            messages.append(message)
            continue
        harmless += 1
        for name in cache.ARRAYS:
            assert np.array_equal(getattr(loaded, name), getattr(reference, name)), (offset, name)
    assert harmless < len(messages) / 20  # almost every damage is caught
    assert any("while decompressing data" in message for message in messages)  # zlib's own error was among them


LOAD_CACHE_AND_SPLIT = """
import sys
from pathlib import Path
from mpnn.data import cache
from mpnn.data.split import load_or_create_permutation
packed, path = cache.load_or_build(Path(sys.argv[1]), progress=False)
load_or_create_permutation(path.with_name(f"{path.stem}_split_seed0.npy"), len(packed), seed=0)
print(len(packed))
"""


def load_as_unprivileged(root: Path) -> subprocess.CompletedProcess:
    """Load the cache and split of `root` in a process that folder permissions apply to: root may write
    anywhere, so as root the process runs without that capability (`setpriv`)."""
    command = [sys.executable, "-c", LOAD_CACHE_AND_SPLIT, str(root)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made for this process")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_complete_cache_loads_from_a_read_only_root_without_a_lock(tmp_path):
    """A shared cache that this user may only read: loading it must take no lock (a lock file could not be made)."""
    root = tmp_path / "shared"
    root.mkdir()
    path = cache.cache_path(root, cache.cache_key(version("qm9pack")))
    shutil.copy(FIXTURE, path)
    np.save(path.with_name(f"{path.stem}_split_seed0.npy"), np.random.default_rng(0).permutation(48))
    before = sorted(p.name for p in root.iterdir())
    root.chmod(0o555)  # read-only
    try:
        result = load_as_unprivileged(root)
    finally:
        root.chmod(0o755)
    assert result.returncode == 0 and result.stdout == "48\n", result.stderr[-3000:]
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.parametrize("case", ["read-only root", "missing root under a read-only parent", "split"])
def test_a_read_only_root_is_reported_before_any_work(tmp_path, case):
    """Found at once, not after a minute of featurizing: the message names the folder and the setting."""
    parent = tmp_path / "parent"
    parent.mkdir()
    root = parent / "new" if case == "missing root under a read-only parent" else parent
    if case == "split":  # a cache that loads, but no split file for this seed yet
        shutil.copy(FIXTURE, cache.cache_path(root, cache.cache_key(version("qm9pack"))))
    parent.chmod(0o555)  # read-only
    start = time.perf_counter()
    try:
        result = load_as_unprivileged(root)
    finally:
        parent.chmod(0o755)
    assert time.perf_counter() - start < 20
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == f"PermissionError: cannot write to {root} (Permission denied); choose a writable data.root=DIR"
