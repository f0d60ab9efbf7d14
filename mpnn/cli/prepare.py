"""`mpnn-prepare [data.root=DIR]`: build the processed QM9 cache once.

Reads the CSVs of the pinned qm9pack wheel, featurizes every molecule with RDKit on all cores
(with a progress bar) and writes one compact file under data.root. Prints how many molecules
took each bond path. An existing cache is loaded, never rebuilt or overwritten.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mpnn.cli import compose


def main(argv: list[str] | None = None) -> int:
    from mpnn.data import cache

    cfg = compose(["logger=none", *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    _, path = cache.load_or_build(Path(cfg.data.root))
    elapsed = time.perf_counter() - start
    meta = json.loads(path.with_suffix(".json").read_text())
    print(f"cache: {path} ({path.stat().st_size / 2**20:.1f} MiB), ready in {elapsed:.1f} s")
    print(f"molecules: {meta['molecules']}  atoms: {meta['atoms']}")
    print("bond paths: " + ", ".join(f"{name} {count}" for name, count in meta["paths"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
