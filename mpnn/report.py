"""Compare finished runs against chemical accuracy and the paper: a table and an error-ratio chart."""

from __future__ import annotations

import json
from pathlib import Path

from mpnn.targets import get_target


def collect(paths: list[str | Path]) -> list[dict]:
    """results.json of every run under the given directories (or the files themselves)."""
    found = []
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(path.rglob("results.json"))
        for file in files:
            results = json.loads(file.read_text())
            results["run_dir"] = str(file.parent)
            found.append(results)
    if not found:
        raise FileNotFoundError(f"no results.json under {', '.join(map(str, paths))}")
    return found


def table(runs: list[dict]) -> str:
    lines = [f"{'target':8s} {'test MAE':>10s} {'unit':12s} {'ratio':>7s} {'paper':>7s}  run"]
    for run in sorted(runs, key=lambda r: r["target"]):
        target = get_target(run["target"])
        paper = f"{target.paper_enn_s2s_ratio:7.2f}" if target.paper_enn_s2s_ratio else f"{'-':>7s}"
        lines.append(
            f"{run['target']:8s} {run['test_mae']:10.4g} {run['unit']:12s} {run['test_error_ratio']:7.2f} {paper}  "
            f"{run['run_dir']}"
        )
    ratios = [r["test_error_ratio"] for r in runs if get_target(r["target"]).chemical_accuracy]
    if ratios:
        lines.append(f"mean error ratio over {len(ratios)} runs: {sum(ratios) / len(ratios):.2f} (paper enn-s2s: 0.68)")
    return "\n".join(lines)
