"""How far each precision's gradient is from the exact one, by part of the model (`mpnn-benchmark precision`).

A bf16 gradient compared with a "float32" one measures both: on a GPU under `matmul_precision=high`
(the default) the float32 products are TF32 (10 significant bits), and cuBLAS may reduce bf16
products' partial sums in bf16. So each path is compared with the same step in float64, on the
same weights and batch, and the toggles that change GPU arithmetic are measured one by one:
TF32 on/off for float32, reduced-precision reduction on/off for bf16.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch

from mpnn.plain_steps import PlainAdam
from mpnn.training.module import RegressionModule


@contextlib.contextmanager
def matmul_settings(precision: str, bf16_reduced_reduction: bool) -> Iterator[None]:
    """float32 matmul precision ("highest": IEEE float32, "high": TF32 on GPUs) and cuBLAS's bf16
    reduced-precision reduction, for the duration; the process's settings are restored after."""
    saved = torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    torch.set_float32_matmul_precision(precision)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = bf16_reduced_reduction
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = saved[1]


def gradients(module: RegressionModule, batch, bf16: bool) -> dict[str, torch.Tensor]:
    """Each parameter's gradient of the training loss (unclipped) on `batch`, in float64, by name."""
    module.zero_grad(set_to_none=True)
    with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss, _ = module.loss(batch)
    loss.backward()
    return {name: p.grad.detach().double().flatten() for name, p in module.named_parameters() if p.grad is not None}


# (label, bf16 autocast, float32 matmul precision, bf16 reduced-precision reduction)
PATHS = (
    ("float32", False, "highest", True),
    ("float32, TF32 products (matmul_precision=high)", False, "high", True),
    ("bf16-mixed", True, "high", True),
    ("bf16-mixed, float32 reductions", True, "high", False),
)


def gradient_errors(module: RegressionModule, datamodule, rows, device: torch.device) -> list[dict]:
    """For each of `PATHS`: the gradient's cosine with the float64 gradient, its relative error
    (|g - g64| / |g64|) in all and by the model's top-level parts (embedding, messages, updates,
    readout, head), on `module`'s weights and the molecules `rows` of `datamodule`. Comparing bf16
    with float64 tells rounding from a loss of accuracy; float32 with float64 prices the reference."""
    exact_module = copy.deepcopy(module).double().to(device)
    exact = gradients(exact_module, datamodule.batch(rows, device, torch.float64), bf16=False)
    module = copy.deepcopy(module).to(device)
    batch = datamodule.batch(rows, device)
    parts: dict[str, list[str]] = {}
    for name in exact:
        parts.setdefault(name.split(".")[1], []).append(name)  # model.<part>.…
    rows = []
    for label, bf16, precision, reduced in PATHS:
        with matmul_settings(precision, reduced):
            found = gradients(module, batch, bf16)
        rows.append(
            {
                "path": label,
                "cosine": _cosine(found, exact, list(exact)),
                "relative_error": _relative(found, exact, list(exact)),
                "relative_error_by_part": {part: _relative(found, exact, names) for part, names in parts.items()},
            }
        )
    return rows


def briefly_trained(overrides: list[str], steps: int = 20) -> dict[str, torch.Tensor]:
    """The weights of the run `overrides` names after `steps` float32 training steps of 32 molecules on
    the CPU. At initialisation, messages of size ~20 drive saturated GRU gates that amplify any rounding
    (bf16 vs float32 gradient cosine 0.94); a few steps remove that, and a comparison measures the
    arithmetic itself."""
    from mpnn.config import compose
    from mpnn.training.build import build

    datamodule, module = build(compose([*overrides, "data.batch_size=32", "data.bucketing=true"]))
    optimizer = PlainAdam(module.parameters())
    for step, raw in enumerate(datamodule.train_dataloader()):
        optimizer.module_step(module, datamodule.on_after_batch_transfer(raw, 0))
        if step == steps - 1:
            break
    return module.state_dict()


def _flat(gradients: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([gradients[name] for name in names])


def _cosine(found: dict, exact: dict, names: list[str]) -> float:
    return torch.nn.functional.cosine_similarity(_flat(found, names), _flat(exact, names), 0).item()


def _relative(found: dict, exact: dict, names: list[str]) -> float:
    difference = _flat(found, names) - _flat(exact, names)
    return (difference.norm() / _flat(exact, names).norm()).item()


def error_table(rows: list[dict]) -> str:
    """`gradient_errors` as text: one line per path, the parts' relative errors after."""
    lines = []
    for row in rows:
        parts = ", ".join(f"{part} {error:.2e}" for part, error in row["relative_error_by_part"].items())
        lines.append(
            f"{row['path']:48s} cosine {row['cosine']:.6f}  relative error {row['relative_error']:.2e}  ({parts})"
        )
    return "\n".join(lines)
