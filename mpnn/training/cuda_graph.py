"""One training step (forward, loss, backward, gradient clipping) captured as a CUDA graph per batch shape.

At batch 128 the GPU finishes a step of this model in about 2 ms, less than the host needs to
launch its hundreds of kernels one by one and run Lightning's loop around them. Replaying one
captured graph costs a single launch, so the host stays ahead and the GPU never waits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import torch

from mpnn.data.batch import MoleculeBatch


@dataclasses.dataclass
class _Capture:
    """The graph of one batch shape: its input and output tensors and the gradients it writes."""

    eager_calls: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    inputs: MoleculeBatch | None = None
    output: torch.Tensor | None = None
    gradients: list[tuple[torch.nn.Parameter, torch.Tensor | None]] = dataclasses.field(default_factory=list)
    pointers: list[int] = dataclasses.field(default_factory=list)

    def parameters_moved(self) -> bool:
        """Whether the captured parameters' storage is elsewhere now (e.g. moved to the CPU and back)."""
        return self.pointers != [parameter.data_ptr() for parameter, _ in self.gradients]


def signature(batch: MoleculeBatch) -> tuple:
    """What a captured graph is specific to: every tensor's shape and dtype, and the autocast state.

    A graph captured under bf16 autocast replays bf16 kernels, so it is kept apart from an fp32 one.
    """
    fields = [(field.name, getattr(batch, field.name)) for field in dataclasses.fields(batch)]
    tensors = tuple((name, tuple(t.shape), t.dtype) for name, t in fields)
    return tensors, torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")


class CudaGraphStep:
    """Runs `step(batch)` eagerly for `warmup` calls per batch shape, then captures it once for that
    shape and replays it.

    Each later batch is copied into the tensors its shape's graph was captured with. Batch shapes
    must be few and fixed (`data.static_shapes=true`: one shape, or one per bucket with
    `data.bucketing=true`); each keeps its own graph and memory. The returned tensor is
    overwritten by the next replay of the same graph.

    Gradients: every call computes them afresh (`.grad` is cleared first, never accumulated).
    A captured graph writes them into tensors it allocated during capture, and after each replay
    these are attached to the parameters again, so that a `zero_grad(set_to_none=True)`
    elsewhere (Lightning calls one before every validation) cannot cut them off from the
    optimizer, and the next step's optimizer sees the gradients of the graph just replayed.

    Autocast: the step runs under the caller's autocast state (Lightning's, with
    `trainer.precision=bf16-mixed`) with autocast's cache of cast weights turned off: a cast
    cached outside the graph would be replayed as a stale copy of the weights.
    """

    def __init__(
        self,
        step: Callable[[MoleculeBatch], torch.Tensor],
        parameters: Callable[[], Iterable[torch.nn.Parameter]],
        warmup: int = 3,
    ):
        self.step = step
        self.parameters = parameters
        self.warmup = warmup
        self._captures: dict[tuple, _Capture] = {}

    @property
    def captured(self) -> int:
        """How many batch shapes have a captured graph."""
        return sum(capture.graph is not None for capture in self._captures.values())

    def __call__(self, batch: MoleculeBatch) -> torch.Tensor:
        key = signature(batch)
        capture = self._captures.get(key)
        if capture is not None and capture.graph is not None and capture.parameters_moved():
            self._captures.clear()  # every graph would read the old copies: capture again
            capture = None
        if capture is None:
            capture = self._captures[key] = _Capture()
        if capture.graph is not None:
            _copy_into(capture.inputs, batch)
            capture.graph.replay()
            for parameter, gradient in capture.gradients:
                parameter.grad = gradient
            return capture.output
        if batch.x.device.type != "cuda":
            raise ValueError(f"optim.cuda_graph=true needs a CUDA device; this batch is on {batch.x.device}")
        parameters = [p for p in self.parameters() if p.requires_grad]
        for parameter in parameters:
            parameter.grad = None  # fresh gradients; during capture, allocated in the graph's memory
        _, enabled, dtype = key  # the caller's autocast state, run without its cache (class docstring)
        autocast = torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False)
        if capture.eager_calls < self.warmup:
            # Warm-up (compilation, cuBLAS workspaces, autograd streams) on a side stream, as capture requires.
            capture.eager_calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), autocast:
                output = self.step(batch)
            torch.cuda.current_stream().wait_stream(side)
            return output
        capture.graph = torch.cuda.CUDAGraph()
        capture.inputs = batch
        # thread_local: only this thread must avoid capture-unsafe calls (logger threads may use CUDA).
        with torch.cuda.graph(capture.graph, capture_error_mode="thread_local"), autocast:
            capture.output = self.step(batch)
        capture.gradients = [(p, p.grad) for p in parameters]
        capture.pointers = [p.data_ptr() for p in parameters]
        capture.graph.replay()  # capture records the work without running it
        return capture.output


def _copy_into(static: MoleculeBatch, batch: MoleculeBatch) -> None:
    """Copy every tensor of `batch` into the same field of the captured `static` batch (same signature)."""
    for field in dataclasses.fields(static):
        getattr(static, field.name).copy_(getattr(batch, field.name), non_blocking=True)
