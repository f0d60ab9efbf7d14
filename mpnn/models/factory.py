"""Models built from their config (`conf/model/*.yaml`, or the copy a checkpoint carries).

A config names classes and functions by `_target_`. A checkpoint may come from anyone, so only
targets inside this project, PyTorch Geometric and PyTorch are followed: loading a checkpoint
never imports or calls anything else.
"""

from __future__ import annotations

import torch
from hydra.utils import get_class, instantiate

from mpnn.data.batch import BACKENDS
from mpnn.data.spec import DataSpec
from mpnn.models.protocol import MoleculeModel

TRUSTED_TARGETS = ("mpnn.", "torch_geometric.", "torch.")


def _check_targets(config: object, where: str = "model") -> None:
    if isinstance(config, dict):
        target = config.get("_target_")
        if target is not None and not str(target).startswith(TRUSTED_TARGETS):
            raise ValueError(
                f"{where}._target_={target!r} is outside {', '.join(TRUSTED_TARGETS)}: "
                "refusing to import it (models must live in this project, PyG or PyTorch)"
            )
        for key, value in config.items():
            _check_targets(value, f"{where}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            _check_targets(value, f"{where}[{i}]")


def model_class(config: dict) -> type[MoleculeModel]:
    """The model class a config names (checked, imported, not built)."""
    _check_targets(config)
    cls = get_class(config["_target_"])
    if not (isinstance(cls, type) and issubclass(cls, MoleculeModel)):
        raise ValueError(f"model._target_={config['_target_']!r} is not a MoleculeModel (mpnn.models.protocol)")
    return cls


def resolve_backend(config: dict, backend: str) -> str:
    """The backend to run `config`'s model on: `auto` is the model's fastest; others must be supported."""
    cls = model_class(config)
    if backend == "auto":
        return cls.backends[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend={backend!r}; valid: auto, {', '.join(BACKENDS)}")
    if backend not in cls.backends:
        raise ValueError(
            f"{cls.__name__} ({config['_target_']}) supports backend={' or backend='.join(cls.backends)} only, "
            f"not backend={backend}"
        )
    return backend


def build_model(config: dict, spec: DataSpec, seed: int | None = None) -> MoleculeModel:
    """The model of `config` (a plain dict, as saved in checkpoints) for data described by `spec`;
    with `seed`, its initial weights are drawn from `torch.manual_seed(seed)`, so a run's weights depend
    on its seed alone (an ensemble's member k starts as the single run with seed k)."""
    model_class(config)
    if seed is not None:
        torch.manual_seed(seed)
    # Built partial, then called: Hydra would turn a dataclass argument into a config node.
    model = instantiate(config, _partial_=True, _convert_="all")(data=spec)
    model.spec = spec
    return model
