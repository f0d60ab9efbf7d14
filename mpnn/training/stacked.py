"""The stacked ensemble engine (`ensemble.engine=stacked`): K members' forward passes as one vmapped
computation over their stacked parameters, on their K dense batches stacked into one."""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from mpnn.data.batch import MoleculeBatch


class StackedMembers:
    """The members' forward passes as one batched computation: their parameters stacked along a new
    first dimension (differentiably: gradients reach each member's own parameters) and the model run
    once under `torch.func.vmap`, on one dense batch per member or one batch for all.

    The model is a copy of member 0 on the meta device with its fused recurrent cells written out
    (`fused=False`), called with the stacked tensors by `torch.func.functional_call`.
    """

    def __init__(self, members: nn.ModuleList):
        self.members = members
        self.template = copy.deepcopy(members[0]).to("meta")
        for module in self.template.modules():
            if hasattr(module, "fused"):
                module.fused = False

    def __call__(self, batches: list[MoleculeBatch] | MoleculeBatch) -> torch.Tensor:
        """(K, molecules) standardised predictions: member k's of `batches[k]`, or of the one batch given."""
        names = [name for name, _ in self.members[0].named_parameters()]
        stacked = {name: torch.stack([member.get_parameter(name) for member in self.members]) for name in names}
        buffers = {
            name: torch.stack([member.get_buffer(name) for member in self.members])
            for name, _ in self.members[0].named_buffers()
        }
        shared = isinstance(batches, MoleculeBatch)
        fields = astuple_shallow(batches if shared else stack_batches(batches))

        def forward(parameters: dict, buffers: dict, *fields: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (parameters, buffers), (MoleculeBatch(*fields),))

        in_dims = (0, 0, *([None] * len(fields) if shared else [0] * len(fields)))
        return vmap(forward, in_dims=in_dims)(stacked, buffers, *fields)


def astuple_shallow(batch: MoleculeBatch) -> tuple[torch.Tensor, ...]:
    """A batch's tensors in field order (`dataclasses.astuple` would copy them)."""
    return tuple(getattr(batch, field.name) for field in dataclasses.fields(batch))


def stack_batches(batches: list[MoleculeBatch]) -> MoleculeBatch:
    """Dense batches of the same molecule count stacked along a new first dimension, each padded to the
    largest atom count among them (padding is masked, as within a batch)."""
    if len({batch.num_graphs for batch in batches}) != 1:
        raise ValueError("ensemble.engine=stacked needs the members' batches to hold the same number of molecules")
    n = max(batch.x.shape[1] for batch in batches)

    def padded(batch: MoleculeBatch) -> list[torch.Tensor]:
        return [pad_atoms(getattr(batch, f.name), f.metadata["atom_dims"], n) for f in dataclasses.fields(batch)]

    return MoleculeBatch(*(torch.stack(field) for field in zip(*map(padded, batches))))


def pad_atoms(tensor: torch.Tensor, atom_dims: tuple[int, ...], n: int) -> torch.Tensor:
    """`tensor` zero-padded (False for booleans) to `n` along each of its atom dimensions `atom_dims`."""
    widths = [0] * (2 * tensor.dim())
    for dim in atom_dims:
        widths[2 * (tensor.dim() - 1 - dim) + 1] = n - tensor.shape[dim]  # F.pad lists the last dimension first
    if not any(widths):
        return tensor
    if tensor.dtype == torch.bool:
        return F.pad(tensor.to(torch.uint8), widths).bool()
    return F.pad(tensor, widths)
