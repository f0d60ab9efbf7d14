"""Objects of a run built from its composed Hydra config: data module, Lightning module, loggers,
callbacks and trainer. Bad values are refused here, by setting name, before any work starts."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, WeightAveraging
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from mpnn.data.datamodule import QM9DataModule
from mpnn.models.factory import resolve_backend
from mpnn.targets import get_target
from mpnn.training import slurm
from mpnn.training.ensemble import EnsembleModule
from mpnn.training.module import RegressionModule
from mpnn.training.task import refusal

# Settings that must be numbers: (whole numbers only, least value, may be null). A typo such as
# optim.lr=fast fails here, with the setting's name, instead of deep inside PyTorch.
NUMBERS = {
    "seed": (True, 0, False),
    "optim.lr": (False, None, False),
    "optim.weight_decay": (False, 0, False),
    "trainer.max_epochs": (True, 1, False),
    "ensemble.size": (True, 1, False),
    "data.batch_size": (True, 1, False),
    "data.eval_batch_size": (True, 1, False),
    "data.split_seed": (True, 0, False),
    "data.subset": (True, 10, True),
    "data.train_size": (True, 1, True),
}
_ABSENT = object()


def check_config(cfg: DictConfig) -> None:
    """Refuse values of the wrong kind or range, naming the setting and what is valid."""
    get_target(cfg.target)
    for key, (whole, least, nullable) in NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and nullable):
            continue
        kind = "a whole number" if whole else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
            raise ValueError(f"{key}={value!r} must be {kind}" + (" or null" if nullable else ""))
        if least is not None and value < least:
            raise ValueError(f"{key}={value!r} must be {kind} >= {least}")
    if not cfg.optim.lr > 0:
        raise ValueError(f"optim.lr={cfg.optim.lr!r} must be positive")


def ensemble_seeds(cfg: DictConfig) -> list[int]:
    """The seeds of the run's models: `seed`, and with `ensemble.size=K` also seed+1 .. seed+K-1."""
    return [cfg.seed + k for k in range(OmegaConf.select(cfg, "ensemble.size", default=1))]


def build_datamodule(cfg: DictConfig, backend: str) -> QM9DataModule:
    """The data module of the run, set up (cache, split); training batches shuffled by each model's seed."""
    datamodule: QM9DataModule = instantiate(cfg.data, backend=backend, shuffle_seeds=ensemble_seeds(cfg))
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def build(cfg: DictConfig) -> tuple[QM9DataModule, RegressionModule | EnsembleModule]:
    """Data module (set up) and Lightning module (target scaler fitted on the training split); an
    `EnsembleModule` with `ensemble.size` > 1."""
    check_config(cfg)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    backend = resolve_backend(model_config, cfg.backend)
    ensemble = len(ensemble_seeds(cfg)) > 1
    if ensemble:
        check_ensemble(cfg, backend)
    check_run(cfg, backend)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    datamodule = build_datamodule(cfg, backend)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    if ensemble:
        module = build_ensemble(cfg, model_config, datamodule, optim, backend)
    else:
        module = RegressionModule(
            model=model_config,
            data=datamodule.spec.to_dict(),
            optimizer=optim.pop("optimizer"),
            schedule=OmegaConf.to_container(cfg.schedule, resolve=True),
            backend=backend,
            seed=cfg.seed,
            **{key: optim[key] for key in ("gradient_clip_val", "compile", "compile_mode", "cuda_graph")},
        )
    module.fit_scaler(datamodule)
    return datamodule, module


def check_run(cfg: DictConfig, backend: str) -> None:
    """Refuse, before any data loads, what the run's training task cannot do: the one list of refusals
    (`mpnn.training.task.refusal`), which the task checks again when a Trainer starts fitting. The device is
    checked when fitting starts: a run on a device that cannot run it may still be built (the GPU check's CPU
    rehearsal builds its CUDA-graph runs so)."""
    strategy, devices = OmegaConf.select(cfg, "trainer.strategy"), OmegaConf.select(cfg, "trainer.devices")
    several = (
        "ddp" in str(strategy)
        or devices not in (1, "1", None, "auto")
        or OmegaConf.select(cfg, "trainer.num_nodes", default=1) != 1
    )
    message = refusal(
        precision=str(OmegaConf.select(cfg, "trainer.precision", default="32-true")),
        world_size=2 if several else 1,
        device_type=None,
        static_shapes=bool(cfg.data.static_shapes),
        compile=bool(cfg.optim.compile),
        cuda_graph=bool(cfg.optim.cuda_graph),
        models=len(ensemble_seeds(cfg)),
        backend=backend,
        compile_mode=cfg.optim.compile_mode,
    )
    if message:
        raise ValueError(message)


def check_ensemble(cfg: DictConfig, backend: str) -> None:
    """Refuse, by name and before any work, what `ensemble.size` > 1 does not support."""
    if backend != "dense":
        raise ValueError(
            f"ensemble.size > 1 trains the dense path of the paper's MPNN; backend={backend} (and PyG's models) "
            "train one model per run"
        )
    for key in ("compile", "cuda_graph"):
        if cfg.optim[key]:
            raise ValueError(f"optim.{key}=true is not supported with ensemble.size > 1 yet; use it without")
    if any(_is(c, WeightAveraging) for c in (cfg.get("callbacks") or {}).values()):
        raise ValueError("callbacks=ema is not supported with ensemble.size > 1; use it without")
    if OmegaConf.select(cfg, "schedule._target_", default="").endswith(".plateau"):
        raise ValueError(
            "schedule=plateau lowers one learning rate on one validation MAE; an ensemble's members would each "
            "need their own, which is not supported: use schedule=linear_decay, constant or "
            "warmup_exponential_decay with ensemble.size > 1"
        )
    if cfg.ensemble.engine == "stacked" and (cfg.data.bucketing or cfg.data.batch_parts > 1):
        raise ValueError(
            "ensemble.engine=stacked runs the members' batches as one: use it with data.bucketing=false and "
            "data.batch_parts=1 (or ensemble.engine=loop)"
        )


def build_ensemble(cfg: DictConfig, model_config: dict, datamodule, optim: dict, backend: str) -> EnsembleModule:
    """The `EnsembleModule` of `ensemble.size` > 1 (checked by `check_ensemble`)."""
    stopping = [c for c in (cfg.get("callbacks") or {}).values() if _is(c, EarlyStopping)]
    return EnsembleModule(
        model=model_config,
        data=datamodule.spec.to_dict(),
        optimizer=optim["optimizer"],
        schedule=OmegaConf.to_container(cfg.schedule, resolve=True),
        seeds=ensemble_seeds(cfg),
        backend=backend,
        gradient_clip_val=optim["gradient_clip_val"],
        # callbacks=early_stopping stops each member on its own validation MAE
        patience=stopping[0].patience if stopping else None,
        min_delta=stopping[0].get("min_delta", 0.0) if stopping else 0.0,
        engine=cfg.ensemble.engine,
    )


def _is(config: object, cls: type) -> bool:
    """Whether a callback's config builds a `cls`."""
    target = OmegaConf.select(config, "_target_", default=None) if OmegaConf.is_config(config) else None
    return target is not None and issubclass(get_class(target), cls)


def build_loggers(cfg: DictConfig, wandb_id: str | None = None) -> list:
    """The run's loggers; `wandb_id`: continue that W&B run (a resumed run keeps one W&B run, not two)."""
    loggers = []
    for config in cfg.logger.values() if cfg.get("logger") else []:
        resumed = wandb_id is not None and _is(config, WandbLogger)
        loggers.append(instantiate(config, id=wandb_id, resume="allow") if resumed else instantiate(config))
    return loggers


def build_callbacks(cfg: DictConfig, loggers: list) -> list[L.Callback]:
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] if cfg.get("callbacks") else []
    if len(ensemble_seeds(cfg)) > 1:  # an ensemble stops each member on its own (EnsembleModule)
        callbacks = [c for c in callbacks if not isinstance(c, EarlyStopping)]
    if not loggers:  # Lightning refuses a learning-rate monitor without a logger to write to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if any(isinstance(c, WeightAveraging) for c in callbacks) and (cfg.optim.compile or cfg.optim.cuda_graph):
        raise ValueError("callbacks=ema is not tested with optim.compile or optim.cuda_graph; use it without them")
    if slurm.job_id() is not None:
        callbacks.append(slurm.StopForRequeue())
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list[L.Callback]) -> L.Trainer:
    """The run's Trainer; in a SLURM job with Lightning's own requeue switched off (submitit requeues:
    mpnn.training.slurm)."""
    settings = {"logger": loggers or False, "callbacks": callbacks, "default_root_dir": str(run_dir)}
    if SLURMEnvironment.detect():
        settings["plugins"] = [SLURMEnvironment(auto_requeue=False)]
    return instantiate(cfg.trainer, **settings)
