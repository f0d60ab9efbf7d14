"""The README's code is the code that runs: the worked model example and the PyG usage example."""

import contextlib
import io
import re

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_worked_model_example_is_the_shipped_file():
    shipped = (REPO / "mpnn" / "models" / "gine.py").read_text()
    assert shipped in python_blocks()
    config = (REPO / "conf" / "model" / "gine.yaml").read_text().split("\n", 1)[1]  # after its comment line
    assert config in README


@pytest.mark.slow
def test_the_pyg_example_runs_as_written(packed):
    """The "Use from PyTorch Geometric" block, executed: it loads the dataset, prints the first
    molecule as its comment says, and computes a finite loss on every batch."""
    block = next(b for b in python_blocks() if "QM9Dataset(" in b and "MyModel" in b)
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "README.md", "exec"), namespace)
    expected = re.search(r"print\(dataset\[0\]\)\s+# (.*)", block).group(1)
    assert printed.getvalue().strip() == expected
    assert namespace["loss"].isfinite() and namespace["loss"] > 0
