"""The prepared GPU check (`bash scripts/gpu_check.sh [OUT_DIR]` = `python -m mpnn.bench.gpu_check`).

Run it on a fresh GPU node, with the packages of pyproject.toml and the QM9 cache under data/. Each
part runs as its own process under its own time limit, so a part that fails or hangs does not hide
the others; the whole check stays under about 8 minutes on one H100/H200-class GPU. It writes
`summary.md` and `summary.json` in OUT_DIR (default `gpu_check/<date-time>`), with every part's
command, exit status, seconds, numbers and the tail of its output. Each part names its reader: a
benchmark part writes its numbers to `OUT_DIR/<part>/results.json` (`mpnn-benchmark MODE --results`),
the training run to its results.json, and the CUDA tests' counts come from pytest's closing line; a
part that exits 0 but leaves nothing its reader can read is failed, saying why. Give each check a new
OUT_DIR: the benchmark does not overwrite an existing results.json.

Parts: the CUDA tests (`pytest -m gpu`); the benchmark of each GPU path against PyG's example in
the same process (eager fp32, bf16, torch.compile, CUDA graph, CUDA graph + bf16, bucketed static
shapes); the zoo's steps; the profile of the paper's enn_s2s step (kernels per step, their time,
the GPU's idle share); a short `experiment=enn_s2s` run (validation MAE after its epochs, the
epoch time and the projected wall time of the paper's 540 epochs). Without CUDA it says so in one
line and exits with status 2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = [sys.executable, str(REPO / "scripts" / "benchmark.py")]
SUBSET = "data.subset=20000"  # ~17,000 training molecules: enough steps to time, seconds per epoch
# Every part names every setting of its path: the benchmark's own default on CUDA is one of them.
EAGER_FP32 = {
    "trainer.precision": "32-true", "data.batch_parts": "1", "data.static_shapes": "false",
    "data.bucketing": "false", "optim.compile": "false", "optim.cuda_graph": "false",
}  # fmt: skip
BF16, STATIC = {"trainer.precision": "bf16-mixed"}, {"data.static_shapes": "true"}


def path(*changes: dict[str, str]) -> list[str]:
    """The overrides of eager fp32 with `changes` applied."""
    settings = EAGER_FP32.copy()
    for change in changes:
        settings |= change
    return [f"{key}={value}" for key, value in settings.items()]


# Each path's overrides and time limit (seconds, with start-up and the example's 100 timed steps);
# torch.compile spends most of its limit compiling.
PATHS = {
    "eager fp32": (path(), 35),
    "eager bf16": (path(BF16), 35),
    "torch.compile fp32": (path(STATIC, {"optim.compile": "true"}), 70),
    "CUDA graph fp32": (path(STATIC, {"optim.cuda_graph": "true"}), 35),
    "CUDA graph bf16": (path(BF16, STATIC, {"optim.cuda_graph": "true"}), 35),
    "CUDA graph bf16, bucketed": (path(BF16, STATIC, {"optim.cuda_graph": "true", "data.bucketing": "true"}), 45),
}
# The paper's enn-s2s (batch 20) on the fastest path a GPU has trained it on (docs/PERFORMANCE.md).
ENN_S2S = ["experiment=enn_s2s", "data.static_shapes=true", "optim.cuda_graph=true", "trainer.precision=bf16-mixed"]
ACCURACY_EPOCHS = 2
PAPER_EPOCHS = 540


@dataclass
class Part:
    """One process of the check; `read` turns what it left behind (the JSON file `results`, its output) into
    the numbers of the summary."""

    name: str
    command: list[str]
    limit_s: float
    read: Callable[[Part], dict] | None = None
    results: str | None = None
    status: str = "not run"  # ok | failed (exit N) | failed (no numbers: why) | timed out
    seconds: float = 0.0
    output_tail: str = ""
    numbers: dict = field(default_factory=dict)


class NoNumbers(Exception):
    """A part left nothing its reader can read: the summary says why, not a traceback."""


def results_file(part: Part) -> dict:
    path = Path(part.results)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NoNumbers(f"{path} was not written") from None
    except json.JSONDecodeError as error:
        raise NoNumbers(f"{path} is not JSON ({error})") from None


def throughput_numbers(part: Part) -> dict:
    """A throughput part: this project's rate and step time, the example's rate, the speed-up."""
    numbers = results_file(part)["numbers"]
    return {
        "molecules_per_s": numbers["ours"]["molecules_per_s"], "ms_per_step": numbers["ours"]["ms_per_step"],
        "example_molecules_per_s": numbers["baseline"]["molecules_per_s"], "speedup": numbers["speedup"],
    }  # fmt: skip


def zoo_numbers(part: Part) -> dict:
    """The zoo part: each model's ms per step with on-device batches and with PyG's DataLoader."""
    rows = results_file(part)["numbers"]["zoo"]
    return {f"{row['model']} {key}": row[key] for row in rows for key in ("on_device_ms", "dataloader_ms")}


def profile_numbers(part: Part) -> dict:
    """The profile part: ms and kernels per step, the kernels' ms per step, the GPU's idle share."""
    numbers = results_file(part)["numbers"]
    return {key: numbers[key] for key in ("ms_per_step", "kernels_per_step", "kernel_ms_per_step", "idle_share")}


def training_numbers(part: Part) -> dict:
    """A train.py run (its results.json): validation MAE per epoch, wall seconds, and, where the run measured
    its rate, seconds per training epoch and the projected 540 epochs."""
    summary = results_file(part)
    numbers = {"val_mae_per_epoch": summary["val_mae_per_epoch"], "wall_s": summary["wall_s"]}
    rate = summary.get("train_molecules_per_s")
    if rate and rate == rate:  # not NaN
        epoch_s = summary["molecules"]["train"] / rate
        numbers |= {"train_epoch_s": epoch_s, "projected_540_epochs_h": epoch_s * PAPER_EPOCHS / 3600}
    return numbers


PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|error)s?\b")
PYTEST_TIME = re.compile(r" in \d+(\.\d+)?s\b")


def pytest_numbers(part: Part) -> dict:
    """A pytest part: the counts of its closing line (`3 passed, 2 skipped in 12.0s`)."""
    closing = [line for line in part.output_tail.splitlines() if PYTEST_COUNT.search(line) and PYTEST_TIME.search(line)]
    if not closing:
        raise NoNumbers("no pytest summary line in the output")
    return {outcome: int(count) for count, outcome in PYTEST_COUNT.findall(closing[-1])}


def benchmark_part(out: Path, name: str, limit_s: float, read: Callable[[Part], dict], mode: str, *args: str) -> Part:
    """`mpnn-benchmark MODE ARGS` on CUDA, its numbers in <out>/<the part's name as a folder>/results.json."""
    results = out / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") / "results.json"
    command = [*BENCH, mode, "--device", "cuda", "--results", str(results), *args]
    return Part(name, command, limit_s, read, str(results))


def parts(out: Path) -> list[Part]:
    """The check's parts, in the order they run."""
    # -rP shows what passing tests print: the bf16 gradient's errors against float64, by part.
    pytest = [sys.executable, "-m", "pytest", "-q", "-rP", "-m", "gpu", str(REPO / "tests")]
    found = [Part("CUDA tests", pytest, 65, pytest_numbers)]
    for name, (overrides, limit_s) in PATHS.items():
        args = ["--baseline-steps", "100", SUBSET, *overrides]
        found.append(benchmark_part(out, f"benchmark: {name}", limit_s, throughput_numbers, "throughput", *args))
    found.append(benchmark_part(out, "zoo steps", 45, zoo_numbers, "zoo"))
    # The paper's configuration: where its step's time goes (target: 1.5 ms), then how it learns.
    found.append(benchmark_part(out, "enn_s2s step profile", 30, profile_numbers, "profile", SUBSET, *ENN_S2S))
    run_dir = out / "enn_s2s"
    train = [sys.executable, str(REPO / "train.py"), *ENN_S2S, "target=mu", "logger=csv",
             f"trainer.max_epochs={ACCURACY_EPOCHS}", f"hydra.run.dir={run_dir}"]  # fmt: skip
    found.append(Part("enn_s2s accuracy", train, 85, training_numbers, str(run_dir / "results.json")))
    return found


def run_part(part: Part, env: dict | None = None) -> Part:
    """Run one part under its time limit; its status, seconds and the last 60 lines of its output."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            part.command, cwd=REPO, capture_output=True, text=True, timeout=part.limit_s, env=env or os.environ
        )
        part.status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as timeout:
        part.status = f"timed out after {part.limit_s:.0f} s"
        output = "".join(o.decode() if isinstance(o, bytes) else (o or "") for o in (timeout.stdout, timeout.stderr))
    part.seconds = time.monotonic() - start
    part.output_tail = "\n".join(output.strip().splitlines()[-60:])
    return part


def read_numbers(part: Part) -> Part:
    """The part's numbers, by its own reader. A part that exited 0 but left nothing readable is failed,
    saying why; one that had already failed keeps the status that says how."""
    if part.read is None:
        return part
    try:
        part.numbers = part.read(part)
    except NoNumbers as error:
        reason = str(error)
    except KeyError as error:
        reason = f"{part.results} has no {error}"
    else:
        return part
    if part.status == "ok":
        part.status = f"failed (no numbers: {reason})"
    return part


# Issue 21's speed targets on one H100/H200-class GPU.
EXAMPLE_SPEEDUP, EXAMPLE_RATE, ENN_S2S_MS = 30, 60_000, 1.5


def targets(done: list[Part]) -> list[str]:
    """One line per speed target: the best path's figure, and whether it meets the target."""
    lines = []
    paths = {p.name.removeprefix("benchmark: "): p.numbers for p in done if p.read is throughput_numbers and p.numbers}
    if paths:
        name, best = max(paths.items(), key=lambda item: item[1]["molecules_per_s"])
        met = best["speedup"] >= EXAMPLE_SPEEDUP and best["molecules_per_s"] >= EXAMPLE_RATE
        lines.append(
            f"- example configuration: {best['molecules_per_s']:,.0f} molecules/s, {best['speedup']:.1f}x the example "
            f"({name}); target {EXAMPLE_SPEEDUP}x and {EXAMPLE_RATE:,} molecules/s: "
            f"{'met' if met else 'not met'}"
        )
    profile = next((p.numbers for p in done if p.read is profile_numbers and p.numbers), None)
    if profile:
        met = profile["ms_per_step"] <= ENN_S2S_MS
        lines.append(
            f"- enn_s2s (batch 20) step: {profile['ms_per_step']:.2f} ms, {profile['kernels_per_step']:.0f} kernels, "
            f"GPU idle {profile['idle_share']:.0%}; target {ENN_S2S_MS} ms: {'met' if met else 'not met'}"
        )
    return lines


def part_summary(part: Part) -> dict:
    """The part as JSON, its reader by name."""
    return {**asdict(part), "read": part.read.__name__ if part.read else None}


def summary_markdown(done: list[Part], device: str) -> str:
    lines = [f"# GPU check, {time.strftime('%Y-%m-%d %H:%M')}, {device}", ""]
    lines += ["| part | status | seconds | numbers |", "| --- | --- | --- | --- |"]
    for p in done:
        numbers = ", ".join(f"{k} {v:,.4g}" for k, v in p.numbers.items() if isinstance(v, float | int))
        lines.append(f"| {p.name} | {p.status} | {p.seconds:.0f} | {numbers} |")
    if found := targets(done):
        lines += ["", "Speed targets:", *found]
    for part in done:
        lines += ["", f"## {part.name}", "", "```", " ".join(part.command), "", part.output_tail, "```"]
        if part.numbers:
            lines += ["", f"numbers: `{json.dumps(part.numbers)}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU node")
        return 2
    out = Path(argv[0]) if argv else REPO / "gpu_check" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    done = []
    for part in parts(out):
        print(f"[gpu_check] {part.name} (limit {part.limit_s:.0f} s) ...", flush=True)
        done.append(read_numbers(run_part(part)))
        print(f"[gpu_check] {part.name}: {part.status}, {part.seconds:.0f} s", flush=True)
        (out / "summary.md").write_text(summary_markdown(done, device))  # kept current, in case of a kill
        (out / "summary.json").write_text(json.dumps({"device": device, "parts": [part_summary(p) for p in done]}))
    print(f"[gpu_check] summary: {out / 'summary.md'}")
    return 0 if all(p.status == "ok" for p in done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
