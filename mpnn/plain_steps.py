"""Adam steps outside a Lightning Trainer, for the diagnostics and the benchmarks.

Those tools train a few steps by hand (the Trainer's loop would hide what they watch or time); the
order of zero_grad, backward, clipping and step is written here once. It sits at the bottom of the
package so that every layer may use it (`mpnn.message_scale` sits below `mpnn.training`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch


class PlainAdam:
    """Adam on `parameters`, with the total gradient norm clipped to `clip` (None or 0: not clipped) in `step`.

    `fused=True` takes the fused CUDA kernel; False leaves the choice to torch (foreach on CUDA)
    rather than forcing the per-parameter loop that `torch.optim.Adam(fused=False)` means.
    """

    def __init__(
        self, parameters: Iterable[torch.nn.Parameter], lr: float = 1e-3, clip: float | None = None, fused: bool = False
    ):
        self.parameters = list(parameters)
        self.optimizer = torch.optim.Adam(self.parameters, lr=lr, fused=fused or None)
        self.clip = clip

    def step(
        self,
        loss_of: Callable[..., torch.Tensor],
        *inputs,
        inspect: Callable[[torch.Tensor], object] | None = None,
    ) -> torch.Tensor:
        """One step on the loss `loss_of(*inputs)`; its value, detached.

        `inspect(loss)` runs between backward and clipping: it sees the unclipped gradients (the
        message scale check records their norms; PyG's example reads `loss.item()` there).
        """
        self.optimizer.zero_grad()
        loss = loss_of(*inputs)
        loss.backward()
        if inspect is not None:
            inspect(loss)
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
        self.optimizer.step()
        return loss.detach()

    def module_step(self, module, batch, autocast: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
        """One step of a `RegressionModule` on `batch`, as its training step takes it: its own
        `compute_gradients` (clipping to its `gradient_clip_val`, compiled loss or CUDA graph as
        configured), inside `autocast` when given; the optimizer step outside it. The loss, detached."""
        with autocast or contextlib.nullcontext():
            loss = module.compute_gradients(batch, self.optimizer)
        self.optimizer.step()
        return loss
