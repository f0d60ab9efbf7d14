"""Each precision's gradient against the float64 gradient, by part of the model (mpnn/bench/precision.py)."""

import torch

from mpnn.bench.precision import PATHS, error_table, gradient_errors
from mpnn.training.build import build
from tests.conftest import needs_cuda
from tests.training.test_module import compose_config


def errors(briefly_trained, device: str) -> dict[str, dict]:
    datamodule, module = build(compose_config("data.subset=1000"))
    module.load_state_dict(briefly_trained)
    rows = gradient_errors(module, datamodule, datamodule.split.val[:256], torch.device(device))
    print(error_table(rows))  # shown by `pytest -rP` (the GPU check): the measurement, also when it passes
    return {row["path"]: row for row in rows}


def test_on_cpu_float32_is_exact_and_bf16_rounds_every_part(briefly_trained):
    """Measured 2026-12-05 (2 CPU cores): float32 2.1e-7, bf16 7.7e-4 relative error (0.07-0.36% by part)."""
    found = errors(briefly_trained, "cpu")
    assert [row for row, *_ in PATHS] == list(found)
    assert found["float32"]["relative_error"] < 1e-5
    bf16 = found["bf16-mixed"]
    assert 1e-4 < bf16["relative_error"] < 1e-2 and bf16["cosine"] > 0.9999
    assert all(1e-5 < error < 1e-2 for error in bf16["relative_error_by_part"].values())  # every part ran bf16
    assert set(bf16["relative_error_by_part"]) == {"embed", "messages", "updates", "readout", "head"}


@needs_cuda()
def test_on_cuda_bf16_stays_near_the_exact_gradient(briefly_trained):
    """On an H200 (2026-12-04) bf16's gradient had cosine 0.9983 with the float32 one, under the 0.999
    that CPU runs meet easily. That reference was TF32 (matmul_precision=high) and cuBLAS may reduce bf16
    partial sums in bf16. Here bf16 is held against float64 to a bound looser than the CPU test's (cosine
    above 0.999 and relative error under 4.5%, where the CPU test asks for 0.9999 and 1%): loose enough
    for a GPU's other rounding, tight enough to fail on the H200's 0.9983. The table (printed) tells a loss
    of accuracy (bf16 far from float64, which part, whether float32 reductions help) from a noisy
    reference (TF32 far from float64)."""
    found = errors(briefly_trained, "cuda")
    table = error_table(list(found.values()))
    assert found["float32"]["relative_error"] < 1e-4, table
    assert found["bf16-mixed"]["cosine"] > 0.999 and found["bf16-mixed"]["relative_error"] < 0.045, table
