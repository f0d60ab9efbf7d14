"""Full-precision islands inside a bf16 autocast region (`trainer.precision=bf16-mixed`).

Autocast runs matrix products in bfloat16 (8 significant bits). That is where the time goes (the
edge network's messages) and where it does not hurt; but a recurrent state rounded to 8 bits at
every step, or a prediction rounded to 8 bits (0.4% of the target's spread, about the paper's
error on some targets), would. Those parts (GRU updates, readout, output head) are cheap and run
in float32: `float32_region` switches autocast off, `float32` lifts half-precision inputs.
Tensors in float64 (the target scaler, float64 tests) are left as they are.
"""

from __future__ import annotations

import torch

HALF = (torch.bfloat16, torch.float16)


def float32_region(device_type: str) -> torch.autocast:
    """A region without autocast on `device_type` ("cpu", "cuda"): its operations run in their inputs' dtype."""
    return torch.autocast(device_type, enabled=False)


def float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32 if it is in half precision, else unchanged."""
    return tensor.float() if tensor.dtype in HALF else tensor
