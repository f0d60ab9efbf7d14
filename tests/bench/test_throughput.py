"""The FLOP count of a training step is that of the eager step, also for a module that trains through a
CUDA graph or a compiled loss (a graph replay shows the counter no operations; on 2026-12-04 the count
crashed inside the graph step on an H200)."""

import torch

from mpnn.bench.throughput import step_flops
from mpnn.cli import compose
from mpnn.training.build import build


def test_the_flop_count_is_the_eager_steps_with_a_cuda_graph_module(packed):
    settings = ["logger=none", "data.subset=300", "data.static_shapes=true", "data.batch_parts=1"]
    plain_dm, plain = build(compose(settings))
    _, graphed = build(compose([*settings, "optim.cuda_graph=true"]))
    batch = plain_dm.batch(plain_dm.split.train[:32])
    expected, by_operator = step_flops(plain, batch, torch.device("cpu"), "32-true")
    counted, _ = step_flops(graphed, batch, torch.device("cpu"), "32-true")  # the graph itself needs CUDA
    assert expected > 0 and "mm" in by_operator
    assert counted == expected
    assert graphed._loss is None and all(p.grad is not None for p in graphed.parameters())
