"""Build the processed QM9 cache once: `python scripts/prepare_data.py [data.root=DIR]`.

Reads the CSVs of the pinned qm9pack wheel, featurizes every molecule with RDKit on all cores
(with a progress bar) and writes one compact file under data.root. Prints how many molecules
took each bond path. An existing cache is loaded, never rebuilt or overwritten.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(overrides: list[str]) -> int:
    from hydra import compose, initialize_config_dir

    from mpnn.data import cache

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", *overrides])
    cfg.paths.root_dir = str(ROOT)
    root = Path(cfg.data.root)
    start = time.perf_counter()
    packed, path = cache.load_or_build(root)
    elapsed = time.perf_counter() - start
    meta = json.loads(path.with_suffix(".json").read_text())
    print(f"cache: {path} ({path.stat().st_size / 2**20:.1f} MiB), ready in {elapsed:.1f} s")
    print(f"molecules: {meta['molecules']}  atoms: {meta['atoms']}")
    print("bond paths: " + ", ".join(f"{name} {count}" for name, count in meta["paths"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
