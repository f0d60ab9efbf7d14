"""Compare finished runs against chemical accuracy, the paper and the published results of each run's
model (`mpnn.published`, keyed by the model's config name that results.json records): seeds,
ensembles, training-set sizes."""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mpnn.published import PUBLISHED_MAE, Published
from mpnn.targets import get_target
from mpnn.training.resume import run_definition


def collect(paths: list[str | Path]) -> list[dict]:
    """results.json of every completed run under the given directories (or the files themselves);
    failed runs (e.g. diverged) are left out, and listed by `failed`."""
    every = _results(paths)
    found = [results for results in every if results.get("status", "completed") == "completed"]
    if not found:
        raise FileNotFoundError(f"no {'completed run' if every else 'results.json'} under {', '.join(map(str, paths))}")
    return found


def failed(paths: list[str | Path]) -> list[tuple[Path, str]]:
    """(run directory, what happened) of every run whose results.json says it did not complete."""
    return [
        (Path(results["run_dir"]), f"{results['status']}: {results.get('error', '')}".rstrip(": "))
        for results in _results(paths)
        if results.get("status", "completed") != "completed"
    ]


def _results(paths: list[str | Path]) -> list[dict]:
    found = []
    for path in map(Path, paths):
        for file in [path] if path.is_file() else sorted(path.rglob("results.json")):
            results = json.loads(file.read_text())
            results["run_dir"] = str(file.parent)
            found.append(results)
    return found


def unfinished(paths: list[str | Path]) -> list[Path]:
    """Run directories under the given directories that hold no results.json: failed, interrupted or
    still running, and so missing from any comparison. A run directory holds `.hydra/` (written once
    a start is accepted) or `console.log` (a gpu_pool job's output, written also for a refused start)."""
    runs = {
        marker.parent
        for path in map(Path, paths)
        if path.is_dir()
        for name in (".hydra", "console.log")
        for marker in path.rglob(name)
    }
    return sorted(run for run in runs if not (run / "results.json").exists())


def table(runs: list[dict]) -> str:
    """One line per run, with the settings that tell the runs apart; then selections, seed groups, ensembles."""
    settings = {
        id(run): " ".join(f"{key}={_short(value)}" for key, value in differs.items())
        for run, differs in zip(runs, differing_settings(runs))
    }
    header = (
        f"{'target':8s} {'model':10s} {'test MAE':>10s} {'published':>10s} {'unit':12s} {'ratio':>7s} {'paper':>7s} "
        f"{'train':>7s} {'val MAE':>10s}"
    )
    lines = [f"{header}  run  settings that differ between the runs"]
    for run in sorted(runs, key=lambda r: (r["target"], run_model(r))):
        target = get_target(run["target"])
        paper = f"{target.paper_enn_s2s_ratio:7.2f}" if target.paper_enn_s2s_ratio else f"{'-':>7s}"
        known = published(run)
        reported = f"{known.mae:10.4g}" if known else f"{'-':>10s}"
        train = run.get("molecules", {}).get("train", "-")
        lines.append(
            f"{run['target']:8s} {run_model(run):10s} {run['test_mae']:10.4g} {reported} {run['unit']:12s} "
            f"{run['test_error_ratio']:7.2f} {paper} {train:>7} {run['best_val_mae']:10.4g}  {run['run_dir']}  "
            f"{settings[id(run)]}".rstrip()
        )
    for label, targets, mean, paper, model, reported in configuration_means(runs):
        versus = [f"paper enn-s2s on the same targets: {paper:.2f}"] if paper is not None else []
        versus += [f"published {model}: {reported:.2f}"] if reported is not None else []
        versus_text = f" ({'; '.join(versus)})" if versus else ""
        lines.append(f"mean error ratio over {targets} targets: {mean:.2f}{versus_text}  {label}".rstrip())
    selected = best_on_validation(runs)
    if selected:
        lines.append("selected on validation MAE, per target (its test MAE is the one to report):")
    for run in selected:
        lines.append(
            f"{run['target']:8s} val MAE {run['best_val_mae']:.4g}  test MAE {run['test_mae']:.4g} {run['unit']}  "
            f"error ratio {run['test_error_ratio']:.3g}  {run['run_dir']}  {settings[id(run)]}".rstrip()
        )
    groups = seed_groups(runs)
    if groups:
        lines.append("runs that differ only in their seed (mean ± standard deviation; ensemble = mean prediction):")
    for group in groups:
        target = get_target(group[0]["target"])
        mae = [r["test_mae"] for r in group]
        ratio = [r["test_error_ratio"] for r in group]
        line = (
            f"{target.name:8s} {len(group)} seeds  test MAE {statistics.mean(mae):.4g} ± "
            f"{statistics.stdev(mae):.2g} {target.unit}  error ratio {statistics.mean(ratio):.3g} ± "
            f"{statistics.stdev(ratio):.2g}  ({', '.join(sorted(str(r['seed']) for r in group))})"
        )
        try:
            ensemble = ensemble_mae(group)
        except ValueError as error:
            lines.append(f"{line}\n         no ensemble: {error}")
            continue
        line += f"\n         ensemble of {len(group)}: test MAE {ensemble:.4g} {target.unit}"
        if target.chemical_accuracy:
            line += f"  error ratio {ensemble / target.chemical_accuracy:.3g}"
        if target.paper_ens5_ratio:
            line += f" (paper ens5: {target.paper_ens5_ratio:.2f})"
        lines.append(line)
    return "\n".join(lines)


def differing_settings(runs: list[dict]) -> list[dict]:
    """For each run, the run-defining settings (RUN_DEFINING_KEYS, model flattened) that are not the
    same in every run, e.g. the hyperparameters of a search; empty for a run without its config.
    A run lists only settings it has (edge_net has no `model.cutoff`, SchNet no `model.steps`)."""
    flat = [_definition(config) if (config := _config(run)) else None for run in runs]
    keys = sorted({key for values in flat if values for key in values} - {"target"})
    varying = [k for k in keys if len({json.dumps(values.get(k)) for values in flat if values}) > 1]
    return [{k: values[k] for k in varying if k in values} if values else {} for values in flat]


def configuration_means(runs: list[dict]) -> list[tuple[str, int, float, float | None, str, float | None]]:
    """(settings, number of targets, mean test error ratio, the paper's enn-s2s mean over the same
    targets or None, the model's name, its published mean over the same targets or None when
    mpnn.published lacks one of them) per configuration run on two or more targets: runs alike
    apart from target and seed, as the paper's average over 13 targets. Seeds are averaged per
    target first."""
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for run, differs in zip(runs, differing_settings(runs)):
        if get_target(run["target"]).chemical_accuracy:
            key = _setting(run, _config(run), ignore=("seed", "target"))
            groups.setdefault(key, []).append((run, differs))
    means = []
    for members in groups.values():
        by_target: dict[str, list[float]] = {}
        for run, _ in members:
            by_target.setdefault(run["target"], []).append(run["test_error_ratio"])
        if len(by_target) < 2:
            continue
        paper = [get_target(name).paper_enn_s2s_ratio for name in by_target]
        label = " ".join(f"{key}={_short(value)}" for key, value in members[0][1].items() if key != "seed")
        mean = statistics.mean(statistics.mean(ratios) for ratios in by_target.values())
        model = run_model(members[0][0])
        known = [PUBLISHED_MAE.get(model, {}).get(name) for name in by_target]
        reported = [entry.mae / get_target(name).chemical_accuracy for entry, name in zip(known, by_target) if entry]
        paper_mean = statistics.mean(paper) if all(paper) else None
        model_mean = statistics.mean(reported) if all(known) else None
        means.append((label, len(by_target), mean, paper_mean, model, model_mean))
    return means


def run_model(run: dict) -> str:
    """The run's model config name (results.json "model", e.g. "schnet"); "-" for runs that predate it."""
    return str(run.get("model") or "-")


def published(run: dict) -> Published | None:
    """The published test MAE of the run's model on the run's target (`mpnn.published`), if known."""
    return PUBLISHED_MAE.get(run_model(run), {}).get(run["target"])


def rows(runs: list[dict]) -> list[dict]:
    """The table as records, one per run, each differing setting in a column of its own (for CSV)."""
    records = []
    for run, differs in zip(runs, differing_settings(runs)):
        target = get_target(run["target"])
        known = published(run)
        records.append(
            {
                "target": run["target"],
                "model": run_model(run),
                "unit": run["unit"],
                "test_mae": run["test_mae"],
                "published_mae": known.mae if known else None,
                "published_source": known.source if known else None,
                "test_error_ratio": run["test_error_ratio"],
                "paper_enn_s2s_ratio": target.paper_enn_s2s_ratio,
                "best_val_mae": run["best_val_mae"],
                "train_molecules": run.get("molecules", {}).get("train"),
                "epochs": run.get("epochs"),
                "seed": run.get("seed"),
                **{key: value for key, value in differs.items() if key != "seed"},
                "run_dir": run["run_dir"],
            }
        )
    return records


def best_on_validation(runs: list[dict]) -> list[dict]:
    """Per target with two or more runs, the run with the lowest best validation MAE (model selection)."""
    by_target: dict[str, list[dict]] = {}
    for run in runs:
        by_target.setdefault(run["target"], []).append(run)
    return [min(group, key=lambda r: r["best_val_mae"]) for _, group in sorted(by_target.items()) if len(group) > 1]


def ensemble_mae(runs: list[dict]) -> float:
    """Test MAE of the runs' mean prediction (each run's test_predictions.npz, same test molecules)."""
    predictions, reference = [], None
    for run in runs:
        path = Path(run["run_dir"]) / "test_predictions.npz"
        if not path.exists():
            raise ValueError(f"{path} is missing")
        with np.load(path) as saved:
            order = np.argsort(saved["index"])
            index, prediction, target = saved["index"][order], saved["prediction"][order], saved["target"][order]
        if reference is None:
            reference = (index, target)
        elif not np.array_equal(index, reference[0]):
            raise ValueError(f"{run['run_dir']} was tested on other molecules (another split or subset)")
        predictions.append(prediction)
    return float(np.abs(np.mean(predictions, axis=0) - reference[1]).mean())


def seed_groups(runs: list[dict]) -> list[list[dict]]:
    """Groups of runs whose configs (config_resolved.yaml) differ only in the seed, with two or more seeds."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(_setting(run, _config(run)), []).append(run)
    return [group for group in groups.values() if len({run["seed"] for run in group}) > 1]


def training_size_groups(runs: list[dict]) -> dict[str, dict[int, list[float]]]:
    """Test error ratios by number of training molecules, for settings run at two or more sizes.

    Runs that differ only in seed and `data.train_size` form one group, named by their task
    (e.g. "mu-edge_net"); only targets with a chemical accuracy count.
    """
    groups: dict[str, tuple[str, dict[int, list[float]]]] = {}
    for run in sorted(runs, key=lambda r: r["run_dir"]):
        if get_target(run["target"]).chemical_accuracy and "molecules" in run:
            config = _config(run)
            name = str(OmegaConf.select(config, "task_name", default=run["target"])) if config else run["target"]
            key = _setting(run, config, ignore=("seed", "data.train_size"))
            _, sizes = groups.setdefault(key, (name, {}))
            sizes.setdefault(run["molecules"]["train"], []).append(run["test_error_ratio"])
    named: dict[str, dict[int, list[float]]] = {}
    for name, sizes in groups.values():
        if len(sizes) > 1:
            named[name if name not in named else f"{name} ({len(named) + 1})"] = sizes
    return named


def _config(run: dict) -> DictConfig | None:
    return _load_config(run["run_dir"])


@functools.cache
def _load_config(run_dir: str) -> DictConfig | None:
    path = Path(run_dir) / "config_resolved.yaml"
    return OmegaConf.load(path) if path.exists() else None


def _definition(config: DictConfig) -> dict:
    """The run-defining settings, flattened, without where the run writes: a callback's `dirpath` is
    the run's own directory, different for every run, and would set apart runs alike in all else."""
    return {key: value for key, value in _flatten(run_definition(config)).items() if not key.endswith(".dirpath")}


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _setting(run: dict, config: DictConfig | None, ignore: tuple[str, ...] = ("seed",)) -> str:
    """What defines a run apart from the `ignore` keys, as a string; a run without its config stands alone."""
    if config is None:
        return run["run_dir"]
    setting = {key: value for key, value in _definition(config).items() if key not in ignore}
    setting["trainer.max_epochs"] = OmegaConf.select(config, "trainer.max_epochs")
    return json.dumps(setting, sort_keys=True)


def log_to_wandb(records: list[dict], charts: list[Path], where: Path, online: bool = False) -> Path:
    """The comparison as one W&B run of the sweep (offline unless `online`), in `where`/wandb: the table
    (`rows`), each run's error ratio and test MAE in the summary under its run directory's name, the charts.
    Returns the run's folder."""
    import wandb

    run = wandb.init(
        project="mpnn-qm9", job_type="compare", name=f"compare {where.name}", dir=str(where),
        mode="online" if online else "offline", config={"runs": len(records)},
    )  # fmt: skip
    try:
        columns = list(dict.fromkeys(key for record in records for key in record))
        table = wandb.Table(columns=columns, data=[[record.get(key) for key in columns] for record in records])
        run.log({"runs": table, **{chart.stem: wandb.Image(str(chart)) for chart in charts}})
        for record in records:
            name = Path(record["run_dir"]).name
            run.summary[f"{name}/test_error_ratio"] = record["test_error_ratio"]
            run.summary[f"{name}/test_mae"] = record["test_mae"]
            run.summary[f"{name}/target"] = record["target"]
        return Path(run.dir).parent
    finally:
        run.finish()
