"""Train one MPNN on one QM9 target: `python train.py model=edge_net target=mu`."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mpnn import hydra_resolvers

hydra_resolvers.register()  # before Hydra composes the config: run and sweep directories use ${unique_dir:...}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from mpnn.training.run import train

    results = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    if not results:  # a non-zero DDP rank
        return float("nan")
    print(
        f"{results['target']}: test MAE {results['test_mae']:.5g} {results['unit']} "
        f"(error ratio {results['test_error_ratio']:.3f}); results in {HydraConfig.get().runtime.output_dir}"
    )
    return results["best_val_mae"]  # what a Hydra sweeper minimises: model selection never sees the test set


if __name__ == "__main__":
    main()
