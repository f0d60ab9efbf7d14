"""The install paths that CI does not run: the Dockerfile (no docker daemon here) and the package list."""

import re

from tests.conftest import REPO


def _copied_before_install() -> list[str]:
    """Sources the Dockerfile COPYs before its `pip install -e .`."""
    lines = (REPO / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install -e ." in line)
    return [source for line in lines[:install] if line.startswith("COPY ") for source in line.split()[1:-1]]


def test_the_image_copies_every_package_before_installing_it():
    include = re.search(r"^include = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), flags=re.M).group(1)
    packages = [pattern.strip(' "*') for pattern in include.split(",")]
    assert "mpnn" in packages and "hydra_plugins" in packages
    assert set(packages) <= set(_copied_before_install()), "a package is installed in the image before it is copied"


def test_every_file_the_image_copies_exists():
    sources = re.findall(r"^COPY (.+) \S+$", (REPO / "Dockerfile").read_text(), flags=re.M)
    for source in " ".join(sources).split():
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    for needed in ("train.py", "conf", "scripts"):  # what the entry point and the cache build need
        assert needed in " ".join(sources).split()
